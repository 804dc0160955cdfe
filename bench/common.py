"""What every benchmark shares: throw-away databases, raw connections, loading, timing, output.

Each benchmark runs our service (through Tortoise) and its ceiling (the same work issued raw
through asyncpg or the stdlib `sqlite3` module) in one process, on one machine, against a
schema built the way tests/conftest.py builds it: `generate_schemas` plus
`core/db/constraints.py`, so both sides meet the same indexes, UNIQUEs, CHECKs and triggers.

Databases are created per run (PostgreSQL: `collectbot_bench_<hex>`; SQLite: a file in a temp
directory) and dropped at the end, even when the benchmark fails or is interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import platform
import shutil
import signal
import sqlite3
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any

import aiosqlite
import asyncpg
from tortoise import Tortoise, connections
from tortoise.backends.base.executor import EXECUTOR_CACHE

from core.db import constraints
from core.db.orm import tortoise_config

# The server the throw-away databases are created on; tests use the same variable (README).
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgres")

# Tortoise's SQLite client sets these on its connection (tortoise/backends/sqlite/client.py);
# the raw connection gets the same, so both sides pay for WAL and foreign-key checks alike.
SQLITE_PRAGMAS = {"journal_mode": "WAL", "journal_size_limit": 16384, "foreign_keys": "ON"}


# --- command line -------------------------------------------------------------------------


def parse_args(
    description: str, *, size_flag: str, size_default: int, size_help: str
) -> argparse.Namespace:
    """`--backend sqlite|postgres|both` and one size option, named by the benchmark."""
    parser = argparse.ArgumentParser(description=description.strip().splitlines()[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument(size_flag, type=int, default=size_default, help=size_help)
    return parser.parse_args()


def chosen_backends(choice: str) -> list[str]:
    return list(BACKENDS) if choice == "both" else [choice]


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run a benchmark's async main; Ctrl-C or SIGTERM still drop its databases.

    Both cancel the main task at its next await (`asyncio.run` does so for Ctrl-C), so the
    `finally` blocks in `throwaway_database` run with the connections in a sane state. A
    SQLite bulk load does not await: it finishes the table it is loading first.
    """
    try:
        asyncio.run(_cancelled_on_sigterm(main))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; the benchmark databases were dropped", flush=True)
        raise SystemExit(130) from None


async def _cancelled_on_sigterm(main: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    await main()


# --- throw-away databases -------------------------------------------------------------------


@dataclass(frozen=True)
class BenchDatabase:
    """One throw-away database: its Tortoise URL and how to reach it raw."""

    backend: str
    url: str

    @property
    def sqlite_path(self) -> str:
        return self.url.split("://", 1)[1]

    @property
    def asyncpg_dsn(self) -> str:
        return self.url.replace("postgres://", "postgresql://", 1)


def _admin_dsn() -> str:
    return PG_ADMIN_URL.replace("postgres://", "postgresql://", 1)


async def _admin_execute(sql: str) -> None:
    admin = await asyncpg.connect(_admin_dsn())
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@asynccontextmanager
async def throwaway_database(backend: str) -> AsyncIterator[BenchDatabase]:
    """A new empty database with the full schema, open in Tortoise; dropped afterwards."""
    tmpdir = None
    name = f"collectbot_bench_{uuid.uuid4().hex[:12]}"
    if backend == "postgres":
        await _admin_execute(f'CREATE DATABASE "{name}"')
        db = BenchDatabase(backend, f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}")
    else:
        tmpdir = tempfile.mkdtemp(prefix="collectbot_bench_")
        db = BenchDatabase(backend, f"sqlite://{tmpdir}/{name}.sqlite3")
    # Tortoise caches each model's INSERT/DELETE SQL per connection *name* (not dialect):
    # after a SQLite run, "default" on PostgreSQL would reuse `?` placeholders. Forget them.
    EXECUTOR_CACHE.clear()
    try:
        await Tortoise.init(config=tortoise_config(db.url))
        await Tortoise.generate_schemas(safe=False)
        conn = connections.get("default")
        for sql in constraints.statements(backend):
            await conn.execute_script(sql)
        yield db
    finally:
        await connections.close_all()
        if backend == "postgres":
            await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        elif tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)


