"""The office's view of its collectors: who they are, how the month goes, what is still open.

This module owns the read side the office works from (the write side, invites, edits and
deletes, is `core.services.staff`):

- `list_collectors`: every active collector in the actor's scope with this month's figures
  (from `collector_report`) and their open stops, in two queries however many collectors.
- `open_assignments`: open stops grouped per collector with totals, in one query (window
  functions count and sum each route, so a long route can be shown in part).
- `resolve_collector` / `resolve_reseller`: what people type (`12`, `#12`, `karim`,
  `Karim_Hossain`) to one row in the actor's scope, or a sentence saying why not.

Invariants: every query is scoped to the actor's tenant, and for reseller staff to their
own reseller; rows outside the scope are reported as not found, so ids leak nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from core.db.models import Reseller, Staff
from core.db.sql import fetch
from core.domain.status import Role
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.services.access import (
    COLLECTORS_ASSIGN,
    COLLECTORS_COMMISSION_PAY,
    COLLECTORS_VIEW,
    find_collector,
    require_active,
    require_permission,
)
from core.services.cash import collector_debt
from core.services.commission import commission_balance
from core.services.reports import collector_report


@dataclass(frozen=True)
class CollectorLine:
    """One collector as the office list shows them: this month so far, and what is open."""

    collector_id: int
    name: str
    phone: str | None
    commission_bp: int
    joined: bool  # has opened their invitation link (a Telegram account is bound)
    visits: int
    collected: int
    failed: int
    cash_collected_minor: int
    commission_earned_minor: int
    balance_minor: int
    open_stops: int
    open_due_minor: int


@dataclass(frozen=True)
class OpenStop:
    assignment_id: int
    invoice_number: str
    subscriber_name: str
    area: str
    due_minor: int
    scheduled_on: date


@dataclass(frozen=True)
class OpenRoute:
    """A collector's open stops: the totals always cover all of them; `stops` may be a part."""

    collector_id: int
    collector_name: str
    stop_count: int
    due_minor: int
    stops: tuple[OpenStop, ...]

    @property
    def not_shown(self) -> int:
        return self.stop_count - len(self.stops)


@dataclass(frozen=True)
class OpenAssignments:
    routes: tuple[OpenRoute, ...]

    @property
    def stop_count(self) -> int:
        return sum(r.stop_count for r in self.routes)

    @property
    def due_minor(self) -> int:
        return sum(r.due_minor for r in self.routes)


@dataclass(frozen=True)
class CommissionDue:
    """What a payout would start from: the collector, their unpaid commission, and what
    they owe (shortages at cash handovers), which the admin may deduct from it."""

    collector_id: int
    name: str
    balance_minor: int
    debt_minor: int = 0


# Open stops per active collector in scope, one GROUP BY; also the two staff columns the
# report leaves out (rate, bound account), so the list needs no query per collector.
OPEN_PER_COLLECTOR_SQL = """
SELECT s.id, s.commission_bp, s.telegram_user_id,
       COUNT(a.id) AS open_stops,
       COALESCE(SUM(i.amount_minor - i.paid_minor), 0) AS open_due
FROM staff s
LEFT JOIN assignment a ON a.collector_id = s.id AND a.status = 'assigned'
LEFT JOIN invoice i ON i.id = a.invoice_id
WHERE s.tenant_id = ? AND s.role = 'collector' AND s.deleted_at IS NULL
  AND (CAST(? AS INTEGER) IS NULL OR s.reseller_id = ?)
GROUP BY s.id, s.commission_bp, s.telegram_user_id
"""

