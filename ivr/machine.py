"""The menu walk as a pure state machine shared by voice and USSD.

`start` opens a session, `step(menu, state, input, context)` takes one input (a key press, a
typed number, a text, a recording URL, or None for "no input"), and returns the next `Screen`.
A screen may carry an `Action` the gateway must perform (open a case, look a case up, queue
the caller, record a call-back); the gateway then calls `resume` with the `Outcome`.
Keys everywhere: 0 back, 00 main menu, 98 more options.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from casestore.tracking import format_tracking, parse_tracking
from ivr.menu import CategoryChoice, Menu, Node

BACK, MAIN, MORE = "0", "00", "98"


class Channel(enum.StrEnum):
    USSD = "ussd"
    VOICE = "voice"


class Expect(enum.StrEnum):
    CHOICE = "choice"
    DIGITS = "digits"
    TEXT = "text"
    RECORDING = "recording"
    NOTHING = "nothing"


@dataclass(frozen=True)
class State:
    """Where a caller is. Small and serialisable: it lives in Redis between requests."""

    channel: str
    language: str
    node: str = "main"
    phase: str = ""
    page: int = 0
    attempts: int = 0
    trail: tuple[str, ...] = ()
    category: str | None = None
    description: str = ""
    recording_url: str | None = None
    tracking: str | None = None


@dataclass(frozen=True)
class Context:
    """What the gateway knows about the caller before a step."""

    latest_open_case: str | None = None
    operators_available: bool = True


@dataclass(frozen=True)
class Action:
    kind: str  # create_case | case_status | enqueue | callback
    category: str | None = None
    description: str = ""
    recording_url: str | None = None
    urgent: bool = False
    tracking: str | None = None
    department: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the gateway's action produced."""

    ok: bool = True
    tracking: str | None = None
    status: str | None = None
    department: str | None = None


@dataclass(frozen=True)
class Screen:
    state: State
    text: str
    options: tuple[tuple[str, str], ...] = ()
    expect: Expect = Expect.CHOICE
    digits: int | None = None
    end: bool = False
    action: Action | None = None
    # Voice only: speak the tracking number digit by digit (it is in `text` already).
    spoken_digits: str | None = field(default=None)


# ---------------------------------------------------------------- entry points


def start(
    menu: Menu, channel: str, language: str | None = None, resumable: State | None = None
) -> Screen:
    """The first screen of a session; offers to resume an unfinished new request."""
    lang = menu.config.language_or_default(language)
    state = State(channel=channel, language=lang)
    if (
        resumable is not None
        and resumable.node in ("describe", "confirm")
        and resumable.node in menu.nodes
        and resumable.category
    ):
        # Offered in the unfinished request's language unless the caller chose one.
        lang = menu.config.language_or_default(language or resumable.language)
        state = replace(resumable, channel=channel, language=lang, phase="resume", attempts=0)
        return _resume_offer(menu, state)
    return _enter(menu, state, "main", Context(), welcome=True)


def _resume_offer(menu: Menu, state: State) -> Screen:
    lang = state.language
    options = (("1", menu.prompt("resume_yes", lang)), ("2", menu.prompt("resume_no", lang)))
    return _choice(menu, state, menu.prompt("resume", lang), options)


def step(menu: Menu, state: State, value: str | None, context: Context | None = None) -> Screen:
    """Apply one input to the session and return the next screen."""
    context = context or Context()
    text = (value or "").strip()
    node = menu.nodes.get(state.node)
    if node is None or state.phase == "resume":
        if node is not None and text == "1":
            return _enter(menu, replace(state, phase=""), state.node, context)
        if node is not None and text not in ("2", MAIN, BACK):
            return _invalid(menu, state, context)
        # "Start again", or a session saved under an older menu: start over cleanly.
        return _enter(menu, State(channel=state.channel, language=state.language), "main", context)
    expects_free_text = node.type == "describe" and state.channel == Channel.USSD
    if text == MAIN:
        return _enter(menu, replace(state, trail=()), "main", context)
    if text == BACK and node.type == "category" and state.page > 0:
        return _categories(menu, replace(state, page=state.page - 1, attempts=0))
    if text == BACK and (node.type != "describe" or expects_free_text):
        if not state.trail:
            return _enter(menu, state, "main", context)
        previous, trail = state.trail[-1], state.trail[:-1]
        return _enter(menu, replace(state, trail=trail), previous, context, push=False)
    handler = _HANDLERS[node.type]
    return handler(menu, state, node, text, value, context)


