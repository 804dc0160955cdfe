"""The WhatsApp Cloud API (Meta's Graph API).

A document goes in two calls: upload the PDF as media (`POST /{phone-number-id}/media`),
then send a message naming the media id (`POST /{phone-number-id}/messages`). Meta only
allows free-form messages within 24 hours of the subscriber's last message to us; outside
that window the receipt goes as the approved template named in `META_RECEIPT_TEMPLATE`,
with the PDF as its document header and the essentials as its body parameters.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from collectbot.whatsapp.gateway import GatewayError, Outgoing

WINDOW = timedelta(hours=24)
MAX_CAPTION = 1024
# Graph error codes worth retrying: throttling, temporary errors, service unavailable.
# https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
TRANSIENT_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056, 133004})


class MetaGateway:
    name = "meta"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        graph_url: str,
        phone_number_id: str,
        access_token: str,
        receipt_template: str | None,
        timeout_seconds: float = 20.0,
    ) -> None:
        self._session = session
        self._base = f"{graph_url.rstrip('/')}/{phone_number_id}"
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._template = receipt_template
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def send(self, message: Outgoing, *, now: datetime) -> str:
        to = message.recipient.lstrip("+")
        in_window = (
            message.recipient_last_inbound_at is not None
            and now - message.recipient_last_inbound_at < WINDOW
        )
        if message.document is None:
            if not in_window:
                raise GatewayError(
                    "the subscriber has not written to us in 24 hours, so WhatsApp allows"
                    " no free-form text; send it as an approved template",
                    permanent=True,
                )
            body: dict[str, Any] = {"type": "text", "text": {"body": message.text or ""}}
        else:
            doc = message.document
            if not in_window and not self._template:
                raise GatewayError(
                    "the subscriber has not written to us in 24 hours and"
                    " META_RECEIPT_TEMPLATE is not set, so WhatsApp allows no receipt",
                    permanent=True,
                )
            media_id = await self._upload(doc.filename, doc.content)
            if in_window:
                body = {
                    "type": "document",
                    "document": {
                        "id": media_id,
                        "filename": doc.filename,
                        "caption": doc.caption[:MAX_CAPTION],
                    },
                }
            else:
                body = {
                    "type": "template",
                    "template": {
                        "name": self._template,
                        "language": {"code": doc.language},
                        "components": [
                            {
                                "type": "header",
                                "parameters": [
                                    {
                                        "type": "document",
                                        "document": {"id": media_id, "filename": doc.filename},
                                    }
                                ],
                            },
                            {
                                "type": "body",
                                "parameters": [
                                    {"type": "text", "text": p} for p in doc.template_params
                                ],
                            },
                        ],
                    },
                }
        answer = await self._call(
            "/messages",
            json={
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "biz_opaque_callback_data": message.reference,
                **body,
            },
        )
        messages = answer.get("messages")
        if not isinstance(messages, list) or not messages or "id" not in messages[0]:
            raise GatewayError(f"the Cloud API gave no message id: {json.dumps(answer)[:200]}")
        return str(messages[0]["id"])

    async def _upload(self, filename: str, content: bytes) -> str:
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", "application/pdf")
        form.add_field("file", content, filename=filename, content_type="application/pdf")
        answer = await self._call("/media", data=form)
        media_id = answer.get("id")
        if not media_id:
            raise GatewayError(f"the Cloud API gave no media id: {json.dumps(answer)[:200]}")
        return str(media_id)

    async def _call(self, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with self._session.post(
                self._base + path, headers=self._headers, timeout=self._timeout, **kwargs
            ) as response:
                text = await response.text()
                status = response.status
        except TimeoutError as exc:
            raise GatewayError("the Cloud API did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise GatewayError(f"the Cloud API could not be reached: {exc}") from exc
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise GatewayError(
                f"the Cloud API answered HTTP {status} with something that is not JSON",
                permanent=400 <= status < 500 and status != 429,
            )
        if status >= 400 or "error" in answer:
            raise _graph_error(status, answer.get("error") or {})
        return answer


def _graph_error(status: int, error: dict[str, Any]) -> GatewayError:
    code = error.get("code")
    details = (error.get("error_data") or {}).get("details") or ""
    words = error.get("message") or f"HTTP {status}"
    reason = f"the Cloud API refused it: {words}" + (f" ({details})" if details else "")
    if code is not None:
        reason += f" [code {code}]"
    transient = status >= 500 or status == 429 or code in TRANSIENT_CODES
    return GatewayError(reason, permanent=not transient)
