"""The payments log: a filtered page against the same SQL sent raw, and a full export.

Data: one tenant (Asia/Dhaka, BDT) with 200 staff (4 admins, 196 collectors), `--rows`/10
subscribers (100,000 by default) and `--rows` payments (default 1,000,000), received between
9:00 and 21:00 local time on each of the 365 days up to today, ids in the order received.
Each subscriber has one collector (their area's). Nine invoices in ten are paid by one
payment; one in ten in two (half, then the rest, by the same subscriber's next payment), so
there are about 0.92 invoices per payment, each paid, partly paid or (once reversed)
unpaid as its payments say. Methods as an office in Bangladesh takes them: 72 % cash (58 %
at the door by the collector, operator and collector both set; 14 % at the office, an
admin the operator), 19 % bKash or Nagad (two thirds at the door) with their transaction
ids as the reference, 4 % SSLCommerz (a gateway: neither operator nor collector), the rest
bank, card, recharge card and other, at the office. 0.3 % of the payments are reversed
(3,000 by default) within three days, each `payment_reversal` with its `ledger_posting`
(the posting's legs are not loaded: the log does not read them, nor the collection
postings, which are not loaded either). Loaded with COPY on PostgreSQL (`executemany` in one
transaction on SQLite), then vacuumed and analysed.

The page: ours is `payments_page(admin, PaymentFilter(...), now=...)`, i.e. two tenant reads
through Tortoise, then the page statement and, on a first page, the totals statement,
through `core.db.sql.fetch`. The ceiling is exactly those two statements (one on a later
page) with the same parameters, issued raw through asyncpg (stdlib sqlite3 on SQLite). Their
text and parameters come from the module's own builders (`_bounds`, `_query`, `_SELECT`,
`_TOTALS`), assembled as `payments_page` assembles them; the bench checks, from Tortoise's
query log, that ours sent exactly those statements and parameters, and that both returned
the same rows and totals. Three cases: a first page for one month, cash, one collector; a
first page searching a name substring over the default 30 days; the "older" page after a
row in the middle of the first case's month. A diagnostic third contender sends the same
statements through `core.db.sql.fetch` (Tortoise's pool, no tenant reads) to tell the
statement's cost from the service's. Median of 31 runs each, alternating, after 8 warm-up
runs (past PostgreSQL's switch to a generic plan at the sixth execution of a prepared
statement; both sides prepare through asyncpg's statement cache alike). Goal: raw/ours >= 0.7.

The export: `export_payments(admin, PaymentFilter(start, end), fmt="csv")` for the last
days holding about a tenth, three tenths and all of the payments (100,000, 300,000 and
1,000,000 by default), each in a fresh child process (`--export-child`), timed around the
call, with its peak resident memory (`VmHWM` of `/proc/self/status`, see `_export_child`)
and how late its event loop wakes a 20 ms sleep meanwhile (what the bot's other users
would wait, since the bot runs exports in its own process). Then one XLSX export of
`--xlsx-rows` rows (default: a tenth of `--rows`; at most `XLSX_MAX_ROWS`, 500,000, which the
export refuses to go beyond). The ceiling, in the same kind of child
process: asyncpg (sqlite3) fetching the same rows with the same keyset statements in
batches of 5,000 and writing each record as it comes with `csv.writer`: no conversion to
local time or major units, no count before, no zip. The bench checks that ours sent the
keyset statements the ceiling replays, and reads both files back: rows, receipt ids and
amounts must add up to what was loaded. Goals: peak memory flat as the rows grow and at
most 200 MB at 1,000,000 rows; ours' rows per second against the ceiling's is reported (no
goal set).

    .venv/bin/python -m bench.payments [--backend postgres|sqlite] [--rows 1000000]
        [--xlsx-rows N]   # PostgreSQL is the goal; SQLite only for small --rows
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import logging
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import zipfile
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import (
    LOADED_AT,
    BenchDatabase,
    Comparison,
    Ids,
    RawSession,
    TenantSet,
    bulk_load,
    clock,
    describe_machine,
    invoice_row,
    load_tenant,
    print_table,
    raw_session,
    run,
    say,
    sqlite_value,
    subscriber_row,
    throwaway_database,
    to_postgres,
)
from bench.report import run_alternating
from core.db.models import Staff, Tenant
from core.db.orm import close_database, open_database
from core.db.sql import fetch
from core.documents import exports
from core.documents.exports import XLSX_MAX_ROWS
from core.domain.status import PaymentMethod
from core.services.payments_log import (
    _SELECT,
    _TOTALS,
    EXPORT_BATCH,
    PAGE_SIZE,
    PaymentFilter,
    _bounds,
    _query,
    export_payments,
    payments_page,
)

GOAL = 0.7
MEMORY_GOAL_MB = 200
RUNS = 31
WARMUPS = 8
TODAY = date(2026, 12, 15)
NOW = datetime(2026, 12, 15, 16, 0, tzinfo=UTC)  # 22:00 in Dhaka, after the day's last
DAYS = 365
FIRST_DAY = TODAY - timedelta(days=DAYS - 1)
COLLECTORS = 196
EXTRA_ADMINS = 3  # besides load_tenant's admin: 200 staff in all
REVERSED_SHARE = 0.003
SPLIT_SHARE = 0.1  # invoices paid in two payments
PRICES = (50_000, 80_000, 100_000, 120_000, 150_000, 200_000, 300_000)
SEARCH = "nasrin"  # a first name: 1 subscriber in 40
SEED = 2026
LAG_TICK = 0.02

FIRST_NAMES = (
    "Abdul", "Aisha", "Akash", "Amina", "Anwar", "Arif", "Ayesha", "Babul", "Delwar", "Farhana",
    "Farid", "Fatema", "Habib", "Hasina", "Imran", "Jahanara", "Jamal", "Kamal", "Karim",
    "Khadija", "Mahmud", "Masud", "Mitu", "Mizanur", "Monir", "Nasrin", "Nazma", "Parvez",
    "Rahim", "Rashida", "Rafiq", "Rubina", "Sabina", "Salma", "Selim", "Shahana", "Shirin",
    "Sohel", "Tania", "Zahid",
)  # fmt: skip
LAST_NAMES = (
    "Ahmed", "Akter", "Alam", "Ali", "Begum", "Bhuiyan", "Chowdhury", "Das", "Haque",
    "Hossain", "Islam", "Kabir", "Khan", "Mahmud", "Miah", "Molla", "Rahman", "Roy", "Sarkar",
    "Sheikh", "Siddique", "Sultana", "Talukder", "Uddin", "Zaman",
)  # fmt: skip

# How each payment was taken: (method, at the door by the collector, weight in %). Office
# channels have an admin as the operator; the gateway has neither operator nor collector.
CHANNELS = (
    ("cash", True, 58.0),
    ("cash", False, 14.0),
    ("bkash", True, 8.0),
    ("bkash", False, 4.0),
    ("nagad", True, 5.0),
    ("nagad", False, 2.0),
    ("sslcommerz", False, 4.0),
    ("bank", False, 2.0),
    ("card", False, 1.5),
    ("recharge_card", False, 1.0),
    ("other", False, 0.5),
)
GATEWAY = "sslcommerz"
NOTES = ("paid by his brother", "advance for next month", "paid at the shop", "partial")
REASONS = ("bKash chargeback", "recorded twice", "wrong subscriber", "cheque bounced")


# --- the data set ----------------------------------------------------------------------------


@dataclass
class Plan:
    """Every payment and invoice of the data set, as compact arrays (index = id - first id)."""

    rows: int
    subscribers: int
    pay_subscriber: array[int]
    pay_invoice: array[int]
    pay_amount: array[int]
    pay_channel: array[int]
    inv_subscriber: array[int]
    inv_amount: array[int]
    inv_paid: array[int]
    inv_day: array[int]
    reversed: list[int]  # payment indexes, ascending

    def day_of(self, n: int) -> int:
        """Days after FIRST_DAY that payment n was received (the same local day)."""
        return n * DAYS // self.rows

    def received_at(self, n: int) -> datetime:
        day = self.day_of(n)
        # Spread over 9:00-21:00 in Dhaka (3:00-15:00 UTC), in order, microseconds apart at
        # least: ids follow time.
        first = -(-day * self.rows // DAYS)
        per_day = -(-(day + 1) * self.rows // DAYS) - first
        micros = (n - first) * 12 * 3_600_000_000 // max(per_day, 1)
        return datetime.combine(FIRST_DAY + timedelta(days=day), time(3, 0), UTC) + timedelta(
            microseconds=micros
        )

    def count_from(self, day: int) -> int:
        """Payments received on day `day` (after FIRST_DAY) or later."""
        return self.rows - (-(-day * self.rows // DAYS))


def plan_data(rows: int) -> Plan:
    rng = random.Random(SEED)
    subscribers = max(10, rows // 10)
    weights = [w for _, _, w in CHANNELS]
    p = Plan(
        rows=rows,
        subscribers=subscribers,
        pay_subscriber=array("i"),
        pay_invoice=array("i"),
        pay_amount=array("q"),
        pay_channel=array("b"),
        inv_subscriber=array("i"),
        inv_amount=array("q"),
        inv_paid=array("q"),
        inv_day=array("i"),
        reversed=sorted(rng.sample(range(rows), max(1, int(rows * REVERSED_SHARE)))),
    )
    half_paid = array("i", [-1]) * subscribers  # per subscriber: an invoice awaiting its rest
    channels = rng.choices(range(len(CHANNELS)), weights=weights, k=rows)
    for n in range(rows):
        s = rng.randrange(subscribers)
        invoice = half_paid[s]
        if invoice >= 0:
            amount = p.inv_amount[invoice] - p.inv_paid[invoice]
            half_paid[s] = -1
        else:
            invoice = len(p.inv_amount)
            price = rng.choice(PRICES)
            p.inv_subscriber.append(s)
            p.inv_amount.append(price)
            p.inv_paid.append(0)
            p.inv_day.append(p.day_of(n))
            amount = price
            if rng.random() < SPLIT_SHARE:
                amount = price // 2
                half_paid[s] = invoice
        p.inv_paid[invoice] += amount
        p.pay_subscriber.append(s)
        p.pay_invoice.append(invoice)
        p.pay_amount.append(amount)
        p.pay_channel.append(channels[n])
    for n in p.reversed:
        p.inv_paid[p.pay_invoice[n]] -= p.pay_amount[n]
    return p


@dataclass(frozen=True)
class Loaded:
    tenant: TenantSet
    admin_ids: tuple[int, ...]
    plan: Plan
    first_payment: int
    seconds: float

    def payment_id(self, n: int) -> int:
        return self.first_payment + n


def subscriber_name(n: int) -> str:
    return f"{FIRST_NAMES[n % len(FIRST_NAMES)]} {LAST_NAMES[n // 7 % len(LAST_NAMES)]}"


async def load(db: BenchDatabase, rows: int) -> Loaded:
    began = clock()
    ids = Ids()
    plan = plan_data(rows)
    tenant = await load_tenant(db, ids, collectors=COLLECTORS)
    admins = (tenant.admin_id, *ids.take("staff", EXTRA_ADMINS))
    await bulk_load(db, "staff", (_admin_row(a, tenant.tenant_id) for a in admins[1:]))
    sub_ids = ids.take("subscriber", plan.subscribers)
    await bulk_load(
        db,
        "subscriber",
        (
            subscriber_row(s, tenant.tenant_id, plan_id=tenant.plan_id, expiry_date=TODAY)
            | {"name": subscriber_name(n)}
            for n, s in enumerate(sub_ids)
        ),
    )
    inv_ids = ids.take("invoice", len(plan.inv_amount))
    await bulk_load(db, "invoice", _invoice_rows(tenant, plan, inv_ids, sub_ids))
    pay_ids = ids.take("payment", rows)
    loaded = Loaded(tenant, admins, plan, pay_ids[0], 0.0)
    await bulk_load(db, "payment", _payment_rows(loaded, inv_ids, sub_ids))
    postings = ids.take("ledger_posting", len(plan.reversed))
    await bulk_load(db, "ledger_posting", _reversal_postings(loaded, inv_ids, postings))
    await bulk_load(db, "payment_reversal", _reversal_rows(loaded, postings))
    seconds = clock() - began
    say(
        f"{db.backend}: loaded {rows:,} payments ({len(plan.reversed):,} reversed),"
        f" {len(inv_ids):,} invoices, {plan.subscribers:,} subscribers,"
        f" {COLLECTORS + len(admins)} staff in {seconds:.0f} s"
    )
    return Loaded(tenant, admins, plan, pay_ids[0], seconds)


def _admin_row(staff_id: int, tenant_id: int) -> dict[str, Any]:
    return {
        "id": staff_id,
        "tenant_id": tenant_id,
        "role": "admin",
        "name": f"Office {staff_id:05d}",
        "phone": f"+8801711{staff_id:06d}",
        "telegram_user_id": 7_000_000 + staff_id,
        "permissions": [],
        "commission_bp": 0,
        "created_at": LOADED_AT,
    }


def _invoice_rows(
    tenant: TenantSet, plan: Plan, inv_ids: range, sub_ids: range
) -> Iterator[dict[str, Any]]:
    for k, invoice_id in enumerate(inv_ids):
        amount, paid = plan.inv_amount[k], plan.inv_paid[k]
        yield invoice_row(
            invoice_id,
            tenant.tenant_id,
            sub_ids[plan.inv_subscriber[k]],
            amount_minor=amount,
            issue_date=FIRST_DAY + timedelta(days=plan.inv_day[k] - 5),
            paid_minor=paid,
            status="paid" if paid == amount else "partial" if paid else "unpaid",
        )


def _reference(method: str, n: int) -> str:
    mixed = n * 2_654_435_761 % 16**10
    if method == "bkash":
        return f"{mixed:010X}"  # a TrxID
    if method == "nagad":
        return f"7{mixed % 16**7:07X}"
    if method == "sslcommerz":
        return f"SSLCZ{mixed:012d}"
    if method == "bank":
        return f"DBBL-{mixed % 10**8:08d}"
    if method == "recharge_card":
        return f"RC{mixed % 10**10:010d}"
    return ""


def _payment_rows(loaded: Loaded, inv_ids: range, sub_ids: range) -> Iterator[dict[str, Any]]:
    plan, tenant = loaded.plan, loaded.tenant
    collectors, admins = tenant.collector_ids, loaded.admin_ids
    for n in range(plan.rows):
        s = plan.pay_subscriber[n]
        method, at_door, _ = CHANNELS[plan.pay_channel[n]]
        collector = collectors[s % len(collectors)] if at_door else None
        operator = collector if at_door else None if method == GATEWAY else admins[n % len(admins)]
        yield {
            "id": loaded.payment_id(n),
            "tenant_id": tenant.tenant_id,
            "invoice_id": inv_ids[plan.pay_invoice[n]],
            "subscriber_id": sub_ids[s],
            "amount_minor": plan.pay_amount[n],
            "method": method,
            "received_at": plan.received_at(n),
            "operator_id": operator,
            "collector_id": collector,
            "reference": _reference(method, n),
            "note": NOTES[n // 61 % len(NOTES)] if n % 61 == 0 else "",
            "receipt_file_id": None,
            "idempotency_key": f"bench-{n}",
            "created_at": plan.received_at(n),
        }


def _reversed_at(plan: Plan, n: int) -> datetime:
    return min(plan.received_at(n) + timedelta(hours=1 + n % 71), NOW)


def _reversal_postings(
    loaded: Loaded, inv_ids: range, posting_ids: range
) -> Iterator[dict[str, Any]]:
    plan = loaded.plan
    for n, posting_id in zip(plan.reversed, posting_ids, strict=True):
        yield {
            "id": posting_id,
            "tenant_id": loaded.tenant.tenant_id,
            "kind": "payment_reversal",
            "memo": f"reversal R-{loaded.payment_id(n):06d}: {REASONS[n % len(REASONS)]}",
            "payment_id": loaded.payment_id(n),
            "invoice_id": inv_ids[plan.pay_invoice[n]],
            "created_by_id": loaded.tenant.admin_id,
            "idempotency_key": None,
            "created_at": _reversed_at(plan, n),
        }


def _reversal_rows(loaded: Loaded, posting_ids: range) -> Iterator[dict[str, Any]]:
    plan = loaded.plan
    for k, (n, posting_id) in enumerate(zip(plan.reversed, posting_ids, strict=True)):
        at_door = CHANNELS[plan.pay_channel[n]][1]
        yield {
            "id": k + 1,
            "tenant_id": loaded.tenant.tenant_id,
            "payment_id": loaded.payment_id(n),
            "reason": REASONS[n % len(REASONS)],
            "reversed_by_id": loaded.tenant.admin_id,
            "reversed_at": _reversed_at(plan, n),
            "commission_reversed_minor": 0,
            "refunded_from": "collector_cash" if at_door else "office_cash",
            "posting_id": posting_id,
        }


# --- the page: ours, the statements it sends, and those sent raw ------------------------------


@dataclass(frozen=True)
class Statement:
    sql: str  # `?` placeholders, as the service writes it
    params: list[Any]


async def page_statements(
    admin: Staff, filters: PaymentFilter, *, older_than: int | None = None
) -> list[Statement]:
    """The statements `payments_page(admin, filters, older_than=...)` sends after its tenant
    reads, built by the module's own `_bounds` and `_query` and assembled as it assembles
    them (`check_statements` holds the two to the same text, every run)."""

    tenant = await Tenant.get(id=admin.tenant_id)
    start, end = _bounds(tenant, filters, NOW)
    query = _query(admin, filters, start, end, tenant.timezone)
    where, params = query.where, list(query.params)
    if older_than is not None:
        where += (
            " AND (p.received_at, p.id) <"
            " (SELECT a.received_at, a.id FROM payment a WHERE a.id = ? AND a.tenant_id = ?)"
        )
        params += [older_than, admin.tenant_id]
    sql = f"{_SELECT} WHERE {where} ORDER BY p.received_at DESC, p.id DESC LIMIT ?"
    statements = [Statement(sql, [*params, PAGE_SIZE + 1])]
    if older_than is None:
        statements.append(Statement(f"{_TOTALS} WHERE {query.where}", list(query.params)))
    return statements


@dataclass(frozen=True)
class ExportStatements:
    """The export's keyset statements (`_batches`), and the count `export_payments` makes first."""

    first: Statement  # params without the batch size
    after: str  # two more parameters: the last row's received_at and id, then the size
    totals: Statement


