"""Payment terms: an invoice's default due date and reminder interval.

Shared by every way an invoice comes to exist (typed by an admin, imported from a CSV,
issued by the scheduler), so they cannot drift apart.
"""

from __future__ import annotations

from datetime import date, timedelta

from core.domain.status import InvoiceKind, InvoicePurpose

DEFAULT_NET_DAYS = 30
DEBIT_NOTE_REMINDER_DAYS = 5


def default_due_date(
    issue_date: date,
    purpose: InvoicePurpose,
    terms: tuple[int, int] | None,
) -> date:
    """Issue date plus the customer class's terms (`(regular, out_of_turn)` net days).

    Out-of-turn invoices use the shorter out-of-turn terms; no class means net 30.
    """
    if terms is None:
        net = DEFAULT_NET_DAYS
    else:
        regular, out_of_turn = terms
        net = out_of_turn if purpose == InvoicePurpose.OUT_OF_TURN else regular
    return issue_date + timedelta(days=net)


def default_reminder_days(kind: InvoiceKind, plan_reminder_days: int | None) -> int | None:
    """Debit notes are chased every 5 days; invoices take their plan's interval."""
    if kind == InvoiceKind.DEBIT_NOTE:
        return DEBIT_NOTE_REMINDER_DAYS
    return plan_reminder_days
