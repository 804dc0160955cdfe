"""Putting invoices on collectors' routes, and taking them off.

Invariants:
- An invoice is on at most one open route. The UNIQUE `assignment.open_invoice_id` is the
  referee: the checks here give a readable reason in the common case, the index decides a
  race (the loser is reported as refused, never as a second open stop).
- Only unpaid or partly paid invoices of the actor's tenant and reseller scope, and of the
  collector's reseller when the collector belongs to one, go on a route.
- Unassigning closes the stop as `removed`; the invoice itself is untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from core.db.models import Assignment, AuditLog, Invoice, Staff, Tenant
from core.domain.dates import local_today, utcnow
from core.domain.status import AssignmentStatus, InvoiceStatus, Role
from core.errors import Conflict, InactiveStaff, InvalidInput, NotFound
from core.services.access import (
    COLLECTORS_ASSIGN,
    SYSTEM,
    Origin,
    find_collector,
    in_reseller_scope,
    require_permission,
)
from core.services.audit import write_audit

MAX_INVOICES_PER_CALL = 20_000

_REFUSALS = {
    InvoiceStatus.PAID: "already paid",
    InvoiceStatus.CANCELLED: "cancelled",
    InvoiceStatus.DRAFT: "a draft, not approved yet",
}


@dataclass(frozen=True)
class AssignOutcome:
    """What happened to one invoice number: `assignment_id` if assigned, else `refused`."""

    number: str
    assignment_id: int | None = None
    refused: str | None = None


@dataclass(frozen=True)
class AssignResult:
    collector_id: int
    collector_name: str
    scheduled_on: date
    outcomes: tuple[AssignOutcome, ...]

    @property
    def assigned(self) -> list[AssignOutcome]:
        return [o for o in self.outcomes if o.assignment_id is not None]

    @property
    def refused(self) -> list[AssignOutcome]:
        return [o for o in self.outcomes if o.assignment_id is None]


async def load_collector(actor: Staff, collector_id: int) -> Staff:
    """A collector who can take stops: in the actor's scope, not deleted, Telegram bound."""
    collector = await find_collector(actor, collector_id)
    if collector.deleted_at is not None:
        raise InactiveStaff(
            f"{collector.name} was removed and cannot take stops.",
            code="collector_removed",
            name=collector.name,
        )
    if collector.telegram_user_id is None:
        raise InactiveStaff(
            f"{collector.name} has not opened their invitation link yet.",
            code="collector_unbound",
            name=collector.name,
        )
    return collector


