"""A collector's route for a day: the open stops and the day's totals, in one query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from core.db.models import Staff, Tenant
from core.db.sql import fetch
from core.domain.dates import local_today, utcnow
from core.domain.status import Role
from core.errors import NotFound
from core.services.access import (
    COLLECTORS_VIEW,
    in_reseller_scope,
    require_active,
    require_permission,
)


@dataclass(frozen=True)
class Stop:
    """One door to knock on."""

    assignment_id: int
    invoice_id: int
    invoice_number: str
    purpose: str
    subscriber_name: str
    phone: str | None
    address: str
    area: str
    street: str
    latitude: float | None
    longitude: float | None
    due_minor: int
    scheduled_on: date


@dataclass(frozen=True)
class Route:
    collector_id: int
    day: date
    currency: str
    stops: tuple[Stop, ...]
    to_collect_minor: int
    collected_today_minor: int
    commission_today_minor: int
    collected_today_stops: int


# One statement: a one-row totals CTE LEFT JOINed to the open stops, so an empty route still
# returns its totals. Stops due today or earlier (missed days roll forward), area then street.
ROUTE_SQL = """
WITH totals AS (
    SELECT COALESCE(SUM(collected_minor), 0) AS collected_today,
           COALESCE(SUM(commission_minor), 0) AS commission_today,
           COUNT(*) AS collected_stops
    FROM assignment
    WHERE collector_id = ? AND status = 'collected' AND closed_on = ?
), stops AS (
    SELECT a.id AS assignment_id, i.id AS invoice_id, i.number, i.purpose,
           s.name, s.phone, s.address, s.area, s.street, s.latitude, s.longitude,
           i.amount_minor - i.paid_minor AS due_minor, a.scheduled_on
    FROM assignment a
    JOIN invoice i ON i.id = a.invoice_id
    JOIN subscriber s ON s.id = i.subscriber_id
    WHERE a.collector_id = ? AND a.status = 'assigned' AND a.scheduled_on <= ?
)
SELECT totals.*, stops.*
FROM totals LEFT JOIN stops ON 1 = 1
ORDER BY stops.area, stops.street, stops.name, stops.assignment_id
"""


async def get_route(
    actor: Staff, *, collector_id: int | None = None, now: datetime | None = None
) -> Route:
    """Today's route of `actor` (a collector), or of `collector_id` for an admin/reseller."""
    require_active(actor)
    if collector_id is None or collector_id == actor.id:
        collector = actor
    else:
        require_permission(actor, COLLECTORS_VIEW)
        found = await Staff.get_or_none(id=collector_id, tenant_id=actor.tenant_id)
        if found is None or not in_reseller_scope(actor, found.reseller_id):
            raise NotFound("There is no such collector in your company.")
        collector = found
    if collector.role != Role.COLLECTOR:
        raise NotFound("Only collectors have routes.")
    tenant = await Tenant.get(id=actor.tenant_id)
    day = local_today(now or utcnow(), tenant.timezone)
    rows = await fetch(ROUTE_SQL, [collector.id, day, collector.id, day])
    stops = tuple(
        Stop(
            assignment_id=r["assignment_id"],
            invoice_id=r["invoice_id"],
            invoice_number=r["number"],
            purpose=r["purpose"],
            subscriber_name=r["name"],
            phone=r["phone"],
            address=r["address"],
            area=r["area"],
            street=r["street"],
            latitude=r["latitude"],
            longitude=r["longitude"],
            due_minor=int(r["due_minor"]),
            scheduled_on=_as_date(r["scheduled_on"]),
        )
        for r in rows
        if r["assignment_id"] is not None
    )
    first = rows[0]
    return Route(
        collector_id=collector.id,
        day=day,
        currency=tenant.currency,
        stops=stops,
        to_collect_minor=sum(s.due_minor for s in stops),
        collected_today_minor=int(first["collected_today"]),
        commission_today_minor=int(first["commission_today"]),
        collected_today_stops=int(first["collected_stops"]),
    )


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
