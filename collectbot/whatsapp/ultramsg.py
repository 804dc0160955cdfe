"""Ultramsg: a WhatsApp gateway with a form-encoded HTTP API.

Sends `POST {api}/{instance}/messages/document` (filename, base64 document, caption) or
`/messages/chat` (body), with our reference as `referenceId` so its webhooks can name the
message. Ultramsg answers HTTP 200 even when it did not send (`{"sent": "false", ...}` or
`{"error": ...}`): the body, not the status, decides (DESIGN.md section 10).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import aiohttp

from collectbot.whatsapp.gateway import GatewayError, Outgoing

# Ultramsg's documented cap on a caption; longer ones are cut rather than refused.
MAX_CAPTION = 1024


class UltramsgGateway:
    name = "ultramsg"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_url: str,
        instance_id: str,
        token: str,
        timeout_seconds: float = 20.0,
    ) -> None:
        self._session = session
        self._base = f"{api_url.rstrip('/')}/{instance_id}"
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def send(self, message: Outgoing, *, now: datetime) -> str:
        form: dict[str, str] = {
            "token": self._token,
            "to": message.recipient,
            "referenceId": message.reference,
        }
        if message.document is not None:
            doc = message.document
            encoded = base64.b64encode(doc.content).decode("ascii")
            form |= {
                "filename": doc.filename,
                "document": f"data:application/pdf;base64,{encoded}",
                "caption": doc.caption[:MAX_CAPTION],
            }
            path = "/messages/document"
        else:
            form["body"] = message.text or ""
            path = "/messages/chat"
        body = await self._post(path, form)
        if str(body.get("sent", "")).lower() != "true":
            reason = body.get("error") or body.get("message") or body
            raise GatewayError(f"Ultramsg did not send it: {_text(reason)}")
        message_id = body.get("id")
        if message_id in (None, ""):
            raise GatewayError("Ultramsg said sent but gave no message id")
        return str(message_id)

    async def _post(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        try:
            async with self._session.post(
                self._base + path, data=form, timeout=self._timeout
            ) as response:
                text = await response.text()
                if response.status >= 500 or response.status == 429:
                    raise GatewayError(f"Ultramsg answered HTTP {response.status}")
                if response.status >= 400:
                    # 4xx: the request itself is wrong (instance, token): retrying won't help.
                    raise GatewayError(
                        f"Ultramsg refused the request: HTTP {response.status} {text[:200]}",
                        permanent=True,
                    )
        except TimeoutError as exc:
            raise GatewayError("Ultramsg did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise GatewayError(f"Ultramsg could not be reached: {exc}") from exc
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise GatewayError(
                f"Ultramsg answered something that is not JSON: {text[:200]}"
            ) from exc
        if not isinstance(body, dict):
            raise GatewayError(f"Ultramsg answered an unexpected body: {text[:200]}")
        return body


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    return str(value)
