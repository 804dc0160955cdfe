"""The collectors' cash: what each holds, handing it in, and the daily reconciliation.

A collector holds the cash they collected until they hand it in: their `collector_cash`
ledger account (only cash: bKash or card money taken at the door goes straight to the
company's accounts). At the office an admin counts it and records the handover; the
ledger expected the collector's whole balance, and the difference is booked in the same
posting: a shortage as the collector's debt (`collector_debt`, deducted from a later
commission payout when the admin agrees), an excess as cash over.

Invariants:
- A handover takes exactly the balance the admin was shown: it is read again under a lock
  on the collector's row (PostgreSQL `FOR UPDATE`; SQLite serialises writers), and if a
  collection or another handover changed it meanwhile, nothing is recorded.
- One confirmation, one handover: UNIQUE (tenant, idempotency key).
- A collector's optional cash cap: at or above it, no more cash at the door until they
  hand in (checked by `collection.mark_collected`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.db.models import CashHandover, Staff, Tenant
from core.db.sql import fetch
from core.documents.receipt import receipt_number
from core.domain import ledger
from core.domain.dates import local_day_bounds, local_today, utcnow
from core.domain.money import format_money
from core.domain.status import AssignmentStatus, PaymentMethod, Role
from core.errors import Conflict, InvalidAmount, InvalidInput
from core.services.access import (
    COLLECTORS_VIEW,
    SYSTEM,
    Origin,
    find_collector,
    require_admin,
    require_permission,
)
from core.services.audit import write_audit
from core.services.ledger import account_balance, post


async def cash_on_hand(
    tenant_id: int, collector_id: int, conn: BaseDBAsyncClient | None = None
) -> int:
    """The cash a collector holds now: collected and not yet handed in."""
    return await account_balance(
        tenant_id=tenant_id, account=ledger.COLLECTOR_CASH, staff_id=collector_id, conn=conn
    )


async def collector_debt(
    tenant_id: int, collector_id: int, conn: BaseDBAsyncClient | None = None
) -> int:
    """What a collector owes the company: shortages not yet deducted."""
    return await account_balance(
        tenant_id=tenant_id, account=ledger.COLLECTOR_DEBT, staff_id=collector_id, conn=conn
    )


# --- handover ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandoverPreview:
    collector_id: int
    name: str
    expected_minor: int
    counted_minor: int
    collections: int  # cash payments since their last handover
    debt_minor: int  # before this handover

    @property
    def difference_minor(self) -> int:
        return self.counted_minor - self.expected_minor


@dataclass(frozen=True)
class HandoverResult:
    handover_id: int
    name: str
    expected_minor: int
    counted_minor: int
    difference_minor: int
    debt_minor: int  # after this handover
    replayed: bool = False


async def preview_handover(
    actor: Staff, *, collector_id: int, counted_minor: int
) -> HandoverPreview:
    """What recording `counted_minor` handed in by the collector would book; writes nothing."""
    require_admin(actor, "take cash handovers")
    collector = await find_collector(actor, collector_id)
    if counted_minor < 0:
        raise InvalidAmount("The amount counted cannot be negative.", code="amount_negative")
    expected = await cash_on_hand(actor.tenant_id, collector.id)
    if expected == 0 and counted_minor == 0:
        raise InvalidInput(
            f"{collector.name} holds no cash, and nothing was counted.",
            code="handover_nothing",
            name=collector.name,
        )
    last = await CashHandover.filter(collector_id=collector.id).order_by("-recorded_at").first()
    since = [collector.id, PaymentMethod.CASH.value]
    clause = ""
    if last is not None:
        clause = " AND p.received_at > ?"
        since.append(last.recorded_at)
    rows = await fetch(
        "SELECT COUNT(*) AS n FROM payment p LEFT JOIN payment_reversal r ON r.payment_id = p.id"
        f" WHERE p.collector_id = ? AND p.method = ? AND r.id IS NULL{clause}",
        since,
    )
    return HandoverPreview(
        collector_id=collector.id,
        name=collector.name,
        expected_minor=expected,
        counted_minor=counted_minor,
        collections=int(rows[0]["n"]),
        debt_minor=await collector_debt(actor.tenant_id, collector.id),
    )


async def record_handover(
    actor: Staff,
    *,
    collector_id: int,
    counted_minor: int,
    expected_minor: int,
    idempotency_key: str,
    note: str = "",
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> HandoverResult:
    """Record the cash a collector handed in, against the balance the admin was shown.

    Raises:
        Conflict: the collector's cash changed since `expected_minor` was shown (a
            collection or another handover meanwhile): show the preview again.
        InvalidAmount / InvalidInput: see `preview_handover`.
    """
    require_admin(actor, "take cash handovers")
    collector = await find_collector(actor, collector_id)
    if counted_minor < 0:
        raise InvalidAmount("The amount counted cannot be negative.", code="amount_negative")
    done = await CashHandover.get_or_none(
        tenant_id=actor.tenant_id, idempotency_key=idempotency_key
    )
    if done is not None:
        return await _replayed(done, collector)
    now = now or utcnow()
    tenant = await Tenant.get(id=actor.tenant_id)
    try:
        async with in_transaction() as conn:
            # Handovers and collections for one collector take turns from here on.
            await Staff.filter(id=collector.id).select_for_update().using_db(conn).get()
            expected = await cash_on_hand(actor.tenant_id, collector.id, conn)
            if expected != expected_minor:
                raise Conflict(
                    f"{collector.name}'s cash changed since you checked; run /handover again.",
                    code="handover_changed",
                    name=collector.name,
                )
            if expected == 0 and counted_minor == 0:
                raise InvalidInput(
                    f"{collector.name} holds no cash, and nothing was counted.",
                    code="handover_nothing",
                    name=collector.name,
                )
            posting = await post(
                conn,
                tenant_id=actor.tenant_id,
                kind="cash_handover",
                legs=ledger.cash_handed_in(
                    collector_id=collector.id, expected_minor=expected, counted_minor=counted_minor
                ),
                created_by_id=actor.id,
                memo=f"handover {collector.name}",
            )
            handover = await CashHandover.create(
                tenant_id=actor.tenant_id,
                collector_id=collector.id,
                expected_minor=expected,
                counted_minor=counted_minor,
                difference_minor=counted_minor - expected,
                recorded_by_id=actor.id,
                recorded_at=now,
                day=local_today(now, tenant.timezone),
                note=note.strip()[:500],
                posting_id=posting.id,
                idempotency_key=idempotency_key,
                using_db=conn,
            )
            await write_audit(
                tenant_id=actor.tenant_id,
                actor=actor,
                action="cash.handover",
                object_type="staff",
                object_id=collector.id,
                origin=origin,
                details={
                    "handover_id": handover.id,
                    "expected_minor": expected,
                    "counted_minor": counted_minor,
                    "difference_minor": counted_minor - expected,
                },
                using_db=conn,
            )
            debt = await collector_debt(actor.tenant_id, collector.id, conn)
    except IntegrityError:
        done = await CashHandover.get(tenant_id=actor.tenant_id, idempotency_key=idempotency_key)
        return await _replayed(done, collector)
    return HandoverResult(
        handover.id, collector.name, expected, counted_minor, counted_minor - expected, debt
    )


async def _replayed(done: CashHandover, collector: Staff) -> HandoverResult:
    return HandoverResult(
        done.id,
        collector.name,
        done.expected_minor,
        done.counted_minor,
        done.difference_minor,
        await collector_debt(done.tenant_id, collector.id),
        replayed=True,
    )


# --- the cap -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CashCap:
    on_hand_minor: int
    cap_minor: int | None

    @property
    def reached(self) -> bool:
        return self.cap_minor is not None and self.on_hand_minor >= self.cap_minor


async def cash_cap(collector: Staff, conn: BaseDBAsyncClient | None = None) -> CashCap:
    return CashCap(
        await cash_on_hand(collector.tenant_id, collector.id, conn), collector.cash_cap_minor
    )


async def require_cash_room(
    tenant_id: int, collector_id: int, cap_minor: int | None, conn: BaseDBAsyncClient | None = None
) -> None:
    """Refuse more cash at the door once the collector holds their cap or more."""
    if cap_minor is None:
        return
    held = await cash_on_hand(tenant_id, collector_id, conn)
    if held >= cap_minor:
        tenant = await Tenant.get(id=tenant_id, using_db=conn)
        raise Conflict(
            f"You hold {format_money(held, tenant.currency, tenant.locale)}, at or above your"
            f" cap of {format_money(cap_minor, tenant.currency, tenant.locale)}: hand the cash"
            " in at the office before taking more.",
            code="cash_cap_reached",
            held_minor=held,
            cap_minor=cap_minor,
        )


# --- the daily reconciliation --------------------------------------------------------------


@dataclass(frozen=True)
class CollectorCash:
    """One collector's cash over one local day."""

    collector_id: int
    name: str
    opening_minor: int  # held at the start of the day
    collected_minor: int  # cash taken at doors that day
    reversed_minor: int  # cash payments taken back that day (still in their hands)
    expected_minor: int  # what the ledger expected at the day's handovers
    handed_in_minor: int  # what the office counted
    difference_minor: int  # counted - expected (negative: short)
    closing_minor: int  # held at the end of the day (or now, for today)
    debt_minor: int  # owed now
    cap_minor: int | None


