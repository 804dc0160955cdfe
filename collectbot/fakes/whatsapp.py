"""Fake WhatsApp gateways on loopback (Ultramsg and the Cloud API), for tests and the demo.

Each fake records what it was asked to send (decoding the PDF, so a test can read it
back), answers like the real gateway, can be told to fail the next requests in the ways
real gateways fail (HTTP 500, no answer, Ultramsg's HTTP 200 with `"sent": "false"`, a
Graph error), and can play the gateway's side of the status webhooks: `post_ack` and
`post_status` POST the JSON the real gateway would send to our receiver.

Not faked: Ultramsg's queue and rate limits, Meta's template review, media expiry, and
any message type other than text and document.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import aiohttp
from aiohttp import web

Failure = Literal["http500", "timeout", "not_sent", "graph_error", "bad_number"]


@dataclass
class SentMessage:
    """One message a fake accepted."""

    id: str
    to: str
    kind: str  # document / text / template
    reference: str = ""
    filename: str = ""
    document: bytes = b""
    caption: str = ""
    text: str = ""
    template: dict[str, Any] = field(default_factory=dict)


class _FakeServer:
    def __init__(self) -> None:
        self.sent: list[SentMessage] = []
        self.requests = 0
        self._failures: list[Failure] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._ids = itertools.count(1)
        self._sent_changed = asyncio.Event()

    def fail_next(self, *failures: Failure) -> None:
        """The next requests fail in these ways, in order; then all is well again."""
        self._failures.extend(failures)

    def _take_failure(self) -> Failure | None:
        return self._failures.pop(0) if self._failures else None

    async def wait_for_sent(self, count: int) -> list[SentMessage]:
        """Wait until `count` messages were accepted (callers bound it with a timeout)."""
        while len(self.sent) < count:
            self._sent_changed.clear()
            await self._sent_changed.wait()
        return self.sent

    def _record(self, message: SentMessage) -> None:
        self.sent.append(message)
        self._sent_changed.set()

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> Self:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        self._routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the fake gateway is not started")
        return f"http://127.0.0.1:{self._port}"


class FakeUltramsg(_FakeServer):
    """Ultramsg's `/{instance}/messages/document` and `/messages/chat`."""

    def __init__(self, *, instance_id: str = "instance1", token: str = "ultra-token") -> None:
        super().__init__()
        self.instance_id = instance_id
        self.token = token

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/{instance}/messages/{kind}", self._send)

    async def _send(self, request: web.Request) -> web.Response:
        self.requests += 1
        form = await request.post()
        failure = self._take_failure()
        if failure == "http500":
            return web.Response(status=500, text="Internal Server Error")
        if failure == "timeout":
            await asyncio.sleep(30)
        if request.match_info["instance"] != self.instance_id:
            return web.json_response({"error": "instance not found"}, status=404)
        if form.get("token") != self.token:
            # Ultramsg answers a wrong token with HTTP 200 and an error body.
            return web.json_response({"error": "Wrong token. Please provide token as a GET"})
        if failure in ("not_sent", "graph_error", "bad_number"):
            return web.json_response(
                {"sent": "false", "message": "instance is not authenticated (QR not scanned)"}
            )
        kind = request.match_info["kind"]
        message_id = str(next(self._ids))
        message = SentMessage(
            id=message_id,
            to=str(form.get("to", "")),
            kind="document" if kind == "document" else "text",
            reference=str(form.get("referenceId", "")),
        )
        if kind == "document":
            data = str(form.get("document", ""))
            _, _, encoded = data.partition("base64,")
            message.document = base64.b64decode(encoded)
            message.filename = str(form.get("filename", ""))
            message.caption = str(form.get("caption", ""))
        else:
            message.text = str(form.get("body", ""))
        self._record(message)
        return web.json_response({"sent": "true", "message": "ok", "id": int(message_id)})

    async def post_ack(
        self, webhook_url: str, message: SentMessage, ack: str, *, at: int | None = None
    ) -> aiohttp.ClientResponse:
        """POST the `message_ack` event Ultramsg sends when a message's state changes."""
        event = {
            "event_type": "message_ack",
            "instanceId": self.instance_id.removeprefix("instance"),
            "id": message.id,
            "referenceId": message.reference,
            "hash": hashlib.sha256(f"{message.id}{ack}".encode()).hexdigest(),
            "data": {
                "id": f"true_{message.to.lstrip('+')}@c.us_3EB0{message.id:0>16}",
                "from": "8801700000000@c.us",
                "to": f"{message.to.lstrip('+')}@c.us",
                "ack": ack,
                "type": message.kind,
                "body": message.caption or message.text,
                "fromMe": True,
                "time": at if at is not None else int(time.time()),
            },
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                webhook_url, json=event, headers={"User-Agent": "Ultramsg-Webhook/1.0"}
            ) as response,
        ):
            await response.read()
            return response