async def assign_invoices(
    actor: Staff,
    *,
    collector_id: int,
    numbers: Sequence[str],
    scheduled_on: date | None = None,
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> AssignResult:
    """Put invoices (by number) on a collector's route; each is assigned or refused with why.

    Three queries however many invoices: load them, load their open stops, insert.
    """
    require_permission(actor, COLLECTORS_ASSIGN)
    collector = await load_collector(actor, collector_id)
    tenant = await Tenant.get(id=actor.tenant_id)
    now = now or utcnow()
    day = scheduled_on or local_today(now, tenant.timezone)
    wanted = list(dict.fromkeys(n.strip().upper() for n in numbers if n.strip()))
    if not wanted:
        raise InvalidInput(
            "Give at least one invoice number, like INV-2026-0042.", code="numbers_required"
        )
    if len(wanted) > MAX_INVOICES_PER_CALL:
        raise InvalidInput(
            f"Assign at most {MAX_INVOICES_PER_CALL:,} invoices at a time.",
            code="too_many_invoices",
            limit=MAX_INVOICES_PER_CALL,
        )

    rows = await Invoice.filter(tenant_id=actor.tenant_id, number__in=wanted).values(
        "id", "number", "status", "subscriber__reseller_id"
    )
    by_number = {str(r["number"]).upper(): r for r in rows}
    open_stops = {
        r["invoice_id"]: r["collector__name"]
        for r in await Assignment.filter(open_invoice_id__in=[r["id"] for r in rows]).values(
            "invoice_id", "collector__name"
        )
    }

    refusals: dict[str, str] = {}
    to_insert: list[tuple[str, int]] = []
    for number in wanted:
        row = by_number.get(number)
        reason = _refusal(actor, collector, row, open_stops)
        if reason:
            refusals[number] = reason
        else:
            assert row is not None
            to_insert.append((number, row["id"]))

    assigned = await _insert_stops(actor, collector, to_insert, day, now, origin)
    outcomes = tuple(
        AssignOutcome(
            n,
            assignment_id=assigned.get(n),
            refused=refusals.get(n) or (None if n in assigned else "already on another route"),
        )
        for n in wanted
    )
    return AssignResult(collector.id, collector.name, day, outcomes)


def _refusal(
    actor: Staff, collector: Staff, row: dict | None, open_stops: dict[int, str]
) -> str | None:
    if row is None:
        return "not found"
    reseller_id = row["subscriber__reseller_id"]
    if not in_reseller_scope(actor, reseller_id):
        return "not found"
    status = InvoiceStatus(row["status"])
    if status in _REFUSALS:
        return _REFUSALS[status]
    if collector.reseller_id is not None and reseller_id != collector.reseller_id:
        return f"outside {collector.name}'s reseller"
    if row["id"] in open_stops:
        holder = open_stops[row["id"]]
        return (
            f"already on {holder}'s route" if holder != collector.name else "already on the route"
        )
    return None


async def _insert_stops(
    actor: Staff,
    collector: Staff,
    items: list[tuple[str, int]],
    day: date,
    now: datetime,
    origin: Origin,
) -> dict[str, int]:
    """Insert open stops in bulk; a stop the unique index refuses was won by someone else.

    `ON CONFLICT DO NOTHING` (SQLite: `INSERT OR IGNORE`) lets a concurrent assignment of
    one invoice cost that invoice only, not the whole batch. The stops that are now open
    for this collector are read back (bulk inserts do not return ids on every backend).
    """
    if not items:
        return {}
    async with in_transaction() as conn:
        await Assignment.bulk_create(
            [_stop(actor, collector, invoice_id, day, now) for _, invoice_id in items],
            using_db=conn,
            batch_size=1000,
            ignore_conflicts=True,
        )
        ids = await _opened_ids(collector.id, [i for _, i in items], conn)
        won = [(n, i) for n, i in items if i in ids]
        await _audit_assigned(actor, collector, won, ids, origin, conn)
    return {n: ids[i] for n, i in won}


def _stop(actor: Staff, collector: Staff, invoice_id: int, day: date, now: datetime) -> Assignment:
    return Assignment(
        tenant_id=actor.tenant_id,
        invoice_id=invoice_id,
        collector_id=collector.id,
        status=AssignmentStatus.ASSIGNED,
        open_invoice_id=invoice_id,
        scheduled_on=day,
        assigned_by_id=actor.id,
        assigned_at=now,
    )


async def _opened_ids(collector_id: int, invoice_ids: list[int], conn: BaseDBAsyncClient) -> dict:
    # bulk_create does not return ids on every backend; the open stops we just wrote are the
    # ones for these invoices with this collector (the unique index allows no others).
    rows = await (
        Assignment.filter(open_invoice_id__in=invoice_ids, collector_id=collector_id)
        .using_db(conn)
        .values("id", "invoice_id")
    )
    return {r["invoice_id"]: r["id"] for r in rows}


async def _audit_assigned(actor, collector, items, ids, origin, conn) -> None:
    await AuditLog.bulk_create(
        [
            AuditLog(
                tenant_id=actor.tenant_id,
                actor_kind="staff",
                actor_staff_id=actor.id,
                action="assignment.create",
                object_type="invoice",
                object_id=invoice_id,
                telegram_user_id=origin.telegram_user_id,
                telegram_chat_id=origin.telegram_chat_id,
                telegram_update_id=origin.telegram_update_id,
                remote_addr=origin.remote_addr,
                user_agent=origin.user_agent[:255],
                details={
                    "number": number,
                    "collector_id": collector.id,
                    "assignment_id": ids.get(invoice_id),
                },
            )
            for number, invoice_id in items
        ],
        using_db=conn,
        batch_size=1000,
    )


async def close_stop(
    conn: BaseDBAsyncClient,
    stop_id: int,
    status: AssignmentStatus,
    *,
    now: datetime,
    today: date,
    **outcome: object,
) -> None:
    """Close an open stop (collected, failed or removed) with its outcome columns.

    The UPDATE only matches while the stop is still `assigned`: of two requests racing to
    close it, exactly one changes a row; the other gets `Conflict` and its transaction
    rolls back.
    """
    closed = (
        await Assignment.filter(id=stop_id, status=AssignmentStatus.ASSIGNED)
        .using_db(conn)
        .update(status=status, open_invoice_id=None, closed_at=now, closed_on=today, **outcome)
    )
    if closed != 1:
        raise Conflict("This stop was already closed.", code="stop_closed")


@dataclass(frozen=True)
class AssignPreview:
    """What `assign by filter` would do; confirm by passing `numbers` to `assign_invoices`."""

    collector_id: int
    collector_name: str
    numbers: tuple[str, ...]
    total_due_minor: int
    on_other_routes: int
    outside_collector_reseller: int


async def preview_assignment(
    actor: Staff,
    *,
    collector_id: int,
    area: str | None = None,
    reseller_id: int | None = None,
    status: str | None = None,
    limit: int | None = None,
    now: datetime | None = None,
) -> AssignPreview:
    """Which invoices a filter (area, reseller, status unpaid/partial/overdue) would assign."""
    require_permission(actor, COLLECTORS_ASSIGN)
    collector = await load_collector(actor, collector_id)
    tenant = await Tenant.get(id=actor.tenant_id)
    query = Invoice.filter(
        tenant_id=actor.tenant_id, status__in=[InvoiceStatus.UNPAID, InvoiceStatus.PARTIAL]
    )
    if status in ("unpaid", "partial"):
        query = query.filter(status=status)
    elif status == "overdue":
        query = query.filter(due_date__lt=local_today(now or utcnow(), tenant.timezone))
    elif status:
        raise InvalidInput("Status is one of unpaid, partial or overdue.", code="bad_status")
    if area:
        query = query.filter(subscriber__area__iexact=area.strip())
    if actor.role != Role.ADMIN:
        query = query.filter(subscriber__reseller_id=actor.reseller_id)
    if reseller_id is not None:
        query = query.filter(subscriber__reseller_id=reseller_id)
    if limit is not None and limit <= 0:
        raise InvalidInput("The limit must be a positive number.", code="bad_limit")
    rows = await query.order_by("subscriber__area", "subscriber__street", "number").values(
        "id", "number", "amount_minor", "paid_minor", "subscriber__reseller_id"
    )
    taken = set(
        await Assignment.filter(open_invoice_id__in=[r["id"] for r in rows]).values_list(
            "open_invoice_id", flat=True
        )
    )
    numbers: list[str] = []
    due = on_other = outside = 0
    for r in rows:
        if r["id"] in taken:
            on_other += 1
        elif (
            collector.reseller_id is not None
            and r["subscriber__reseller_id"] != collector.reseller_id
        ):
            outside += 1
        elif limit is None or len(numbers) < limit:
            numbers.append(r["number"])
            due += r["amount_minor"] - r["paid_minor"]
    return AssignPreview(collector.id, collector.name, tuple(numbers), due, on_other, outside)


@dataclass(frozen=True)
class UnassignResult:
    assignment_id: int
    invoice_number: str
    collector_name: str


async def unassign(
    actor: Staff, *, invoice_number: str, origin: Origin = SYSTEM, now: datetime | None = None
) -> UnassignResult:
    """Take an invoice off whichever route it is open on; the invoice is untouched."""
    require_permission(actor, COLLECTORS_ASSIGN)
    invoice_id = await Invoice.filter(
        tenant_id=actor.tenant_id, number=invoice_number.strip().upper()
    ).values_list("id", flat=True)
    # The open stop, through the UNIQUE open_invoice_id (never a walk over all visits).
    stop = (
        await Assignment.filter(open_invoice_id__in=list(invoice_id), tenant_id=actor.tenant_id)
        .prefetch_related("collector", "invoice")
        .first()
    )
    if stop is None or not in_reseller_scope(actor, stop.collector.reseller_id):
        raise NotFound(
            f"{invoice_number} is not on any route.", code="not_on_route", number=invoice_number
        )
    now = now or utcnow()
    tenant = await Tenant.get(id=actor.tenant_id)
    async with in_transaction() as conn:
        await close_stop(
            conn,
            stop.id,
            AssignmentStatus.REMOVED,
            now=now,
            today=local_today(now, tenant.timezone),
        )
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action="assignment.remove",
            object_type="invoice",
            object_id=stop.invoice.id,
            origin=origin,
            details={"assignment_id": stop.id, "collector_id": stop.collector.id},
            using_db=conn,
        )
    return UnassignResult(stop.id, stop.invoice.number, stop.collector.name)


__all__ = [
    "AssignOutcome",
    "AssignPreview",
    "AssignResult",
    "UnassignResult",
    "assign_invoices",
    "load_collector",
    "preview_assignment",
    "unassign",
]
