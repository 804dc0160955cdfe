"""mark_collected: collections per second, ours against the same statements issued raw.

Ours: `mark_collected` once per open stop (full balance, cash, a fresh idempotency key). Every
subscriber has a phone, so the WhatsApp receipt is queued in the outbox; every invoice is a
renewal on a plan, so the expiry path runs (a quarter of the subscribers are reactivated).

Ceiling: `collect_raw`, the statements `mark_collected` issues (captured from Tortoise's
`tortoise.db_client` log for one call: the service's own joined SELECT of stop, invoice,
subscriber, plan, collector and tenant; the payment INSERT; the conditional UPDATEs; the
ledger INSERTs; the renewal UPDATE; the outbox and audit INSERTs), sent with fresh parameters
through asyncpg or the stdlib sqlite3 module, in one transaction per collection. The bench
checks that ours still issues as many statements as the ceiling replays, and that both
sides wrote the same rows.

Fairness: identically prepared tenants in one database; ours collects one tenant's stops, the
ceiling another's, in rounds that rotate who goes first, so both meet the same table sizes
and caches. Each side is warmed up first. Goal: ours/raw >= 0.5.

Diagnostic (SQLite only): the same statements raw through aiosqlite, the driver under
Tortoise's SQLite client, on a third tenant; it shows how much of the gap is the driver's
thread hop per call rather than the ORM.

    .venv/bin/python -m bench.collect [--backend sqlite|postgres|both] [--collections 2000]
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import date
from functools import partial

from bench.common import (
    BenchDatabase,
    Comparison,
    Ids,
    RawSession,
    TenantSet,
    aiosqlite_session,
    as_date,
    captured_statements,
    chosen_backends,
    clock,
    describe_machine,
    load_open_invoices,
    load_open_stops,
    load_tenant,
    parse_args,
    print_table,
    raw_session,
    run,
    say,
    statement_kinds,
    throwaway_database,
)
from core.db.models import Staff
from core.domain.dates import extend_expiry, local_today, utcnow
from core.domain.money import commission_on
from core.services.collection import STOP_FOR_COLLECTION_SQL, mark_collected

GOAL = 0.5
WARMUP = 20
ROUNDS = 8
COLLECTORS = 20

RAW_SQL = {
    "close_stop": "UPDATE assignment SET status = ?, open_invoice_id = NULL, closed_at = ?,"
    " closed_on = ?, collected_minor = ?, commission_minor = ?, payment_id = ?"
    " WHERE id = ? AND status = ?",
    "raise_paid": "UPDATE invoice SET paid_minor = paid_minor + ?, status = ?"
    " WHERE id = ? AND paid_minor = ?",
    "payment": "INSERT INTO payment (amount_minor, method, received_at, reference, note,"
    " idempotency_key, created_at, collector_id, invoice_id, operator_id, receipt_file_id,"
    " subscriber_id, tenant_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "posting": "INSERT INTO ledger_posting (kind, memo, idempotency_key, created_at,"
    " created_by_id, invoice_id, payment_id, tenant_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "legs": "INSERT INTO ledger_leg (account, amount_minor, posting_id, staff_id, subscriber_id,"
    " tenant_id) VALUES (?, ?, ?, ?, ?, ?)",
    "renew": "UPDATE subscriber SET expiry_date = ?, status = ?, usage_bytes = ? WHERE id = ?",
    "outbox": "INSERT INTO outbox_message (channel, kind, recipient, payload, dedupe_key, status,"
    " attempts, next_attempt_at, provider_message_id, last_error, created_at, sent_at,"
    " invoice_id, payment_id, tenant_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "audit": "INSERT INTO audit_log (actor_kind, action, object_type, object_id, at,"
    " telegram_user_id, telegram_chat_id, telegram_update_id, remote_addr, user_agent,"
    " details, actor_staff_id, tenant_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
}


@dataclass(frozen=True)
class Side:
    """One side's data set: its tenant, open stops (assignment id, collector id), actors."""

    tenant: TenantSet
    stops: list[tuple[int, int]]
    actors: dict[int, Staff]


