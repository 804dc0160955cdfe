"""The transactional outbox: messages queued with the change that caused them, sent later.

A service writes the message row in its own transaction, so a receipt exists exactly when
its payment does; a worker sends it after commit, with retries. A gateway that is down
therefore never blocks or undoes a payment (DESIGN.md invariant 8).

Lifecycle of `OutboxMessage.status`:

    pending --claim--> sending --gateway accepted--> sent
       ^                  |
       +---- retry -------+ (attempts < max: wait retry_delay(attempts))
                          +--> failed (attempts exhausted, or a permanent refusal)
    refused: decided at queue time (a landline, no number); never claimed.

Invariants:
- A message is claimed by one worker at a time: the claim is a conditional UPDATE that
  only one of several racing processes can win. The claim is a lease (`claimed_until`): a
  worker that dies mid-send loses it and another picks the message up, so a restart loses
  nothing. The price is at-least-once delivery in that one crash window.
- No network call happens inside a transaction: claim (commit), send, record (commit).
- A result is recorded only by the worker that holds the claim (`claimed_by`), so a slow
  worker whose lease expired cannot overwrite a newer attempt.
- Every attempt and its result is an audit row on the message's invoice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from core.db.models import Invoice, NotificationLog, OutboxMessage, Staff, Subscriber
from core.domain.delivery import DeliveryStatus, retry_delay, whatsapp_refusal
from core.domain.status import Role
from core.errors import Conflict, NotFound
from core.services.access import COLLECTORS_VIEW, SYSTEM, Origin, require_permission
from core.services.audit import write_audit

WHATSAPP = "whatsapp"

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
REFUSED = "refused"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the worker tries: attempts, and the backoff between them."""

    max_attempts: int = 8
    base_seconds: int = 30
    cap_seconds: int = 3600
    lease_seconds: int = 120


@dataclass(frozen=True)
class ClaimedMessage:
    """A message this worker may send now."""

    id: int
    tenant_id: int
    channel: str
    kind: str
    recipient: str
    invoice_id: int | None
    payment_id: int | None
    payload: dict[str, Any]
    attempt: int  # this attempt's number, from 1


@dataclass(frozen=True)
class AttemptOutcome:
    """What became of one attempt: the message's new status and, if retried, when."""

    status: str
    next_attempt_at: datetime | None
    error: str | None


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
    """Queue a message inside the caller's transaction.

    A WhatsApp message to a number that cannot have WhatsApp (a landline, a service number)
    is stored as `refused` with the reason, so the office sees why no receipt went out and
    the worker never wastes attempts on it.
    """
    refusal = whatsapp_refusal(recipient) if channel == WHATSAPP else None
    return await OutboxMessage.create(
        tenant_id=tenant_id,
        channel=channel,
        kind=kind,
        recipient=recipient,
        dedupe_key=dedupe_key,
        payload=payload,
        invoice_id=invoice_id,
        payment_id=payment_id,
        status=REFUSED if refusal else PENDING,
        last_error=refusal,
        using_db=conn,
    )


async def queue_receipt(
    conn: BaseDBAsyncClient,
    *,
    tenant_id: int,
    payment_id: int,
    invoice_id: int,
    phone: str,
) -> str | None:
    """Queue the WhatsApp receipt of a payment; the reason it cannot go, or None if queued.

    One receipt per payment (`receipt:<payment id>`), whoever took the money.
    """
    receipt = await queue_message(
        conn,
        tenant_id=tenant_id,
        channel=WHATSAPP,
        kind="receipt",
        recipient=phone,
        dedupe_key=f"receipt:{payment_id}",
        payload={"payment_id": payment_id},
        invoice_id=invoice_id,
        payment_id=payment_id,
    )
    return receipt.last_error if receipt.status == REFUSED else None


def _claimable(now: datetime) -> Q:
    """Due for an attempt: pending and its time has come, or a lease that ran out."""
    return (
        Q(status=PENDING, next_attempt_at__isnull=True)
        | Q(status=PENDING, next_attempt_at__lte=now)
        | Q(status=SENDING, claimed_until__lt=now)
    )


