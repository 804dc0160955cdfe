"""The office's view of its collectors: the list, open routes, and finding a collector by name."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.db.models import Staff
from core.domain.status import Role
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.services.access import (
    COLLECTORS_ASSIGN,
    COLLECTORS_COMMISSION_PAY,
    COLLECTORS_EDIT,
    COLLECTORS_VIEW,
)
from core.services.assignments import assign_invoices
from core.services.collection import mark_collected, mark_failed
from core.services.collectors import (
    CollectorLine,
    OpenStop,
    commission_due,
    list_collectors,
    open_assignments,
    resolve_collector,
    resolve_reseller,
    route_load,
)
from core.services.commission import pay_commission
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant

pytestmark = pytest.mark.usefixtures("db")

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


async def _office():
    """Karim (5 %) collects 1,500 and fails one stop and keeps two open stops (2,000 and
    900); Jamal has one open stop; Newbie has not opened the invitation; Gone was removed."""
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN, name="Nadia")
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim Hossain", commission_bp=500)
    jamal = await make_staff(tenant, Role.COLLECTOR, name="Jamal")
    newbie = await make_staff(tenant, Role.COLLECTOR, name="Newbie", telegram_user_id=None)
    gone = await make_staff(tenant, Role.COLLECTOR, name="Gone", deleted_at=NOW)
    subs = [
        await make_subscriber(tenant, area=area, name=name)
        for area, name in (
            ("Dhanmondi", "Rahim"),
            ("Dhanmondi", "Salma"),
            ("Mirpur", "Abul"),
            ("Banani", "Toma"),
            ("Uttara", "Keya"),
        )
    ]
    collected, failed, open_a, open_b, jamals = [
        await make_invoice(sub, amount)
        for sub, amount in zip(subs, (150_000, 80_000, 200_000, 90_000, 50_000), strict=True)
    ]
    result = await assign_invoices(
        admin,
        collector_id=karim.id,
        numbers=[collected.number, failed.number, open_a.number, open_b.number],
        now=NOW,
    )
    stops = [o.assignment_id for o in result.outcomes]
    await mark_collected(karim, assignment_id=stops[0], idempotency_key="k1", now=NOW)
    # Failed: the stop comes back in two days, so Karim keeps it open (3 open stops in all).
    await mark_failed(karim, assignment_id=stops[1], reason="not_home", now=NOW)
    await assign_invoices(admin, collector_id=jamal.id, numbers=[jamals.number], now=NOW)
    return tenant, admin, karim, jamal, newbie, gone


async def test_the_list_shows_each_active_collector_with_the_months_figures_and_open_stops():
    tenant, admin, karim, jamal, newbie, gone = await _office()

    lines = await list_collectors(admin, now=NOW)

    assert lines == (
        CollectorLine(
            collector_id=jamal.id,
            name="Jamal",
            phone=jamal.phone,
            commission_bp=0,
            joined=True,
            visits=0,
            collected=0,
            failed=0,
            cash_collected_minor=0,
            commission_earned_minor=0,
            balance_minor=0,
            open_stops=1,
            open_due_minor=50_000,
        ),
        CollectorLine(
            collector_id=karim.id,
            name="Karim Hossain",
            phone=karim.phone,
            commission_bp=500,
            joined=True,
            visits=2,
            collected=1,
            failed=1,
            cash_collected_minor=150_000,
            commission_earned_minor=7_500,
            balance_minor=7_500,
            open_stops=3,
            open_due_minor=80_000 + 200_000 + 90_000,
        ),
        CollectorLine(
            collector_id=newbie.id,
            name="Newbie",
            phone=newbie.phone,
            commission_bp=0,
            joined=False,
            visits=0,
            collected=0,
            failed=0,
            cash_collected_minor=0,
            commission_earned_minor=0,
            balance_minor=0,
            open_stops=0,
            open_due_minor=0,
        ),
    )


async def test_reseller_staff_list_only_their_own_collectors_and_need_the_view_permission():
    tenant, admin, karim, *_ = await _office()
    reseller = await make_reseller(tenant)
    clerk = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_VIEW]
    )
    theirs = await make_staff(tenant, Role.COLLECTOR, reseller=reseller, name="Rafiq")
    blind = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_ASSIGN]
    )

    lines = await list_collectors(clerk, now=NOW)

    assert [line.collector_id for line in lines] == [theirs.id]
    with pytest.raises(PermissionDenied):
        await list_collectors(blind, now=NOW)


async def test_open_stops_are_grouped_per_collector_with_totals_oldest_first():
    tenant, admin, karim, jamal, *_ = await _office()

    found = await open_assignments(admin)

    assert [(r.collector_name, r.stop_count, r.due_minor) for r in found.routes] == [
        ("Jamal", 1, 50_000),
        ("Karim Hossain", 3, 370_000),
    ]
    karims = found.routes[1]
    # Today's two first (by area), then the failed stop that comes back on the 26th.
    assert [(s.subscriber_name, s.area, s.scheduled_on) for s in karims.stops] == [
        ("Toma", "Banani", date(2026, 11, 24)),
        ("Abul", "Mirpur", date(2026, 11, 24)),
        ("Salma", "Dhanmondi", date(2026, 11, 26)),
    ]
    assert (found.stop_count, found.due_minor) == (4, 420_000)
    assert all(isinstance(s, OpenStop) for s in karims.stops)


async def test_a_route_can_be_shown_in_part_while_its_totals_count_every_stop():
    tenant, admin, karim, jamal, *_ = await _office()

    part = await open_assignments(admin, collector_id=karim.id, shown_per_route=1)
    none = await open_assignments(admin, shown_per_route=0)

    assert [(r.collector_id, r.stop_count, len(r.stops), r.not_shown) for r in part.routes] == [
        (karim.id, 3, 1, 2)
    ]
    assert [(r.stop_count, r.stops) for r in none.routes] == [(1, ()), (3, ())]
    assert await route_load(admin, collector_id=karim.id) == (3, 370_000)
    assert await route_load(admin, collector_id=(await _idle(tenant)).id) == (0, 0)


async def _idle(tenant):
    return await make_staff(tenant, Role.COLLECTOR, name="Idle")


async def test_reseller_staff_see_open_stops_of_their_collectors_only():
    tenant, admin, karim, *_ = await _office()
    reseller = await make_reseller(tenant)
    clerk = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_ASSIGN]
    )
    theirs = await make_staff(tenant, Role.COLLECTOR, reseller=reseller, name="Rafiq")
    invoice = await make_invoice(await make_subscriber(tenant, reseller=reseller))
    await assign_invoices(clerk, collector_id=theirs.id, numbers=[invoice.number], now=NOW)

    found = await open_assignments(clerk)

    assert [(r.collector_id, r.stop_count) for r in found.routes] == [(theirs.id, 1)]
    with pytest.raises(NotFound):
        await open_assignments(clerk, collector_id=karim.id)


async def test_a_collector_is_found_by_number_or_by_name_case_insensitively():
    tenant, admin, karim, jamal, newbie, gone = await _office()

    found = [
        (await resolve_collector(admin, ref)).id
        for ref in (str(karim.id), f"#{karim.id}", "karim hossain", "KARIM", "Karim_Hossain")
    ]

    assert found == [karim.id] * 5
    # A removed collector is found by number (their report stays reachable), not by name.
    assert (await resolve_collector(admin, str(gone.id))).id == gone.id
    with pytest.raises(NotFound) as missing:
        await resolve_collector(admin, "gone")
    assert (missing.value.code, missing.value.params) == ("collector_not_found", {"ref": "gone"})


async def test_two_collectors_with_the_same_first_name_are_ambiguous_and_listed():
    tenant, admin, karim, *_ = await _office()
    other = await make_staff(tenant, Role.COLLECTOR, name="Karim Ali")

    with pytest.raises(InvalidInput) as ambiguous:
        await resolve_collector(admin, "karim")

    assert ambiguous.value.code == "collector_ambiguous"
    assert ambiguous.value.params["choices"] == (
        f"Karim Ali (#{other.id}), Karim Hossain (#{karim.id})"
    )
    assert (await resolve_collector(admin, "karim ali")).id == other.id


async def test_collectors_of_another_company_or_reseller_are_not_found():
    tenant, admin, karim, *_ = await _office()
    elsewhere = await make_tenant()
    stranger = await make_staff(elsewhere, Role.COLLECTOR, name="Karim Hossain")
    reseller = await make_reseller(tenant)
    clerk = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_VIEW, COLLECTORS_EDIT]
    )
    admin_only = await make_staff(tenant, Role.ADMIN)

    with pytest.raises(NotFound):
        await resolve_collector(admin, str(stranger.id))
    with pytest.raises(NotFound):
        await resolve_collector(clerk, "karim", permission=COLLECTORS_EDIT)
    with pytest.raises(NotFound):
        await resolve_collector(clerk, str(karim.id))
    with pytest.raises(NotFound):  # an admin is staff, not a collector
        await resolve_collector(admin, str(admin_only.id))


async def test_finding_a_collector_checks_the_permission_asked_for():
    tenant, admin, karim, *_ = await _office()
    reseller = await make_reseller(tenant)
    clerk = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_VIEW]
    )
    collector = await Staff.get(id=karim.id)

    with pytest.raises(PermissionDenied):
        await resolve_collector(clerk, "anyone", permission=COLLECTORS_ASSIGN)
    with pytest.raises(PermissionDenied):
        await resolve_collector(collector, "karim")


async def test_a_reseller_is_found_by_number_or_name_within_the_company():
    tenant, admin, *_ = await _office()
    north = await make_reseller(tenant, name="North Net")
    south = await make_reseller(tenant, name="South Net")
    clerk = await make_staff(tenant, Role.RESELLER, reseller=south, permissions=[COLLECTORS_VIEW])
    foreign = await make_reseller(await make_tenant(), name="Far Net")

    assert (await resolve_reseller(admin, "north net")).id == north.id
    assert (await resolve_reseller(admin, "North_Net")).id == north.id
    assert (await resolve_reseller(admin, str(south.id))).id == south.id
    assert (await resolve_reseller(clerk, "South Net")).id == south.id
    for actor, ref in ((admin, str(foreign.id)), (admin, "Far Net"), (clerk, "North Net")):
        with pytest.raises(NotFound) as missing:
            await resolve_reseller(actor, ref)
        assert missing.value.code == "reseller_not_found"


async def test_the_commission_due_is_the_unpaid_balance_and_needs_the_pay_permission():
    tenant, admin, karim, *_ = await _office()
    await pay_commission(admin, collector_id=karim.id, amount_minor=2_500)
    reseller = await make_reseller(tenant)
    viewer = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_VIEW]
    )
    payer = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_COMMISSION_PAY]
    )

    due = await commission_due(admin, collector_id=karim.id)

    assert (due.collector_id, due.name, due.balance_minor) == (karim.id, "Karim Hossain", 5_000)
    with pytest.raises(PermissionDenied):
        await commission_due(viewer, collector_id=karim.id)
    with pytest.raises(NotFound):
        await commission_due(payer, collector_id=karim.id)
