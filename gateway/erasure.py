"""Erasure outside the database, after the registry's part (casestore.privacy) committed.

Redis keys named by the erased phones go (a menu session the citizen may resume, the
simulator's call), and recordings kept by a provider are deleted there through the provider's
recordings API (`ProviderInfo.recordings`: Twilio's); Africa's Talking has no deletion API, so
its recording URLs are listed for an operator to delete by hand in the provider's dashboard.
Nothing here fails the erasure: what could not be deleted is listed, like the recordings
without an API.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import redis

from casestore.privacy import Recording
from gateway.providers import registry
from gateway.providers.base import RecordingsApi, SendError
from gateway.rediskeys import keys_of

log = logging.getLogger(__name__)


def _phone_key_prefixes(client: redis.Redis) -> tuple[str, ...]:
    """Keys named by a phone, as their owners write them (prefix + the contact's number); a
    scan finds the others (the simulator's call, keys of later modules) by the number in their
    name."""
    return (keys_of(client).menu + "r:",)


def _app_keys(client: redis.Redis) -> str:
    """The deployment's own keys (rq's are "rq:*")."""
    return keys_of(client).prefix + ":*"


@dataclass
class ProviderErasure:
    """What the providers still keep: `manual` URLs an operator must delete by hand."""

    deleted: list[str] = field(default_factory=list)  # provider ids of deleted recordings
    manual: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # could not be deleted now: do it by hand


def _variants(phone: str) -> set[str]:
    """The forms a number may have been keyed under: E.164, and an Argentine mobile without
    its 9 (voice routes present it so)."""
    forms = {phone}
    if phone.startswith("+549"):
        forms.add("+54" + phone[4:])
    return forms


def forget_phone_keys(client: redis.Redis, phones: Iterable[str]) -> bool:
    """Delete every Redis key named by these phones, and the app's short-lived string keys
    that hold one (an Africa's Talking call's party); False when Redis could not be reached
    (those keys expire on their own within hours)."""
    try:
        _forget_phone_keys(client, phones)
    except redis.RedisError as exc:
        log.warning("could not delete the Redis keys of an erased phone: %s", exc)
        return False
    return True


def _forget_phone_keys(client: redis.Redis, phones: Iterable[str]) -> int:
    forms = {form for phone in phones for form in _variants(phone)}
    if not forms:
        return 0
    keys: set[str | bytes] = set()
    for form in forms:
        keys.update(prefix + form for prefix in _phone_key_prefixes(client))
        # Any other key that carries the number in its name (glob specials escaped).
        pattern = "*" + re.sub(r"([*?\[\]\\])", r"\\\1", form) + "*"
        keys.update(client.scan_iter(match=pattern, count=1000))
    needles = [form.encode() for form in forms]
    batch: list[bytes] = []

    def check(names: list[bytes]) -> None:
        for name, value in zip(names, client.mget(names), strict=True):
            raw = value.encode() if isinstance(value, str) else value
            if isinstance(raw, bytes) and any(n in raw for n in needles):
                keys.add(name)

    for name in client.scan_iter(match=_app_keys(client), count=1000, _type="string"):
        batch.append(name)
        if len(batch) == 500:
            check(batch)
            batch = []
    if batch:
        check(batch)
    return int(client.delete(*keys)) if keys else 0


def delete_recordings(env: Mapping[str, str], recordings: list[Recording]) -> ProviderErasure:
    """Delete what each provider keeps; list what cannot be deleted through an API."""
    outcome = ProviderErasure()
    apis = [(p.name, p.recordings) for p in registry.PROVIDERS if p.recordings is not None]
    owned: dict[str, list[Recording]] = {name: [] for name, _ in apis}
    for rec in recordings:
        owner = next((n for n, api in apis if rec.provider == n or api.host in rec.url), None)
        if owner is None:
            outcome.manual.append(rec.url)  # a provider without a deletion API
        else:
            owned[owner].append(rec)
    for name, api in apis:
        if owned[name]:
            _delete_at(api, env, owned[name], outcome)
    return outcome


def _delete_at(
    api: RecordingsApi,
    env: Mapping[str, str],
    recordings: list[Recording],
    outcome: ProviderErasure,
) -> None:
    """Delete one provider's recordings: those its URLs name, and those of the erased calls."""
    client = api.from_env(env)
    if client is None:  # no account configured here: an operator deletes them by hand
        outcome.manual.extend(r.url for r in recordings)
        return
    refs: dict[str, str] = {}  # recording ref -> the URL it is known by
    for rec in recordings:
        ref = api.ref_of(rec.url)
        if ref:
            refs.setdefault(ref, rec.url)
        else:
            outcome.manual.append(rec.url)
    for call_ref in sorted({r.call_ref for r in recordings if r.call_ref}):
        try:
            for ref in client.of_call(call_ref):
                refs.setdefault(ref, ref)
        except SendError as exc:
            log.warning("could not list the recordings of an erased call: %s", exc.reason)
    for ref, url in refs.items():
        try:
            client.delete(ref)
            outcome.deleted.append(ref)
        except SendError as exc:
            log.warning("could not delete an erased recording: %s", exc.reason)
            outcome.failed.append(url)