@dataclass(frozen=True)
class CashStop:
    """A stop behind the day's cash: when, which invoice, how much, and the receipt photo."""

    closed_at: datetime
    invoice_number: str
    subscriber_name: str
    amount_minor: int
    method: PaymentMethod
    receipt: str
    photo_path: str | None
    photo_file_id: str | None
    reversed: bool


@dataclass(frozen=True)
class HandoverLine:
    recorded_at: datetime
    expected_minor: int
    counted_minor: int
    difference_minor: int
    recorded_by: str | None


@dataclass(frozen=True)
class Reconciliation:
    day: date
    rows: tuple[CollectorCash, ...]
    # For one collector only: the stops and handovers behind the figures.
    stops: tuple[CashStop, ...] = ()
    handovers: tuple[HandoverLine, ...] = ()

    def total(self, field: str) -> int:
        return sum(getattr(r, field) for r in self.rows)


# The collectors' cash accounts split around the day: before it (opening), within it by
# what moved the money, and up to its end (closing). One pass over their legs.
_RECONCILE_SQL = """
WITH legs AS (
    SELECT l.staff_id, l.account, l.amount_minor, p.kind, p.created_at
    FROM ledger_leg l
    JOIN ledger_posting p ON p.id = l.posting_id
    WHERE l.tenant_id = ? AND l.account IN ('collector_cash', 'collector_debt')
      AND p.created_at < ?
), sums AS (
    SELECT staff_id,
      SUM(CASE WHEN account = 'collector_cash' AND created_at < ? THEN amount_minor ELSE 0 END)
        AS opening,
      SUM(CASE WHEN account = 'collector_cash' AND created_at >= ? AND kind = 'collection'
          THEN amount_minor ELSE 0 END) AS collected,
      SUM(CASE WHEN account = 'collector_cash' AND created_at >= ? AND kind = 'payment_reversal'
          THEN -amount_minor ELSE 0 END) AS reversed,
      SUM(CASE WHEN account = 'collector_cash' THEN amount_minor ELSE 0 END) AS closing,
      SUM(CASE WHEN account = 'collector_debt' THEN amount_minor ELSE 0 END) AS debt
    FROM legs
    GROUP BY staff_id
), handed AS (
    SELECT collector_id, SUM(expected_minor) AS expected, SUM(counted_minor) AS counted,
           SUM(difference_minor) AS difference
    FROM cash_handover
    WHERE tenant_id = ? AND day = ?
    GROUP BY collector_id
)
SELECT s.id, s.name, s.cash_cap_minor,
       COALESCE(m.opening, 0) AS opening, COALESCE(m.collected, 0) AS collected,
       COALESCE(m.reversed, 0) AS reversed, COALESCE(m.closing, 0) AS closing,
       COALESCE(m.debt, 0) AS debt, COALESCE(h.expected, 0) AS expected,
       COALESCE(h.counted, 0) AS counted, COALESCE(h.difference, 0) AS difference
FROM staff s
LEFT JOIN sums m ON m.staff_id = s.id
LEFT JOIN handed h ON h.collector_id = s.id
WHERE s.tenant_id = ? AND s.role = 'collector'
  AND (CAST(? AS INTEGER) IS NULL OR s.id = ?)
  AND (CAST(? AS INTEGER) IS NULL OR s.reseller_id = ?)
  AND (COALESCE(m.opening, 0) <> 0 OR COALESCE(m.collected, 0) <> 0
       OR COALESCE(m.closing, 0) <> 0 OR COALESCE(m.debt, 0) <> 0 OR h.collector_id IS NOT NULL
       OR s.id = ?)
ORDER BY s.name, s.id
"""