def resume(menu: Menu, state: State, action: Action, outcome: Outcome) -> Screen:
    """The screen after the gateway performed `action`."""
    lang = state.language
    if action.kind == "create_case":
        tracking = outcome.tracking or ""
        done = replace(state, tracking=tracking, node="main", phase="created", trail=())
        if state.channel == Channel.USSD:
            name = "urgent_ussd" if action.urgent else "created_ussd"
            emergency = menu.config.emergency_lines.get(lang, "")
            text = menu.prompt(name, lang, tracking=format_tracking(tracking), emergency=emergency)
            return Screen(done, text, expect=Expect.NOTHING, end=True)
        if action.urgent:
            department = action.department or menu.operator_department
            return Screen(
                done,
                menu.prompt("urgent_voice", lang),
                expect=Expect.NOTHING,
                action=Action("enqueue", department=department, urgent=True, tracking=tracking),
            )
        return _created_voice(menu, done)
    if action.kind == "case_status":
        if not outcome.ok:
            again = replace(state, attempts=state.attempts + 1, phase="digits")
            if again.attempts >= menu.max_attempts:
                return _goodbye(menu, again, menu.prompt("unknown", lang))
            return _ask_tracking(menu, again, notice=menu.prompt("unknown", lang))
        found = menu.config.departments.get(outcome.department or "")
        text = menu.prompt(
            "status",
            lang,
            tracking=format_tracking(outcome.tracking or ""),
            status=menu.config.status_name(outcome.status or "", lang),
            department=found.label(lang) if found else (outcome.department or ""),
        )
        return Screen(replace(state, phase="told"), text, expect=Expect.NOTHING, end=True)
    if action.kind == "callback":
        name = "callback_done" if state.channel == Channel.USSD else "closed_hours"
        if state.phase == "queue":
            name = "callback_done"
        return Screen(state, menu.prompt(name, lang), expect=Expect.NOTHING, end=True)
    raise ValueError(f"no screen follows action {action.kind!r}")


def queue_wait(
    menu: Menu, state: State, position: int, wait_seconds: int, timed_out: bool
) -> Screen:
    """What a caller waiting for an operator hears; 1 leaves a call-back request instead."""
    lang = state.language
    if timed_out:
        text = menu.prompt("queue_timeout", lang)
    else:
        minutes = str(max(1, round(wait_seconds / 60)))
        text = menu.prompt("queue_wait", lang, position=str(position), minutes=minutes)
    return Screen(replace(state, node="operator", phase="queue"), text, expect=Expect.CHOICE)


# ---------------------------------------------------------------- node handlers


def _enter(
    menu: Menu,
    state: State,
    node_id: str,
    context: Context,
    *,
    welcome: bool = False,
    push: bool = True,
) -> Screen:
    """Show a node from its beginning; `push` remembers where we came from for "0"."""
    lang = state.language
    trail = state.trail
    if node_id == "main":
        trail = ()
    elif push and node_id != state.node:
        trail = (*trail, state.node)
    fresh = replace(state, node=node_id, phase="", page=0, attempts=0, trail=trail)
    if node_id == "main":  # back at the root: an unfinished request is dropped
        fresh = replace(fresh, category=None, description="", recording_url=None, tracking=None)
    node = menu.nodes[node_id]
    if node.type == "menu":
        prefix = menu.prompt("welcome", lang) + " " if welcome else ""
        return _choice(
            menu, fresh, prefix + menu.prompt("main", lang), _menu_options(menu, fresh, node)
        )
    if node.type == "category":
        return _categories(menu, fresh)
    if node.type == "describe":
        if state.channel == Channel.USSD:
            return Screen(fresh, menu.prompt("describe_ussd", lang), expect=Expect.TEXT)
        return Screen(fresh, menu.prompt("describe_voice", lang), expect=Expect.RECORDING)
    if node.type == "confirm":
        return _confirm(menu, fresh)
    if node.type == "tracking":
        if state.channel == Channel.VOICE and context.latest_open_case:
            # Kept in the state: the gateway looks the case up only on the way in.
            latest = replace(fresh, phase="latest", tracking=context.latest_open_case)
            return _offer_latest(menu, latest)
        return _ask_tracking(menu, replace(fresh, phase="digits"))
    if node.type == "operator":
        department = menu.operator_department
        if state.channel == Channel.VOICE and context.operators_available:
            return Screen(
                replace(fresh, phase="queue"),
                "",
                expect=Expect.NOTHING,
                action=Action("enqueue", department=department),
            )
        return Screen(
            fresh, "", expect=Expect.NOTHING, action=Action("callback", department=department)
        )
    if node.type == "language":
        languages = menu.config.languages
        following = languages[(languages.index(lang) + 1) % len(languages)]
        return _enter(menu, replace(fresh, language=following, trail=()), "main", context)
    raise ValueError(f"unknown node type {node.type}")  # pragma: no cover - load_menu checks