async def export_statements(admin: Staff, filters: PaymentFilter) -> ExportStatements:
    tenant = await Tenant.get(id=admin.tenant_id)
    start, end = _bounds(tenant, filters, NOW)
    query = _query(admin, filters, start, end, tenant.timezone)
    order = " ORDER BY p.received_at DESC, p.id DESC LIMIT ?"
    return ExportStatements(
        first=Statement(f"{_SELECT} WHERE {query.where}{order}", list(query.params)),
        after=f"{_SELECT} WHERE {query.where} AND (p.received_at, p.id) < (?, ?){order}",
        totals=Statement(f"{_TOTALS} WHERE {query.where}", list(query.params)),
    )


class _QueryLog(logging.Handler):
    """Every statement Tortoise sends, with its parameters (its `tortoise.db_client` log)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sent: list[tuple[str, list[Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "%s: %s" and isinstance(record.args, tuple) and len(record.args) == 2:
            sql, values = record.args
            self.sent.append((str(sql), list(values) if isinstance(values, list) else []))


@contextmanager
def query_log() -> Iterator[_QueryLog]:
    logger = logging.getLogger("tortoise.db_client")
    handler, level = _QueryLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _is_orm_read(sql: str) -> bool:
    """Tortoise's own model reads (tenant, staff), as opposed to the log's hand-written SQL."""
    return sql.lstrip().startswith('SELECT "')


def _as_sent(sql: str, params: Sequence[Any], backend: str) -> tuple[str, list[Any]]:
    """A statement as `core.db.sql.fetch` hands it to Tortoise on `backend`."""
    if backend == "postgres":
        return to_postgres(sql), list(params)
    return sql, [sqlite_value(v) for v in params]


def check_statements(
    sent: list[tuple[str, list[Any]]], expected: list[Statement], backend: str, what: str
) -> int:
    """Ours' hand-written statements must be exactly the ceiling's; returns the ORM reads."""
    own = [(sql, params) for sql, params in sent if not _is_orm_read(sql)]
    if own != [_as_sent(s.sql, s.params, backend) for s in expected]:
        raise SystemExit(f"{what}: payments_page no longer sends the statements replayed raw")
    return len(sent) - len(own)


def _moment(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _ours_rows(page: Any) -> list[tuple[Any, ...]]:
    return [
        (r.id, r.received_at, r.amount_minor, r.method.value, r.customer, r.username,
         r.invoice, r.taken_by, r.collector, r.reference, r.reversed_at)
        for r in page.rows
    ]  # fmt: skip


def _raw_rows(rows: Sequence[Any], size: int) -> list[tuple[Any, ...]]:
    return [
        (r["id"], _moment(r["received_at"]), r["amount_minor"], r["method"], r["customer"],
         r["username"], r["invoice"], r["operator"] or r["collector"], r["collector"],
         r["reference"] or "", _moment(r["reversed_at"]))
        for r in rows[:size]
    ]  # fmt: skip


@dataclass(frozen=True)
class PageCase:
    name: str
    filters: PaymentFilter
    older_than: int | None = None


async def resolved(admin: Staff, filters: PaymentFilter) -> PaymentFilter:
    """The filters a first page hands back, which the bot keeps for the pages after it."""
    return (await payments_page(admin, filters, now=NOW)).filters


async def ceiling_page(s: RawSession, statements: list[Statement]) -> list[list[Any]]:
    return [await s.fetch(st.sql, *st.params) for st in statements]


async def fetch_page(statements: list[Statement]) -> list[list[dict[str, Any]]]:
    """The same statements through `core.db.sql.fetch` (Tortoise's pool), no tenant reads."""
    return [await fetch(st.sql, st.params) for st in statements]


async def bench_page(
    db: BenchDatabase, s: RawSession, admin: Staff, case: PageCase
) -> tuple[Comparison, dict[str, float]]:
    statements = await page_statements(admin, case.filters, older_than=case.older_than)

    async def ours() -> Any:
        return await payments_page(admin, case.filters, older_than=case.older_than, now=NOW)

    with query_log() as log:
        page = await ours()
    orm_reads = check_statements(log.sent, statements, db.backend, case.name)
    raw = await ceiling_page(s, statements)
    if not page.rows:
        raise SystemExit(f"{case.name}: an empty page measures nothing; load more --rows")
    if _ours_rows(page) != _raw_rows(raw[0], PAGE_SIZE):
        raise SystemExit(f"{case.name}: ours and the raw statement returned different rows")
    if case.older_than is None:
        totals = raw[1][0]
        ours_totals = (page.count, page.total_minor, page.reversed_count)
        if ours_totals != (totals["n"], totals["total"], totals["reversed"]):
            raise SystemExit(f"{case.name}: ours and the raw totals differ")
    times = await run_alternating(
        {
            "ours": ours,
            "ceiling": lambda: ceiling_page(s, statements),
            "fetch": lambda: fetch_page(statements),
        },
        warmups=WARMUPS,
        runs=RUNS,
    )
    ms = {name: statistics.median(t) * 1000 for name, t in times.items()}
    count = f"{page.count:,} rows match" if page.count is not None else "no totals"
    say(
        f"{case.name}: {len(statements)} statement(s) + {orm_reads} ORM reads; {count};"
        f" ours {ms['ours']:.2f} ms, raw {ms['ceiling']:.2f} ms, same statements through"
        f" core.db.sql.fetch {ms['fetch']:.2f} ms (medians of {RUNS})"
    )
    return (
        Comparison(
            db.backend,
            "ms (median)",
            ms["ours"],
            ms["ceiling"],
            ms["ceiling"] / ms["ours"],
            GOAL,
            case.name,
        ),
        ms,
    )


async def page_cases(s: RawSession, admin: Staff, loaded: Loaded) -> list[PageCase]:
    month = PaymentFilter(
        start=date(2026, 11, 1),
        end=date(2026, 11, 30),
        operator_id=loaded.tenant.collector_ids[7],
        method=PaymentMethod.CASH,
    )
    # The anchor: the matching row in the middle of the month, as if paged down to it.
    first = (await page_statements(admin, month))[0]
    sql = first.sql.rsplit(" LIMIT ?", 1)[0]
    ids = [r["id"] for r in await s.fetch(sql, *first.params[:-1])]
    return [
        PageCase("first page: 1 month, cash, 1 collector", month),
        PageCase(f"first page: search {SEARCH!r}, 30 days", PaymentFilter(search=SEARCH)),
        # As the bot pages: with the filters the first page returned (its period resolved).
        PageCase(
            "older page from mid-month (same filters)",
            await resolved(admin, month),
            ids[len(ids) // 2],
        ),
    ]


# --- the export, in child processes -----------------------------------------------------------


def _vm(field: str) -> float:
    """A `/proc/self/status` memory figure in MB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _encode(value: Any) -> Any:
    return {"$dt": value.isoformat()} if isinstance(value, datetime) else value


def _decode(value: Any) -> Any:
    return datetime.fromisoformat(value["$dt"]) if isinstance(value, dict) else value


@dataclass(frozen=True)
class ExportJob:
    """What a child process exports; written as JSON for it."""

    side: str  # "ours" or "raw"
    url: str
    backend: str
    admin_id: int
    start: str
    end: str
    fmt: str
    folder: str
    first_sql: str = ""  # raw only: the keyset statements
    first_params: tuple[Any, ...] = ()
    after_sql: str = ""


async def _sample_rss(samples: list[float]) -> None:
    while True:
        samples.append(_vm("VmRSS"))
        await asyncio.sleep(0.25)


async def _loop_lag(lags: list[float]) -> None:
    """How late a 20 ms sleep wakes up: what other users of the event loop would wait."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + LAG_TICK
        await asyncio.sleep(LAG_TICK)
        lags.append(loop.time() - due)


async def _export_ours(job: ExportJob) -> dict[str, Any]:
    await open_database(job.url)
    admin = await Staff.get(id=job.admin_id)
    zip_seconds = 0.0
    zip_file = exports._zip

    def timed_zip(path: Path) -> Path:
        nonlocal zip_seconds
        began = clock()
        try:
            return zip_file(path)
        finally:
            zip_seconds = clock() - began

    exports._zip = timed_zip  # timing only, in this process
    filters = PaymentFilter(start=date.fromisoformat(job.start), end=date.fromisoformat(job.end))
    rss_before = _vm("VmRSS")
    samples: list[float] = []
    lags: list[float] = []
    watchers = [asyncio.create_task(_sample_rss(samples)), asyncio.create_task(_loop_lag(lags))]
    with query_log() as log:
        began = clock()
        result = await export_payments(
            admin, filters, fmt=job.fmt, folder=Path(job.folder), now=NOW
        )
        seconds = clock() - began
    for watcher in watchers:
        watcher.cancel()
    lags.sort()
    await close_database()
    sent = Counter(sql for sql, _ in log.sent)
    return {
        "rows": result.rows,
        "seconds": seconds,
        "zip_seconds": zip_seconds,
        "path": str(result.path),
        "zipped": result.zipped,
        "size_bytes": result.size_bytes,
        "rss_before_mb": rss_before,
        "rss_samples": samples,
        "lag_p50_ms": lags[len(lags) // 2] * 1000 if lags else 0.0,
        "lag_p99_ms": lags[len(lags) * 99 // 100] * 1000 if lags else 0.0,
        "lag_max_ms": lags[-1] * 1000 if lags else 0.0,
        "statements": dict(sent),
    }


async def _export_raw(job: ExportJob) -> dict[str, Any]:
    """The ceiling: the same keyset statements, records written as they come."""
    path = Path(job.folder) / "raw.csv"
    params = [_decode(v) for v in job.first_params]
    rss_before = _vm("VmRSS")
    rows = 0
    if job.backend == "postgres":
        conn = await asyncpg.connect(job.url.replace("postgres://", "postgresql://", 1))
        first, after = to_postgres(job.first_sql), to_postgres(job.after_sql)

        async def batch(last: tuple[Any, Any] | None) -> Sequence[Any]:
            if last is None:
                return list(await conn.fetch(first, *params, EXPORT_BATCH))
            return list(await conn.fetch(after, *params, *last, EXPORT_BATCH))

        close: Callable[[], Awaitable[None]] = conn.close
    else:
        lite = sqlite3.connect(job.url.split("://", 1)[1])
        lite.row_factory = sqlite3.Row
        lite_params = [sqlite_value(v) for v in params]

        async def batch(last: tuple[Any, Any] | None) -> Sequence[Any]:
            if last is None:
                return lite.execute(job.first_sql, [*lite_params, EXPORT_BATCH]).fetchall()
            return lite.execute(job.after_sql, [*lite_params, *last, EXPORT_BATCH]).fetchall()

        async def close_lite() -> None:
            lite.close()

        close = close_lite
    began = clock()
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        last: tuple[Any, Any] | None = None
        while True:
            records = await batch(last)
            if not records:
                break
            if rows == 0:
                writer.writerow(records[0].keys())
            writer.writerows(records)
            rows += len(records)
            last = (records[-1]["received_at"], records[-1]["id"])
            if len(records) < EXPORT_BATCH:
                break
    seconds = clock() - began
    await close()
    return {
        "rows": rows,
        "seconds": seconds,
        "zip_seconds": 0.0,
        "path": str(path),
        "zipped": False,
        "size_bytes": path.stat().st_size,
        "rss_before_mb": rss_before,
        "rss_samples": [],
        "statements": {},
    }


async def _export_child(job: ExportJob) -> None:
    """Run one export and print what it took, as JSON on stdout."""
    out = await (_export_ours(job) if job.side == "ours" else _export_raw(job))
    # VmHWM, not getrusage's ru_maxrss: on Linux ru_maxrss survives execve and starts from
    # the spawning parent's peak (here the loader's); VmHWM belongs to this address space.
    out |= {"peak_mb": _vm("VmHWM"), "ru_maxrss_mb": _maxrss_mb()}
    print(json.dumps(out))


async def run_export_child(job: ExportJob) -> dict[str, Any]:
    job_file = Path(job.folder) / "job.json"
    job_file.write_text(json.dumps(asdict(job)))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.payments",
        "--export-child",
        str(job_file),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"the {job.side} {job.fmt} export failed (exit {process.returncode})")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


# --- reading the files back ------------------------------------------------------------------


@dataclass(frozen=True)
class FileSums:
    rows: int
    id_sum: int
    amount_sum: int  # minor units


def _csv_lines(path: Path) -> Iterator[list[str]]:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf, zf.open(zf.namelist()[0]) as member:
            yield from csv.reader(io.TextIOWrapper(member, encoding="utf-8-sig", newline=""))
    else:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            yield from csv.reader(handle)


def read_back_csv(path: Path, side: str) -> FileSums:
    """Rows, the sum of the payment ids and of the amounts in a written CSV."""
    lines = _csv_lines(path)
    header = next(lines)
    rows = id_sum = amount_sum = 0
    if side == "ours":  # receipt R-00000123; amount in taka, "1500.00"
        r, a = header.index("receipt"), header.index("amount")
        for line in lines:
            rows += 1
            id_sum += int(line[r][2:])
            amount_sum += int(Decimal(line[a]) * 100)
    else:
        r, a = header.index("id"), header.index("amount_minor")
        for line in lines:
            rows += 1
            id_sum += int(line[r])
            amount_sum += int(line[a])
    return FileSums(rows, id_sum, amount_sum)


def read_back_xlsx_rows(path: Path) -> int:
    """Data rows in the first sheet, by counting its `<row` elements (streamed)."""
    count, tail = 0, b""
    with zipfile.ZipFile(path) as zf, zf.open("xl/worksheets/sheet1.xml") as sheet:
        while chunk := sheet.read(1 << 20):
            data = tail + chunk
            count += data.count(b"<row ") + data.count(b"<row>")
            tail = data[-5:]
            count -= tail.count(b"<row ") + tail.count(b"<row>")
        count += tail.count(b"<row ") + tail.count(b"<row>")
    return count - 1  # the header


def expected_sums(loaded: Loaded, first_day: int) -> FileSums:
    plan = loaded.plan
    start = plan.rows - plan.count_from(first_day)
    ids = range(loaded.payment_id(start), loaded.payment_id(plan.rows))
    amount = sum(plan.pay_amount[start:])
    return FileSums(len(ids), sum(ids), amount)


# --- the run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    fmt: str
    rows: int
    days: int
    ours: dict[str, Any]
    raw: dict[str, Any] | None
    totals_seconds: float


async def bench_export(
    db: BenchDatabase,
    s: RawSession,
    admin: Staff,
    loaded: Loaded,
    folder: Path,
    *,
    target: int,
    fmt: str,
    with_ceiling: bool,
    ours_first: bool,
) -> ExportResult:
    plan = loaded.plan
    days = min(DAYS, -(-DAYS * target // plan.rows))
    first_day = DAYS - days
    start = FIRST_DAY + timedelta(days=first_day)
    filters = PaymentFilter(start=start, end=TODAY)
    statements = await export_statements(admin, filters)

    def job(side: str) -> ExportJob:
        where = folder / f"{side}-{fmt}-{target}"
        where.mkdir()
        return ExportJob(
            side=side,
            url=db.url,
            backend=db.backend,
            admin_id=admin.id,
            start=start.isoformat(),
            end=TODAY.isoformat(),
            fmt=fmt,
            folder=str(where),
            first_sql=statements.first.sql,
            first_params=tuple(_encode(v) for v in statements.first.params),
            after_sql=statements.after,
        )

    sides = ["ours", "raw"] if with_ceiling else ["ours"]
    results: dict[str, dict[str, Any]] = {}
    for side in sides if ours_first else reversed(sides):
        results[side] = await run_export_child(job(side))
    ours = results["ours"]
    expected = expected_sums(loaded, first_day)
    sent = ours["statements"]
    # The first batch's statement once; _batches stops on a short batch, or on an empty one
    # after a full one.
    keyset = ((statements.first.sql, 1), (statements.after, expected.rows // EXPORT_BATCH))
    if any(sent.get(_as_sent(sql, [], db.backend)[0], 0) != n for sql, n in keyset):
        raise SystemExit(f"export {fmt}: ours did not send the keyset statements replayed")
    if fmt == "csv":
        got = read_back_csv(Path(ours["path"]), "ours")
        if got != expected:
            raise SystemExit(f"export: ours wrote {got}, {expected} expected")
    elif (got_rows := read_back_xlsx_rows(Path(ours["path"]))) != expected.rows:
        raise SystemExit(f"export xlsx: {got_rows:,} rows, {expected.rows:,} expected")
    raw = results.get("raw")
    if raw is not None and read_back_csv(Path(raw["path"]), "raw") != expected:
        raise SystemExit("export: the ceiling did not write what was loaded")
    # What ours does before the first batch: the count of `payments_page(size=1)`.
    began = clock()
    await s.fetch(statements.totals.sql, *statements.totals.params)
    totals_seconds = clock() - began
    _remove(*(result["path"] for result in results.values()))
    say(
        f"export {fmt} of {expected.rows:,} rows ({days} days): ours {ours['seconds']:.1f} s"
        f" (zip {ours['zip_seconds']:.1f} s), peak {ours['peak_mb']:.0f} MB, event loop late"
        f" {ours['lag_p50_ms']:.1f} / {ours['lag_p99_ms']:.0f} / {ours['lag_max_ms']:.0f} ms"
        " (median / p99 / max)"
        + (f"; raw {raw['seconds']:.1f} s, peak {raw['peak_mb']:.0f} MB" if raw else "")
        + "; read back and checked"
    )
    return ExportResult(fmt, expected.rows, days, ours, raw, totals_seconds)


def _remove(*paths: str) -> None:
    for path in paths:
        Path(path).unlink()


async def warm_up(s: RawSession) -> None:
    """Read the log's tables once, so neither side pays for the first read from disk."""
    for table in ("payment", "subscriber", "invoice", "payment_reversal", "staff"):
        await s.fetch(f"SELECT COUNT(*) FROM {table}")


def _print_rows(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = [tuple(header), *(tuple(r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def print_exports(results: list[ExportResult]) -> None:
    rows = []
    for r in results:
        ours, raw = r.ours, r.raw
        ours_rate = r.rows / ours["seconds"]
        samples = ours["rss_samples"] or [0.0]
        mid = samples[len(samples) // 2]
        rows.append(
            (
                r.fmt,
                f"{r.rows:,}",
                f"{ours_rate:,.0f} /s ({ours['seconds']:.1f} s)",
                f"{r.rows / raw['seconds']:,.0f} /s ({raw['seconds']:.1f} s)" if raw else "-",
                f"{ours_rate * raw['seconds'] / r.rows:.2f}" if raw else "-",
                f"{ours['zip_seconds']:.1f} s" if ours["zipped"] else "-",
                f"{r.totals_seconds:.2f} s",
                f"{ours['rss_before_mb']:.0f} / {mid:.0f} / {ours['peak_mb']:.0f}",
                f"{raw['peak_mb']:.0f}" if raw else "-",
                f"{ours['ru_maxrss_mb']:.0f}",
                f"{ours['lag_p99_ms']:.0f} / {ours['lag_max_ms']:.0f} ms",
                f"{ours['size_bytes'] / 1e6:.1f} MB" + (" zip" if ours["zipped"] else ""),
            )
        )
    _print_rows(
        "export_payments vs the same keyset batches raw into csv.writer (each in a fresh process)",
        (
            "fmt", "rows", "ours", "ceiling", "ours/raw", "of ours: zip", "count first",
            "ours MB before/mid/peak", "raw peak MB", "ru_maxrss MB", "loop lag p99/max",
            "file",
        ),
        rows,
    )  # fmt: skip
    csvs = [r for r in results if r.fmt == "csv"]
    # Below a few batches the peak grows with the first batch held; flat means beyond that.
    sized = [r for r in csvs if r.rows >= 4 * EXPORT_BATCH] or csvs
    growth = sized[-1].ours["peak_mb"] - sized[0].ours["peak_mb"]
    flat = growth <= 0.1 * sized[0].ours["peak_mb"]
    biggest = max(results, key=lambda r: r.rows)
    met = all(r.ours["peak_mb"] <= MEMORY_GOAL_MB for r in results)
    print(
        "\npeak memory (VmHWM) of our CSV exports: "
        + ", ".join(f"{r.ours['peak_mb']:.0f} MB at {r.rows:,}" for r in csvs)
        + f" ({growth:+.0f} MB smallest to largest: {'flat' if flat else 'NOT flat'});"
        f" goal <= {MEMORY_GOAL_MB} MB at {biggest.rows:,} rows, met: {'yes' if met else 'NO'}"
    )


async def bench(backend: str, rows: int, xlsx_rows: int) -> None:
    say(f"machine: {await describe_machine([backend])}")
    began = clock()
    folder = Path(tempfile.mkdtemp(prefix="collectbot_bench_payments_"))
    try:
        async with throwaway_database(backend) as db, raw_session(db) as s:
            loaded = await load(db, rows)
            admin = await Staff.get(id=loaded.tenant.admin_id)
            await warm_up(s)
            pages = [await bench_page(db, s, admin, c) for c in await page_cases(s, admin, loaded)]
            targets = sorted({max(1, rows // 10), max(1, rows * 3 // 10), rows})
            exports = [
                await bench_export(
                    db, s, admin, loaded, folder, target=t, fmt="csv", with_ceiling=True,
                    ours_first=n % 2 == 0,
                )
                for n, t in enumerate(targets)
            ]  # fmt: skip
            if xlsx_rows:
                exports.append(
                    await bench_export(
                        db, s, admin, loaded, folder, target=min(xlsx_rows, rows), fmt="xlsx",
                        with_ceiling=False, ours_first=True,
                    )
                )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print_table("payments_page vs the same statements sent raw", [c for c, _ in pages], "raw/ours")
    print_exports(exports)
    say(f"\nwhole run {clock() - began:.0f} s (load {loaded.seconds:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="payments to load (default 1,000,000)"
    )
    parser.add_argument(
        "--xlsx-rows",
        type=int,
        default=None,
        help="rows of the one XLSX export (default: a tenth of --rows; 0: none)",
    )
    parser.add_argument("--export-child", metavar="JOB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        job = ExportJob(**json.loads(Path(args.export_child).read_text()))
        asyncio.run(_export_child(job))
        return
    xlsx_rows = args.rows // 10 if args.xlsx_rows is None else args.xlsx_rows
    xlsx_rows = min(xlsx_rows, XLSX_MAX_ROWS)

    async def go() -> None:
        await bench(args.backend, args.rows, xlsx_rows)

    run(go)


if __name__ == "__main__":
    main()
