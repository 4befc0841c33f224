"""Two deployments (or two test runs) sharing one Redis database never touch each other's keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from rq import SimpleWorker

from casestore.config import load_config
from casestore.db import make_engine
from gateway.menu_store import SessionStore
from gateway.redisconn import connect
from gateway.rediskeys import RedisKeys, delete_all, keys_for_config, keys_of
from gateway.workers.worker import dispatch, make_queue
from ivr.machine import State
from tests.fakeprovider import FakeProvider
from tests.settings import REDIS_PREFIX, REDIS_URL
from tests.test_outbox_worker import add_message, worker_env  # noqa: F401  (fixture)


@pytest.fixture
def two_deployments(redis_url: str) -> Iterator[tuple[redis.Redis, redis.Redis]]:
    """Clients of two deployments on the same Redis database, each with its own prefix."""
    keys = RedisKeys(f"{REDIS_PREFIX}-a"), RedisKeys(f"{REDIS_PREFIX}-b")
    clients = connect(redis_url, keys[0]), connect(redis_url, keys[1])
    yield clients
    for client, own in zip(clients, keys, strict=True):
        delete_all(client, own)
        client.close()


def test_a_worker_never_takes_another_deployments_jobs(
    db_url: str,
    worker_env: redis.Redis,  # noqa: F811
    fake_provider: FakeProvider,
    two_deployments: tuple[redis.Redis, redis.Redis],
) -> None:
    mine, theirs = two_deployments
    message = add_message(db_url, provider="twilio", to="+5491155550042")
    engine = make_engine(db_url)
    try:
        assert dispatch(engine, make_queue(mine)) == 1
        # The other deployment's worker runs everything on its queue: none of our jobs.
        other = make_queue(theirs)
        SimpleWorker([other], connection=theirs).work(burst=True)
        assert fake_provider.messages == []
        assert make_queue(mine).count == 1
        assert make_queue(mine).name != other.name
        SimpleWorker([make_queue(mine)], connection=mine).work(burst=True)
    finally:
        engine.dispose()
    assert [m.to for m in fake_provider.messages] == ["+5491155550042"]
    assert message
    # rq's own keys carry the deployment's prefix too: the job hash is named by it.
    assert list(mine.scan_iter(match=f"rq:job:{keys_of(mine).prefix}-*"))


def test_menu_sessions_are_the_deployments_own(
    two_deployments: tuple[redis.Redis, redis.Redis],
) -> None:
    mine, theirs = two_deployments
    state = State(channel="ussd", language="es")
    SessionStore(mine, ttl=60, resume_seconds=60).save("ussd:ATUid_1", state)
    assert SessionStore(mine, ttl=60, resume_seconds=60).load("ussd:ATUid_1") == state
    assert SessionStore(theirs, ttl=60, resume_seconds=60).load("ussd:ATUid_1") is None
    assert mine.exists(f"{REDIS_PREFIX}-a:menu:s:ussd:ATUid_1")


def test_the_prefix_comes_from_the_config_and_its_override() -> None:
    assert keys_for_config({"redis": {"prefix": "ministerio-sur"}}).queue == "ministerio-sur"
    config = load_config(env={"VENTANILLA__REDIS__PREFIX": "salud"})
    assert keys_for_config(config.raw).menu == "salud:menu:"
    # Without one, the process default: this test run's own prefix (tests/settings.py).
    assert keys_for_config({}).prefix == REDIS_PREFIX
    assert RedisKeys().live == "ventanilla:live:"  # what an unconfigured deployment always used


@pytest.mark.parametrize("prefix", ["", "a:b", "a*", "x" * 65, " leading"])
def test_a_prefix_that_could_match_other_keys_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        RedisKeys(prefix)


def test_cleaning_one_run_leaves_other_keys_alone(redis_url: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        other = f"{REDIS_PREFIX}x:menu:s:keep"
        client.set(other, "1", ex=60)
        client.set(f"{REDIS_PREFIX}:menu:s:gone", "1", ex=60)
        delete_all(client, RedisKeys(REDIS_PREFIX))
        assert client.exists(other) and not client.exists(f"{REDIS_PREFIX}:menu:s:gone")
        client.delete(other)
    finally:
        client.close()
