"""assign_invoices: one call putting 10,000 invoices on a route, against a raw bulk insert.

Ours: `assign_invoices(admin, collector_id=..., numbers=[10,000 invoice numbers])`. It loads
the invoices by number, loads their open stops, inserts the stops in batches of 1,000, reads
their ids back and writes one audit-log row per stop, the writes in one transaction.

Ceiling: the same rows written raw in one transaction: the 10,000 assignment rows and the
10,000 audit-log rows (each naming its stop, as ours do, so the stop ids are taken from the
sequence first). PostgreSQL: COPY through asyncpg; SQLite: `executemany` through sqlite3.
The ceiling knows the invoice ids beforehand and checks nothing, hence the lower goal.

Fairness: every call gets its own identically prepared tenant (10,000 unpaid invoices, a
collector); a first untimed round warms both sides up at full size, then several rounds
alternate who goes first; the median counts. The bench checks both wrote the same rows.
Goal: raw/ours >= 0.3 (ours as a fraction of the ceiling's speed).

    .venv/bin/python -m bench.assign [--backend sqlite|postgres|both] [--invoices 10000]
"""

from __future__ import annotations

import sqlite3
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import TypeAlias

import asyncpg

from bench.common import (
    BenchDatabase,
    Comparison,
    Ids,
    OpenInvoice,
    TenantSet,
    assignment_row,
    captured_statements,
    chosen_backends,
    clock,
    describe_machine,
    load_open_invoices,
    load_tenant,
    parse_args,
    postgres_value,
    print_table,
    raw_postgres,
    raw_sqlite,
    run,
    say,
    sqlite_value,
    statement_kinds,
    throwaway_database,
)
from core.db.models import Staff
from core.domain.dates import local_today, utcnow
from core.services.assignments import assign_invoices

GOAL = 0.3
ROUNDS = 3

RawConnection: TypeAlias = asyncpg.Connection | sqlite3.Connection


@dataclass(frozen=True)
class DataSet:
    """A tenant with one collector and unpaid invoices, for one call; `admin` assigns."""

    tenant: TenantSet
    admin: Staff
    invoices: list[OpenInvoice]


async def prepare(db: BenchDatabase, ids: Ids, invoices: int, today: date) -> DataSet:
    tenant = await load_tenant(db, ids, collectors=1)
    unpaid = await load_open_invoices(db, ids, tenant, invoices, today=today)
    return DataSet(tenant, await Staff.get(id=tenant.admin_id), unpaid)


# --- ours -----------------------------------------------------------------------------------


async def assign_ours(data: DataSet) -> int:
    result = await assign_invoices(
        data.admin,
        collector_id=data.tenant.collector_ids[0],
        numbers=[i.number for i in data.invoices],
    )
    return len(result.assigned)


# --- the ceiling: the same rows, raw --------------------------------------------------------


def stop_rows(data: DataSet, stop_ids: list[int], day: date, now: datetime) -> list[dict]:
    t = data.tenant
    stop = partial(assignment_row, tenant_id=t.tenant_id, collector_id=t.collector_ids[0])
    return [
        stop(sid, invoice_id=inv.invoice_id, status="assigned", day=day, admin_id=t.admin_id)
        | {"assigned_at": now}
        for sid, inv in zip(stop_ids, data.invoices, strict=True)
    ]


def audit_rows(data: DataSet, stop_ids: list[int], now: datetime) -> list[dict]:
    """The rows `assign_invoices` writes to the audit log, one per stop."""
    t = data.tenant
    return [
        {
            "tenant_id": t.tenant_id,
            "actor_kind": "staff",
            "actor_staff_id": t.admin_id,
            "action": "assignment.create",
            "object_type": "invoice",
            "object_id": inv.invoice_id,
            "at": now,
            "telegram_user_id": None,
            "telegram_chat_id": None,
            "telegram_update_id": None,
            "remote_addr": "",
            "user_agent": "",
            "details": {
                "number": inv.number,
                "collector_id": t.collector_ids[0],
                "assignment_id": sid,
            },
        }
        for sid, inv in zip(stop_ids, data.invoices, strict=True)
    ]


async def assign_raw(conn: RawConnection, data: DataSet) -> int:
    """Write the rows through an open raw connection (opening one is not part of the work)."""
    now = utcnow()
    day = local_today(now, "Asia/Dhaka")
    if isinstance(conn, sqlite3.Connection):
        return _assign_raw_sqlite(conn, data, day, now)
    return await _assign_raw_postgres(conn, data, day, now)


