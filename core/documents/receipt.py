"""The payment receipt a subscriber gets on WhatsApp: a PDF, a caption, template parameters.

Owns `ReceiptFacts` (everything a receipt says, gathered by `core.services.receipts`) and
three pure, synchronous renderings of it:
- `render_receipt_pdf`: a one-page A5 PDF (`templates/documents/receipt.html`), in English
  or Arabic (a Bengali reader's PDF keeps English headings; see `core.documents.words`);
- `receipt_caption`: the text sent with the PDF, in the reader's language (en, bn, ar),
  from `templates/whatsapp/<language>/receipt.txt`: the essentials, so a reader whose PDF
  is not in their language still gets them in it;
- `receipt_template_params`: the body parameters of the approved WhatsApp Cloud API
  template, for when the 24-hour window for free-form messages is closed.

Invariants:
- The same facts give the same bytes of text and the same PDF content: no clock, no
  database here. The receipt number is derived from the payment id (`receipt_number`), so a
  receipt rebuilt for a retry carries the same number.
- Text the embedded font cannot draw (a name typed in Bengali script) is never printed as
  empty boxes: the PDF shows the customer ID (username) instead of such a name, and leaves
  out such a collector name. The caption, shaped by the phone, always has the name. (The
  ISP's own name is printed as the tenant wrote it: there is nothing to put instead.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.documents.pdf import drawable, render_pdf
from core.documents.words import (
    RTL_LANGUAGES,
    chat_money,
    day_text,
    labels,
    moment_text,
    pdf_language,
    pdf_money,
    render_text,
)
from core.domain.status import PaymentMethod

# Room for 99,999,999 payments before the number grows a digit (it stays unique then too).
_RECEIPT_DIGITS = 8
# What a WhatsApp template parameter shows for "no new expiry": Meta refuses empty ones.
NO_VALUE = "-"
LEFT_TO_RIGHT_MARK = "\u200e"


def receipt_number(payment_id: int) -> str:
    """`R-00000042` for payment 42: stable, and unique since payment ids are.

    The office finds the payment from it directly (the digits are its id).
    """
    return f"R-{payment_id:0{_RECEIPT_DIGITS}d}"


@dataclass(frozen=True)
class ReceiptFacts:
    """What a receipt says. Amounts in minor units of `currency`; `paid_at` is aware and is
    shown in `timezone`; `language` is the reader's (one with a caption template)."""

    isp_name: str
    receipt_number: str
    invoice_number: str
    subscriber_name: str
    subscriber_username: str
    amount_paid_minor: int
    currency: str
    country: str
    method: PaymentMethod
    remaining_minor: int
    collector_name: str | None
    collector_phone: str | None
    paid_at: datetime
    timezone: str
    new_expiry: date | None
    language: str

    def __post_init__(self) -> None:
        if self.paid_at.tzinfo is None:
            raise ValueError("ReceiptFacts.paid_at must be timezone-aware")
        if self.amount_paid_minor <= 0 or self.remaining_minor < 0:
            raise ValueError("a receipt is for a positive amount with no negative balance")

    @property
    def filename(self) -> str:
        return f"receipt-{self.receipt_number}.pdf"


def render_receipt_pdf(facts: ReceiptFacts) -> bytes:
    """The receipt as a one-page A5 PDF (sync and CPU-bound: call it in a worker thread)."""
    return render_pdf("receipt.html", _pdf_context(facts))


def receipt_caption(facts: ReceiptFacts) -> str:
    """The text sent with the PDF, in `facts.language` (at most 1024 characters)."""
    language = facts.language
    words = labels(language)
    return render_text(
        "receipt",
        language,
        {
            "isp_name": facts.isp_name,
            "name": _display_name(facts),
            "amount": chat_money(
                facts.amount_paid_minor, facts.currency, language=language, country=facts.country
            ),
            "method": words[f"method_{facts.method.value}"],
            "invoice_number": facts.invoice_number,
            "receipt_number": facts.receipt_number,
            "paid_on": day_text(_local_day(facts), language, long=True),
            "remaining": (
                chat_money(
                    facts.remaining_minor, facts.currency, language=language, country=facts.country
                )
                if facts.remaining_minor
                else None
            ),
            "new_expiry": (
                day_text(facts.new_expiry, language, long=True) if facts.new_expiry else None
            ),
        },
    )


def receipt_template_params(facts: ReceiptFacts) -> list[str]:
    """Body parameters of the approved `receipt` template, in order: subscriber name, amount,
    invoice number, new expiry (or "-").

    Written in the template's language (`facts.language`). Meta refuses a parameter that is
    empty or holds a newline or a tab, so none ever does.
    """
    language = facts.language
    params = [
        _display_name(facts),
        chat_money(
            facts.amount_paid_minor, facts.currency, language=language, country=facts.country
        ),
        facts.invoice_number,
        day_text(facts.new_expiry, language, long=True) if facts.new_expiry else NO_VALUE,
    ]
    return [" ".join(p.split()) or NO_VALUE for p in params]


def _display_name(facts: ReceiptFacts) -> str:
    return facts.subscriber_name.strip() or facts.subscriber_username


def _local_day(facts: ReceiptFacts) -> date:
    return facts.paid_at.astimezone(ZoneInfo(facts.timezone)).date()


def _pdf_context(facts: ReceiptFacts) -> dict[str, Any]:
    language = pdf_language(facts.language)
    words = labels(language)
    name = _display_name(facts)
    collector = facts.collector_name
    if collector and not drawable(collector):
        collector = None
    direction = "rtl" if language in RTL_LANGUAGES else "ltr"
    phone = facts.collector_phone
    if phone and direction == "rtl":
        # A left-to-right mark keeps "+880..." together: on its own in a right-to-left
        # line, the bidirectional algorithm would move the plus sign after the digits.
        phone = LEFT_TO_RIGHT_MARK + phone
    return {
        "language": language,
        "direction": direction,
        "labels": words,
        "isp_name": facts.isp_name,
        "receipt_number": facts.receipt_number,
        "paid_at": moment_text(facts.paid_at, facts.timezone, language),
        "subscriber_name": name if drawable(name) else None,
        "username": facts.subscriber_username,
        "invoice_number": facts.invoice_number,
        "amount": pdf_money(facts.amount_paid_minor, facts.currency),
        "method": words[f"method_{facts.method.value}"],
        "remaining": (
            pdf_money(facts.remaining_minor, facts.currency) if facts.remaining_minor else None
        ),
        "new_expiry": day_text(facts.new_expiry, language) if facts.new_expiry else None,
        "collector_name": collector,
        "collector_phone": phone,
    }
