"""Who is waiting for a person, and the calls operators took: a registry in Redis.

Providers tell us about waiting callers (Twilio's waitUrl every few seconds, the Enqueue action
and status callbacks; Africa's Talking's Enqueue and the final request of the call; the
simulator's buttons). The console reads the registry; nothing here touches the database.
Keys live under the deployment's prefix (gateway.rediskeys; `ventanilla` by default):

    <prefix>:live:q:<DEPT>       hash CallSid -> Waiting (JSON)
    <prefix>:live:where:<sid>    the department a caller waits in
    <prefix>:live:claim:<sid>    an operator is being connected to this caller: the waitUrl
                                   does not put them back meanwhile (expires on its own)
    <prefix>:live:call:<sid>     LiveCall: the caller once an operator took them
    <prefix>:live:leg:<ref>      the operator's call (provider ref) -> the caller's sid
    <prefix>:live:op:<id>        the operator's current call
    <prefix>:live:version        bumped on every change: the live views poll it

Order: urgent callers first, then the longest wait.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import redis

from gateway.rediskeys import keys_of

# Twilio asks the waitUrl again every ~25 s: a caller not heard of for this long has gone.
# Other providers never refresh; their end-of-call request removes the caller.
STALE_SECONDS = {"twilio": 120.0}
DEFAULT_STALE_SECONDS = 2 * 3600.0
CLAIM_SECONDS = 90  # the operator's phone rings at most this long before the caller is back
CALL_SECONDS = 12 * 3600  # a taken call stays readable (wrap-up) for a working day


@dataclass(frozen=True)
class Waiting:
    """A caller waiting in a department's queue."""

    call_sid: str  # Twilio CallSid, Africa's Talking sessionId, simulator id
    department: str
    provider: str  # twilio | africastalking | simulator
    phone: str | None  # E.164; None when withheld
    urgent: bool
    language: str
    since: float  # epoch seconds they joined this queue
    seen: float  # when the provider last said they are still waiting
    position: int | None = None  # the provider's own position, when it tells us

    def waited(self, now: float) -> int:
        return max(0, int(now - self.since))


@dataclass(frozen=True)
class LiveCall:
    """A caller an operator took: from ringing the operator's phone to the wrap-up."""

    call_sid: str
    department: str
    provider: str
    phone: str | None
    urgent: bool
    language: str
    since: float
    operator_id: int
    operator: str
    taken_at: float
    via: str  # provider of the operator's call: twilio | africastalking | outbox
    # ringing | connected | transferred | ended | missed | replaced | wrapped
    state: str = "ringing"
    operator_leg: str | None = None
    cases: tuple[str, ...] = field(default=())  # tracking numbers opened during the call
    transferred_to: str | None = None
    replaced_by: str | None = None  # the provider bridged another caller to this operator

    def waiting(self, now: float | None = None) -> Waiting:
        """The caller as a waiting entry again (the operator did not answer, a transfer)."""
        return Waiting(
            call_sid=self.call_sid,
            department=self.department,
            provider=self.provider,
            phone=self.phone,
            urgent=self.urgent,
            language=self.language,
            since=self.since,
            seen=now if now is not None else time.time(),
        )


def _prefix(client: redis.Redis) -> str:
    return keys_of(client).live


def _version_key(client: redis.Redis) -> str:
    return _prefix(client) + "version"


def _queue_key(client: redis.Redis, department: str) -> str:
    return _prefix(client) + "q:" + department


def _decode_waiting(raw: bytes | str) -> Waiting | None:
    try:
        return Waiting(**json.loads(raw))
    except (ValueError, TypeError):
        return None  # written by another version: forget it


def _decode_call(raw: bytes | str | None) -> LiveCall | None:
    if raw is None:
        return None
    try:
        data: dict[str, Any] = json.loads(raw)
        data["cases"] = tuple(data.get("cases", ()))
        return LiveCall(**data)
    except (ValueError, TypeError):
        return None


def version(client: redis.Redis) -> int:
    raw = client.get(_version_key(client))
    return int(raw) if raw is not None else 0


def _stale(entry: Waiting, now: float) -> bool:
    return now - entry.seen > STALE_SECONDS.get(entry.provider, DEFAULT_STALE_SECONDS)


