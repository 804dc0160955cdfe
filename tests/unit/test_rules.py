"""Pure rules: statuses, calendar, failed visits, phone numbers."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.domain.dates import add_months, extend_expiry, local_day_bounds, local_today
from core.domain.phones import normalise_phone
from core.domain.status import (
    AssignmentStatus,
    FailureReason,
    InvoiceStatus,
    status_after_payment,
    transition_assignment,
    transition_invoice,
)
from core.domain.visits import check_failure_note, decide_after_failed_visit
from core.errors import Conflict, InvalidInput


def test_a_closed_stop_cannot_move_again_and_says_why():
    with pytest.raises(Conflict, match="already collected"):
        transition_assignment(AssignmentStatus.COLLECTED, AssignmentStatus.FAILED)
    with pytest.raises(Conflict, match="taken off the route"):
        transition_assignment(AssignmentStatus.REMOVED, AssignmentStatus.COLLECTED)
    assert (
        transition_assignment(AssignmentStatus.ASSIGNED, AssignmentStatus.FAILED)
        == AssignmentStatus.FAILED
    )


def test_a_paid_invoice_cannot_be_cancelled():
    with pytest.raises(Conflict):
        transition_invoice(InvoiceStatus.PAID, InvoiceStatus.CANCELLED)


@pytest.mark.parametrize(
    ("paid", "status"),
    [(0, InvoiceStatus.UNPAID), (1, InvoiceStatus.PARTIAL), (1500, InvoiceStatus.PAID)],
)
def test_status_follows_the_paid_amount(paid, status):
    assert status_after_payment(1500, paid) == status


def test_months_are_added_on_the_calendar_clamped_to_the_month_end():
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert add_months(date(2026, 11, 24), 2) == date(2027, 1, 24)


def test_expiry_extends_from_the_later_of_old_expiry_and_today():
    today = date(2026, 11, 24)
    assert extend_expiry(date(2026, 12, 5), today, 1) == date(2027, 1, 5)
    assert extend_expiry(date(2026, 10, 1), today, 1) == date(2026, 12, 24)
    assert extend_expiry(None, today, 1) == date(2026, 12, 24)


def test_today_is_the_tenants_local_day():
    late_utc = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)  # 02:00 on the 24th in Dhaka
    assert local_today(late_utc, "Asia/Dhaka") == date(2026, 11, 24)
    assert local_today(late_utc, "UTC") == date(2026, 11, 23)


def test_a_local_day_spans_the_right_utc_instants_even_on_a_dst_change():
    start, end = local_day_bounds(date(2026, 3, 29), "Europe/London")  # clocks go forward
    assert (end - start).total_seconds() == 23 * 3600


def test_failed_visits_reschedule_until_the_limit_then_flag():
    first = decide_after_failed_visit(
        failed_visits_before=0, today=date(2026, 11, 24), reschedule_days=2, flag_after=3
    )
    assert (first.failed_visits, first.flag_for_admin, first.return_on) == (
        1,
        False,
        date(2026, 11, 26),
    )
    third = decide_after_failed_visit(
        failed_visits_before=2, today=date(2026, 11, 24), reschedule_days=2, flag_after=3
    )
    assert (third.failed_visits, third.flag_for_admin, third.return_on) == (3, True, None)


def test_a_note_is_required_for_other_and_bounded_for_all():
    assert check_failure_note(FailureReason.NOT_HOME, None) == ""
    with pytest.raises(InvalidInput):
        check_failure_note(FailureReason.OTHER, " ")
    with pytest.raises(InvalidInput, match="under 500"):
        check_failure_note(FailureReason.REFUSED, "x" * 501)


@pytest.mark.parametrize(
    ("typed", "e164"),
    [("01711-000001", "+8801711000001"), ("+880 1811 000002", "+8801811000002")],
)
def test_phone_numbers_are_stored_as_e164(typed, e164):
    assert normalise_phone(typed, "BD") == e164


@pytest.mark.parametrize("typed", ["12345", "not a phone", ""])
def test_things_that_are_not_phone_numbers_are_refused(typed):
    with pytest.raises(InvalidInput):
        normalise_phone(typed, "BD")