async def _assign_raw_postgres(
    conn: asyncpg.Connection, data: DataSet, day: date, now: datetime
) -> int:
    async with conn.transaction():
        stop_ids = [
            r[0]
            for r in await conn.fetch(
                "SELECT nextval(pg_get_serial_sequence('assignment', 'id'))"
                " FROM generate_series(1, $1)",
                len(data.invoices),
            )
        ]
        for table, rows in (
            ("assignment", stop_rows(data, stop_ids, day, now)),
            ("audit_log", audit_rows(data, stop_ids, now)),
        ):
            records = [tuple(postgres_value(v) for v in row.values()) for row in rows]
            await conn.copy_records_to_table(table, records=records, columns=list(rows[0]))
    return len(stop_ids)


def _assign_raw_sqlite(conn: sqlite3.Connection, data: DataSet, day: date, now: datetime) -> int:
    conn.execute("BEGIN IMMEDIATE")  # the write lock first, so the ids below are ours
    (last,) = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'assignment'"
    ).fetchone()
    stop_ids = list(range(last + 1, last + 1 + len(data.invoices)))
    for table, rows in (
        ("assignment", stop_rows(data, stop_ids, day, now)),
        ("audit_log", audit_rows(data, stop_ids, now)),
    ):
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(
            f"INSERT INTO {table} ({', '.join(rows[0])}) VALUES ({marks})",
            [tuple(sqlite_value(v) for v in row.values()) for row in rows],
        )
    conn.execute("COMMIT")
    return len(stop_ids)


@asynccontextmanager
async def raw_connection(db: BenchDatabase) -> AsyncIterator[RawConnection]:
    if db.backend == "postgres":
        async with raw_postgres(db) as conn:
            yield conn
    else:
        with raw_sqlite(db) as conn:
            yield conn


# --- the run --------------------------------------------------------------------------------


async def written_rows(db: BenchDatabase, tenant_id: int) -> tuple[int, int, int]:
    """Open stops, audit rows, and audit rows naming an existing stop of the tenant."""
    sql = (
        "SELECT (SELECT COUNT(*) FROM assignment WHERE tenant_id = {t} AND status = 'assigned'),"
        " (SELECT COUNT(*) FROM audit_log WHERE tenant_id = {t}"
        "  AND action = 'assignment.create'),"
        " (SELECT COUNT(*) FROM audit_log l JOIN assignment a"
        "  ON a.id = CAST({j} AS INTEGER) WHERE l.tenant_id = {t})"
    )
    if db.backend == "postgres":
        async with raw_postgres(db) as conn:
            query = sql.format(t=tenant_id, j="l.details->>'assignment_id'")
            row = await conn.fetchrow(query)
            return (row[0], row[1], row[2])
    with raw_sqlite(db) as conn:
        query = sql.format(t=tenant_id, j="json_extract(l.details, '$.assignment_id')")
        first, second, third = conn.execute(query).fetchone()
        return (first, second, third)


async def bench_backend(backend: str, invoices: int) -> Comparison:
    today = local_today(utcnow(), "Asia/Dhaka")
    async with throwaway_database(backend) as db, raw_connection(db) as conn:
        ids = Ids()
        sets = [await prepare(db, ids, invoices, today) for _ in range(2 * (ROUNDS + 1))]
        assign: dict[str, Callable[[DataSet], Awaitable[int]]] = {
            "ours": assign_ours,
            "raw": partial(assign_raw, conn),
        }
        with captured_statements() as sent:  # round 0: warm-up at full size, untimed
            await assign["ours"](sets[0])
        await assign["raw"](sets[1])
        times: dict[str, list[float]] = {"ours": [], "raw": []}
        for n in range(1, ROUNDS + 1):
            data = {"ours": sets[2 * n], "raw": sets[2 * n + 1]}
            for side in ("ours", "raw") if n % 2 else ("raw", "ours"):
                began = clock()
                await assign[side](data[side])
                times[side].append(clock() - began)
        written = {await written_rows(db, s.tenant.tenant_id) for s in sets}
        if written != {(invoices, invoices, invoices)}:
            raise SystemExit(f"ours and the ceiling did not write the same rows: {written}")
    say(f"{backend}: ours sends {len(sent)} statements ({statement_kinds(sent)}) + BEGIN/COMMIT")
    ours, raw = statistics.median(times["ours"]), statistics.median(times["raw"])
    return Comparison(
        backend,
        "seconds (median)",
        ours,
        raw,
        raw / ours,
        GOAL,
        f"{invoices:,} invoices, median of {ROUNDS}",
    )


async def main() -> None:
    args = parse_args(
        __doc__ or "",
        size_flag="--invoices",
        size_default=10_000,
        size_help="invoices to assign in the one call (default 10,000)",
    )
    backends = chosen_backends(args.backend)
    say(f"machine: {await describe_machine(backends)}")
    results = [await bench_backend(b, args.invoices) for b in backends]
    print_table("assign_invoices vs a raw bulk insert of the same rows", results, "raw/ours")


if __name__ == "__main__":
    run(main)