def register(client: redis.Redis, entry: Waiting) -> bool:
    """Add a waiting caller or refresh one; False while an operator is being connected to them.

    A caller keeps the time they joined; one registered in another department moved there
    (a transfer) and leaves the old queue.
    """
    if client.exists(_prefix(client) + "claim:" + entry.call_sid):
        return False
    where = client.get(_prefix(client) + "where:" + entry.call_sid)
    previous_department = where.decode() if isinstance(where, bytes) else where
    existing = None
    if previous_department == entry.department:
        raw = client.hget(_queue_key(client, entry.department), entry.call_sid)
        existing = _decode_waiting(raw) if raw is not None else None
    if existing is not None:
        entry = replace(entry, since=min(existing.since, entry.since))
    pipe = client.pipeline()
    if previous_department and previous_department != entry.department:
        pipe.hdel(_queue_key(client, previous_department), entry.call_sid)
    pipe.hset(_queue_key(client, entry.department), entry.call_sid, json.dumps(asdict(entry)))
    pipe.set(
        _prefix(client) + "where:" + entry.call_sid, entry.department, ex=int(DEFAULT_STALE_SECONDS)
    )
    changed = existing is None or (existing.position, existing.urgent) != (
        entry.position,
        entry.urgent,
    )
    if changed:
        pipe.incr(_version_key(client))
    pipe.execute()
    return True


def arrived(
    client: redis.Redis,
    call_sid: str,
    department: str,
    provider: str,
    phone: str | None,
    *,
    urgent: bool,
    language: str,
    waited: int = 0,
    position: int | None = None,
) -> bool:
    """A provider reports a caller in a department's queue (`waited` seconds so far)."""
    now = time.time()
    entry = Waiting(call_sid, department, provider, phone, urgent, language, now - waited, now)
    return register(client, replace(entry, position=position))


def remove(client: redis.Redis, call_sid: str, department: str | None = None) -> bool:
    """The caller left the queue (bridged, hung up, left); with `department`, only that one's.

    A report about the queue a caller was transferred out of leaves the new queue alone.
    """
    where = client.get(_prefix(client) + "where:" + call_sid)
    current = where.decode() if isinstance(where, bytes) else where
    if current is None or (department is not None and current != department):
        return False
    pipe = client.pipeline()
    pipe.hdel(_queue_key(client, current), call_sid)
    pipe.delete(_prefix(client) + "where:" + call_sid)
    pipe.incr(_version_key(client))
    pipe.execute()
    return True


def get(client: redis.Redis, call_sid: str) -> Waiting | None:
    """The caller's waiting entry, if they wait anywhere."""
    department = department_of(client, call_sid)
    if department is None:
        return None
    raw = client.hget(_queue_key(client, department), call_sid)
    return _decode_waiting(raw) if raw is not None else None


def department_of(client: redis.Redis, call_sid: str) -> str | None:
    """The queue a caller waits in now, if any."""
    where = client.get(_prefix(client) + "where:" + call_sid)
    return where.decode() if isinstance(where, bytes) else where


def order(entries: Iterable[Waiting]) -> list[Waiting]:
    """Urgent callers first, then the longest wait."""
    return sorted(entries, key=lambda e: (not e.urgent, e.since, e.call_sid))


def waiting(
    client: redis.Redis, departments: Collection[str], now: float | None = None
) -> list[Waiting]:
    """The callers waiting in these departments, in the order they are answered."""
    now = time.time() if now is None else now
    found: list[Waiting] = []
    for department in sorted(departments):
        rows: dict[bytes, bytes] = client.hgetall(_queue_key(client, department))  # type: ignore[assignment]
        for sid, raw in rows.items():
            entry = _decode_waiting(raw)
            if entry is None or _stale(entry, now):
                remove(client, sid.decode(), department)
                continue
            found.append(entry)
    return order(found)


def next_caller(entries: Iterable[Waiting]) -> Waiting | None:
    """Who the next "take call" answers.

    Africa's Talking's Dequeue bridges the longest-waiting caller of its queue whatever we
    prefer, so for its callers the answer is that caller (the screen-pop must be who speaks).
    """
    ordered = order(entries)
    if not ordered:
        return None
    first = ordered[0]
    if first.provider == "africastalking":
        same = [
            e for e in ordered if e.department == first.department and e.provider == first.provider
        ]
        return min(same, key=lambda e: (e.since, e.call_sid))
    return first