async def claim_due_messages(
    *, worker: str, now: datetime, limit: int, policy: RetryPolicy, channel: str = WHATSAPP
) -> list[ClaimedMessage]:
    """Claim up to `limit` due messages for `worker`, oldest first.

    Candidates are read, then each is claimed by an UPDATE that repeats the due condition:
    of several workers reading the same candidates, exactly one changes each row.
    """
    candidates = [
        row["id"]
        for row in await OutboxMessage.filter(_claimable(now), channel=channel)
        .order_by("id")
        .limit(limit)
        .values("id")
    ]
    until = now + timedelta(seconds=policy.lease_seconds)
    won: list[int] = []
    for message_id in candidates:
        changed = await OutboxMessage.filter(_claimable(now), id=message_id).update(
            status=SENDING, claimed_by=worker, claimed_until=until, attempts=F("attempts") + 1
        )
        if changed == 1:
            won.append(message_id)
    if not won:
        return []
    rows = await OutboxMessage.filter(id__in=won, claimed_by=worker).order_by("id")
    return [
        ClaimedMessage(
            id=row.id,
            tenant_id=row.tenant_id,
            channel=row.channel,
            kind=row.kind,
            recipient=row.recipient,
            invoice_id=row.invoice_id,
            payment_id=row.payment_id,
            payload=dict(row.payload),
            attempt=row.attempts,
        )
        for row in rows
    ]


async def record_sent(
    message: ClaimedMessage,
    *,
    worker: str,
    provider: str,
    provider_message_id: str,
    now: datetime,
) -> bool:
    """The gateway accepted `message`. False if this worker no longer held the claim."""
    async with in_transaction() as conn:
        changed = (
            await OutboxMessage.filter(id=message.id, claimed_by=worker, status=SENDING)
            .using_db(conn)
            .update(
                status=SENT,
                provider=provider,
                provider_message_id=provider_message_id,
                sent_at=now,
                claimed_by=None,
                claimed_until=None,
                last_error=None,
            )
        )
        if changed:
            # A fast gateway's webhook may already have reported `delivered` (it finds the
            # message by our reference): "sent" only fills an empty status, never lowers one.
            await (
                OutboxMessage.filter(id=message.id, delivery_status__isnull=True)
                .using_db(conn)
                .update(delivery_status=DeliveryStatus.SENT.value)
            )
            await _audit_attempt(
                conn,
                message,
                result="sent",
                details={"provider": provider, "provider_message_id": provider_message_id},
            )
    return changed == 1


async def record_failure(
    message: ClaimedMessage,
    *,
    worker: str,
    provider: str,
    error: str,
    permanent: bool,
    now: datetime,
    policy: RetryPolicy,
) -> AttemptOutcome | None:
    """An attempt failed: retry later with backoff, or give up with the reason.

    Returns None if this worker no longer held the claim (nothing recorded).
    """
    give_up = permanent or message.attempt >= policy.max_attempts
    next_at = (
        None
        if give_up
        else now
        + retry_delay(
            message.attempt, base_seconds=policy.base_seconds, cap_seconds=policy.cap_seconds
        )
    )
    status = FAILED if give_up else PENDING
    async with in_transaction() as conn:
        changed = (
            await OutboxMessage.filter(id=message.id, claimed_by=worker, status=SENDING)
            .using_db(conn)
            .update(
                status=status,
                provider=provider,
                next_attempt_at=next_at,
                claimed_by=None,
                claimed_until=None,
                last_error=error[:2000],
            )
        )
        if not changed:
            return None
        await _audit_attempt(
            conn,
            message,
            result="failed" if give_up else "retry",
            details={
                "provider": provider,
                "error": error[:500],
                "permanent": permanent,
                "next_attempt_at": next_at.isoformat() if next_at else None,
            },
        )
    return AttemptOutcome(status=status, next_attempt_at=next_at, error=error)


async def _audit_attempt(
    conn: BaseDBAsyncClient, message: ClaimedMessage, *, result: str, details: dict[str, Any]
) -> None:
    await write_audit(
        tenant_id=message.tenant_id,
        actor=None,
        action=f"{message.channel}.send",
        object_type="invoice" if message.invoice_id else "outbox_message",
        object_id=message.invoice_id or message.id,
        origin=SYSTEM,
        details={
            "message_id": message.id,
            "kind": message.kind,
            "attempt": message.attempt,
            "result": result,
            **details,
        },
        using_db=conn,
    )


# --- the office's view: messages that did not get through, and a second chance ---------


@dataclass(frozen=True)
class UndeliveredMessage:
    """A message that did not reach the subscriber, and why."""

    message_id: int
    kind: str
    recipient: str
    status: str  # failed / refused, or sent with a failed delivery
    delivery_status: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    invoice_number: str | None
    subscriber_name: str | None


def _undelivered() -> Q:
    return Q(status__in=(FAILED, REFUSED)) | Q(delivery_status=DeliveryStatus.FAILED.value)


