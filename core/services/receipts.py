"""Subscriber-facing documents from the database: the receipt of a payment, an invoice PDF,
and the wording of the WhatsApp texts for the office to read.

`build_receipt` is what the WhatsApp sending worker calls for an outbox message of kind
`receipt` (payload `{"payment_id": ...}`); `build_invoice_document` serves the office.

Invariants:
- Every query is scoped to a tenant; a payment or invoice of another tenant is reported as
  not found, exactly like one that does not exist.
- A receipt describes its payment as of that payment, so a receipt rebuilt later (a retry
  after the gateway was down) says the same: the balance left is the invoice amount less
  the payments up to and including this one (in posting order), not less today's paid.
  The new expiry is shown when this payment completed a renewal invoice, which is exactly
  when `mark_collected` extended the subscriber's expiry (`collection._renew`); it is read
  from the subscriber, so it is the expiry as it stands when the receipt is built.
- PDFs are rendered in a worker thread (`asyncio.to_thread`), never on the event loop.
- Reads only: nothing here writes, audits or sends.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from core.db.models import Payment, Staff
from core.db.sql import fetch
from core.documents.invoice import InvoiceDocumentFacts, PaymentLine, render_invoice_pdf
from core.documents.pdf import TEMPLATES
from core.documents.receipt import (
    ReceiptFacts,
    receipt_caption,
    receipt_number,
    receipt_template_params,
    render_receipt_pdf,
)
from core.documents.words import WHATSAPP_TEMPLATES, caption_language
from core.domain.dates import local_today, utcnow
from core.domain.status import (
    COLLECTIBLE,
    InvoiceKind,
    InvoicePurpose,
    InvoiceStatus,
    PaymentMethod,
)
from core.errors import NotFound
from core.services.access import COLLECTORS_VIEW, invoice_in_scope, require_permission


@dataclass(frozen=True)
class ReceiptDocument:
    """A receipt ready to send: the PDF, its file name, the caption in `language`, and the
    body parameters of the approved template for when free-form messages are not allowed."""

    filename: str
    pdf: bytes
    caption: str
    language: str
    template_params: tuple[str, ...]


@dataclass(frozen=True)
class InvoiceDocument:
    filename: str
    pdf: bytes


@dataclass(frozen=True)
class MessageTemplate:
    """One WhatsApp text template: `kind` (receipt, ...), its language, where it lives
    (relative to the repository) and its source text."""

    kind: str
    language: str
    path: str
    text: str


_LEADING_COMMENT = re.compile(r"\A\s*\{#.*?#\}\s*", re.DOTALL)

# Hand-written so the facts come in one statement on both dialects, the balance left after
# this payment included (a correlated sum over the invoice's payments up to this one).
RECEIPT_FACTS_SQL = """
SELECT p.id, p.amount_minor, p.method, p.received_at,
       i.number, i.purpose, i.amount_minor AS invoice_amount_minor,
       (SELECT SUM(q.amount_minor) FROM payment q
         WHERE q.invoice_id = p.invoice_id AND q.id <= p.id) AS paid_through_minor,
       s.name AS subscriber_name, s.username, s.language AS subscriber_language,
       s.expiry_date,
       c.name AS collector_name, c.phone AS collector_phone,
       t.name AS isp_name, t.currency, t.country, t.timezone, t.locale
