"""The collector report: per collector, over a period, in one SQL statement.

Figures per collector for the period (tenant-local days, inclusive): visits made, collected,
failed, success rate, cash collected, commission earned, commission paid out; and their
commission balance *now* (what the office owes them today, whatever the period): the
credit balance of their `commission_payable` ledger account; with the cash they hold now
(`collector_cash`) and what they owe (`collector_debt`, shortages at handover). Payments
reversed later no longer count as cash collected or commission earned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from tortoise.transactions import in_transaction

from core.db.models import Staff, Tenant
from core.db.sql import fetch
from core.domain.dates import local_day_bounds, local_today, month_start, utcnow
from core.domain.money import BASIS_POINTS
from core.domain.status import Role
from core.errors import InvalidInput
from core.services.access import (
    COLLECTORS_VIEW,
    find_collector,
    require_active,
    require_permission,
)

MAX_PERIOD_DAYS = 366


@dataclass(frozen=True)
class CollectorFigures:
    collector_id: int
    name: str
    phone: str | None
    deleted: bool
    visits: int
    collected: int
    failed: int
    success_rate_bp: int
    cash_collected_minor: int
    commission_earned_minor: int
    paid_out_minor: int
    balance_minor: int
    # Now, whatever the period: cash not yet handed in, and shortages not yet deducted.
    cash_on_hand_minor: int = 0
    debt_minor: int = 0


@dataclass(frozen=True)
class CollectorReport:
    start: date
    end: date
    currency: str
    locale: str
    rows: tuple[CollectorFigures, ...]

    def total(self, field: str) -> int:
        return sum(getattr(r, field) for r in self.rows)


# Visits: one pass over the period's closed stops. Balance: the collectors' commission
# accounts, summed from the (tenant, account, staff, amount) index without touching the
# table. Paid out: the period's payout postings only (few rows).
REPORT_SQL = """
WITH visits AS (
    SELECT a.collector_id,
           COUNT(*) AS visits,
           SUM(CASE WHEN a.status = 'collected' THEN 1 ELSE 0 END) AS collected,
           SUM(CASE WHEN a.status = 'failed' THEN 1 ELSE 0 END) AS failed,
           SUM(CASE WHEN r.id IS NULL THEN a.collected_minor ELSE 0 END) AS cash,
           SUM(CASE WHEN r.id IS NULL THEN a.commission_minor ELSE 0 END) AS earned
    FROM assignment a
    LEFT JOIN payment_reversal r ON r.payment_id = a.payment_id
    WHERE a.tenant_id = ? AND a.closed_on >= ? AND a.closed_on <= ?
      AND a.status IN ('collected', 'failed')
    GROUP BY a.collector_id
), balances AS (
    SELECT l.staff_id,
           -SUM(CASE WHEN l.account = 'commission_payable' THEN l.amount_minor ELSE 0 END)
             AS balance,
           SUM(CASE WHEN l.account = 'collector_cash' THEN l.amount_minor ELSE 0 END) AS held,
           SUM(CASE WHEN l.account = 'collector_debt' THEN l.amount_minor ELSE 0 END) AS debt
    FROM ledger_leg l
    WHERE l.tenant_id = ?
      AND l.account IN ('commission_payable', 'collector_cash', 'collector_debt')
    GROUP BY l.staff_id
), payouts AS (
    SELECT l.staff_id, SUM(l.amount_minor) AS paid_out
    FROM ledger_posting p
    JOIN ledger_leg l ON l.posting_id = p.id AND l.account = 'commission_payable'
    WHERE p.tenant_id = ? AND p.kind = 'commission_payout'
      AND p.created_at >= ? AND p.created_at < ?
    GROUP BY l.staff_id
)
SELECT s.id, s.name, s.phone, s.deleted_at,
       COALESCE(v.visits, 0) AS visits, COALESCE(v.collected, 0) AS collected,
       COALESCE(v.failed, 0) AS failed, COALESCE(v.cash, 0) AS cash,
       COALESCE(v.earned, 0) AS earned, COALESCE(pa.paid_out, 0) AS paid_out,
       COALESCE(b.balance, 0) AS balance, COALESCE(b.held, 0) AS held,
       COALESCE(b.debt, 0) AS debt
