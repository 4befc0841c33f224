"""What one gateway process holds: settings, config, the engine, the intake writer, Redis,
the spool."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from casestore.config import Config
from casestore.db import is_sqlite, make_engine
from casestore.hooks import SurveyHooks
from casestore.inbound import IntakeResult
from casestore.intake import IntakeRequest, process_sms
from casestore.writer import GroupCommitWriter
from gateway.menu_store import SessionStore
from gateway.providers import registry
from gateway.providers.base import SmsWebhooks, VoiceMenu
from gateway.redisconn import connect
from gateway.rediskeys import RedisKeys, keys_for_config
from gateway.settings import Settings
from gateway.spool import Spool, spool_dir
from ivr.menu import Menu, load_menu


@dataclass
class Runtime:
    settings: Settings
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    intake: GroupCommitWriter[IntakeRequest, IntakeResult]
    menu: Menu
    spool: Spool
    surveys: SurveyHooks  # what intake and closing a case call for surveys (feedback's)
    sms_webhooks: dict[str, SmsWebhooks]  # by provider name, from the registry
    voice_menus: dict[str, VoiceMenu]  # by provider name, from the registry
    _redis: redis.Redis | None = field(default=None)
    _menu_store: SessionStore | None = field(default=None)

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None:
            self._redis = connect(self.settings.redis_url, self.redis_keys)
        return self._redis

    @property
    def redis_keys(self) -> RedisKeys:
        """This deployment's Redis key prefix and queue names."""
        return keys_for_config(self.config.raw)

    @property
    def menu_store(self) -> SessionStore:
        if self._menu_store is None:
            ivr = self.config.raw.get("ivr", {})
            self._menu_store = SessionStore(
                self.redis,
                ttl=int(ivr.get("session_ttl_seconds", 300)),
                resume_seconds=60 * self.menu.resume_minutes,
            )
        return self._menu_store

    def close(self) -> None:
        self.intake.stop()
        self.engine.dispose()


def build_runtime(settings: Settings, config: Config, *, surveys: SurveyHooks) -> Runtime:
    """Everything one gateway process holds; `surveys` is how casestore reaches feedback."""
    engine = make_engine(settings.database_url)
    writer: GroupCommitWriter[IntakeRequest, IntakeResult] = GroupCommitWriter(
        engine,
        lambda conn, request: process_sms(conn, request, config, surveys=surveys),
        # SQLite: in-process, microseconds a statement, one writer at a time anyway, so on the
        # event loop. PostgreSQL: network round trips, overlapped by writer threads.
        threads=0 if is_sqlite(engine) else 4,
    )
    return Runtime(
        settings=settings,
        config=config,
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        intake=writer,
        menu=load_menu(config),
        spool=Spool(spool_dir(config.raw)),
        surveys=surveys,
        sms_webhooks=registry.sms_webhooks(settings.env),
        voice_menus=registry.voice_menus(settings.env),
    )
