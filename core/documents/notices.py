"""The dunning texts a subscriber gets on WhatsApp: reminder, pre-due notice, and the
warnings before suspension and deletion. Pure and synchronous, like `receipt.py`.

Templates: `templates/whatsapp/<language>/<kind>.txt` for the kinds in `NOTICE_KINDS`, in
every language that has a receipt (en, bn, ar), rendered through `words.render_text` (plain
text, at most 1024 characters). Money is the short chat form (`৳1,500`), dates the long one
(`30 November 2026`), both in the reader's language.

The daily run renders one text per message, often a hundred thousand a day: the money and
date texts are cached per value and language (an ISP bills a few distinct amounts, and a
day's messages name a few dozen dates), so rendering costs one template fill per message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from core.documents.words import chat_money, day_text, render_text

REMINDER = "reminder"
PRE_DUE_NOTICE = "pre_due_notice"
SUSPENSION_WARNING = "suspension_warning"
DELETION_WARNING = "deletion_warning"
NOTICE_KINDS = (REMINDER, PRE_DUE_NOTICE, SUSPENSION_WARNING, DELETION_WARNING)


@dataclass(frozen=True)
class NoticeFacts:
    """What a dunning text says. `due_minor` is what is still due, in minor units of
    `currency`; `suspension_on` / `deletion_on` are the dates to name (None: say nothing),
    which the caller picks: only dates still ahead, and only ones the rules will act on."""

    isp_name: str
    subscriber_name: str
    invoice_number: str
    due_minor: int
    currency: str
    country: str
    due_date: date
    today: date
    language: str
    suspension_on: date | None = None
    deletion_on: date | None = None


def notice_text(kind: str, facts: NoticeFacts) -> str:
    """The text of a `kind` message in `facts.language` (one with that template)."""
    if kind not in NOTICE_KINDS:
        raise ValueError(f"not a dunning text: {kind!r}")
    language = facts.language
    return render_text(
        kind,
        language,
        {
            "isp_name": facts.isp_name,
            "name": facts.subscriber_name,
            "amount_due": _money(facts.due_minor, facts.currency, language, facts.country),
            "invoice_number": facts.invoice_number,
            "due_date": _day(facts.due_date, language),
            "overdue": facts.today > facts.due_date,
            "suspension_on": _day(facts.suspension_on, language) if facts.suspension_on else None,
            "deletion_on": _day(facts.deletion_on, language) if facts.deletion_on else None,
        },
    )


@lru_cache(maxsize=8192)
def _money(amount_minor: int, currency: str, language: str, country: str) -> str:
    return chat_money(amount_minor, currency, language=language, country=country)


@lru_cache(maxsize=2048)
def _day(day: date, language: str) -> str:
    return day_text(day, language, long=True)