FROM payment p
JOIN invoice i ON i.id = p.invoice_id
JOIN subscriber s ON s.id = p.subscriber_id
JOIN tenant t ON t.id = p.tenant_id
LEFT JOIN staff c ON c.id = p.collector_id
WHERE p.id = ? AND p.tenant_id = ?
"""


async def load_receipt_facts(*, tenant_id: int, payment_id: int) -> ReceiptFacts:
    """Everything the receipt of payment `payment_id` says, in one query.

    Raises:
        NotFound: no such payment in that tenant (code `payment_not_found`).
    """
    rows = await fetch(RECEIPT_FACTS_SQL, [payment_id, tenant_id])
    if not rows:
        raise NotFound("There is no such payment in your company.", code="payment_not_found")
    r = rows[0]
    # SUM() is a Decimal on PostgreSQL and an int on SQLite.
    paid_through = int(r["paid_through_minor"] or 0)
    completed = paid_through >= r["invoice_amount_minor"]
    renewed = completed and r["purpose"] == InvoicePurpose.RENEWAL.value
    expiry = _as_date(r["expiry_date"])
    return ReceiptFacts(
        isp_name=r["isp_name"],
        receipt_number=receipt_number(r["id"]),
        invoice_number=r["number"],
        subscriber_name=r["subscriber_name"],
        subscriber_username=r["username"],
        amount_paid_minor=int(r["amount_minor"]),
        currency=r["currency"],
        country=r["country"],
        method=PaymentMethod(r["method"]),
        remaining_minor=max(int(r["invoice_amount_minor"]) - paid_through, 0),
        collector_name=r["collector_name"],
        collector_phone=r["collector_phone"],
        paid_at=_as_aware(r["received_at"]),
        timezone=r["timezone"],
        new_expiry=expiry if renewed else None,
        language=caption_language(r["subscriber_language"], r["locale"]),
    )


async def build_receipt(*, tenant_id: int, payment_id: int) -> ReceiptDocument:
    """The receipt of payment `payment_id`: PDF, caption and template parameters.

    Raises:
        NotFound: no such payment in that tenant (code `payment_not_found`).
    """
    facts = await load_receipt_facts(tenant_id=tenant_id, payment_id=payment_id)
    return await asyncio.to_thread(_render_receipt, facts)


def _render_receipt(facts: ReceiptFacts) -> ReceiptDocument:
    return ReceiptDocument(
        filename=facts.filename,
        pdf=render_receipt_pdf(facts),
        caption=receipt_caption(facts),
        language=facts.language,
        template_params=tuple(receipt_template_params(facts)),
    )


async def build_invoice_document(
    actor: Staff, *, number: str, now: datetime | None = None
) -> InvoiceDocument:
    """Invoice `number` as a PDF, with the payments posted on it, for the office to send.

    Needs `collectors.view` (admins always), like the invoice's story; reseller staff see
    only their reseller's subscribers. Two queries: the invoice with its subscriber and
    tenant, then its payments.

    Raises:
        NotFound: no such invoice in the actor's tenant and scope (code `invoice_not_found`).
    """
    require_permission(actor, COLLECTORS_VIEW)
    row = await invoice_in_scope(
        actor,
        number,
        "id",
        "number",
        "kind",
        "purpose",
        "status",
        "amount_minor",
        "issue_date",
        "due_date",
        "subscriber__name",
        "subscriber__username",
        "subscriber__address",
        "subscriber__language",
        "tenant__name",
        "tenant__currency",
        "tenant__timezone",
        "tenant__locale",
    )
    payments = (
        await Payment.filter(invoice_id=row["id"])
        .order_by("received_at", "id")
        .values("id", "amount_minor", "method", "received_at")
    )
    timezone = row["tenant__timezone"]
    status = InvoiceStatus(row["status"])
    facts = InvoiceDocumentFacts(
        isp_name=row["tenant__name"],
        number=row["number"],
        kind=InvoiceKind(row["kind"]),
        purpose=InvoicePurpose(row["purpose"]),
        status=status,
        overdue=status in COLLECTIBLE and row["due_date"] < local_today(now or utcnow(), timezone),
        issue_date=row["issue_date"],
        due_date=row["due_date"],
        amount_minor=row["amount_minor"],
        subscriber_name=row["subscriber__name"],
        subscriber_username=row["subscriber__username"],
        address=row["subscriber__address"],
        payments=tuple(
            PaymentLine(
                receipt_number=receipt_number(p["id"]),
                paid_at=_as_aware(p["received_at"]),
                method=PaymentMethod(p["method"]),
                amount_minor=p["amount_minor"],
            )
            for p in payments
        ),
        currency=row["tenant__currency"],
        timezone=timezone,
        language=caption_language(row["subscriber__language"], row["tenant__locale"]),
    )
    pdf = await asyncio.to_thread(render_invoice_pdf, facts)
    return InvoiceDocument(filename=facts.filename, pdf=pdf)


def message_template_sources() -> list[MessageTemplate]:
    """Every WhatsApp text template, by kind then language, for the office to read.

    `text` is the wording as written, without the template's leading `{# ... #}` comment
    (which is for developers: what the variables hold).
    """
    root = TEMPLATES.parent
    return [
        MessageTemplate(
            kind=path.stem,
            language=path.parent.name,
            path=path.relative_to(root).as_posix(),
            text=_LEADING_COMMENT.sub("", path.read_text(encoding="utf-8"), count=1).strip(),
        )
        for path in sorted(
            WHATSAPP_TEMPLATES.glob("*/*.txt"), key=lambda p: (p.stem, p.parent.name)
        )
    ]


def _as_date(value: Any) -> date | None:
    """A DATE column read raw (SQLite gives ISO text)."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _as_aware(value: Any) -> datetime:
    """A timestamp column read raw: SQLite gives ISO text; stored values are UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