# Every open stop in scope with its route's count and due (window functions), numbered
# per route so only the first `shown` of each come back; the first row of a route always
# comes back, so the totals of a route are known even when no stop is to be shown.
OPEN_STOPS_SQL = """
SELECT * FROM (
    SELECT a.collector_id, c.name AS collector_name, a.id AS assignment_id,
           a.scheduled_on, i.number, sub.name AS subscriber_name, sub.area,
           i.amount_minor - i.paid_minor AS due_minor,
           ROW_NUMBER() OVER (
               PARTITION BY a.collector_id
               ORDER BY a.scheduled_on, sub.area, sub.street, i.number, a.id
           ) AS n,
           COUNT(*) OVER (PARTITION BY a.collector_id) AS route_stops,
           SUM(i.amount_minor - i.paid_minor) OVER (PARTITION BY a.collector_id) AS route_due
    FROM assignment a
    JOIN staff c ON c.id = a.collector_id
    JOIN invoice i ON i.id = a.invoice_id
    JOIN subscriber sub ON sub.id = i.subscriber_id
    WHERE a.tenant_id = ? AND a.status = 'assigned'
      AND (CAST(? AS INTEGER) IS NULL OR a.collector_id = ?)
      AND (CAST(? AS INTEGER) IS NULL OR c.reseller_id = ?)
) routes
WHERE routes.n <= ?
ORDER BY routes.collector_name, routes.collector_id, routes.n
"""


def _scope(actor: Staff) -> int | None:
    """None: the whole tenant (admins); else the reseller whose collectors the actor sees."""
    return None if actor.role == Role.ADMIN else actor.reseller_id


async def list_collectors(
    actor: Staff, *, now: datetime | None = None
) -> tuple[CollectorLine, ...]:
    """Active collectors in scope, by name, with month-to-date figures and open stops.

    Needs `collectors.view` (admins always). Two queries: the collector report and one
    GROUP BY over open stops.
    """
    report = await collector_report(actor, now=now)  # checks collectors.view and the scope
    scope = _scope(actor)
    extra = {
        r["id"]: r for r in await fetch(OPEN_PER_COLLECTOR_SQL, [actor.tenant_id, scope, scope])
    }
    lines = []
    for row in report.rows:
        more = extra.get(row.collector_id)
        if more is None:  # deleted: the report keeps them for their history, the list not
            continue
        lines.append(
            CollectorLine(
                collector_id=row.collector_id,
                name=row.name,
                phone=row.phone,
                commission_bp=int(more["commission_bp"]),
                joined=more["telegram_user_id"] is not None,
                visits=row.visits,
                collected=row.collected,
                failed=row.failed,
                cash_collected_minor=row.cash_collected_minor,
                commission_earned_minor=row.commission_earned_minor,
                balance_minor=row.balance_minor,
                open_stops=int(more["open_stops"]),
                open_due_minor=int(more["open_due"]),
            )
        )
    return tuple(lines)


async def open_assignments(
    actor: Staff, *, collector_id: int | None = None, shown_per_route: int | None = None
) -> OpenAssignments:
    """Open stops in scope grouped per collector (by name), each route with its totals.

    Args:
        collector_id: only this collector's route (NotFound outside the scope).
        shown_per_route: list at most this many stops of each route (the oldest first);
            None lists all. The totals always count every open stop.
    """
    _require_any(actor, COLLECTORS_VIEW, COLLECTORS_ASSIGN)
    if collector_id is not None:
        await find_collector(actor, collector_id)
    if shown_per_route is not None and shown_per_route < 0:
        raise ValueError("shown_per_route must not be negative")
    scope = _scope(actor)
    # At least the first row of each route, for its totals (see OPEN_STOPS_SQL).
    limit = max(shown_per_route, 1) if shown_per_route is not None else 2**31 - 1
    rows = await fetch(
        OPEN_STOPS_SQL,
        [actor.tenant_id, collector_id, collector_id, scope, scope, limit],
    )
    routes: list[OpenRoute] = []
    grouped: dict[int, list[dict]] = {}
    for r in rows:
        grouped.setdefault(int(r["collector_id"]), []).append(r)
    for cid, group in grouped.items():
        first = group[0]
        keep = group if shown_per_route is None else group[:shown_per_route]
        routes.append(
            OpenRoute(
                collector_id=cid,
                collector_name=first["collector_name"],
                stop_count=int(first["route_stops"]),
                due_minor=int(first["route_due"]),
                stops=tuple(
                    OpenStop(
                        assignment_id=int(r["assignment_id"]),
                        invoice_number=r["number"],
                        subscriber_name=r["subscriber_name"],
                        area=r["area"],
                        due_minor=int(r["due_minor"]),
                        scheduled_on=_as_date(r["scheduled_on"]),
                    )
                    for r in keep
                ),
            )
        )
    return OpenAssignments(tuple(routes))


