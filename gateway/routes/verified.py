"""The first lines of every voice, survey and USSD route: read the request, prove the provider.

Twilio signs each request (X-Twilio-Signature over the public URL and every field); Africa's
Talking signs nothing, so each callback URL we hand it carries our secret `?token=`. Both raise
BadRequest (403) when the proof is missing or wrong; the route answers it with `refuse`.
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.forms import read_form, signed_fields
from gateway.providers import africastalking, twilio
from gateway.providers.twilio.voice import VoiceCall, parse_call
from gateway.routes.webhooks import public_url, runtime
from gateway.runtime import Runtime


async def verified_twilio_form(request: Request) -> tuple[Runtime, dict[str, str]]:
    """The runtime and the request's form, its Twilio signature checked."""
    rt = runtime(request)
    form = await read_form(request)
    twilio.verify_signature(
        rt.settings.twilio_auth_token,
        public_url(request),
        signed_fields(request, form),
        request.headers.get("x-twilio-signature"),
    )
    return rt, form


async def verified_twilio_call(request: Request) -> tuple[Runtime, dict[str, str], VoiceCall]:
    """A Twilio voice webhook read, its signature checked, and its call parsed: every Twilio
    call route starts here."""
    rt, form = await verified_twilio_form(request)
    return rt, form, parse_call(form, rt.config.country)


def verified_at(request: Request) -> Runtime:
    """The runtime, once the callback URL's Africa's Talking token is checked."""
    rt = runtime(request)
    africastalking.verify_token(rt.settings.at_webhook_token, request.query_params.get("token"))
    return rt


async def verified_at_form(request: Request) -> tuple[Runtime, dict[str, str]]:
    """The runtime and the request's form, the callback URL's token checked first."""
    rt = verified_at(request)
    return rt, await read_form(request)