FROM staff s
LEFT JOIN visits v ON v.collector_id = s.id
LEFT JOIN balances b ON b.staff_id = s.id
LEFT JOIN payouts pa ON pa.staff_id = s.id
WHERE s.tenant_id = ? AND s.role = 'collector'
  AND (CAST(? AS INTEGER) IS NULL OR s.id = ?)
  AND (CAST(? AS INTEGER) IS NULL OR s.reseller_id = ?)
  AND (s.deleted_at IS NULL OR v.collector_id IS NOT NULL OR b.balance <> 0
       OR b.held <> 0 OR b.debt <> 0)
ORDER BY s.name, s.id
"""


async def collector_report(
    actor: Staff,
    *,
    start: date | None = None,
    end: date | None = None,
    collector_id: int | None = None,
    now: datetime | None = None,
) -> CollectorReport:
    """Figures for one collector or all in scope; default period month-to-date (local).

    A collector may read their own report; admins and reseller staff with
    `collectors.view` read those in their scope.
    """
    require_active(actor)
    if actor.role == Role.COLLECTOR:
        if collector_id not in (None, actor.id):
            raise InvalidInput("You can only see your own figures.", code="own_figures_only")
        collector_id = actor.id
    else:
        require_permission(actor, COLLECTORS_VIEW)
        if collector_id is not None:
            await find_collector(actor, collector_id)
    tenant = await Tenant.get(id=actor.tenant_id)
    today = local_today(now or utcnow(), tenant.timezone)
    end = end or today
    start = start or month_start(end)
    if start > end:
        raise InvalidInput(
            "The period starts after it ends; swap the dates.", code="period_reversed"
        )
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise InvalidInput("Ask for at most a year at a time.", code="period_too_long")
    scope = None if actor.role in (Role.ADMIN, Role.COLLECTOR) else actor.reseller_id
    params = report_params(
        tenant.id, start, end, tenant.timezone, collector_id=collector_id, reseller_id=scope
    )
    async with in_transaction() as conn:
        if conn.capabilities.dialect == "postgres":
            # A prepared statement switches to a generic plan after five runs; for this
            # query that plan is 3-4x slower than one made for the actual parameters.
            await conn.execute_script("SET LOCAL plan_cache_mode = force_custom_plan")
        rows = await fetch(REPORT_SQL, params, conn)
    return CollectorReport(
        start=start,
        end=end,
        currency=tenant.currency,
        locale=tenant.locale,
        rows=tuple(_figures(r) for r in rows),
    )


def report_params(
    tenant_id: int,
    start: date,
    end: date,
    timezone: str,
    *,
    collector_id: int | None = None,
    reseller_id: int | None = None,
) -> list[object]:
    """REPORT_SQL's parameters, in order: payouts are timed in UTC instants of local days."""
    start_at, _ = local_day_bounds(start, timezone)
    _, end_at = local_day_bounds(end, timezone)
    return [
        *(tenant_id, start, end, tenant_id, tenant_id, start_at, end_at, tenant_id),
        *(collector_id, collector_id, reseller_id, reseller_id),
    ]


def _figures(r: dict) -> CollectorFigures:
    visits, collected = int(r["visits"]), int(r["collected"])
    return CollectorFigures(
        collector_id=r["id"],
        name=r["name"],
        phone=r["phone"],
        deleted=r["deleted_at"] is not None,
        visits=visits,
        collected=collected,
        failed=int(r["failed"]),
        success_rate_bp=collected * BASIS_POINTS // visits if visits else 0,
        cash_collected_minor=int(r["cash"]),
        commission_earned_minor=int(r["earned"]),
        paid_out_minor=int(r["paid_out"]),
        balance_minor=int(r["balance"]),
        cash_on_hand_minor=int(r["held"]),
        debt_minor=int(r["debt"]),
    )
