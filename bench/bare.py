"""The limit: a bare Starlette endpoint that only reads and parses the same Twilio form.

No signature check, no database: what one uvicorn worker can do for `POST /webhooks/twilio/sms`
when the application does nothing but `parse_qsl(..., keep_blank_values=True)` and answer an
empty TwiML `<Response/>`. `bench.intake` runs it beside the real gateway, under the same uvicorn
settings (`bench.serve_app`), and reports the real server's throughput as a ratio of this one.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

# What twilio.twiml.messaging_response.MessagingResponse() renders when there is nothing to say.
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


async def twilio_sms(request: Request) -> Response:
    body = await request.body()
    form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    if not form.get("MessageSid"):
        return PlainTextResponse("missing field: MessageSid", status_code=400)
    return Response(EMPTY_TWIML, media_type="application/xml")


# A category page as the real USSD route answers it (bench.ussd): same size on the wire.
USSD_SCREEN = (
    "CON Elija el tema de su pedido.\n1 Violencia de género\n"
    "2 Niña, niño o adolescente en riesgo\n3 Crisis de salud mental\n98 Mas\n0 Volver"
)


async def at_ussd(request: Request) -> Response:
    """bench.ussd's limit: read and parse the same AT USSD form, answer a constant screen."""
    body = await request.body()
    form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    if not form.get("sessionId"):
        return PlainTextResponse("missing field: sessionId", status_code=400)
    return PlainTextResponse(USSD_SCREEN)


app = Starlette(
    routes=[
        Route("/webhooks/twilio/sms", twilio_sms, methods=["POST"]),
        Route("/webhooks/africastalking/ussd", at_ussd, methods=["POST"]),
    ]
)
