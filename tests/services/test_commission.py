"""The collector report and commission payouts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from core.db.models import LedgerPosting
from core.domain.status import Role
from core.errors import InsufficientBalance, InvalidAmount, InvalidInput, PermissionDenied
from core.services.access import COLLECTORS_COMMISSION_PAY, COLLECTORS_VIEW
from core.services.assignments import assign_invoices
from core.services.collection import mark_collected, mark_failed
from core.services.commission import commission_balance, pay_commission
from core.services.reports import collector_report
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant
from tests.ledger_checks import unbalanced_postings

pytestmark = pytest.mark.usefixtures("db")

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


async def _month_of_work():
    """Karim (5 %) collects 1,500 in full and 1,000 of 2,000 on the 24th, fails one stop;
    collected 800 on 31 Oct (last month)."""
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim", commission_bp=500)
    idle = await make_staff(tenant, Role.COLLECTOR, name="Idle")
    invoices = [
        await make_invoice(await make_subscriber(tenant), amount)
        for amount in (150_000, 200_000, 90_000, 80_000)
    ]
    result = await assign_invoices(
        admin, collector_id=karim.id, numbers=[i.number for i in invoices], now=NOW
    )
    stops = [o.assignment_id for o in result.outcomes]
    october = datetime(2026, 10, 31, 6, 0, tzinfo=UTC)
    await mark_collected(karim, assignment_id=stops[3], idempotency_key="oct", now=october)
    await mark_collected(karim, assignment_id=stops[0], idempotency_key="a", now=NOW)
    await mark_collected(
        karim, assignment_id=stops[1], idempotency_key="b", amount_minor=100_000, now=NOW
    )
    await mark_failed(karim, assignment_id=stops[2], reason="not_home", now=NOW)
    return tenant, admin, karim, idle


async def test_the_report_defaults_to_month_to_date_and_sums_each_collector():
    tenant, admin, karim, idle = await _month_of_work()

    report = await collector_report(admin, now=NOW)

    assert (report.start, report.end) == (date(2026, 11, 1), date(2026, 11, 24))
    by_name = {r.name: r for r in report.rows}
    assert set(by_name) == {"Karim", "Idle"}
    k = by_name["Karim"]
    assert (k.visits, k.collected, k.failed, k.success_rate_bp) == (3, 2, 1, 6666)
    assert (k.cash_collected_minor, k.commission_earned_minor) == (250_000, 12_500)
    # October's 800 earned 40 of commission, still unpaid: it is in the balance.
    assert (k.paid_out_minor, k.balance_minor) == (0, 16_500)
    assert by_name["Idle"].visits == 0


async def test_the_reports_balance_is_the_ledgers_commission_balance():
    tenant, admin, karim, _ = await _month_of_work()
    await pay_commission(admin, collector_id=karim.id, amount_minor=6_000)
    report = await collector_report(admin, collector_id=karim.id, now=NOW + timedelta(hours=1))
    assert report.rows[0].balance_minor == await commission_balance(tenant.id, karim.id)
    assert report.rows[0].paid_out_minor == 6_000


async def test_a_payout_of_part_then_the_rest_empties_the_balance():
    tenant, admin, karim, _ = await _month_of_work()

    part = await pay_commission(admin, collector_id=karim.id, amount_minor=10_000)
    rest = await pay_commission(admin, collector_id=karim.id)

    assert (part.paid_minor, part.balance_after_minor) == (10_000, 6_500)
    assert (rest.paid_minor, rest.balance_after_minor) == (6_500, 0)
    assert await commission_balance(tenant.id, karim.id) == 0
    assert await unbalanced_postings() == []
    with pytest.raises(InsufficientBalance, match="no commission"):
        await pay_commission(admin, collector_id=karim.id)


async def test_a_payout_above_the_balance_is_refused_and_posts_nothing():
    tenant, admin, karim, _ = await _month_of_work()
    with pytest.raises(InsufficientBalance, match="only"):
        await pay_commission(admin, collector_id=karim.id, amount_minor=16_501)
    with pytest.raises(InvalidAmount):
        await pay_commission(admin, collector_id=karim.id, amount_minor=0)
    assert await LedgerPosting.filter(kind="commission_payout").count() == 0


async def test_pressing_pay_twice_pays_once():
    tenant, admin, karim, _ = await _month_of_work()
    first = await pay_commission(admin, collector_id=karim.id, idempotency_key="pay-1")
    again = await pay_commission(admin, collector_id=karim.id, idempotency_key="pay-1")
    assert (again.replayed, again.paid_minor, again.posting_id) == (
        True,
        first.paid_minor,
        first.posting_id,
    )
    assert await LedgerPosting.filter(kind="commission_payout").count() == 1


async def test_a_collector_reads_only_their_own_figures_and_cannot_pay_themselves():
    tenant, admin, karim, idle = await _month_of_work()
    mine = await collector_report(karim, now=NOW)
    assert [r.name for r in mine.rows] == ["Karim"]
    with pytest.raises(InvalidInput):
        await collector_report(karim, collector_id=idle.id, now=NOW)
    with pytest.raises(PermissionDenied):
        await pay_commission(karim, collector_id=karim.id)


async def test_reseller_staff_see_and_pay_only_their_own_collectors():
    tenant, admin, karim, _ = await _month_of_work()
    reseller = await make_reseller(tenant)
    clerk = await make_staff(
        tenant,
        Role.RESELLER,
        reseller=reseller,
        permissions=[COLLECTORS_VIEW, COLLECTORS_COMMISSION_PAY],
    )
    theirs = await make_staff(tenant, Role.COLLECTOR, reseller=reseller, name="Rafiq")
    report = await collector_report(clerk, now=NOW)
    assert [r.collector_id for r in report.rows] == [theirs.id]
    from core.errors import NotFound

    with pytest.raises(NotFound):
        await pay_commission(clerk, collector_id=karim.id)


async def test_a_reversed_or_overlong_period_is_refused():
    tenant, admin, _, _ = await _month_of_work()
    with pytest.raises(InvalidInput, match="swap"):
        await collector_report(admin, start=date(2026, 11, 20), end=date(2026, 11, 1), now=NOW)
    with pytest.raises(InvalidInput, match="a year"):
        await collector_report(admin, start=date(2025, 1, 1), end=date(2026, 11, 1), now=NOW)


async def test_a_deleted_collector_keeps_their_figures_and_can_be_paid_out():
    tenant, admin, karim, idle = await _month_of_work()
    karim.deleted_at = NOW
    await karim.save()
    idle.deleted_at = NOW
    await idle.save()
    report = await collector_report(admin, now=NOW)
    assert [(r.name, r.deleted) for r in report.rows] == [("Karim", True)]
    paid = await pay_commission(admin, collector_id=karim.id)
    assert paid.balance_after_minor == 0