def _invalid(menu: Menu, state: State, context: Context, reason: str = "invalid") -> Screen:
    """Re-prompt with the reason, at most max_attempts times, then a polite goodbye."""
    attempts = state.attempts + 1
    notice = menu.prompt(reason, state.language)
    if attempts >= menu.max_attempts:
        return _goodbye(menu, replace(state, attempts=attempts), notice)
    screen = _redisplay(menu, replace(state, attempts=attempts), context)
    return replace(screen, text=f"{notice} {screen.text}".strip())


def _redisplay(menu: Menu, state: State, context: Context) -> Screen:
    """The current node and phase again, keeping attempts and page."""
    node = menu.nodes[state.node]
    lang = state.language
    if state.phase == "resume":
        return _resume_offer(menu, state)
    if node.type == "category":
        return _categories(menu, state)
    if node.type == "confirm":
        return _confirm(menu, state)
    if node.type == "tracking" and state.phase == "digits":
        return _ask_tracking(menu, state)
    if node.type == "tracking" and state.phase == "latest":
        return _offer_latest(menu, state)
    if state.phase == "created":
        return _created_voice(menu, state)
    if state.phase == "queue":
        return queue_wait(menu, state, 1, 0, timed_out=True)
    if node.type == "menu":
        return _choice(menu, state, menu.prompt("main", lang), _menu_options(menu, state, node))
    screen = _enter(menu, state, state.node, context, push=False)
    return replace(screen, state=replace(screen.state, attempts=state.attempts))


def _goodbye(menu: Menu, state: State, notice: str = "") -> Screen:
    text = f"{notice} {menu.prompt('goodbye', state.language)}".strip()
    return Screen(state, text, expect=Expect.NOTHING, end=True)


def _choice(menu: Menu, state: State, text: str, options: tuple[tuple[str, str], ...]) -> Screen:
    return Screen(state, text, options=options, expect=Expect.CHOICE)


def _menu_options(menu: Menu, state: State, node: Node) -> tuple[tuple[str, str], ...]:
    lang = state.language
    result = []
    for option in node.options:
        labels = option.label
        if state.channel == Channel.USSD and option.ussd_label:
            labels = option.ussd_label
        result.append((option.key, labels.get(lang) or next(iter(labels.values()))))
    return tuple(result)


def _menu(
    menu: Menu, state: State, node: Node, text: str, raw: str | None, context: Context
) -> Screen:
    if state.phase == "created":  # voice, after the tracking number was read out
        if text == "1":
            return _created_voice(menu, state)
        return _goodbye(menu, state)
    for option in node.options:
        if option.key == text:
            return _enter(menu, state, option.next, context)
    return _invalid(menu, state, context)


def _page(menu: Menu, state: State) -> tuple[list[CategoryChoice], bool]:
    """The categories on the current page and whether more follow."""
    size = menu.page_size if state.channel == Channel.USSD else 9
    start = state.page * size
    chunk = list(menu.categories[start : start + size])
    return chunk, start + size < len(menu.categories)


def _categories(menu: Menu, state: State) -> Screen:
    lang = state.language
    chunk, more = _page(menu, state)
    options = [(str(i + 1), c.label.get(lang) or c.code) for i, c in enumerate(chunk)]
    if more:
        options.append((MORE, menu.prompt("more", lang)))
    options.append((BACK, menu.prompt("back", lang)))
    return _choice(menu, state, menu.prompt("category", lang), tuple(options))


def _category(
    menu: Menu, state: State, node: Node, text: str, raw: str | None, context: Context
) -> Screen:
    chunk, more = _page(menu, state)
    if text == MORE:
        if not more:
            return _invalid(menu, state, context)
        return _categories(menu, replace(state, page=state.page + 1, attempts=0))
    # ASCII only: str.isdigit() also accepts "²", which int() refuses.
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= len(chunk):
        return _invalid(menu, state, context)
    choice = chunk[int(text) - 1]
    chosen = replace(state, category=choice.code)
    if choice.urgent:
        # Urgent: no description, no confirmation: the case opens now and help comes first.
        return Screen(
            chosen,
            "",
            expect=Expect.NOTHING,
            action=Action(
                "create_case", category=choice.code, urgent=True, department=choice.department
            ),
        )
    assert node.next is not None
    return _enter(menu, chosen, node.next, context)