# --- raw connections ------------------------------------------------------------------------


@asynccontextmanager
async def raw_postgres(db: BenchDatabase) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(db.asyncpg_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@contextmanager
def raw_sqlite(db: BenchDatabase) -> Iterator[sqlite3.Connection]:
    """A stdlib connection in autocommit mode (explicit BEGIN/COMMIT), Tortoise's pragmas."""
    conn = sqlite3.connect(db.sqlite_path, isolation_level=None)
    try:
        for pragma, value in SQLITE_PRAGMAS.items():
            conn.execute(f"PRAGMA {pragma}={value}")
        yield conn
    finally:
        conn.close()


def sqlite_value(value: Any) -> Any:
    """A Python value as Tortoise stores it in SQLite (dates and datetimes as ISO text)."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def postgres_value(value: Any) -> Any:
    """A Python value as asyncpg's COPY expects it (JSON columns as text)."""
    return json.dumps(value) if isinstance(value, dict | list) else value


# --- bulk loading ---------------------------------------------------------------------------


async def bulk_load(db: BenchDatabase, table: str, rows: Iterable[dict[str, Any]]) -> int:
    """Load rows (dicts with the same keys, ids included) fast; returns how many.

    PostgreSQL: COPY (`copy_records_to_table`), then the id sequence is moved past the rows
    so later inserts through Tortoise do not collide. SQLite: `executemany` in one
    transaction. Foreign keys are not checked row by row while loading (the generators
    write consistent ids); UNIQUE and CHECK constraints and every index still apply. Tables
    are analysed (and on PostgreSQL vacuumed) afterwards, as in a live database.
    """
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return 0
    defaults = {k: v for k, v in column_defaults(table).items() if k not in first}
    columns = [*first, *defaults]
    records = _records((row | defaults for row in itertools.chain([first], rows)), db.backend)
    if db.backend == "postgres":
        async with raw_postgres(db) as conn:
            await conn.execute("SET session_replication_role = replica")  # skip FK triggers
            result = await conn.copy_records_to_table(table, records=records, columns=columns)
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT MAX(id) FROM {table}))"
            )
            await conn.execute(f"VACUUM ANALYZE {table}")  # as autovacuum would, in time
        return int(result.split()[-1])
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    with raw_sqlite(db) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("BEGIN")
        cursor = conn.executemany(sql, records)
        conn.execute("COMMIT")
        conn.execute(f"ANALYZE {table}")
        return cursor.rowcount


def column_defaults(table: str) -> dict[str, Any]:
    """Each column of `table` with the value Tortoise would write when none is given.

    The row builders name the columns a benchmark cares about; a column added to a model
    later gets its default here, so the loaders keep working as the schema grows.
    """
    model = next(m for m in Tortoise.apps["models"].values() if m._meta.db_table == table)
    defaults: dict[str, Any] = {}
    for name, column in model._meta.fields_db_projection.items():
        field = model._meta.fields_map[name]
        if field.pk:
            continue
        value = field.default() if callable(field.default) else field.default
        if value is None and getattr(field, "auto_now_add", False):
            value = LOADED_AT
        defaults[column] = value.value if isinstance(value, Enum) else value
    return defaults


_NATIVE = frozenset({int, str, float, bool, type(None)})  # passed to both drivers as they are


def _records(rows: Iterable[dict[str, Any]], backend: str) -> Iterator[tuple[Any, ...]]:
    convert = sqlite_value if backend == "sqlite" else postgres_value
    for row in rows:
        yield tuple(v if type(v) in _NATIVE else convert(v) for v in row.values())


# --- one raw session interface over asyncpg and sqlite3 -----------------------------------