def _scoped(actor: Staff) -> Q:
    """The actor's messages: the tenant's, or for reseller staff, their subscribers'."""
    scope = Q(tenant_id=actor.tenant_id)
    if actor.role != Role.ADMIN:
        scope &= Q(invoice__subscriber__reseller_id=actor.reseller_id)
    return scope


async def list_undelivered_messages(
    actor: Staff, *, limit: int = 20, channel: str = WHATSAPP
) -> list[UndeliveredMessage]:
    """The newest messages that failed, were refused, or bounced after sending."""
    require_permission(actor, COLLECTORS_VIEW)
    rows = (
        await OutboxMessage.filter(_scoped(actor), _undelivered(), channel=channel)
        .order_by("-id")
        .limit(limit)
        .values(
            "id",
            "kind",
            "recipient",
            "status",
            "delivery_status",
            "attempts",
            "last_error",
            "created_at",
            "invoice__number",
            "invoice__subscriber__name",
        )
    )
    # A message the gateway accepted but could not deliver has its reason in the failed
    # delivery event, not in `last_error` (which is about our attempts).
    bounced = [r["id"] for r in rows if r["last_error"] is None]
    reasons: dict[int, str] = {}
    if bounced:
        for event in await NotificationLog.filter(
            message_id__in=bounced, status=DeliveryStatus.FAILED.value
        ).values("message_id", "event"):
            detail = event["event"] if isinstance(event["event"], dict) else {}
            if detail.get("error"):
                reasons[event["message_id"]] = str(detail["error"])
    return [
        UndeliveredMessage(
            message_id=r["id"],
            kind=r["kind"],
            recipient=r["recipient"],
            status=r["status"],
            delivery_status=r["delivery_status"],
            attempts=r["attempts"],
            last_error=r["last_error"] or reasons.get(r["id"]),
            created_at=r["created_at"],
            invoice_number=r["invoice__number"],
            subscriber_name=r["invoice__subscriber__name"],
        )
        for r in rows
    ]


@dataclass(frozen=True)
class RetriedMessage:
    message_id: int
    recipient: str
    invoice_number: str | None


async def retry_message(
    actor: Staff, *, message_id: int, origin: Origin = SYSTEM
) -> RetriedMessage:
    """Send an undelivered message again, from a fresh start of its retry budget.

    The recipient is read again from the subscriber, so fixing a wrong number and then
    retrying is the way to rescue a refused receipt.

    Raises:
        NotFound: no such message in the actor's scope (code `message_not_found`).
        Conflict: the message is not undelivered (code `message_not_undelivered`), or the
            subscriber's number still cannot receive WhatsApp (code `message_refused`).
    """
    require_permission(actor, COLLECTORS_VIEW)
    async with in_transaction() as conn:
        message = (
            await OutboxMessage.filter(_scoped(actor), id=message_id)
            .using_db(conn)
            .select_for_update()
            .first()
        )
        if message is None:
            raise NotFound("That message does not exist.", code="message_not_found")
        undelivered = message.status in (FAILED, REFUSED) or (
            message.delivery_status == DeliveryStatus.FAILED.value
        )
        if not undelivered:
            raise Conflict(
                "That message is not undelivered; nothing to retry.",
                code="message_not_undelivered",
            )
        recipient = message.recipient
        invoice_number = None
        if message.invoice_id is not None:
            invoice = await Invoice.get(id=message.invoice_id, using_db=conn)
            invoice_number = invoice.number
            subscriber = await Subscriber.get(id=invoice.subscriber_id, using_db=conn)
            recipient = subscriber.phone or recipient
        refusal = whatsapp_refusal(recipient) if message.channel == WHATSAPP else None
        if refusal:
            raise Conflict(
                f"Cannot send: {refusal}. Correct the subscriber's number first.",
                code="message_refused",
                reason=refusal,
            )
        changed = (
            await OutboxMessage.filter(id=message.id, status=message.status)
            .using_db(conn)
            .update(
                status=PENDING,
                recipient=recipient,
                attempts=0,
                next_attempt_at=None,
                delivery_status=None,
                claimed_by=None,
                claimed_until=None,
            )
        )
        if changed != 1:
            raise Conflict("That message changed meanwhile; look again.")
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action=f"{message.channel}.retry",
            object_type="invoice" if message.invoice_id else "outbox_message",
            object_id=message.invoice_id or message.id,
            origin=origin,
            details={
                "message_id": message.id,
                "kind": message.kind,
                "previous_status": message.status,
                "previous_error": message.last_error,
                "recipient": recipient,
            },
            using_db=conn,
        )
    return RetriedMessage(
        message_id=message.id, recipient=recipient, invoice_number=invoice_number
    )
