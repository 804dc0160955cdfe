"""Queueing messages for delivery after commit (the transactional outbox).

A service writes the message row in its own transaction, so a receipt exists exactly when
its payment does; a worker (the WhatsApp issue) sends it later with retries. A gateway that
is down therefore never blocks or undoes a payment. `dedupe_key` makes queueing idempotent.
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from core.db.models import OutboxMessage

WHATSAPP = "whatsapp"
PENDING = "pending"


async def queue_message(
    conn: BaseDBAsyncClient,
    *,
    tenant_id: int,
    channel: str,
    kind: str,
    recipient: str,
    dedupe_key: str,
    payload: dict[str, Any],
    invoice_id: int | None = None,
    payment_id: int | None = None,
) -> OutboxMessage:
    return await OutboxMessage.create(
        tenant_id=tenant_id,
        channel=channel,
        kind=kind,
        recipient=recipient,
        dedupe_key=dedupe_key,
        payload=payload,
        invoice_id=invoice_id,
        payment_id=payment_id,
        status=PENDING,
        using_db=conn,
    )
