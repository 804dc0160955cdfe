"""Payment terms: an invoice's default due date, reminder interval and dunning dates, and
what a customer class's terms may be.

Shared by every way an invoice comes to exist (typed by an admin, imported from a CSV,
issued by the scheduler), so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from core.domain.dunning import check_days, first_reminder_on
from core.domain.money import BASIS_POINTS
from core.domain.status import InvoiceKind, InvoicePurpose
from core.errors import InvalidAmount, InvalidInput

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


@dataclass(frozen=True)
class PlanOffsets:
    """A plan's dunning defaults, in days (None: the plan sets no such date).

    The request cancellation date counts from the issue date; the suspension and deletion
    dates count from the due date.
    """

    request_cancellation_days: int | None = None
    suspension_days: int | None = None
    deletion_days: int | None = None


@dataclass(frozen=True)
class DunningDates:
    """The dates the dunning clock reads off a new invoice."""

    next_reminder_on: date | None
    request_cancellation_on: date | None
    suspension_on: date | None
    deletion_on: date | None


def default_dunning_dates(
    *,
    issue_date: date,
    due_date: date,
    reminder_days: int | None,
    offsets: PlanOffsets | None,
    request_pending: bool,
    system_generated: bool,
) -> DunningDates:
    """The dates of an invoice nobody chose them for: the plan's offsets, or none.

    Only a system-generated invoice whose request is still pending gets a request
    cancellation date: a typed invoice has no request for the clock to cancel.
    """
    offsets = offsets or PlanOffsets()

    def after(start: date, days: int | None) -> date | None:
        return None if days is None else start + timedelta(days=days)

    return DunningDates(
        next_reminder_on=first_reminder_on(issue_date, reminder_days),
        request_cancellation_on=(
            after(issue_date, offsets.request_cancellation_days)
            if system_generated and request_pending
            else None
        ),
        suspension_on=after(due_date, offsets.suspension_days),
        deletion_on=after(due_date, offsets.deletion_days),
    )


# A customer class's whole-day settings and how an error names them.
CLASS_DAY_FIELDS = {
    "net_days": "Payment terms",
    "out_of_turn_net_days": "Out-of-turn payment terms",
    "pre_due_notice_days": "The pre-due notice",
    "reminder_days": "Reminder days",
    "warning_days": "Warning days",
    "suspend_after_days": "Suspension after",
    "terminate_after_days": "Termination after",
}


def check_class_policy(values: Mapping[str, int | None]) -> None:
    """Refuse a customer class setting that cannot work; `values` holds only those given.

    Raises:
        InvalidInput: days below 1 (`days_not_positive`), termination before suspension
            (`deletion_before_suspension`), a negative fee or threshold or a percentage
            outside 0-100 % (`late_fee_invalid`, `threshold_negative`).
    """
    for name, what in CLASS_DAY_FIELDS.items():
        if name in values:
            check_days(values[name], what)
    flat = values.get("late_fee_flat_minor")
    if flat is not None and flat < 0:
        raise InvalidAmount("A late fee cannot be negative.", code="late_fee_invalid", what="flat")
    rate = values.get("late_fee_bp")
    if rate is not None and not 0 <= rate <= BASIS_POINTS:
        raise InvalidAmount(
            "A late fee percentage is between 0 and 100 %.", code="late_fee_invalid", what="rate"
        )
    threshold = values.get("collection_threshold_minor")
    if threshold is not None and threshold < 0:
        raise InvalidAmount(
            "A collection threshold cannot be negative.", code="threshold_negative"
        )
    suspend, terminate = values.get("suspend_after_days"), values.get("terminate_after_days")
    if suspend is not None and terminate is not None and terminate < suspend:
        raise InvalidInput(
            f"Termination after {terminate} days comes before suspension after {suspend} days;"
            " terminate after suspending.",
            code="termination_before_suspension",
            terminate=terminate,
            suspend=suspend,
        )
