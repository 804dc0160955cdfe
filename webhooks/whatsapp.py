"""WhatsApp gateway webhooks: delivery statuses (Ultramsg, Meta Cloud API) and inbound messages.

Routes (DESIGN.md section 6; the paths are configured at the gateways, keep them stable):

- `POST /webhooks/whatsapp/ultramsg/{token}`: Ultramsg signs nothing, so the token in the
  path is the secret (`ULTRAMSG_WEBHOOK_TOKEN`); a wrong or unset one is 401 before the body
  is read. `message_ack` events are statuses; every other event type is acknowledged and
  ignored.
- `GET /webhooks/whatsapp/meta`: Meta's verification handshake; 200 with `hub.challenge`
  when `hub.verify_token` is `META_VERIFY_TOKEN`, else 403.
- `POST /webhooks/whatsapp/meta`: 401 unless `X-Hub-Signature-256` is `sha256=` and the hex
  HMAC-SHA256 of the raw body keyed by `META_APP_SECRET`. `statuses` are delivery statuses;
  `messages` tell when a subscriber last wrote to us (the 24-hour free-form window).

Every secret is compared in constant time and checked before the body is parsed. Bodies
over `MAX_BODY_BYTES` get 413, bodies that are not JSON of the gateway's shape 400 with a
short JSON error. Values we do not know (an ack or status name, another event type, another
webhook field) are acknowledged with 200 and skipped: answering 4xx would only make the
gateway retry something that will never parse better. The handlers do no network I/O: they
verify, parse into `core.services.delivery` dataclasses, call the service and answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from core.config import Settings
from core.domain.dates import utcnow
from core.domain.delivery import META_STATUSES, ULTRAMSG_ACKS, DeliveryStatus
from core.services.delivery import (
    META,
    ULTRAMSG,
    DeliveryRecorder,
    InboundMessage,
    RecordedEvents,
    StatusEvent,
    record_inbound_messages,
)

log = logging.getLogger("collectbot.whatsapp")

ULTRAMSG_PATH = "/webhooks/whatsapp/ultramsg/{token}"
META_PATH = "/webhooks/whatsapp/meta"
META_SIGNATURE_HEADER = "X-Hub-Signature-256"
# An Ultramsg event is about 1 KB, one per request: 256 KB is generous. Meta batches
# statuses and documents webhook payloads of up to 3 MB, so its route takes that much (read
# here in chunks, past the app-wide limit, which only applies to `request.read()`).
MAX_BODY_BYTES = 256 * 1024
META_MAX_BODY_BYTES = 3 * 1024 * 1024
_SIGNATURE_PREFIX = "sha256="
# Unix seconds accepted as an event time: 2001-09-09 .. 2286-11-20. Anything else is not a
# timestamp (and a huge number would overflow `datetime`).
_MIN_TS, _MAX_TS = 1_000_000_000, 9_999_999_999
_MAX_CHALLENGE = 256


class BadPayload(ValueError):
    """A body that is not JSON of the gateway's shape; its text is the 400's short error."""


# --- parsing: bytes -> dataclasses (pure) -----------------------------------------------------


@dataclass(frozen=True)
class MetaNotification:
    """What one Meta webhook body says: delivery statuses and subscribers' own messages."""

    statuses: list[StatusEvent]
    inbound: list[InboundMessage]