class FakeMetaCloud(_FakeServer):
    """The Cloud API's `/{phone-number-id}/media` and `/{phone-number-id}/messages`."""

    def __init__(
        self, *, phone_number_id: str = "1234567890", access_token: str = "meta-token"
    ) -> None:
        super().__init__()
        self.phone_number_id = phone_number_id
        self.access_token = access_token
        self.media: dict[str, tuple[str, bytes]] = {}

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/{pnid}/media", self._upload)
        app.router.add_post("/{pnid}/messages", self._messages)

    def _error(self, status: int, code: int, message: str) -> web.Response:
        body = {"error": {"message": message, "type": "OAuthException", "code": code}}
        return web.json_response(body, status=status)

    def _check(self, request: web.Request) -> web.Response | None:
        self.requests += 1
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return self._error(401, 190, "Invalid OAuth access token")
        if request.match_info["pnid"] != self.phone_number_id:
            return self._error(400, 100, "Unsupported post request")
        return None

    async def _upload(self, request: web.Request) -> web.Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField) or form.get("messaging_product") != "whatsapp":
            return self._error(400, 100, "Param file is required")
        media_id = f"media-{next(self._ids)}"
        self.media[media_id] = (upload.filename, upload.file.read())
        return web.json_response({"id": media_id})

    async def _messages(self, request: web.Request) -> web.Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        failure = self._take_failure()
        if failure == "http500":
            return web.Response(status=500, text="")
        if failure == "timeout":
            await asyncio.sleep(30)
        if failure in ("graph_error", "not_sent"):
            return self._error(503, 131016, "Service unavailable")
        if failure == "bad_number":
            return self._error(400, 131026, "Message undeliverable")
        body = await request.json()
        to = str(body.get("to", ""))
        kind = body.get("type")
        message = SentMessage(
            id=f"wamid.{next(self._ids):012d}",
            to="+" + to,
            kind=str(kind),
            reference=str(body.get("biz_opaque_callback_data", "")),
        )
        if kind == "document":
            media_id = body["document"]["id"]
            if media_id not in self.media:
                return self._error(400, 131053, "Media upload error")
            message.filename, message.document = self.media[media_id]
            message.caption = body["document"].get("caption", "")
        elif kind == "template":
            message.template = body["template"]
            header = body["template"]["components"][0]["parameters"][0]["document"]
            message.filename, message.document = self.media[header["id"]]
        elif kind == "text":
            message.text = body["text"]["body"]
        else:
            return self._error(400, 100, f"unsupported type {kind}")
        self._record(message)
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": message.id}],
            }
        )

    @staticmethod
    def status_event(
        message: SentMessage,
        status: str,
        *,
        at: int | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The webhook body Meta sends when `message` reaches `status`."""
        entry: dict[str, Any] = {
            "id": message.id,
            "status": status,
            "timestamp": str(at if at is not None else int(time.time())),
            "recipient_id": message.to.lstrip("+"),
        }
        if errors:
            entry["errors"] = errors
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550001111",
                                    "phone_number_id": "1234567890",
                                },
                                "statuses": [entry],
                            },
                        }
                    ],
                }
            ],
        }

    async def post_status(
        self,
        webhook_url: str,
        app_secret: str,
        message: SentMessage,
        status: str,
        *,
        at: int | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> aiohttp.ClientResponse:
        """POST a signed status webhook, as Meta does."""
        raw = json.dumps(self.status_event(message, status, at=at, errors=errors)).encode()
        signature = hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": f"sha256={signature}",
            "User-Agent": "facebookexternalua",
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(webhook_url, data=raw, headers=headers) as response,
        ):
            await response.read()
            return response
