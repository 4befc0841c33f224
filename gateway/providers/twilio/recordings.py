"""Call recordings Twilio keeps for the account: found per call and deleted on erasure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from twilio.base.exceptions import TwilioRestException

from gateway.providers.env import optional_env
from gateway.providers.twilio.client import refusals, rest_client

_RECORDING = re.compile(r"/Recordings/(RE[0-9a-fA-F]{32})")


class TwilioRecordings:
    """Twilio's recordings API (…/Recordings.json) for one account."""

    # A recording of ours at Twilio, whichever provider name the call was stored under.
    host: ClassVar[str] = "twilio.com"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._secrets = (auth_token,)
        self._client: Any = rest_client(
            account_sid, auth_token, api_base_url=api_base_url, timeout=timeout
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TwilioRecordings | None:
        """The deployment's account's recordings, or None without a Twilio account."""
        sid = optional_env(env, "TWILIO_ACCOUNT_SID")
        token = optional_env(env, "TWILIO_AUTH_TOKEN")
        if sid is None or token is None:
            return None
        return cls(sid, token, api_base_url=optional_env(env, "TWILIO_API_BASE_URL"))

    @staticmethod
    def ref_of(url: str) -> str | None:
        """The recording SID in one of its URLs (…/Recordings/RE….mp3), if it names one."""
        match = _RECORDING.search(url)
        return match.group(1) if match else None

    def of_call(self, call_ref: str) -> list[str]:
        """The recording SIDs of one call (GET …/Recordings.json?CallSid=…)."""
        with refusals(self._secrets):
            return [str(r.sid) for r in self._client.recordings.list(call_sid=call_ref)]

    def delete(self, recording_ref: str) -> None:
        """Delete one recording (DELETE …/Recordings/RE….json); one already gone is fine."""
        with refusals(self._secrets):
            try:
                self._client.recordings(recording_ref).delete()
            except TwilioRestException as exc:
                if exc.status != 404:
                    raise