class RawSession(ABC):
    """The few calls a ceiling needs, over one raw connection; SQL uses `?` placeholders.

    The adapters add a method call per statement and nothing else, so a ceiling written
    once runs on both backends without flattering either.
    """

    backend: str
    statements = 0  # statements sent, BEGIN/COMMIT not counted (as in Tortoise's log)

    @abstractmethod
    async def begin(self) -> None: ...

    @abstractmethod
    async def commit(self) -> None: ...

    @abstractmethod
    async def fetchrow(self, sql: str, *args: Any) -> Any: ...

    @abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[Any]: ...

    @abstractmethod
    async def execute(self, sql: str, *args: Any) -> int:
        """Rows changed."""

    @abstractmethod
    async def insert(self, sql: str, *args: Any) -> int:
        """The new row's id."""

    @abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


def to_postgres(sql: str) -> str:
    """`?` placeholders to `$1, $2, ...`."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


class AsyncpgSession(RawSession):
    backend = "postgres"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._sql: dict[str, str] = {}
        self._tx: Any = None

    def _pg(self, sql: str) -> str:
        if sql not in self._sql:
            self._sql[sql] = to_postgres(sql)
        return self._sql[sql]

    async def begin(self) -> None:
        self._tx = self.conn.transaction()
        await self._tx.start()

    async def commit(self) -> None:
        await self._tx.commit()

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self.statements += 1
        return await self.conn.fetchrow(self._pg(sql), *args)

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.statements += 1
        return list(await self.conn.fetch(self._pg(sql), *args))

    async def execute(self, sql: str, *args: Any) -> int:
        self.statements += 1
        status = await self.conn.execute(self._pg(sql), *args)  # e.g. "UPDATE 1"
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def insert(self, sql: str, *args: Any) -> int:
        self.statements += 1
        return int(await self.conn.fetchval(self._pg(sql + " RETURNING id"), *args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.statements += 1
        await self.conn.executemany(self._pg(sql), rows)


class Sqlite3Session(RawSession):
    """The stdlib driver, called directly: no thread hop, the floor for SQLite."""

    backend = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        conn.row_factory = sqlite3.Row
        self.conn = conn

    async def begin(self) -> None:
        self.conn.execute("BEGIN")

    async def commit(self) -> None:
        self.conn.execute("COMMIT")

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self.statements += 1
        return self.conn.execute(sql, [sqlite_value(a) for a in args]).fetchone()

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.statements += 1
        return self.conn.execute(sql, [sqlite_value(a) for a in args]).fetchall()

    async def execute(self, sql: str, *args: Any) -> int:
        self.statements += 1
        return self.conn.execute(sql, [sqlite_value(a) for a in args]).rowcount

    async def insert(self, sql: str, *args: Any) -> int:
        self.statements += 1
        return int(self.conn.execute(sql, [sqlite_value(a) for a in args]).lastrowid or 0)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.statements += 1
        self.conn.executemany(sql, [[sqlite_value(v) for v in row] for row in rows])


class AiosqliteSession(RawSession):
    """Raw SQL through aiosqlite, the driver under Tortoise's SQLite client: every call is a
    hop to its worker thread and back. Not a ceiling; it tells the driver's share of a gap."""

    backend = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        conn.row_factory = sqlite3.Row
        self.conn = conn

    async def _run(self, sql: str, args: Sequence[Any]) -> aiosqlite.Cursor:
        self.statements += 1
        return await self.conn.execute(sql, [sqlite_value(a) for a in args])

    async def begin(self) -> None:
        await self.conn.execute("BEGIN")

    async def commit(self) -> None:
        await self.conn.execute("COMMIT")

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await (await self._run(sql, args)).fetchone()

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return list(await (await self._run(sql, args)).fetchall())

    async def execute(self, sql: str, *args: Any) -> int:
        return (await self._run(sql, args)).rowcount

    async def insert(self, sql: str, *args: Any) -> int:
        return int((await self._run(sql, args)).lastrowid or 0)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.statements += 1
        await self.conn.executemany(sql, [[sqlite_value(v) for v in row] for row in rows])