def jumps_the_line(chosen: Waiting, entries: Iterable[Waiting]) -> bool:
    """Whether someone in the same provider queue waited longer (an urgent caller went first)."""
    return any(
        e.department == chosen.department
        and e.provider == chosen.provider
        and e.call_sid != chosen.call_sid
        and e.since < chosen.since
        for e in entries
    )


def claim(client: redis.Redis, entry: Waiting, operator_id: int) -> bool:
    """Take the caller out of the queue for one operator; False if another got them first."""
    if not client.hdel(_queue_key(client, entry.department), entry.call_sid):
        return False
    pipe = client.pipeline()
    pipe.set(_prefix(client) + "claim:" + entry.call_sid, str(operator_id), ex=CLAIM_SECONDS)
    pipe.delete(_prefix(client) + "where:" + entry.call_sid)
    pipe.incr(_version_key(client))
    pipe.execute()
    return True


def release(client: redis.Redis, entry: Waiting) -> None:
    """The operator's phone could not be reached: the caller waits again, in their place."""
    client.delete(_prefix(client) + "claim:" + entry.call_sid)
    register(client, entry)


def unclaim(client: redis.Redis, call_sid: str) -> None:
    """Forget the claim only: the provider's next waitUrl request puts the caller back."""
    client.delete(_prefix(client) + "claim:" + call_sid)


# ---------------------------------------------------------------- taken calls


def start_call(client: redis.Redis, call: LiveCall) -> None:
    pipe = client.pipeline()
    pipe.set(_prefix(client) + "call:" + call.call_sid, json.dumps(asdict(call)), ex=CALL_SECONDS)
    if call.operator_leg:
        pipe.set(_prefix(client) + "leg:" + call.operator_leg, call.call_sid, ex=CALL_SECONDS)
    pipe.set(_prefix(client) + "op:" + str(call.operator_id), call.call_sid, ex=CALL_SECONDS)
    pipe.incr(_version_key(client))
    pipe.execute()


def load_call(client: redis.Redis, call_sid: str) -> LiveCall | None:
    return _decode_call(client.get(_prefix(client) + "call:" + call_sid))


def call_for_leg(client: redis.Redis, leg_ref: str) -> str | None:
    """The caller an operator's call (its provider reference) was placed for."""
    raw = client.get(_prefix(client) + "leg:" + leg_ref)
    return raw.decode() if isinstance(raw, bytes) else raw


def current_call(client: redis.Redis, operator_id: int) -> str | None:
    raw = client.get(_prefix(client) + "op:" + str(operator_id))
    return raw.decode() if isinstance(raw, bytes) else raw


def update_call(
    client: redis.Redis, call_sid: str, change: Callable[[LiveCall], LiveCall]
) -> LiveCall | None:
    """Apply `change` to a taken call atomically (the operator and the provider both write)."""
    key = _prefix(client) + "call:" + call_sid
    with client.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                found = _decode_call(pipe.get(key))
                if found is None:
                    pipe.reset()
                    return None
                changed = change(found)
                pipe.multi()
                pipe.set(key, json.dumps(asdict(changed)), ex=CALL_SECONDS)
                pipe.incr(_version_key(client))
                pipe.execute()
                return changed
            except redis.WatchError:
                continue


def set_state(client: redis.Redis, call_sid: str, state: str) -> LiveCall | None:
    return update_call(client, call_sid, lambda c: replace(c, state=state))


def caller_gone(client: redis.Redis, call_sid: str) -> None:
    """The caller's call is over: out of any queue; a call in progress has ended."""
    remove(client, call_sid)
    call = load_call(client, call_sid)
    if call is not None and call.state in ("ringing", "connected"):
        set_state(client, call_sid, "ended")


def finish_operator(client: redis.Redis, call: LiveCall) -> None:
    """The operator is done with this call (wrapped up): it is no longer their current one."""
    if current_call(client, call.operator_id) == call.call_sid:
        client.delete(_prefix(client) + "op:" + str(call.operator_id))