_STOPS_SQL = """
SELECT a.closed_at, i.number, s.name AS subscriber, p.id AS payment_id, p.amount_minor,
       p.method, f.path, f.telegram_file_id, r.id AS reversal_id
FROM assignment a
JOIN payment p ON p.id = a.payment_id
JOIN invoice i ON i.id = a.invoice_id
JOIN subscriber s ON s.id = i.subscriber_id
LEFT JOIN stored_file f ON f.id = p.receipt_file_id
LEFT JOIN payment_reversal r ON r.payment_id = p.id
WHERE a.tenant_id = ? AND a.collector_id = ? AND a.closed_on = ? AND a.status = ?
ORDER BY a.closed_at, a.id
"""


async def reconcile_day(
    actor: Staff,
    *,
    day: date | None = None,
    collector_id: int | None = None,
    now: datetime | None = None,
) -> Reconciliation:
    """Per collector for one local day: held at the start, collected, handed in against
    what was expected, the difference, and held at the end; with one collector, also the
    stops (times, amounts, photos) and handovers behind it."""
    require_permission(actor, COLLECTORS_VIEW)
    tenant = await Tenant.get(id=actor.tenant_id)
    today = local_today(now or utcnow(), tenant.timezone)
    day = day or today
    if day > today:
        raise InvalidInput("That day has not come yet.", code="day_in_future")
    if collector_id is not None:
        await find_collector(actor, collector_id)
    start_at, end_at = local_day_bounds(day, tenant.timezone)
    scope = actor.reseller_id if actor.role == Role.RESELLER else None
    rows = await fetch(
        _RECONCILE_SQL,
        [
            *(actor.tenant_id, end_at, start_at, start_at, start_at, actor.tenant_id, day),
            *(actor.tenant_id, collector_id, collector_id, scope, scope, collector_id or 0),
        ],
    )
    figures = tuple(
        CollectorCash(
            collector_id=r["id"],
            name=r["name"],
            opening_minor=int(r["opening"]),
            collected_minor=int(r["collected"]),
            reversed_minor=int(r["reversed"]),
            expected_minor=int(r["expected"]),
            handed_in_minor=int(r["counted"]),
            difference_minor=int(r["difference"]),
            closing_minor=int(r["closing"]),
            debt_minor=int(r["debt"]),
            cap_minor=r["cash_cap_minor"],
        )
        for r in rows
    )
    if collector_id is None:
        return Reconciliation(day, figures)
    stops = await fetch(
        _STOPS_SQL, [actor.tenant_id, collector_id, day, AssignmentStatus.COLLECTED.value]
    )
    handovers = (
        await CashHandover.filter(collector_id=collector_id, day=day)
        .order_by("recorded_at")
        .values(
            "recorded_at",
            "expected_minor",
            "counted_minor",
            "difference_minor",
            "recorded_by__name",
        )
    )
    return Reconciliation(
        day,
        figures,
        stops=tuple(
            CashStop(
                closed_at=_moment(r["closed_at"]),
                invoice_number=r["number"],
                subscriber_name=r["subscriber"],
                amount_minor=int(r["amount_minor"]),
                method=PaymentMethod(r["method"]),
                receipt=receipt_number(r["payment_id"]),
                photo_path=r["path"],
                photo_file_id=r["telegram_file_id"],
                reversed=r["reversal_id"] is not None,
            )
            for r in stops
        ),
        handovers=tuple(
            HandoverLine(
                h["recorded_at"],
                h["expected_minor"],
                h["counted_minor"],
                h["difference_minor"],
                h["recorded_by__name"],
            )
            for h in handovers
        ),
    )


def _moment(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