@asynccontextmanager
async def aiosqlite_session(db: BenchDatabase) -> AsyncIterator[AiosqliteSession]:
    conn = await aiosqlite.connect(db.sqlite_path, isolation_level=None)
    try:
        for pragma, value in SQLITE_PRAGMAS.items():
            await conn.execute(f"PRAGMA {pragma}={value}")
        yield AiosqliteSession(conn)
    finally:
        await conn.close()


@asynccontextmanager
async def raw_session(db: BenchDatabase) -> AsyncIterator[RawSession]:
    if db.backend == "postgres":
        async with raw_postgres(db) as conn:
            yield AsyncpgSession(conn)
    else:
        with raw_sqlite(db) as conn:
            yield Sqlite3Session(conn)


def as_date(value: date | str) -> date:
    """A DATE column as read raw (SQLite returns ISO text)."""
    return value if isinstance(value, date) else date.fromisoformat(value)


# --- rows for the data sets ------------------------------------------------------------------

LOADED_AT = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)  # created_at of every bulk-loaded row


class Ids:
    """Explicit primary keys per table, so related rows can be bulk-loaded in one pass."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def take(self, table: str, count: int) -> range:
        start = self._next.get(table, 1)
        self._next[table] = start + count
        return range(start, start + count)

    def one(self, table: str) -> int:
        return self.take(table, 1)[0]


@dataclass(frozen=True)
class TenantSet:
    """One ISP of a data set: its admin, its collectors and the plan its subscribers are on."""

    tenant_id: int
    admin_id: int
    collector_ids: tuple[int, ...]
    plan_id: int


@dataclass(frozen=True)
class OpenInvoice:
    invoice_id: int
    number: str
    subscriber_id: int


async def load_tenant(
    db: BenchDatabase, ids: Ids, *, collectors: int, rates_bp: Sequence[int] = (500,)
) -> TenantSet:
    """A tenant with one admin, `collectors` collectors (Telegram bound) and a monthly plan.

    Collector n earns `rates_bp[n % len(rates_bp)]` basis points of what they collect.
    """
    tenant_id, plan_id = ids.one("tenant"), ids.one("plan")
    staff_ids = ids.take("staff", collectors + 1)
    await bulk_load(db, "tenant", [_tenant_row(tenant_id)])
    await bulk_load(
        db,
        "staff",
        [_staff_row(staff_ids[0], tenant_id, "admin", 0)]
        + [
            _staff_row(i, tenant_id, "collector", rates_bp[n % len(rates_bp)])
            for n, i in enumerate(staff_ids[1:])
        ],
    )
    await bulk_load(db, "plan", [_plan_row(plan_id, tenant_id)])
    return TenantSet(tenant_id, staff_ids[0], tuple(staff_ids[1:]), plan_id)


async def load_open_invoices(
    db: BenchDatabase, ids: Ids, tenant: TenantSet, count: int, *, today: date
) -> list[OpenInvoice]:
    """`count` unpaid renewal invoices, one per subscriber (with a phone, on the plan).

    A quarter of the subscribers are suspended (their expiry passed), so renewals reactivate
    them, as they would at the door.
    """
    sub_ids, inv_ids = ids.take("subscriber", count), ids.take("invoice", count)
    expiry = today - timedelta(days=3)
    await bulk_load(
        db,
        "subscriber",
        (_subscriber_row(s, tenant, expiry, suspended=s % 4 == 0) for s in sub_ids),
    )
    await bulk_load(
        db,
        "invoice",
        (
            invoice_row(i, tenant.tenant_id, s, amount_minor=150_000, issue_date=today)
            for i, s in zip(inv_ids, sub_ids, strict=True)
        ),
    )
    return [OpenInvoice(i, invoice_number(i), s) for i, s in zip(inv_ids, sub_ids, strict=True)]


async def load_open_stops(
    db: BenchDatabase, ids: Ids, tenant: TenantSet, invoices: Sequence[OpenInvoice], day: date
) -> list[tuple[int, int]]:
    """One open stop per invoice, spread over the collectors; (assignment id, collector id)."""
    stop_ids = ids.take("assignment", len(invoices))
    collectors = tenant.collector_ids
    stops = [(a, collectors[n % len(collectors)]) for n, a in enumerate(stop_ids)]
    await bulk_load(
        db,
        "assignment",
        (
            assignment_row(
                a,
                tenant.tenant_id,
                inv.invoice_id,
                c,
                status="assigned",
                day=day,
                admin_id=tenant.admin_id,
            )
            for (a, c), inv in zip(stops, invoices, strict=True)
        ),
    )
    return stops


def assignment_row(
    assignment_id: int,
    tenant_id: int,
    invoice_id: int,
    collector_id: int,
    *,
    status: str,
    day: date,
    admin_id: int,
    closed_at: datetime | None = None,
    collected_minor: int = 0,
    commission_minor: int = 0,
) -> dict[str, Any]:
    """A stop scheduled on `day`; closed ones carry `closed_at` (their `closed_on` is `day`)."""
    return {
        "id": assignment_id,
        "tenant_id": tenant_id,
        "invoice_id": invoice_id,
        "collector_id": collector_id,
        "status": status,
        "open_invoice_id": invoice_id if status == "assigned" else None,
        "scheduled_on": day,
        "assigned_by_id": admin_id,
        "assigned_at": LOADED_AT,
        "notes": "",
        "closed_at": closed_at,
        "closed_on": day if closed_at else None,
        "collected_minor": collected_minor,
        "commission_minor": commission_minor,
        "payment_id": None,
        "failure_reason": "not_home" if status == "failed" else None,
        "failure_note": "",
    }


def invoice_number(invoice_id: int) -> str:
    return f"INV-B{invoice_id:08d}"


def _tenant_row(tenant_id: int) -> dict[str, Any]:
    return {
        "id": tenant_id,
        "name": f"Bench ISP {tenant_id}",
        "currency": "BDT",
        "country": "BD",
        "timezone": "Asia/Dhaka",
        "locale": "en",
        "reschedule_days": 2,
        "failed_visits_before_flag": 3,
        "created_at": LOADED_AT,
    }


def _staff_row(staff_id: int, tenant_id: int, role: str, commission_bp: int) -> dict[str, Any]:
    return {
        "id": staff_id,
        "tenant_id": tenant_id,
        "role": role,
        "name": f"{role.title()} {staff_id:05d}",
        "phone": f"+8801711{staff_id:06d}",
        "telegram_user_id": 7_000_000 + staff_id,
        "permissions": [],
        "commission_bp": commission_bp,
        "reseller_id": None,
        "created_at": LOADED_AT,
        "deleted_at": None,
    }


def _plan_row(plan_id: int, tenant_id: int) -> dict[str, Any]:
    return {
        "id": plan_id,
        "tenant_id": tenant_id,
        "name": f"10 Mbps {plan_id}",
        "price_minor": 150_000,
        "period_months": 1,
        "reminder_days": 3,
    }


def _subscriber_row(
    subscriber_id: int, tenant: TenantSet, expiry: date, *, suspended: bool
) -> dict[str, Any]:
    return subscriber_row(
        subscriber_id,
        tenant.tenant_id,
        plan_id=tenant.plan_id,
        expiry_date=expiry,
        status="suspended" if suspended else "active",
    )


def subscriber_row(
    subscriber_id: int,
    tenant_id: int,
    *,
    plan_id: int | None,
    expiry_date: date | None,
    status: str = "active",
) -> dict[str, Any]:
    return {
        "id": subscriber_id,
        "tenant_id": tenant_id,
        "reseller_id": None,
        "username": f"sub{subscriber_id}",
        "name": f"Subscriber {subscriber_id}",
        "phone": f"+8801811{subscriber_id:07d}",
        "address": f"House {subscriber_id % 200}, Road {subscriber_id % 40}",
        "area": f"Area {subscriber_id % 25}",
        "street": f"Road {subscriber_id % 40}",
        "latitude": None,
        "longitude": None,
        "status": status,
        "expiry_date": expiry_date,
        "billing_mode": "prepaid",
        "customer_class_id": None,
        "plan_id": plan_id,
        "usage_bytes": 1_000_000,
        "created_at": LOADED_AT,
    }


def invoice_row(
    invoice_id: int,
    tenant_id: int,
    subscriber_id: int,
    *,
    amount_minor: int,
    issue_date: date,
    paid_minor: int = 0,
    status: str = "unpaid",
) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "tenant_id": tenant_id,
        "subscriber_id": subscriber_id,
        "number": invoice_number(invoice_id),
        "kind": "invoice",
        "purpose": "renewal",
        "amount_minor": amount_minor,
        "paid_minor": paid_minor,
        "status": status,
        "issue_date": issue_date,
        "due_date": issue_date + timedelta(days=7),
        "reminder_days": None,
        "next_reminder_on": None,
        "request_cancellation_on": None,
        "suspension_on": None,
        "deletion_on": None,
        "failed_visits": 0,
        "flagged_at": None,
        "created_at": LOADED_AT,
    }


# --- counting what Tortoise sends -----------------------------------------------------------


class _QueryLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Tortoise logs each query as ("%s: %s", query, values); connection events differ.
        if record.msg == "%s: %s" and isinstance(record.args, tuple) and record.args:
            self.statements.append(str(record.args[0]))


@contextmanager
def captured_statements() -> Iterator[list[str]]:
    """The SQL statements Tortoise issues inside the block (its `tortoise.db_client` log).

    BEGIN/COMMIT of `in_transaction()` are not logged by Tortoise and so not in the list.
    """
    logger = logging.getLogger("tortoise.db_client")
    handler, level = _QueryLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.statements
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def statement_kinds(statements: Sequence[str]) -> str:
    """`3 SELECT, 4 INSERT, 3 UPDATE`: a one-line summary of captured statements."""
    kinds: dict[str, int] = {}
    for sql in statements:
        verb = sql.lstrip().split(None, 1)[0].upper()
        kinds[verb] = kinds.get(verb, 0) + 1
    return ", ".join(f"{n} {verb}" for verb, n in sorted(kinds.items()))


# --- timing and the machine ------------------------------------------------------------------


def clock() -> float:
    return time.perf_counter()


async def describe_machine(backends: Sequence[str]) -> str:
    """Cores, Python, and the database versions the figures were measured with."""
    parts = [f"{os.cpu_count()} cores", f"Python {platform.python_version()}"]
    if "sqlite" in backends:
        parts.append(f"SQLite {sqlite3.sqlite_version}")
    if "postgres" in backends:
        admin = await asyncpg.connect(_admin_dsn())
        try:
            version = str(await admin.fetchval("SHOW server_version"))
        finally:
            await admin.close()
        parts.append(f"PostgreSQL {version}")
    return ", ".join(parts)


# --- output ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Ours against the ceiling on one backend; `ratio` is ours as a fraction of the ceiling."""

    backend: str
    measure: str  # what the two numbers are, e.g. "collections/s" or "seconds (median)"
    ours: float
    ceiling: float
    ratio: float
    goal: float
    note: str = ""

    @property
    def met(self) -> bool:
        return self.ratio >= self.goal


def print_table(title: str, comparisons: Sequence[Comparison], ratio_name: str) -> None:
    header = ("backend", "measure", "ours", "ceiling", ratio_name, "goal", "met", "note")
    rows = [header] + [
        (
            c.backend,
            c.measure,
            _number(c.ours),
            _number(c.ceiling),
            f"{c.ratio:.2f}",
            f">= {c.goal:g}",
            "yes" if c.met else "NO",
            c.note,
        )
        for c in comparisons
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.3f}"


def say(message: str) -> None:
    """Progress on stdout, flushed so a long load shows where it is."""
    print(message, flush=True)
