"""Invoicing rules without a database: dunning dates at creation, customer class policy,
billing cycles, prepaid renewals and the office payment's ledger legs."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain import ledger
from core.domain.recurring import (
    RenewalOnFile,
    changed_next_billing_on,
    check_cycle_months,
    cycle_amount_minor,
    first_billing_on,
    needs_renewal,
    renewal_window,
)
from core.domain.status import InvoiceStatus
from core.domain.terms import PlanOffsets, check_class_policy, default_dunning_dates
from core.errors import InvalidInput

ISSUED = date(2026, 11, 1)
DUE = date(2026, 12, 1)


def test_dunning_dates_count_suspension_and_deletion_from_the_due_date():
    dates = default_dunning_dates(
        issue_date=ISSUED,
        due_date=DUE,
        reminder_days=7,
        offsets=PlanOffsets(request_cancellation_days=3, suspension_days=10, deletion_days=40),
        request_pending=False,
        system_generated=False,
    )

    assert dates.next_reminder_on == date(2026, 11, 8)
    assert (dates.suspension_on, dates.deletion_on) == (date(2026, 12, 11), date(2027, 1, 10))
    assert dates.request_cancellation_on is None


def test_only_a_system_invoice_with_a_pending_request_gets_a_cancellation_date():
    offsets = PlanOffsets(request_cancellation_days=3)

    def cancel_on(pending: bool, system: bool) -> date | None:
        return default_dunning_dates(
            issue_date=ISSUED,
            due_date=DUE,
            reminder_days=None,
            offsets=offsets,
            request_pending=pending,
            system_generated=system,
        ).request_cancellation_on

    assert cancel_on(pending=True, system=True) == date(2026, 11, 4)
    assert [cancel_on(True, False), cancel_on(False, True)] == [None, None]


def test_no_plan_means_no_dunning_dates_and_no_reminder_days_no_reminder():
    dates = default_dunning_dates(
        issue_date=ISSUED,
        due_date=DUE,
        reminder_days=None,
        offsets=None,
        request_pending=True,
        system_generated=True,
    )
    assert dates == type(dates)(None, None, None, None)


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"net_days": 0}, "days_not_positive"),
        ({"warning_days": -1}, "days_not_positive"),
        ({"late_fee_bp": -1}, "late_fee_invalid"),
        ({"late_fee_bp": 10_001}, "late_fee_invalid"),
        ({"late_fee_flat_minor": -1}, "late_fee_invalid"),
        ({"collection_threshold_minor": -1}, "threshold_negative"),
        ({"suspend_after_days": 20, "terminate_after_days": 10}, "termination_before_suspension"),
    ],
)
def test_a_customer_class_policy_that_cannot_work_is_refused(values, code):
    with pytest.raises(InvalidInput) as refused:
        check_class_policy(values)
    assert refused.value.code == code


def test_a_customer_class_policy_at_the_limits_is_accepted():
    check_class_policy(
        {
            "net_days": 1,
            "late_fee_bp": 10_000,
            "late_fee_flat_minor": 0,
            "pre_due_notice_days": None,
            "suspend_after_days": 10,
            "terminate_after_days": 10,
        }
    )


@pytest.mark.parametrize("months", [0, -1, 13])
def test_a_billing_cycle_is_one_to_twelve_months(months):
    with pytest.raises(InvalidInput) as refused:
        check_cycle_months(months)
    assert refused.value.code == "cycle_months_invalid"


def test_a_cycle_is_priced_from_the_plans_period_rounded_half_up():
    assert cycle_amount_minor(150_000, 1, 3) == 450_000
    assert cycle_amount_minor(100, 3, 1) == 33
    assert cycle_amount_minor(50, 4, 1) == 13  # 12.5 rounds up


@given(
    price=st.integers(min_value=1, max_value=10**9),
    period=st.integers(min_value=1, max_value=12),
)
def test_a_cycle_as_long_as_the_period_costs_exactly_the_price(price, period):
    assert cycle_amount_minor(price, period, period) == price


def test_a_cycle_is_first_billed_one_cycle_on_or_on_the_day_chosen():
    today = date(2026, 1, 31)
    assert first_billing_on(today, 1) == date(2026, 2, 28)
    assert first_billing_on(today, 1, date(2026, 2, 5)) == date(2026, 2, 5)
    with pytest.raises(InvalidInput) as past:
        first_billing_on(today, 1, date(2026, 1, 30))
    assert past.value.code == "billing_date_past"


def test_changing_a_cycle_keeps_its_start():
    # Started 24 Nov, monthly: ends 24 Dec. Made quarterly: ends 24 Feb.
    assert changed_next_billing_on(date(2026, 12, 24), 1, 3) == date(2027, 2, 24)
    assert changed_next_billing_on(date(2027, 2, 24), 3, 1) == date(2026, 12, 24)


def test_a_renewal_is_issued_once_per_expiry():
    expiry = date(2026, 11, 29)

    def renewal(status, *, system=True, issued=date(2026, 11, 24)):
        return RenewalOnFile(status, system, issued)

    assert needs_renewal(expiry, 5, [])
    assert not needs_renewal(expiry, 5, [renewal(InvoiceStatus.UNPAID, system=False)])
    assert not needs_renewal(expiry, 5, [renewal(InvoiceStatus.CANCELLED)])
    # Last month's renewal, paid: this expiry has none yet.
    assert needs_renewal(expiry, 5, [renewal(InvoiceStatus.PAID, issued=date(2026, 10, 24))])
    # A typed renewal that was paid or cancelled does not stand in for the clock's.
    assert needs_renewal(expiry, 5, [renewal(InvoiceStatus.CANCELLED, system=False)])


def test_the_renewal_window_runs_from_today_to_the_lead_days_ahead():
    assert renewal_window(date(2026, 11, 24), 5) == (date(2026, 11, 24), date(2026, 11, 29))
    assert renewal_window(date(2026, 11, 24), 0) == (date(2026, 11, 24), date(2026, 11, 24))


def test_a_payment_at_the_office_moves_the_receivable_into_office_cash():
    legs = ledger.office_payment(subscriber_id=7, amount_minor=1_500)

    assert legs == [
        ledger.Leg(ledger.OFFICE_CASH, 1_500),
        ledger.Leg(ledger.RECEIVABLE, -1_500, subscriber_id=7),
    ]