def _describe(
    menu: Menu, state: State, node: Node, text: str, raw: str | None, context: Context
) -> Screen:
    if state.channel == Channel.USSD:
        description = "" if text == "1" else (raw or "").strip()[: menu.description_max_chars]
        if not description and text != "1":
            return _invalid(menu, state, context)
        assert node.next is not None
        return _enter(menu, replace(state, description=description), node.next, context)
    if not text:  # no recording came back (silence, hang-up of the recorder)
        return _invalid(menu, state, context)
    recorded = replace(state, recording_url=text)
    return Screen(
        recorded,
        "",
        expect=Expect.NOTHING,
        action=Action("create_case", category=state.category, recording_url=text),
    )


def _confirm(menu: Menu, state: State) -> Screen:
    lang = state.language
    category = next((c for c in menu.categories if c.code == state.category), None)
    label = (category.label.get(lang) or category.code) if category else ""
    options = (("1", menu.prompt("confirm_yes", lang)), ("2", menu.prompt("confirm_no", lang)))
    return _choice(menu, state, menu.prompt("confirm", lang, category=label), options)


def _confirm_step(
    menu: Menu, state: State, node: Node, text: str, raw: str | None, context: Context
) -> Screen:
    if text == "1":
        return Screen(
            state,
            "",
            expect=Expect.NOTHING,
            action=Action(
                "create_case",
                category=state.category,
                description=state.description,
                recording_url=state.recording_url,
            ),
        )
    if text == "2":
        done = replace(state, node="main", category=None, description="")
        return Screen(
            done, menu.prompt("cancelled", state.language), expect=Expect.NOTHING, end=True
        )
    return _invalid(menu, state, context)


def _ask_tracking(menu: Menu, state: State, notice: str = "") -> Screen:
    text = f"{notice} {menu.prompt('tracking', state.language)}".strip()
    return Screen(state, text, expect=Expect.DIGITS, digits=menu.config.tracking_length)


def _offer_latest(menu: Menu, state: State) -> Screen:
    lang = state.language
    options = (("1", menu.prompt("latest_yes", lang)), ("2", menu.prompt("latest_no", lang)))
    return _choice(menu, state, menu.prompt("latest", lang), options)


def _tracking(
    menu: Menu, state: State, node: Node, text: str, raw: str | None, context: Context
) -> Screen:
    if state.phase == "latest":
        latest = context.latest_open_case or state.tracking
        if text == "1" and latest:
            return Screen(
                state, "", expect=Expect.NOTHING, action=Action("case_status", tracking=latest)
            )
        if text == "2":
            return _ask_tracking(menu, replace(state, phase="digits", attempts=0))
        return _invalid(menu, state, context)
    parsed = parse_tracking(text)
    if parsed.status != "ok" or parsed.digits is None:
        reason = "mistyped" if parsed.status == "mistyped" else "invalid"
        attempts = state.attempts + 1
        notice = menu.prompt(reason, state.language)
        if attempts >= menu.max_attempts:
            return _goodbye(menu, replace(state, attempts=attempts), notice)
        return _ask_tracking(menu, replace(state, attempts=attempts, phase="digits"), notice)
    return Screen(
        state, "", expect=Expect.NOTHING, action=Action("case_status", tracking=parsed.digits)
    )


def _operator(
    menu: Menu, state: State, node: Node, text: str, raw: str | None, context: Context
) -> Screen:
    # Only reached while waiting in the queue: 1 leaves a call-back request instead.
    if text == "1":
        # A caller queued after an urgent request keeps its department and its urgency.
        urgent = next((c for c in menu.categories if c.urgent and c.code == state.category), None)
        return Screen(
            replace(state, phase="queue"),
            "",
            expect=Expect.NOTHING,
            action=Action(
                "callback",
                department=urgent.department if urgent else menu.operator_department,
                urgent=urgent is not None,
            ),
        )
    return queue_wait(menu, state, 1, 0, timed_out=False)


def _created_voice(menu: Menu, state: State) -> Screen:
    lang = state.language
    tracking = state.tracking or ""
    digits = " ".join(tracking)
    text = menu.prompt("created_voice", lang, digits=digits) + " " + menu.prompt("repeat", lang)
    screen_state = replace(state, node="main", phase="created")
    return Screen(screen_state, text, expect=Expect.CHOICE, spoken_digits=tracking)


_HANDLERS = {
    "menu": _menu,
    "category": _category,
    "describe": _describe,
    "confirm": _confirm_step,
    "tracking": _tracking,
    "operator": _operator,
    "language": _menu,
}
