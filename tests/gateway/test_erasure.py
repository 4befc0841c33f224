"""The gateway's part of an erasure: provider recordings and Redis keys, when things fail."""

from __future__ import annotations

import redis

from casestore.privacy import Recording
from gateway.erasure import delete_recordings, forget_phone_keys
from tests.fakeprovider import FakeProvider
from tests.settings import REDIS_PREFIX
from tests.test_blackbox import free_port

PHONE = "+5491155550911"


def _env(fake: FakeProvider) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": fake.twilio_account_sid,
        "TWILIO_AUTH_TOKEN": fake.twilio_auth_token,
        "TWILIO_API_BASE_URL": fake.url,
    }


def test_a_recording_twilio_would_not_delete_is_listed_for_manual_deletion(
    fake_provider: FakeProvider,
) -> None:
    kept = fake_provider.add_recording("CA" + "7" * 32)
    fake_provider.fail_next("twilio", 500, {"code": 20500, "message": "Internal Server Error"})
    outcome = delete_recordings(_env(fake_provider), [Recording("twilio", kept.url, None)])
    assert outcome.deleted == [] and outcome.failed == [kept.url]
    assert [r.sid for r in fake_provider.recordings] == [kept.sid]
    # Already deleted at Twilio (404): nothing left to do, nothing to list.
    fake_provider.recordings.clear()
    outcome = delete_recordings(_env(fake_provider), [Recording("twilio", kept.url, None)])
    assert outcome.failed == [] and outcome.manual == [] and outcome.deleted == [kept.sid]


def test_without_a_twilio_account_recordings_are_listed(fake_provider: FakeProvider) -> None:
    kept = fake_provider.add_recording("CA" + "7" * 32)
    outcome = delete_recordings({}, [Recording("twilio", kept.url, "CA" + "7" * 32)])
    assert outcome.manual == [kept.url] and outcome.deleted == []
    assert fake_provider.requests == []


def test_phone_keys_go_in_both_argentine_forms(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(f"{REDIS_PREFIX}:menu:r:+541155550911", "{}")  # as a voice route presented it
    client.set(f"{REDIS_PREFIX}:menu:r:+5491155550912", "{}")  # another phone
    assert forget_phone_keys(client, [PHONE]) is True
    assert client.keys(f"{REDIS_PREFIX}:menu:r:*") == [
        f"{REDIS_PREFIX}:menu:r:+5491155550912".encode()
    ]
    client.close()


def test_redis_down_is_reported_not_raised() -> None:
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    assert forget_phone_keys(client, [PHONE]) is False