async def route_load(actor: Staff, *, collector_id: int) -> tuple[int, int]:
    """(open stops, amount due on them) of one collector's route."""
    found = await open_assignments(actor, collector_id=collector_id, shown_per_route=0)
    if not found.routes:
        return 0, 0
    return found.routes[0].stop_count, found.routes[0].due_minor


async def commission_due(actor: Staff, *, collector_id: int) -> CommissionDue:
    """The collector's unpaid commission, for a payout's confirmation. Needs the pay right."""
    require_permission(actor, COLLECTORS_COMMISSION_PAY)
    collector = await find_collector(actor, collector_id)
    balance = await commission_balance(actor.tenant_id, collector.id)
    debt = await collector_debt(actor.tenant_id, collector.id)
    return CommissionDue(collector.id, collector.name, balance, debt)


async def resolve_collector(actor: Staff, ref: str, *, permission: str = COLLECTORS_VIEW) -> Staff:
    """The collector `ref` names in the actor's scope: an id (`12`, `#12`) or a name.

    A name matches case-insensitively, the whole name or its first word (`karim` finds
    "Karim Hossain"; `_` stands for a space). Names find active collectors only; an id
    also finds a removed one (their report and commission stay reachable).

    Raises:
        PermissionDenied: the actor lacks `permission`.
        NotFound: nobody in scope matches (code `collector_not_found`).
        InvalidInput: several collectors match (code `collector_ambiguous`, with their ids).
    """
    require_permission(actor, permission)
    text = " ".join(ref.replace("_", " ").split())
    query = Staff.filter(tenant_id=actor.tenant_id, role=Role.COLLECTOR)
    scope = _scope(actor)
    if actor.role != Role.ADMIN:
        query = query.filter(reseller_id=scope)
    digits = text.removeprefix("#")
    if digits.isdecimal():
        found = await query.filter(id=int(digits)).first()
        if found is None:
            raise _collector_not_found(ref)
        return found
    key = text.casefold()
    if not key:
        raise _collector_not_found(ref)
    active = await query.filter(deleted_at=None).order_by("name", "id")
    matches = [s for s in active if s.name.casefold() == key]
    if not matches:
        matches = [s for s in active if s.name.casefold().split()[:1] == [key]]
    if not matches:
        raise _collector_not_found(ref)
    if len(matches) > 1:
        choices = ", ".join(f"{s.name} (#{s.id})" for s in matches)
        raise InvalidInput(
            f"Several collectors are called {ref}: {choices}. Use the number.",
            code="collector_ambiguous",
            ref=ref,
            choices=choices,
        )
    return matches[0]


async def resolve_reseller(actor: Staff, ref: str) -> Reseller:
    """A reseller of the actor's tenant by id or case-insensitive name.

    Reseller staff can name only their own reseller; any other is not found.
    """
    require_active(actor)
    text = " ".join(ref.replace("_", " ").split())
    query = Reseller.filter(tenant_id=actor.tenant_id)
    if actor.role != Role.ADMIN:
        query = query.filter(id=actor.reseller_id)
    digits = text.removeprefix("#")
    found = (
        await query.filter(id=int(digits)).first()
        if digits.isdecimal()
        else await query.filter(name__iexact=text).first()
        if text
        else None
    )
    if found is None:
        raise NotFound(
            f"There is no reseller {ref} in your company.", code="reseller_not_found", ref=ref
        )
    return found


def _collector_not_found(ref: str) -> NotFound:
    return NotFound(
        f"There is no collector {ref} in your company.", code="collector_not_found", ref=ref
    )


def _require_any(actor: Staff, *permissions: str) -> None:
    """Pass if the actor holds any of `permissions`; else refuse for the first one."""
    for permission in permissions:
        try:
            require_permission(actor, permission)
            return
        except PermissionDenied:
            continue
    require_permission(actor, permissions[0])


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