async def prepare(db: BenchDatabase, ids: Ids, stops: int, today: date) -> Side:
    tenant = await load_tenant(db, ids, collectors=COLLECTORS)
    invoices = await load_open_invoices(db, ids, tenant, stops, today=today)
    open_stops = await load_open_stops(db, ids, tenant, invoices, today)
    actors = {s.id: s for s in await Staff.filter(tenant_id=tenant.tenant_id)}
    return Side(tenant, open_stops, actors)


# --- ours -----------------------------------------------------------------------------------


async def collect_ours(side: Side, stops: list[tuple[int, int]]) -> None:
    for assignment_id, collector_id in stops:
        await mark_collected(
            side.actors[collector_id],
            assignment_id=assignment_id,
            idempotency_key=f"ours-{assignment_id}",
        )


# --- the ceiling: the same statements, raw --------------------------------------------------


async def collect_raw(s: RawSession, tenant_id: int, actor_id: int, assignment_id: int) -> None:
    """What `mark_collected` sends for a full cash collection, statement by statement."""
    key = f"raw-{assignment_id}"
    await s.begin()
    row = await s.fetchrow(STOP_FOR_COLLECTION_SQL, assignment_id, tenant_id)
    if row["status"] != "assigned" or row["collector_id"] != actor_id:
        raise SystemExit(f"the ceiling's stop {assignment_id} is not open for its collector")
    now = utcnow()
    today = local_today(now, row["timezone"])
    invoice_id, subscriber_id, collector_id = row["invoice_id"], row["subscriber_id"], actor_id
    paid = row["paid_minor"]
    amount = row["amount_minor"] - paid
    commission = commission_on(amount, row["commission_bp"])
    payment_id = await s.insert(
        RAW_SQL["payment"],
        *(amount, "cash", now, "", "", key, utcnow(), collector_id, invoice_id),
        *(actor_id, None, subscriber_id, tenant_id),
    )
    closed = await s.execute(
        RAW_SQL["close_stop"],
        *("collected", now, today, amount, commission, payment_id, assignment_id, "assigned"),
    )
    raised = await s.execute(RAW_SQL["raise_paid"], amount, "paid", invoice_id, paid)
    if closed != 1 or raised != 1:
        raise SystemExit(f"the ceiling lost a race on stop {assignment_id}")
    posting_id = await s.insert(
        RAW_SQL["posting"],
        *("collection", row["number"], None, utcnow(), actor_id, invoice_id, payment_id),
        tenant_id,
    )
    await s.executemany(
        RAW_SQL["legs"],
        [
            ("collector_cash", amount, posting_id, collector_id, None, tenant_id),
            ("receivable", -amount, posting_id, None, subscriber_id, tenant_id),
            ("commission_expense", commission, posting_id, None, None, tenant_id),
            ("commission_payable", -commission, posting_id, collector_id, None, tenant_id),
        ],
    )
    expiry = extend_expiry(as_date(row["expiry_date"]), today, row["period_months"])
    status = "active" if row["subscriber_status"] == "suspended" else row["subscriber_status"]
    await s.execute(RAW_SQL["renew"], expiry, status, 0, subscriber_id)
    await s.insert(
        RAW_SQL["outbox"],
        *("whatsapp", "receipt", row["phone"], json.dumps({"payment_id": payment_id})),
        *(f"receipt:{payment_id}", "pending", 0, None, None, None, utcnow(), None),
        *(invoice_id, payment_id, tenant_id),
    )
    details = {
        "assignment_id": assignment_id,
        "payment_id": payment_id,
        "amount_minor": amount,
        "method": "cash",
    }
    await s.insert(
        RAW_SQL["audit"],
        *("staff", "assignment.collect", "invoice", invoice_id, utcnow(), None, None, None),
        *("", "", json.dumps(details), actor_id, tenant_id),
    )
    await s.commit()


async def collect_raw_many(s: RawSession, side: Side, stops: list[tuple[int, int]]) -> None:
    for assignment_id, collector_id in stops:
        await collect_raw(s, side.tenant.tenant_id, collector_id, assignment_id)


# --- the run --------------------------------------------------------------------------------


@dataclass
class Contender:
    """One way of collecting, its own data set, and the seconds it spent on timed stops."""

    name: str
    side: Side
    collect: Callable[[list[tuple[int, int]]], Awaitable[None]]
    seconds: float = 0.0


