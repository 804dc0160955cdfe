"""A collector's history: their own closed stops, newest first, with what happened at each."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from core.db.models import Staff
from core.domain.status import AssignmentStatus, FailureReason, PaymentMethod, Role
from core.errors import InactiveStaff
from core.services.assignments import assign_invoices, unassign
from core.services.collection import mark_collected, mark_failed
from core.services.history import HistoryEntry, collector_history
from tests.factories import make_invoice, make_staff, make_subscriber, make_tenant

pytestmark = pytest.mark.usefixtures("db")

# 10:00 in Dhaka on Tuesday 24 Nov 2026.
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
TODAY = date(2026, 11, 24)


async def _route(*names: str, tenant=None, collector=None):
    """A collector with one open stop per subscriber name (1,000 due each)."""
    tenant = tenant or await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    collector = collector or await make_staff(tenant, Role.COLLECTOR, commission_bp=500)
    invoices = [await make_invoice(await make_subscriber(tenant, name=n), 100_000) for n in names]
    result = await assign_invoices(
        admin, collector_id=collector.id, numbers=[i.number for i in invoices], now=NOW
    )
    stops = [o.assignment_id for o in result.outcomes]
    return admin, collector, invoices, stops


async def test_history_lists_collected_failed_and_removed_stops_newest_first():
    admin, collector, invoices, stops = await _route("Rahim", "Salma", "Nasir", "Jamil")
    await mark_collected(
        collector,
        assignment_id=stops[0],
        idempotency_key="k1",
        amount_minor=60_000,
        method=PaymentMethod.BKASH,
        now=NOW,
    )
    await mark_failed(
        collector,
        assignment_id=stops[1],
        reason=FailureReason.OTHER,
        note="gate locked",
        now=NOW + timedelta(minutes=5),
    )
    await unassign(admin, invoice_number=invoices[2].number, now=NOW + timedelta(minutes=10))

    history = await collector_history(collector)

    assert history == (
        HistoryEntry(
            assignment_id=stops[2],
            day=TODAY,
            subscriber_name="Nasir",
            invoice_number=invoices[2].number,
            outcome=AssignmentStatus.REMOVED,
            amount_minor=0,
            method=None,
            failure_reason=None,
            failure_note="",
        ),
        HistoryEntry(
            assignment_id=stops[1],
            day=TODAY,
            subscriber_name="Salma",
            invoice_number=invoices[1].number,
            outcome=AssignmentStatus.FAILED,
            amount_minor=0,
            method=None,
            failure_reason=FailureReason.OTHER,
            failure_note="gate locked",
        ),
        HistoryEntry(
            assignment_id=stops[0],
            day=TODAY,
            subscriber_name="Rahim",
            invoice_number=invoices[0].number,
            outcome=AssignmentStatus.COLLECTED,
            amount_minor=60_000,
            method=PaymentMethod.BKASH,
            failure_reason=None,
            failure_note="",
        ),
    )


async def test_history_holds_only_the_actors_own_stops_and_no_open_ones():
    _, karim, _, karim_stops = await _route("Rahim", "Salma")
    _, jamal, _, jamal_stops = await _route("Nasir", tenant=await karim.tenant)
    await mark_collected(jamal, assignment_id=jamal_stops[0], idempotency_key="j1", now=NOW)
    await mark_failed(karim, assignment_id=karim_stops[0], reason="not_home", now=NOW)

    karims = await collector_history(karim)
    jamals = await collector_history(jamal)

    # Karim's failed stop came back as a new open stop: that one is not history yet.
    assert [(e.subscriber_name, e.outcome) for e in karims] == [("Rahim", AssignmentStatus.FAILED)]
    assert [e.subscriber_name for e in jamals] == ["Nasir"]


async def test_history_is_limited_to_the_last_ten_by_default_and_to_what_is_asked():
    names = [f"Subscriber {n:02d}" for n in range(12)]
    _, collector, _, stops = await _route(*names)
    for n, stop_id in enumerate(stops):
        await mark_collected(
            collector,
            assignment_id=stop_id,
            idempotency_key=f"k{n}",
            now=NOW + timedelta(minutes=n),
        )

    default = await collector_history(collector)
    three = await collector_history(collector, limit=3)
    none_asked = await collector_history(collector, limit=0)

    assert [e.subscriber_name for e in default] == names[::-1][:10]
    assert [e.subscriber_name for e in three] == names[::-1][:3]
    assert [e.subscriber_name for e in none_asked] == names[-1:]  # at least one


async def test_history_of_a_collector_with_no_closed_stops_is_empty():
    _, collector, _, _ = await _route("Rahim")
    assert await collector_history(collector) == ()


async def test_a_removed_collector_cannot_read_history():
    _, collector, _, _ = await _route("Rahim")
    await Staff.filter(id=collector.id).update(deleted_at=NOW)
    await collector.refresh_from_db()
    with pytest.raises(InactiveStaff):
        await collector_history(collector)
