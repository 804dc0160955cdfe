"""The outbox worker: claims due WhatsApp messages, sends them, records what happened.

One pass (`send_due_messages`) is a scheduler job in `collectbot serve`, run every few
seconds with `max_instances=1`. Several processes may each run it: the claim in
`core.services.outbox` makes sure one message goes to one worker. Nothing here holds a
database transaction across the network call.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime

from collectbot.whatsapp.gateway import Document, Gateway, GatewayError, Outgoing
from core.db.models import Subscriber
from core.domain.dates import utcnow
from core.errors import DomainError
from core.services import outbox
from core.services.delivery import reference_for
from core.services.outbox import ClaimedMessage, RetryPolicy
from core.services.receipts import build_receipt

log = logging.getLogger("collectbot.outbox")


def new_worker_id() -> str:
    """Unique per process and start: host, pid and a random suffix."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class OutboxWorker:
    """Sends the outbox's due WhatsApp messages through one gateway."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        policy: RetryPolicy,
        worker_id: str | None = None,
        batch_size: int = 10,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.gateway = gateway
        self.policy = policy
        self.worker_id = worker_id or new_worker_id()
        self.batch_size = batch_size
        self._clock = clock

    async def send_due_messages(self) -> int:
        """One pass: claim what is due and send it. Returns how many were attempted."""
        attempted = 0
        while True:
            claimed = await outbox.claim_due_messages(
                worker=self.worker_id,
                now=self._clock(),
                limit=self.batch_size,
                policy=self.policy,
            )
            for message in claimed:
                await self._attempt(message)
            attempted += len(claimed)
            # Only an empty claim ends the pass: a short one may just mean that another
            # worker won some of this batch's candidates, with more messages still due.
            if not claimed:
                return attempted

    async def _attempt(self, message: ClaimedMessage) -> None:
        try:
            outgoing = await self._compose(message)
            provider_id = await self.gateway.send(outgoing, now=self._clock())
        except GatewayError as exc:
            await self._failed(message, exc.reason, permanent=exc.permanent)
        except DomainError as exc:
            # The message cannot be built (its payment vanished, say): no retry will help.
            await self._failed(message, f"cannot build the message: {exc}", permanent=True)
        else:
            await outbox.record_sent(
                message,
                worker=self.worker_id,
                provider=self.gateway.name,
                provider_message_id=provider_id,
                now=self._clock(),
            )
            log.info("sent %s message %s to %s", message.kind, message.id, message.recipient)

    async def _failed(self, message: ClaimedMessage, reason: str, *, permanent: bool) -> None:
        outcome = await outbox.record_failure(
            message,
            worker=self.worker_id,
            provider=self.gateway.name,
            error=reason,
            permanent=permanent,
            now=self._clock(),
            policy=self.policy,
        )
        if outcome is not None:
            log.warning(
                "message %s attempt %s failed (%s): %s",
                message.id,
                message.attempt,
                outcome.status,
                reason,
            )

    async def _compose(self, message: ClaimedMessage) -> Outgoing:
        # The Cloud API's 24-hour window runs from the subscriber's last message to us.
        seen = (
            await Subscriber.filter(tenant_id=message.tenant_id, phone=message.recipient)
            .exclude(whatsapp_inbound_at=None)
            .order_by("-whatsapp_inbound_at")
            .first()
            .values("whatsapp_inbound_at")
        )
        last_inbound = seen["whatsapp_inbound_at"] if seen else None
        reference = reference_for(message.id)
        if message.kind == "receipt":
            payment_id = message.payload.get("payment_id") or message.payment_id
            if not isinstance(payment_id, int):
                raise GatewayError("the receipt names no payment", permanent=True)
            receipt = await build_receipt(tenant_id=message.tenant_id, payment_id=payment_id)
            document = Document(
                filename=receipt.filename,
                content=receipt.pdf,
                caption=receipt.caption,
                language=receipt.language,
                template_params=tuple(receipt.template_params),
            )
            return Outgoing(
                recipient=message.recipient,
                reference=reference,
                document=document,
                recipient_last_inbound_at=last_inbound,
            )
        text = message.payload.get("text")
        if not isinstance(text, str) or not text:
            raise GatewayError(f"a {message.kind} message without text", permanent=True)
        return Outgoing(
            recipient=message.recipient,
            reference=reference,
            text=text,
            recipient_last_inbound_at=last_inbound,
        )