async def check_statement_count(ours: Side, raw: Side, s: RawSession) -> str:
    """Ours must still send what the ceiling replays; a changed service needs a new ceiling.

    Collects the first stop of each side, so it doubles as the first warm-up call.
    """
    with captured_statements() as sent:
        await collect_ours(ours, ours.stops[:1])
    before = s.statements
    await collect_raw_many(s, raw, raw.stops[:1])
    if len(sent) != s.statements - before:
        raise SystemExit(
            f"mark_collected now sends {len(sent)} statements, the ceiling "
            f"{s.statements - before}: update collect_raw to mirror the service"
        )
    return f"{len(sent)} statements ({statement_kinds(sent)})"


async def run_rounds(contenders: list[Contender], collections: int) -> None:
    """Warm each up, then time them chunk by chunk, rotating who goes first."""
    for c in contenders:
        await c.collect(c.side.stops[1:WARMUP])
    chunk = -(-collections // ROUNDS)
    for n, start in enumerate(range(WARMUP, WARMUP + collections, chunk)):
        for c in contenders[n % len(contenders) :] + contenders[: n % len(contenders)]:
            began = clock()
            await c.collect(c.side.stops[start : start + chunk])
            c.seconds += clock() - began


async def written_rows(s: RawSession, tenant_id: int) -> tuple[int, ...]:
    """What a side left behind: rows per table, and renewed subscribers."""
    counts = []
    for table in ("payment", "ledger_posting", "ledger_leg", "outbox_message", "audit_log"):
        row = await s.fetchrow(f"SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = ?", tenant_id)
        counts.append(int(row["n"]))
    row = await s.fetchrow(
        "SELECT COUNT(*) AS n FROM subscriber WHERE tenant_id = ? AND status = 'active'"
        " AND expiry_date > ?",
        tenant_id,
        local_today(utcnow(), "Asia/Dhaka"),
    )
    return (*counts, int(row["n"]))


async def bench_backend(backend: str, collections: int) -> Comparison:
    today = local_today(utcnow(), "Asia/Dhaka")
    async with throwaway_database(backend) as db, raw_session(db) as s:
        ids = Ids()
        count = 3 if backend == "sqlite" else 2  # SQLite: one more for the aiosqlite diagnostic
        sides = [await prepare(db, ids, collections + WARMUP, today) for _ in range(count)]
        kinds = await check_statement_count(sides[0], sides[1], s)
        contenders = [
            Contender("ours", sides[0], partial(collect_ours, sides[0])),
            Contender("raw", sides[1], partial(collect_raw_many, s, sides[1])),
        ]
        async with AsyncExitStack() as stack:
            if backend == "sqlite":  # the same statements through Tortoise's driver
                aio = await stack.enter_async_context(aiosqlite_session(db))
                await collect_raw_many(aio, sides[2], sides[2].stops[:1])
                aio_collect = partial(collect_raw_many, aio, sides[2])
                contenders.append(Contender("aiosqlite", sides[2], aio_collect))
            await run_rounds(contenders, collections)
        written = {await written_rows(s, c.side.tenant.tenant_id) for c in contenders}
        if len(written) != 1:
            raise SystemExit(f"the contenders wrote different rows: {written}")
    say(f"{backend}: each collection sends {kinds} + BEGIN/COMMIT, ours and the ceiling alike")
    per_call = {c.name: f"{1000 * c.seconds / collections:.2f} ms" for c in contenders}
    note = f"{collections:,} each; per collection " + ", ".join(
        f"{name} {ms}" for name, ms in per_call.items()
    )
    rate = {c.name: collections / c.seconds for c in contenders}
    return Comparison(
        backend, "collections/s", rate["ours"], rate["raw"], rate["ours"] / rate["raw"], GOAL, note
    )


async def main() -> None:
    args = parse_args(
        __doc__ or "",
        size_flag="--collections",
        size_default=2_000,
        size_help="collections per side (default 2,000)",
    )
    backends = chosen_backends(args.backend)
    say(f"machine: {await describe_machine(backends)}")
    results = [await bench_backend(b, args.collections) for b in backends]
    print_table("mark_collected vs the same statements raw", results, "ours/raw")


if __name__ == "__main__":
    run(main)
