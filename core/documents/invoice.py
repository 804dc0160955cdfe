"""The invoice as a PDF for the subscriber: what was billed, what was paid, what is still due.

Owns `InvoiceDocumentFacts` (gathered by `core.services.receipts.build_invoice_document`),
`PaymentLine` (one payment posted on the invoice) and `render_invoice_pdf`, a pure and
synchronous rendering of them (`templates/documents/invoice.html`, A4).

Invariants:
- Paid is the sum of the payment lines and balance is amount minus paid: the document
  never shows figures that disagree with each other (`InvoiceDocumentFacts` refuses them).
- Languages as for the receipt (`core.documents.words`): English or Arabic headings; a
  Bengali reader's invoice keeps English headings. A subscriber name the embedded font
  cannot draw is replaced by the customer ID.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from core.documents.pdf import drawable, render_pdf
from core.documents.words import (
    RTL_LANGUAGES,
    day_text,
    labels,
    moment_text,
    pdf_language,
    pdf_money,
)
from core.domain.status import InvoiceKind, InvoicePurpose, InvoiceStatus, PaymentMethod


@dataclass(frozen=True)
class PaymentLine:
    """One payment posted on the invoice. `paid_at` is aware."""

    receipt_number: str
    paid_at: datetime
    method: PaymentMethod
    amount_minor: int


@dataclass(frozen=True)
class InvoiceDocumentFacts:
    """What an invoice document says. Amounts in minor units of `currency`; times are shown
    in `timezone`; `overdue` is decided by the caller (it needs today's date)."""

    isp_name: str
    number: str
    kind: InvoiceKind
    purpose: InvoicePurpose
    status: InvoiceStatus
    overdue: bool
    issue_date: date
    due_date: date
    amount_minor: int
    subscriber_name: str
    subscriber_username: str
    address: str
    payments: tuple[PaymentLine, ...]
    currency: str
    timezone: str
    language: str

    def __post_init__(self) -> None:
        if self.paid_minor > self.amount_minor:
            raise ValueError("the payments on an invoice cannot exceed its amount")

    @property
    def paid_minor(self) -> int:
        return sum(p.amount_minor for p in self.payments)

    @property
    def balance_minor(self) -> int:
        return self.amount_minor - self.paid_minor

    @property
    def filename(self) -> str:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in self.number)
        return f"invoice-{safe}.pdf"


def render_invoice_pdf(facts: InvoiceDocumentFacts) -> bytes:
    """The invoice as a one-page A4 PDF (sync and CPU-bound: call it in a worker thread)."""
    return render_pdf("invoice.html", _pdf_context(facts))


def _pdf_context(facts: InvoiceDocumentFacts) -> dict[str, Any]:
    language = pdf_language(facts.language)
    words = labels(language)
    name = facts.subscriber_name.strip()
    status = "overdue" if facts.overdue else facts.status.value
    return {
        "language": language,
        "direction": "rtl" if language in RTL_LANGUAGES else "ltr",
        "labels": words,
        "isp_name": facts.isp_name,
        "title": words[f"kind_{facts.kind.value}"],
        "number": facts.number,
        "issue_date": day_text(facts.issue_date, language),
        "due_date": day_text(facts.due_date, language),
        "subscriber_name": name if name and drawable(name) else None,
        "username": facts.subscriber_username,
        "address": facts.address if facts.address and drawable(facts.address) else None,
        "description": words[f"purpose_{facts.purpose.value}"],
        "status": words[f"status_{status}"],
        "settled": facts.status == InvoiceStatus.PAID,
        "amount": pdf_money(facts.amount_minor, facts.currency),
        "paid": pdf_money(facts.paid_minor, facts.currency),
        "balance": pdf_money(facts.balance_minor, facts.currency),
        "payments": [
            {
                "receipt_number": p.receipt_number,
                "paid_at": moment_text(p.paid_at, facts.timezone, language),
                "method": words[f"method_{p.method.value}"],
                "amount": pdf_money(p.amount_minor, facts.currency),
            }
            for p in facts.payments
        ],
    }
