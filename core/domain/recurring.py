"""Recurring invoices: postpaid billing cycles and prepaid renewals. Pure, no I/O.

- **Postpaid**: a subscriber is billed at the end of each cycle. On `next_billing_on` a
  draft invoice covers the cycle that just ended (`billing_cycle_months` months up to
  that day), and `next_billing_on` moves on by the cycle's length. `next_billing_on =
  None` means the cycle is stopped.
- **Prepaid**: a renewal invoice is issued `renewal_lead_days` before the expiry date, once
  per expiry date: not while another renewal is open, and not again after the one issued
  for this expiry was cancelled (its request lapsed) - the office decides then.

Invariants: a cycle is 1 to 12 whole months; the amount of a cycle is the plan's price
for its period scaled to the cycle's months, rounded half up, so a monthly plan billed
quarterly is exactly three times its price.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from core.domain.dates import add_months
from core.domain.status import InvoiceStatus
from core.errors import InvalidInput

MAX_CYCLE_MONTHS = 12


def check_cycle_months(months: int) -> int:
    """A billing cycle is 1 to 12 whole months."""
    if not 1 <= months <= MAX_CYCLE_MONTHS:
        raise InvalidInput(
            f"A billing cycle is 1 to {MAX_CYCLE_MONTHS} months, not {months}.",
            code="cycle_months_invalid",
            months=months,
            limit=MAX_CYCLE_MONTHS,
        )
    return months


def cycle_amount_minor(price_minor: int, period_months: int, cycle_months: int) -> int:
    """The price of `cycle_months` of a plan priced `price_minor` per `period_months`."""
    if period_months <= 0:
        raise ValueError("a plan's period is at least one month")
    return (price_minor * cycle_months * 2 + period_months) // (period_months * 2)


def first_billing_on(today: date, months: int, first_on: date | None = None) -> date:
    """When a cycle started today is first billed: after one cycle, or the day chosen.

    Raises:
        InvalidInput: a chosen day in the past (`billing_date_past`).
    """
    if first_on is None:
        return add_months(today, months)
    if first_on < today:
        raise InvalidInput(
            f"The first billing date {first_on.isoformat()} has passed; choose today or later.",
            code="billing_date_past",
            day=first_on.isoformat(),
        )
    return first_on


def changed_next_billing_on(next_billing_on: date, old_months: int, new_months: int) -> date:
    """The running cycle keeps its start and takes the new length.

    If the new end has already passed, the scheduler bills the ended cycles on its next run.
    """
    start = add_months(next_billing_on, -old_months)
    return add_months(start, new_months)


OPEN_STATUSES = frozenset({InvoiceStatus.DRAFT, InvoiceStatus.UNPAID, InvoiceStatus.PARTIAL})


@dataclass(frozen=True)
class RenewalOnFile:
    """A renewal invoice the subscriber already has."""

    status: InvoiceStatus
    system_generated: bool
    issue_date: date


def renewal_window(day: date, lead_days: int) -> tuple[date, date]:
    """The expiry dates whose renewal is issued on `day`: from today to `lead_days` ahead.

    A subscriber already expired is not renewed by the clock: their service lapsed, and the
    office decides (a renewal typed or claimed at the desk).
    """
    return day, day + timedelta(days=max(lead_days, 0))


def needs_renewal(expiry_date: date, lead_days: int, on_file: Iterable[RenewalOnFile]) -> bool:
    """No renewal is open, and the clock has not already issued one for this expiry."""
    issued_from = expiry_date - timedelta(days=max(lead_days, 0))
    for renewal in on_file:
        if InvoiceStatus(renewal.status) in OPEN_STATUSES:
            return False
        if renewal.system_generated and renewal.issue_date >= issued_from:
            return False
    return True
