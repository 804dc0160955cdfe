"""The dunning clock's decisions: what is due for an invoice today. Pure, no I/O.

The daily run (a scheduler job) reads each collectible invoice with its customer class's
policy and asks `actions_due`; it then carries the actions out through the services. The
rules, from the payment collection guides this follows:

- **Overdue** once the due date has passed and the invoice is not fully paid.
- **Reminders** every `reminder_days` until fully paid, never after, and not while the
  invoice's request is still pending. A day missed (the process was down) is caught up
  once: the next reminder is counted from the day it went out, not from the missed day.
- **Pre-due notice** `pre_due_notice_days` before the due date (per customer class).
- **Late fee** (flat, or basis points of what is due) charged once, as its own debit
  note, when the invoice is overdue.
- **Collection threshold**: when what is due is at or below it, the overdue actions (late
  fee, suspension and its warning) are skipped. Reminders still go out: the money is owed.
- **Suspension and deletion dates**: on the suspension date a not fully paid invoice
  suspends the subscriber; on the deletion date the subscriber is terminated, which
  nothing undoes. A warning goes out `warning_days` before each.
- **Request cancellation**: a system-generated invoice whose request is still pending and
  which is fully unpaid is cancelled, with its request, on its cancellation date. Any
  payment, even partial, removes the date (the services clear it).

Invariants: every function is total over valid input and never returns an action twice;
the caller makes each action idempotent in the database (a claimed run per day, outbox
dedupe keys, a unique late-fee link), so running a day twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from core.domain.money import BASIS_POINTS
from core.domain.status import COLLECTIBLE, InvoiceKind, InvoiceStatus
from core.errors import InvalidInput


class Action(StrEnum):
    """Something the daily run does for an invoice, in the order it does them."""

    CANCEL_REQUEST = "cancel_request"
    PRE_DUE_NOTICE = "pre_due_notice"
    REMINDER = "reminder"
    LATE_FEE = "late_fee"
    SUSPENSION_WARNING = "suspension_warning"
    SUSPEND = "suspend"
    DELETION_WARNING = "deletion_warning"
    TERMINATE = "terminate"


@dataclass(frozen=True)
class Policy:
    """The customer class's overdue policy (defaults: no notice, no fee, no threshold)."""

    pre_due_notice_days: int | None = None
    late_fee_flat_minor: int = 0
    late_fee_bp: int = 0
    collection_threshold_minor: int = 0
    warning_days: int = 3


@dataclass(frozen=True)
class InvoiceState:
    """What the rules need to know about one invoice, as of the start of the day."""

    kind: InvoiceKind
    status: InvoiceStatus
    amount_minor: int
    paid_minor: int
    due_date: date
    reminder_days: int | None = None
    next_reminder_on: date | None = None
    request_pending: bool = False
    system_generated: bool = False
    request_cancellation_on: date | None = None
    suspension_on: date | None = None
    deletion_on: date | None = None
    late_fee_charged: bool = False
    subscriber_suspended: bool = False
    subscriber_terminated: bool = False

    @property
    def due_minor(self) -> int:
        return self.amount_minor - self.paid_minor


def is_overdue(state: InvoiceState, today: date) -> bool:
    """Past its due date and not fully paid (drafts and cancelled invoices never are)."""
    return state.status in COLLECTIBLE and today > state.due_date


def under_threshold(state: InvoiceState, policy: Policy) -> bool:
    """What is due is small enough that the overdue actions are not worth taking."""
    return state.due_minor <= policy.collection_threshold_minor


def late_fee_minor(state: InvoiceState, policy: Policy) -> int:
    """The fee for `state` (flat plus basis points of what is due, rounded half up)."""
    percent = (state.due_minor * policy.late_fee_bp + BASIS_POINTS // 2) // BASIS_POINTS
    return policy.late_fee_flat_minor + percent


def actions_due(state: InvoiceState, policy: Policy, today: date) -> list[Action]:
    """Everything due for this invoice today, in order. Empty once it is paid or void."""
    if state.status not in COLLECTIBLE or state.due_minor <= 0:
        return []
    if (
        state.request_cancellation_on is not None
        and today >= state.request_cancellation_on
        and state.request_pending
        and state.system_generated
        and state.paid_minor == 0
    ):
        return [Action.CANCEL_REQUEST]  # the invoice is void from today: nothing else

    actions: list[Action] = []
    notice = policy.pre_due_notice_days
    if notice and today == state.due_date - timedelta(days=notice):
        actions.append(Action.PRE_DUE_NOTICE)
    if (
        not state.request_pending
        and state.reminder_days
        and state.next_reminder_on is not None
        and today >= state.next_reminder_on
    ):
        actions.append(Action.REMINDER)

    overdue_actions = not under_threshold(state, policy)
    if (
        overdue_actions
        and is_overdue(state, today)
        and not state.late_fee_charged
        and state.kind == InvoiceKind.INVOICE  # a fee is never charged on a fee
        and late_fee_minor(state, policy) > 0
    ):
        actions.append(Action.LATE_FEE)

    if state.subscriber_terminated:
        return actions
    if overdue_actions and state.suspension_on is not None:
        if today == state.suspension_on - timedelta(days=policy.warning_days):
            actions.append(Action.SUSPENSION_WARNING)
        if today >= state.suspension_on and not state.subscriber_suspended:
            actions.append(Action.SUSPEND)
    if state.deletion_on is not None:
        if today == state.deletion_on - timedelta(days=policy.warning_days):
            actions.append(Action.DELETION_WARNING)
        if today >= state.deletion_on:
            actions.append(Action.TERMINATE)
    return actions


def next_reminder_on(today: date, reminder_days: int) -> date:
    """When the reminder after one sent `today` is due."""
    return today + timedelta(days=reminder_days)


def first_reminder_on(issue_date: date, reminder_days: int | None) -> date | None:
    """An invoice's first reminder: one interval after it is issued."""
    return None if not reminder_days else issue_date + timedelta(days=reminder_days)


def check_days(value: int | None, what: str) -> int | None:
    """Terms, reminder intervals and offsets are whole days from 1 up (None: not set)."""
    if value is not None and value < 1:
        raise InvalidInput(
            f"{what} must be at least 1 day, not {value}.", code="days_not_positive", what=what
        )
    return value


def check_dates(suspension_on: date | None, deletion_on: date | None) -> None:
    """A subscriber is deleted after they are suspended, never before."""
    if suspension_on is not None and deletion_on is not None and deletion_on < suspension_on:
        raise InvalidInput(
            f"The deletion date {deletion_on.isoformat()} is before the suspension date"
            f" {suspension_on.isoformat()}; delete after suspending.",
            code="deletion_before_suspension",
            deletion=deletion_on.isoformat(),
            suspension=suspension_on.isoformat(),
        )
