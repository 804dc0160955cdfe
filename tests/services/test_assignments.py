"""Putting invoices on routes: each invoice assigned or refused with a reason."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.db.models import Assignment, AuditLog, Invoice
from core.domain.status import AssignmentStatus, InvoiceStatus, Role
from core.errors import InactiveStaff, InvalidInput, NotFound, PermissionDenied
from core.services.access import COLLECTORS_ASSIGN
from core.services.assignments import assign_invoices, preview_assignment, unassign
from tests.factories import (
    make_invoice,
    make_reseller,
    make_staff,
    make_subscriber,
    make_tenant,
)

pytestmark = pytest.mark.usefixtures("db")

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


async def _office():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim")
    jamal = await make_staff(tenant, Role.COLLECTOR, name="Jamal")
    return tenant, admin, karim, jamal


async def test_each_invoice_is_assigned_or_refused_with_a_reason():
    tenant, admin, karim, jamal = await _office()
    sub = await make_subscriber(tenant)
    fresh = await make_invoice(sub)
    partial = await make_invoice(sub, status=InvoiceStatus.PARTIAL, paid_minor=1)
    paid = await make_invoice(sub, status=InvoiceStatus.PAID, paid_minor=150_000)
    cancelled = await make_invoice(sub, status=InvoiceStatus.CANCELLED)
    draft = await make_invoice(sub, status=InvoiceStatus.DRAFT)
    on_jamal = await make_invoice(sub)
    await assign_invoices(admin, collector_id=jamal.id, numbers=[on_jamal.number], now=NOW)
    foreign = await make_invoice(await make_subscriber(await make_tenant()))

    result = await assign_invoices(
        admin,
        collector_id=karim.id,
        numbers=[
            fresh.number,
            partial.number.lower(),
            paid.number,
            cancelled.number,
            draft.number,
            on_jamal.number,
            foreign.number,
            "INV-0000-9999",
        ],
        now=NOW,
    )

    assert [(o.number, o.refused) for o in result.outcomes] == [
        (fresh.number, None),
        (partial.number, None),
        (paid.number, "already paid"),
        (cancelled.number, "cancelled"),
        (draft.number, "a draft, not approved yet"),
        (on_jamal.number, "already on Jamal's route"),
        (foreign.number, "not found"),
        ("INV-0000-9999", "not found"),
    ]
    assert result.scheduled_on == date(2026, 11, 24)
    opened = await Assignment.filter(collector_id=karim.id, status=AssignmentStatus.ASSIGNED)
    assert sorted(a.invoice_id for a in opened) == sorted([fresh.id, partial.id])
    audited = await AuditLog.filter(action="assignment.create", actor_staff_id=admin.id)
    assert len(audited) == 3  # two for Karim, one for Jamal


async def test_assigning_the_same_invoice_again_to_the_same_collector_is_refused():
    tenant, admin, karim, _ = await _office()
    invoice = await make_invoice(await make_subscriber(tenant))
    await assign_invoices(admin, collector_id=karim.id, numbers=[invoice.number], now=NOW)
    again = await assign_invoices(admin, collector_id=karim.id, numbers=[invoice.number], now=NOW)
    assert again.refused[0].refused == "already on the route"


async def test_a_collector_of_a_reseller_only_takes_that_resellers_subscribers():
    tenant, admin, _, _ = await _office()
    reseller = await make_reseller(tenant, name="Lalmatia Net")
    their_collector = await make_staff(tenant, Role.COLLECTOR, reseller=reseller, name="Rafiq")
    theirs = await make_invoice(await make_subscriber(tenant, reseller=reseller))
    ours = await make_invoice(await make_subscriber(tenant))

    result = await assign_invoices(
        admin, collector_id=their_collector.id, numbers=[theirs.number, ours.number], now=NOW
    )

    assert [o.refused for o in result.outcomes] == [None, "outside Rafiq's reseller"]


async def test_reseller_staff_assign_only_within_their_reseller_and_with_permission():
    tenant, admin, karim, _ = await _office()
    reseller = await make_reseller(tenant)
    clerk = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_ASSIGN]
    )
    their_collector = await make_staff(tenant, Role.COLLECTOR, reseller=reseller)
    theirs = await make_invoice(await make_subscriber(tenant, reseller=reseller))
    not_theirs = await make_invoice(await make_subscriber(tenant))

    result = await assign_invoices(
        clerk,
        collector_id=their_collector.id,
        numbers=[theirs.number, not_theirs.number],
        now=NOW,
    )
    assert [o.refused for o in result.outcomes] == [None, "not found"]
    with pytest.raises(NotFound):  # the tenant's own collector is outside the reseller
        await assign_invoices(clerk, collector_id=karim.id, numbers=[theirs.number], now=NOW)
    without = await make_staff(tenant, Role.RESELLER, reseller=reseller, permissions=[])
    with pytest.raises(PermissionDenied, match="assign"):
        await assign_invoices(without, collector_id=their_collector.id, numbers=["X"], now=NOW)


async def test_a_collector_cannot_assign_invoices():
    tenant, _, karim, jamal = await _office()
    with pytest.raises(PermissionDenied):
        await assign_invoices(karim, collector_id=jamal.id, numbers=["X"], now=NOW)


async def test_a_deleted_or_unbound_collector_cannot_take_stops():
    tenant, admin, karim, jamal = await _office()
    invoice = await make_invoice(await make_subscriber(tenant))
    karim.deleted_at = NOW
    await karim.save()
    jamal.telegram_user_id = None
    await jamal.save()
    with pytest.raises(InactiveStaff, match="removed"):
        await assign_invoices(admin, collector_id=karim.id, numbers=[invoice.number], now=NOW)
    with pytest.raises(InactiveStaff, match="invitation"):
        await assign_invoices(admin, collector_id=jamal.id, numbers=[invoice.number], now=NOW)
    assert await Assignment.all().count() == 0


async def test_an_empty_list_of_numbers_is_refused_with_an_example():
    tenant, admin, karim, _ = await _office()
    with pytest.raises(InvalidInput, match="INV-"):
        await assign_invoices(admin, collector_id=karim.id, numbers=["  "], now=NOW)


async def test_a_filter_preview_names_what_it_would_assign_and_what_it_leaves_out():
    tenant, admin, karim, jamal = await _office()
    dhanmondi = [
        await make_invoice(await make_subscriber(tenant, area="Dhanmondi"), 100_000)
        for _ in range(3)
    ]
    await make_invoice(await make_subscriber(tenant, area="Mohammadpur"))
    await assign_invoices(admin, collector_id=jamal.id, numbers=[dhanmondi[0].number], now=NOW)

    preview = await preview_assignment(
        admin, collector_id=karim.id, area="dhanmondi", status="unpaid", now=NOW
    )

    assert sorted(preview.numbers) == sorted(i.number for i in dhanmondi[1:])
    assert (preview.total_due_minor, preview.on_other_routes) == (200_000, 1)
    confirmed = await assign_invoices(
        admin, collector_id=karim.id, numbers=list(preview.numbers), now=NOW
    )
    assert len(confirmed.assigned) == 2


async def test_a_filter_with_an_unknown_status_is_refused():
    tenant, admin, karim, _ = await _office()
    with pytest.raises(InvalidInput, match="unpaid, partial or overdue"):
        await preview_assignment(admin, collector_id=karim.id, status="late", now=NOW)


async def test_unassigning_closes_the_stop_and_leaves_the_invoice_untouched():
    tenant, admin, karim, jamal = await _office()
    invoice = await make_invoice(await make_subscriber(tenant))
    await assign_invoices(admin, collector_id=karim.id, numbers=[invoice.number], now=NOW)

    result = await unassign(admin, invoice_number=invoice.number, now=NOW)

    stop = await Assignment.get(id=result.assignment_id)
    assert (stop.status, stop.open_invoice_id) == (AssignmentStatus.REMOVED, None)
    after = await Invoice.get(id=invoice.id)
    assert (after.status, after.paid_minor) == (InvoiceStatus.UNPAID, 0)
    moved = await assign_invoices(admin, collector_id=jamal.id, numbers=[invoice.number], now=NOW)
    assert len(moved.assigned) == 1
    with pytest.raises(NotFound, match="not on any route"):
        await unassign(admin, invoice_number="INV-0000-0001", now=NOW)


async def test_deleting_a_collector_releases_their_open_stops_for_someone_else():
    from core.services.staff import delete_staff

    tenant, admin, karim, jamal = await _office()
    invoice = await make_invoice(await make_subscriber(tenant))
    await assign_invoices(admin, collector_id=karim.id, numbers=[invoice.number], now=NOW)

    await delete_staff(admin, staff_id=karim.id, now=NOW)

    released = await Assignment.get(collector_id=karim.id)
    assert (released.status, released.open_invoice_id) == (AssignmentStatus.REMOVED, None)
    moved = await assign_invoices(admin, collector_id=jamal.id, numbers=[invoice.number], now=NOW)
    assert len(moved.assigned) == 1