def decode_json(body: bytes) -> Any:
    """The JSON value of a body, or BadPayload (also for absurd nesting)."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadPayload("body is not JSON") from None


def parse_ultramsg(payload: Any, *, now: datetime) -> list[StatusEvent]:
    """An Ultramsg webhook body: one event, a status only if it is a `message_ack`.

    `pending` (still on the gateway's queue) and ack names we do not know give no event;
    `now` stands in for an event without a time.
    """
    if not isinstance(payload, dict):
        raise BadPayload("not an Ultramsg event")
    event_type = payload.get("event_type")
    if not isinstance(event_type, str):
        raise BadPayload("event_type missing")
    if event_type != "message_ack":
        return []
    data = payload.get("data")
    if not isinstance(data, dict):
        raise BadPayload("message_ack without data")
    ack = data.get("ack")
    if not isinstance(ack, str):
        raise BadPayload("message_ack without ack")
    status = ULTRAMSG_ACKS.get(ack)
    if status is None:
        if ack not in ULTRAMSG_ACKS:
            log.info("ultramsg: ignored unknown ack %.40r", ack)
        return []
    return [
        StatusEvent(
            provider=ULTRAMSG,
            provider_message_id=_id(payload.get("id"), "id"),
            alternate_id=_id(data.get("id"), "data.id"),
            reference=_reference(payload.get("referenceId")),
            status=status,
            occurred_at=_time(data.get("time"), now),
            raw=payload,
        )
    ]


def parse_meta(payload: Any) -> MetaNotification:
    """A WhatsApp Cloud API webhook body: `entry[].changes[].value` of field `messages`.

    Other objects and fields (account updates, templates ...) and status names we do not
    map give nothing. Each status event keeps its own `statuses[]` object as `raw`.
    """
    if not isinstance(payload, dict):
        raise BadPayload("not a Meta notification")
    if payload.get("object") != "whatsapp_business_account":
        return MetaNotification([], [])
    statuses: list[StatusEvent] = []
    inbound: list[InboundMessage] = []
    for entry in _list_of_objects(payload.get("entry"), "entry"):
        for change in _list_of_objects(entry.get("changes", []), "entry.changes"):
            if change.get("field") != "messages":
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                raise BadPayload("changes.value is not an object")
            for status in _list_of_objects(value.get("statuses", []), "statuses"):
                event = _meta_status(status)
                if event is not None:
                    statuses.append(event)
            for message in _list_of_objects(value.get("messages", []), "messages"):
                sender = message.get("from")
                if not isinstance(sender, str):
                    raise BadPayload("messages.from missing")
                if sender.isascii() and sender.isdigit() and 7 <= len(sender) <= 15:
                    inbound.append(
                        InboundMessage(f"+{sender}", _time(message.get("timestamp"), None))
                    )
    return MetaNotification(statuses, inbound)


def _meta_status(status: dict[str, Any]) -> StatusEvent | None:
    message_id, name = status.get("id"), status.get("status")
    if not isinstance(message_id, str) or not message_id or not isinstance(name, str):
        raise BadPayload("statuses need an id and a status")
    mapped = META_STATUSES.get(name)
    if mapped is None:
        if name not in META_STATUSES:
            log.info("meta: ignored unknown status %.40r", name)
        return None
    return StatusEvent(
        provider=META,
        provider_message_id=message_id,
        # The sender's reference, echoed back when it passed one (`biz_opaque_callback_data`).
        reference=_reference(status.get("biz_opaque_callback_data")),
        status=mapped,
        occurred_at=_time(status.get("timestamp"), None),
        raw=status,
        error=_meta_errors(status.get("errors")) if mapped == DeliveryStatus.FAILED else "",
    )


def _meta_errors(errors: Any) -> str:
    """`131047 Re-engagement message: <details>; ...`, or "" when Meta said nothing."""
    parts = []
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        details = error.get("error_data")
        why = details.get("details") if isinstance(details, dict) else None
        why = why or error.get("message") or ""
        head = " ".join(str(p) for p in (error.get("code"), error.get("title")) if p)
        parts.append(f"{head}: {why}" if why and head else head or str(why))
    return "; ".join(parts)[:1000]


def _list_of_objects(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BadPayload(f"{what} is not a list of objects")
    return value


def _id(value: Any, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadPayload(f"{what} is not an id")
    text = str(value)
    # provider_message_id is VARCHAR(120): a longer id is none of ours (so names no message).
    return text if len(text) <= 120 else ""


def _reference(value: Any) -> str:
    """A reference the gateway echoes: ours are short; anything else (another sender's, any
    length) just names no message of ours."""
    return value if isinstance(value, str) and len(value) <= 40 else ""


def _time(value: Any, default: datetime | None) -> datetime:
    """Unix seconds (a number or a string of digits) as an aware UTC datetime."""
    if value is None and default is not None:
        return default
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadPayload("timestamp is not Unix seconds")
    if not _MIN_TS <= value <= _MAX_TS:
        raise BadPayload("timestamp out of range")
    return datetime.fromtimestamp(value, UTC)


def meta_signature(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value Meta sends for `body` (tests and tools use it too)."""
    return _SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- HTTP -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhatsAppSecrets:
    """The three webhook secrets, encoded once; None when not configured (then: refuse)."""

    ultramsg_token: bytes | None
    meta_app_secret: bytes | None
    meta_verify_token: bytes | None

    @classmethod
    def from_settings(cls, settings: Settings) -> WhatsAppSecrets:
        def encoded(value: str | None) -> bytes | None:
            return value.encode() if value else None

        return cls(
            encoded(settings.ultramsg_webhook_token),
            encoded(settings.meta_app_secret),
            encoded(settings.meta_verify_token),
        )


SECRETS: web.AppKey[WhatsAppSecrets] = web.AppKey("whatsapp_secrets", WhatsAppSecrets)
RECORDER: web.AppKey[DeliveryRecorder] = web.AppKey("delivery_recorder", DeliveryRecorder)


def _same(given: str, expected: bytes | None) -> bool:
    """Constant-time equality; never equal to an unset secret."""
    if not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _read_body(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The raw body, or None when it is over `limit` (declared or streamed)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)


async def _record(request: web.Request, events: list[StatusEvent]) -> RecordedEvents:
    if not events:
        return RecordedEvents()
    result = await request.app[RECORDER].record(
        events,
        remote_addr=request.remote or "",
        user_agent=request.headers.get("User-Agent", ""),
    )
    if result.unknown:
        log.info(
            "%s: %d status event(s) for messages we do not know: %s",
            events[0].provider,
            result.unknown,
            ", ".join(result.unknown_ids)[:500],
        )
    return result


def _ok(result: RecordedEvents, **extra: int) -> web.Response:
    return web.json_response(
        {
            "ok": True,
            "stored": result.stored,
            "duplicates": result.duplicates,
            "unknown": result.unknown,
            **extra,
        }
    )


async def ultramsg_event(request: web.Request) -> web.Response:
    """`POST /webhooks/whatsapp/ultramsg/{token}`."""
    if not _same(request.match_info["token"], request.app[SECRETS].ultramsg_token):
        return _error(401, "unauthorized")
    body = await _read_body(request)
    if body is None:
        return _error(413, "body too large")
    try:
        events = parse_ultramsg(decode_json(body), now=utcnow())
    except BadPayload as exc:
        return _error(400, str(exc))
    return _ok(await _record(request, events))


async def meta_handshake(request: web.Request) -> web.Response:
    """`GET /webhooks/whatsapp/meta`: Meta checks it is talking to us before subscribing."""
    query = request.query
    challenge = query.get("hub.challenge", "")
    if (
        query.get("hub.mode") == "subscribe"
        and _same(query.get("hub.verify_token", ""), request.app[SECRETS].meta_verify_token)
        and len(challenge) <= _MAX_CHALLENGE
    ):
        return web.Response(text=challenge, content_type="text/plain")
    return _error(403, "forbidden")


async def meta_event(request: web.Request) -> web.Response:
    """`POST /webhooks/whatsapp/meta`."""
    secret = request.app[SECRETS].meta_app_secret
    signature = request.headers.get(META_SIGNATURE_HEADER, "")
    if not secret or not signature.startswith(_SIGNATURE_PREFIX):
        return _error(401, "unauthorized")
    body = await _read_body(request, META_MAX_BODY_BYTES)
    if body is None:
        return _error(413, "body too large")
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    given = signature[len(_SIGNATURE_PREFIX) :].lower().encode("utf-8", "replace")
    if not hmac.compare_digest(given, expected):
        return _error(401, "unauthorized")
    try:
        notification = parse_meta(decode_json(body))
    except BadPayload as exc:
        return _error(400, str(exc))
    result = await _record(request, notification.statuses)
    inbound = 0
    if notification.inbound:
        inbound = (await record_inbound_messages(notification.inbound)).messages
    return _ok(result, inbound=inbound)


async def _recorder_lifetime(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[RECORDER].close()  # whatever was handed in is stored before the ORM closes


def add_whatsapp_routes(app: web.Application, settings: Settings) -> None:
    """Register the three WhatsApp routes on `app`, with the secrets from `settings`."""
    app[SECRETS] = WhatsAppSecrets.from_settings(settings)
    app[RECORDER] = DeliveryRecorder()
    app.cleanup_ctx.append(_recorder_lifetime)
    app.router.add_post(ULTRAMSG_PATH, ultramsg_event)
    app.router.add_get(META_PATH, meta_handshake)
    app.router.add_post(META_PATH, meta_event)
