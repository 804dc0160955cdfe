"""The dunning clock's decisions, walked day by day without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from core.domain.dunning import (
    Action,
    InvoiceState,
    Policy,
    actions_due,
    check_dates,
    check_days,
    first_reminder_on,
    is_overdue,
    late_fee_minor,
    next_reminder_on,
)
from core.domain.status import InvoiceKind, InvoiceStatus
from core.errors import InvalidInput

ISSUED = date(2026, 11, 1)
DUE = date(2026, 12, 1)  # net 30
POLICY = Policy(pre_due_notice_days=3, late_fee_flat_minor=5_000, collection_threshold_minor=0)


def invoice(**overrides) -> InvoiceState:
    values = {
        "kind": InvoiceKind.INVOICE,
        "status": InvoiceStatus.UNPAID,
        "amount_minor": 150_000,
        "paid_minor": 0,
        "due_date": DUE,
        "reminder_days": 7,
        "next_reminder_on": first_reminder_on(ISSUED, 7),
    }
    return InvoiceState(**(values | overrides))


def walk(
    state: InvoiceState,
    policy: Policy,
    days: int = 90,
    payments: dict[date, int] | None = None,
    down: set[date] | None = None,
) -> dict[date, list[Action]]:
    """The daily run over `days` days from the issue date, applying what it decides as the
    services would; `payments` pays on a day (before the run), `down` skips days."""
    log: dict[date, list[Action]] = {}
    for n in range(days):
        today = ISSUED + timedelta(days=n)
        if payments and today in payments:
            paid = state.paid_minor + payments[today]
            status = InvoiceStatus.PAID if paid >= state.amount_minor else InvoiceStatus.PARTIAL
            state = replace(state, paid_minor=paid, status=status)
        if down and today in down:
            continue
        actions = actions_due(state, policy, today)
        if actions:
            log[today] = actions
        if Action.REMINDER in actions:
            state = replace(state, next_reminder_on=next_reminder_on(today, state.reminder_days))
        if Action.LATE_FEE in actions:
            state = replace(state, late_fee_charged=True)
        if Action.SUSPEND in actions:
            state = replace(state, subscriber_suspended=True)
        if Action.TERMINATE in actions:
            state = replace(state, subscriber_terminated=True)
        if Action.CANCEL_REQUEST in actions:
            state = replace(state, status=InvoiceStatus.CANCELLED)
    return log


def days_of(log: dict[date, list[Action]], action: Action) -> list[date]:
    return [day for day, actions in log.items() if action in actions]


def test_reminders_go_out_every_seven_days_until_paid_and_never_after():
    log = walk(invoice(), POLICY, payments={date(2026, 11, 30): 150_000})

    assert days_of(log, Action.REMINDER) == [
        date(2026, 11, 8),
        date(2026, 11, 15),
        date(2026, 11, 22),
        date(2026, 11, 29),
    ]
    assert max(log) == date(2026, 11, 29)  # nothing at all after payment


def test_a_partial_payment_does_not_stop_the_reminders():
    log = walk(invoice(), POLICY, days=40, payments={date(2026, 11, 10): 50_000})

    assert len(days_of(log, Action.REMINDER)) == 5


def test_a_day_the_process_was_down_is_caught_up_once_and_the_interval_restarts():
    log = walk(invoice(), POLICY, days=30, down={date(2026, 11, 8), date(2026, 11, 9)})

    assert days_of(log, Action.REMINDER) == [date(2026, 11, 10), date(2026, 11, 17),
                                             date(2026, 11, 24)]  # fmt: skip


def test_no_reminder_while_the_invoices_request_is_pending():
    log = walk(invoice(request_pending=True), POLICY, days=40)

    assert days_of(log, Action.REMINDER) == []


def test_the_pre_due_notice_goes_out_once_three_days_before_the_due_date():
    log = walk(invoice(), POLICY)

    assert days_of(log, Action.PRE_DUE_NOTICE) == [date(2026, 11, 28)]


def test_the_late_fee_is_charged_once_the_day_after_the_due_date():
    log = walk(invoice(), POLICY)

    assert days_of(log, Action.LATE_FEE) == [date(2026, 12, 2)]


def test_no_late_fee_or_suspension_when_what_is_due_is_under_the_threshold():
    state = invoice(suspension_on=date(2026, 12, 15))
    log = walk(
        state,
        replace(POLICY, collection_threshold_minor=10_000),
        payments={date(2026, 11, 20): 140_000},
    )

    assert days_of(log, Action.LATE_FEE) == []
    assert days_of(log, Action.SUSPEND) == []
    assert days_of(log, Action.SUSPENSION_WARNING) == []
    assert days_of(log, Action.REMINDER)  # the money is still owed


def test_a_percentage_fee_is_rounded_half_up_and_added_to_the_flat_part():
    policy = Policy(late_fee_flat_minor=1_000, late_fee_bp=250)

    assert late_fee_minor(invoice(amount_minor=10_010), policy) == 1_000 + 250
    assert late_fee_minor(invoice(amount_minor=10_020), policy) == 1_000 + 251


def test_no_fee_is_charged_on_a_debit_note_or_when_the_class_has_none():
    assert days_of(walk(invoice(kind=InvoiceKind.DEBIT_NOTE), POLICY), Action.LATE_FEE) == []
    assert days_of(walk(invoice(), Policy()), Action.LATE_FEE) == []


def test_suspension_is_warned_then_taken_and_deletion_is_warned_then_taken_once():
    state = invoice(suspension_on=date(2026, 12, 10), deletion_on=date(2027, 1, 10))

    log = walk(state, POLICY, days=90)

    assert days_of(log, Action.SUSPENSION_WARNING) == [date(2026, 12, 7)]
    assert days_of(log, Action.SUSPEND) == [date(2026, 12, 10)]
    assert days_of(log, Action.DELETION_WARNING) == [date(2027, 1, 7)]
    assert days_of(log, Action.TERMINATE) == [date(2027, 1, 10)]


def test_full_payment_before_the_suspension_date_means_no_suspension():
    state = invoice(suspension_on=date(2026, 12, 10), deletion_on=date(2027, 1, 10))

    log = walk(state, POLICY, payments={date(2026, 12, 9): 150_000})

    assert days_of(log, Action.SUSPEND) == [] and days_of(log, Action.TERMINATE) == []


def test_an_unpaid_system_invoice_with_a_pending_request_is_cancelled_on_its_date():
    state = invoice(
        request_pending=True, system_generated=True, request_cancellation_on=date(2026, 11, 20)
    )

    log = walk(state, POLICY)

    assert log == {date(2026, 11, 20): [Action.CANCEL_REQUEST]}


def test_any_payment_keeps_a_pending_request_from_being_cancelled():
    state = invoice(
        request_pending=True, system_generated=True, request_cancellation_on=date(2026, 11, 20)
    )

    log = walk(state, POLICY, payments={date(2026, 11, 5): 100})

    assert days_of(log, Action.CANCEL_REQUEST) == []


def test_drafts_cancelled_and_paid_invoices_have_nothing_due():
    for status in (InvoiceStatus.DRAFT, InvoiceStatus.CANCELLED, InvoiceStatus.PAID):
        assert walk(invoice(status=status), POLICY) == {}


def test_overdue_starts_the_day_after_the_due_date():
    assert not is_overdue(invoice(), DUE)
    assert is_overdue(invoice(), DUE + timedelta(days=1))
    assert not is_overdue(invoice(status=InvoiceStatus.PAID), DUE + timedelta(days=1))


@pytest.mark.parametrize("value", [0, -3])
def test_terms_and_reminder_days_of_zero_or_less_are_refused(value):
    with pytest.raises(InvalidInput) as refused:
        check_days(value, "Reminder days")

    assert str(refused.value) == f"Reminder days must be at least 1 day, not {value}."


def test_a_deletion_date_before_the_suspension_date_is_refused():
    with pytest.raises(InvalidInput) as refused:
        check_dates(date(2026, 12, 10), date(2026, 12, 1))

    assert refused.value.code == "deletion_before_suspension"
    check_dates(date(2026, 12, 10), date(2026, 12, 10))
    check_dates(None, date(2026, 12, 1))
