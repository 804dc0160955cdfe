"""run_dunning_day: a day's dunning over 1,000,000 invoices, against set-based raw SQL.

Data (PostgreSQL only): two identical tenants, one for each side, each with `--invoices`
invoices (default 1,000,000) of `--invoices`/2 subscribers, in mixed states as a live ISP
has them on the day: 45 % paid, 5 % cancelled, 3 % drafts, 12 % partly paid, 35 % unpaid,
issued over the last 75 days on two customer classes (Home: net 30, notice 3 days before
the due date, a flat 50 taka fee above a 100 taka threshold; Business: net 15, notice 5
days ahead, a 2 % fee) and none; reminders every 3 days (a tenth every 7), a few overdue
from days the clock was down; 40 % of the subscribers' first invoices with suspension and
half of those with deletion dates (subscribers suspended or terminated once theirs
passed), 4 % renewals with a pending request and a cancellation date; the late fees of
earlier days already charged (their debit notes loaded, reminded every 5 days). 2 % of the
numbers are landlines, 1 % missing; a quarter of the subscribers read Bengali or Arabic.
Loaded with COPY, then vacuumed and analysed.

Ours: `run_dunning_day` for the first tenant, in a child process (so the loader's memory
does not count), timed around the call; its peak resident memory (`VmHWM`) is the whole
process's, interpreter and imports included.

Ceiling: the same marking for the second tenant as set-based SQL in one transaction through
asyncpg (`CEILING_SQL`): one statement computes every invoice's actions by the same
rules, then an UPDATE or INSERT ... SELECT per kind of action (reminders moved and queued,
notices and warnings queued, debit notes with their postings and legs, subscribers
suspended and terminated with audit rows, requests cancelled with reversing postings).
The ceiling's texts are English, put together by SQL; it knows landlines by their prefix
(the data's) where ours asks libphonenumber. The bench checks that both sides wrote the
same: messages per kind and status, invoices per kind and status, next reminder dates,
subscribers per status, ledger sums per account, audit rows per action.

Goals: raw/ours >= 0.2 (ours as a fraction of the ceiling's speed) and a peak of at most
300 MB for the process doing our run.

    .venv/bin/python -m bench.dunning [--invoices 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench.common import (
    LOADED_AT,
    BenchDatabase,
    Comparison,
    Ids,
    bulk_load,
    clock,
    describe_machine,
    invoice_row,
    print_table,
    raw_postgres,
    run,
    say,
    subscriber_row,
    throwaway_database,
)

GOAL = 0.2
MEMORY_GOAL_MB = 300
TODAY = date(2026, 12, 15)
NOW = datetime(2026, 12, 15, 3, 0, tzinfo=UTC)  # 9:00 in Dhaka
SEED = 2026


# --- the data set ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantData:
    tenant_id: int
    home_id: int
    business_id: int
    plan_id: int
    subscribers: int
    invoices: int
    debit_notes: int


def _classes(ids: Ids, tenant_id: int) -> tuple[int, int, list[dict[str, Any]]]:
    home, business = ids.one("customer_class"), ids.one("customer_class")
    common = {"tenant_id": tenant_id, "reminder_days": None, "suspend_after_days": None,
              "terminate_after_days": None}  # fmt: skip
    return (
        home,
        business,
        [
            common | {"id": home, "name": "Home", "net_days": 30, "out_of_turn_net_days": 6,
                      "pre_due_notice_days": 3, "late_fee_flat_minor": 5_000, "late_fee_bp": 0,
                      "collection_threshold_minor": 10_000, "warning_days": 3},
            common | {"id": business, "name": "Business", "net_days": 15,
                      "out_of_turn_net_days": 6, "pre_due_notice_days": 5,
                      "late_fee_flat_minor": 0, "late_fee_bp": 200,
                      "collection_threshold_minor": 0, "warning_days": 5},
        ],
    )  # fmt: skip


# Columns `invoice_row` leaves out. Every row names them: `bulk_load` takes the columns
# from the first row and fills the others with defaults that win over a later row's value.
NOT_A_REQUEST = {"system_generated": False, "request_status": None, "late_fee_for_id": None}

# What the classes above say, for the generator (class index: 0 Home, 1 Business, 2 none).
NET_DAYS = (30, 15, 30)
THRESHOLD = (10_000, 0, 0)


def _fee(class_index: int, due_minor: int) -> int:
    if class_index == 0:
        return 5_000
    if class_index == 1:
        return (due_minor * 200 + 5_000) // 10_000
    return 0


class _Generator:
    """One tenant's subscribers and invoices from a fixed seed, so both tenants get the same
    data. Invoices stream (to COPY); the subscribers' statuses follow from their first
    invoice's dates, so subscribers are written after the invoices; so are the debit notes
    of fees charged on earlier days (collected on the way: a few percent of the rows)."""

    def __init__(self, ids: Ids, tenant: int, plan: int, classes: tuple[int, int], count: int):
        self.rng = random.Random(SEED)
        self.ids, self.tenant, self.plan, self.classes = ids, tenant, plan, classes
        self.sub_ids = ids.take("subscriber", count // 2)
        self.inv_ids = ids.take("invoice", count)
        self.status = ["active"] * len(self.sub_ids)
        self.fees: list[dict[str, Any]] = []

    @staticmethod
    def class_index(n: int) -> int:
        return 0 if n % 10 < 6 else 1 if n % 10 < 9 else 2

    def subscribers(self) -> Iterator[dict[str, Any]]:
        first = self.sub_ids[0]
        for s in self.sub_ids:
            n = s - first
            phone = (
                None if n % 100 == 0 else f"+88029{n % 1_000_000:06d}" if n % 50 == 1
                else f"+88017{n:08d}"
            )  # fmt: skip
            yield subscriber_row(s, self.tenant, plan_id=self.plan, expiry_date=None) | {
                "phone": phone,
                "language": None if n % 20 < 14 else "bn" if n % 20 < 19 else "ar",
                "customer_class_id": (*self.classes, None)[self.class_index(n)],
                "name": f"Subscriber {n}",
                "status": self.status[n],
            }

    def invoices(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        for k, invoice_id in enumerate(self.inv_ids):
            n = k // 2
            s = self.sub_ids[n]
            class_index = self.class_index(n)
            u = rng.random()
            status = (
                "paid" if u < 0.45 else "cancelled" if u < 0.50 else "draft" if u < 0.53
                else "partial" if u < 0.65 else "unpaid"
            )  # fmt: skip
            amount = rng.choice((80_000, 100_000, 150_000, 200_000, 300_000))
            paid = {"paid": amount, "partial": amount - rng.choice((5_000, 20_000, 50_000))}
            paid_minor = paid.get(status, 0)
            issue = TODAY - timedelta(days=rng.randrange(0, 75))
            due = issue + timedelta(days=NET_DAYS[class_index])
            every = 7 if rng.random() < 0.1 else 3
            if rng.random() < 0.03:  # the clock was down on its day: overdue for a reminder
                next_on = TODAY - timedelta(days=rng.randrange(1, 6))
            else:
                next_on = TODAY + timedelta(days=rng.randrange(0, every))
            row = invoice_row(
                invoice_id,
                self.tenant,
                s,
                amount_minor=amount,
                issue_date=issue,
                paid_minor=paid_minor,
                status=status,
            ) | {
                "due_date": due,
                "reminder_days": None if status == "draft" else every,
                "next_reminder_on": None if status == "draft" else next_on,
                **NOT_A_REQUEST,
            }
            collectible = status in ("unpaid", "partial")
            if status == "unpaid" and rng.random() < 0.04:
                row |= {
                    "system_generated": True,
                    "request_status": "pending",
                    "request_cancellation_on": TODAY + timedelta(days=rng.randrange(0, 10)),
                }
            if k % 2 == 0 and collectible and rng.random() < 0.4:
                row["suspension_on"] = due + timedelta(days=10)
                if rng.random() < 0.5:
                    row["deletion_on"] = due + timedelta(days=40)
                if row.get("deletion_on") and row["deletion_on"] < TODAY:
                    self.status[n] = "terminated"
                elif row["suspension_on"] < TODAY:
                    self.status[n] = "suspended"
            due_minor = amount - paid_minor
            fee = _fee(class_index, due_minor)
            if (
                collectible
                and due <= TODAY - timedelta(days=2)
                and fee > 0
                and due_minor > THRESHOLD[class_index]
            ):
                self.fees.append(self._fee_note(row, s, fee, due))
            yield row

    def _fee_note(self, row: dict[str, Any], s: int, fee: int, due: date) -> dict[str, Any]:
        issue = due + timedelta(days=1)
        return invoice_row(0, self.tenant, s, amount_minor=fee, issue_date=issue) | {
            **NOT_A_REQUEST,
            "number": f"{row['number']}-LF",
            "kind": "debit_note",
            "purpose": "late_fee",
            "due_date": issue + timedelta(days=6),
            "reminder_days": 5,
            "next_reminder_on": TODAY + timedelta(days=self.rng.randrange(0, 5)),
            "system_generated": True,
            "late_fee_for_id": row["id"],
        }

    def debit_notes(self) -> Iterator[dict[str, Any]]:
        ids = self.ids.take("invoice", len(self.fees))
        for note, note_id in zip(self.fees, ids, strict=True):
            yield note | {"id": note_id}


async def load_tenant_data(db: BenchDatabase, ids: Ids, count: int) -> TenantData:
    tenant = ids.one("tenant")
    plan = ids.one("plan")
    await bulk_load(
        db,
        "tenant",
        [{"id": tenant, "name": f"Bench ISP {tenant}", "currency": "BDT", "country": "BD",
          "timezone": "Asia/Dhaka", "locale": "en", "created_at": LOADED_AT}],
    )  # fmt: skip
    home, business, class_rows = _classes(ids, tenant)
    await bulk_load(db, "customer_class", class_rows)
    await bulk_load(
        db,
        "plan",
        [{"id": plan, "tenant_id": tenant, "name": "10 Mbps", "price_minor": 150_000,
          "period_months": 1, "reminder_days": 3}],
    )  # fmt: skip
    data = _Generator(ids, tenant, plan, (home, business), count)
    invoices = await bulk_load(db, "invoice", data.invoices())
    notes = await bulk_load(db, "invoice", data.debit_notes())
    subscribers = await bulk_load(db, "subscriber", data.subscribers())
    return TenantData(tenant, home, business, plan, subscribers, invoices, notes)


# --- the ceiling: the same marking, set-based, raw --------------------------------------------

# $1 tenant, $2 today, $3 now, $4 the tenant's name. Every statement runs in one transaction.
CEILING_SQL = (
    """
CREATE TEMP TABLE dun (
    id int, number text, kind text, subscriber_id int, due_minor bigint, due_date date,
    suspension_on date, deletion_on date, name text, phone text, sub_status text,
    fee_net int, fee bigint, over bool, cancel bool, pre_due bool, reminder bool,
    late_fee bool, suspension_warning bool, suspend bool, deletion_warning bool,
    terminate bool
) ON COMMIT DROP
""",
    # Every collectible invoice's actions, by the rules of core/domain/dunning.py.
    """
INSERT INTO dun
SELECT * FROM (
  SELECT i.id, i.number, i.kind, i.subscriber_id, i.amount_minor - i.paid_minor,
         i.due_date, i.suspension_on, i.deletion_on, s.name, s.phone, s.status,
         COALESCE(c.out_of_turn_net_days, 6), x.fee, x.over, x.cancel,
         NOT x.cancel AND COALESCE(i.due_date = $2::date + c.pre_due_notice_days, false)
           AS pre_due,
         NOT x.cancel AND i.request_status IS DISTINCT FROM 'pending'
           AND COALESCE(i.reminder_days > 0 AND COALESCE(i.next_reminder_on,
               i.issue_date + i.reminder_days) <= $2, false) AS reminder,
         NOT x.cancel AND x.over AND i.due_date < $2 AND i.kind = 'invoice' AND x.fee > 0
           AND NOT EXISTS (SELECT 1 FROM invoice f WHERE f.late_fee_for_id = i.id)
           AS late_fee,
         NOT x.cancel AND s.status <> 'terminated' AND x.over
           AND COALESCE(i.suspension_on - x.warn = $2, false) AS suspension_warning,
         NOT x.cancel AND s.status = 'active' AND x.over
           AND COALESCE(i.suspension_on <= $2, false) AS suspend,
         NOT x.cancel AND s.status <> 'terminated'
           AND COALESCE(i.deletion_on - x.warn = $2, false) AS deletion_warning,
         NOT x.cancel AND s.status <> 'terminated' AND COALESCE(i.deletion_on <= $2, false)
           AS terminate
  FROM invoice i
  JOIN subscriber s ON s.id = i.subscriber_id
  LEFT JOIN customer_class c ON c.id = s.customer_class_id
  CROSS JOIN LATERAL (SELECT
      COALESCE(i.request_cancellation_on <= $2 AND i.request_status = 'pending'
               AND i.system_generated AND i.paid_minor = 0, false) AS cancel,
      i.amount_minor - i.paid_minor > COALESCE(c.collection_threshold_minor, 0) AS over,
      COALESCE(c.warning_days, 3) AS warn,
      COALESCE(c.late_fee_flat_minor, 0) + ((i.amount_minor - i.paid_minor)
          * COALESCE(c.late_fee_bp, 0) + 5000) / 10000 AS fee) x
  WHERE i.tenant_id = $1 AND i.status IN ('unpaid', 'partial')
    AND i.amount_minor > i.paid_minor
) d
WHERE cancel OR pre_due OR reminder OR late_fee OR suspension_warning OR suspend
   OR deletion_warning OR terminate
""",
    # Statistics, so the planner joins the (small) action list to invoices by their key.
    "ANALYZE dun",
    # Requests cancelled: the invoice, its reversing posting, open stops, audit.
    """
WITH c AS (
  UPDATE invoice i SET status = 'cancelled', request_status = 'cancelled',
         request_cancellation_on = NULL
  FROM dun d WHERE d.cancel AND i.id = d.id AND i.status = 'unpaid' AND i.paid_minor = 0
    AND i.request_status = 'pending'
  RETURNING i.id, i.number, i.subscriber_id, i.amount_minor
), p AS (
  INSERT INTO ledger_posting (tenant_id, kind, memo, invoice_id, idempotency_key, created_at)
  SELECT $1, 'invoice_cancelled', c.number, c.id, 'cancel:' || c.id, $3 FROM c
  RETURNING id, invoice_id
), legs AS (
  INSERT INTO ledger_leg (tenant_id, posting_id, account, subscriber_id, amount_minor)
  SELECT $1, p.id, l.account, l.subscriber_id, l.amount
  FROM p JOIN c ON c.id = p.invoice_id
  CROSS JOIN LATERAL (VALUES ('receivable', c.subscriber_id, -c.amount_minor),
                             ('revenue', NULL::int, c.amount_minor))
       AS l(account, subscriber_id, amount)
), stops AS (
  UPDATE assignment SET status = 'removed', open_invoice_id = NULL, closed_at = $3,
         closed_on = $2
  WHERE open_invoice_id IN (SELECT id FROM c)
)
INSERT INTO audit_log (tenant_id, actor_kind, action, object_type, object_id, at,
                       remote_addr, user_agent, details)
SELECT $1, 'system', 'invoice.cancel_request', 'invoice', c.id, $3, '', '',
       jsonb_build_object('number', c.number, 'day', $2::date::text)
FROM c
""",
    # Terminations, then suspensions (a subscriber due both ends terminated).
    """
WITH t AS (
  UPDATE subscriber s SET status = 'terminated'
  WHERE s.id IN (SELECT subscriber_id FROM dun WHERE terminate) AND s.status <> 'terminated'
  RETURNING s.id
), d AS (
  SELECT DISTINCT ON (subscriber_id) subscriber_id, id, number FROM dun WHERE terminate
  ORDER BY subscriber_id, id DESC
)
INSERT INTO audit_log (tenant_id, actor_kind, action, object_type, object_id, at,
                       remote_addr, user_agent, details)
SELECT $1, 'system', 'subscriber.terminate', 'subscriber', t.id, $3, '', '',
       jsonb_build_object('invoice_id', d.id, 'number', d.number, 'day', $2::date::text)
FROM t JOIN d ON d.subscriber_id = t.id
""",
    """
WITH t AS (
  UPDATE subscriber s SET status = 'suspended'
  WHERE s.id IN (SELECT subscriber_id FROM dun WHERE suspend) AND s.status = 'active'
  RETURNING s.id
), d AS (
  SELECT DISTINCT ON (subscriber_id) subscriber_id, id, number FROM dun WHERE suspend
  ORDER BY subscriber_id, id DESC
)
INSERT INTO audit_log (tenant_id, actor_kind, action, object_type, object_id, at,
                       remote_addr, user_agent, details)
SELECT $1, 'system', 'subscriber.suspend', 'subscriber', t.id, $3, '', '',
       jsonb_build_object('invoice_id', d.id, 'number', d.number, 'day', $2::date::text)
FROM t JOIN d ON d.subscriber_id = t.id
""",
    # Late fees: debit notes, their postings and legs, audit.
    """
WITH n AS (
  INSERT INTO invoice (tenant_id, subscriber_id, number, kind, purpose, amount_minor,
                       paid_minor, status, issue_date, due_date, reminder_days,
                       next_reminder_on, failed_visits, system_generated, late_fee_for_id,
                       created_at)
  SELECT $1, subscriber_id, number || '-LF', 'debit_note', 'late_fee', fee, 0, 'unpaid', $2,
         $2::date + fee_net, 5, $2::date + 5, 0, true, id, $3
  FROM dun WHERE late_fee
  ON CONFLICT DO NOTHING
  RETURNING id, number, subscriber_id, amount_minor, late_fee_for_id
), p AS (
  INSERT INTO ledger_posting (tenant_id, kind, memo, invoice_id, idempotency_key, created_at)
  SELECT $1, 'invoice_issued', n.number, n.id, 'late_fee:' || n.late_fee_for_id, $3 FROM n
  RETURNING id, invoice_id
), legs AS (
  INSERT INTO ledger_leg (tenant_id, posting_id, account, subscriber_id, amount_minor)
  SELECT $1, p.id, l.account, l.subscriber_id, l.amount
  FROM p JOIN n ON n.id = p.invoice_id
  CROSS JOIN LATERAL (VALUES ('receivable', n.subscriber_id, n.amount_minor),
                             ('revenue', NULL::int, -n.amount_minor))
       AS l(account, subscriber_id, amount)
)
INSERT INTO audit_log (tenant_id, actor_kind, action, object_type, object_id, at,
                       remote_addr, user_agent, details)
SELECT $1, 'system', 'invoice.late_fee', 'invoice', n.late_fee_for_id, $3, '', '',
       jsonb_build_object('debit_note_id', n.id, 'number', n.number,
                          'amount_minor', n.amount_minor)
FROM n
""",
    # Reminders: the next one moves on; a text for each moved (numbers only).
    """
WITH m AS (
  UPDATE invoice i SET next_reminder_on = $2::date + i.reminder_days
  FROM dun d
  WHERE d.reminder AND i.id = d.id AND i.status IN ('unpaid', 'partial')
    AND (i.next_reminder_on IS NULL OR i.next_reminder_on <= $2)
  RETURNING i.id
)
INSERT INTO outbox_message (tenant_id, channel, kind, recipient, invoice_id, payload,
                            dedupe_key, status, attempts, last_error, created_at)
SELECT $1, 'whatsapp', 'reminder', d.phone, d.id,
       jsonb_build_object('text',
         'Dear ' || d.name || ', ৳' || to_char(d.due_minor / 100, 'FM999,999,990')
         || ' is still due on invoice ' || d.number
         || CASE WHEN d.due_date < $2 THEN ', which was due on ' ELSE ', due on ' END
         || to_char(d.due_date, 'FMDD FMMonth YYYY') || '.'
         || CASE WHEN d.suspension_on > $2 AND d.over AND d.sub_status = 'active'
                 THEN E'\nUnless it is paid in full, your service will be suspended on '
                      || to_char(d.suspension_on, 'FMDD FMMonth YYYY') || '.' ELSE '' END
         || CASE WHEN d.deletion_on > $2 AND d.sub_status <> 'terminated'
                 THEN E'\nUnless it is paid in full, your account will be closed on '
                      || to_char(d.deletion_on, 'FMDD FMMonth YYYY') || '.' ELSE '' END
         || E'\nAlready paid? Please ignore this message.\n\n' || $4::text),
       'reminder:' || d.id || ':' || $2::date::text,
       CASE WHEN d.phone LIKE '+8802%' THEN 'refused' ELSE 'pending' END, 0,
       CASE WHEN d.phone LIKE '+8802%'
            THEN d.phone || ' is a landline, which cannot receive WhatsApp' END, $3
FROM dun d JOIN m ON m.id = d.id
WHERE d.phone IS NOT NULL AND d.phone <> ''
ON CONFLICT DO NOTHING
""",
    # The pre-due notices and the warnings.
    """
INSERT INTO outbox_message (tenant_id, channel, kind, recipient, invoice_id, payload,
                            dedupe_key, status, attempts, last_error, created_at)
SELECT $1, 'whatsapp', k.kind, d.phone, d.id, jsonb_build_object('text', k.text),
       k.kind || ':' || d.id || ':' || $2::date::text,
       CASE WHEN d.phone LIKE '+8802%' THEN 'refused' ELSE 'pending' END, 0,
       CASE WHEN d.phone LIKE '+8802%'
            THEN d.phone || ' is a landline, which cannot receive WhatsApp' END, $3
FROM dun d
CROSS JOIN LATERAL (VALUES
  ('pre_due_notice', d.pre_due,
   'Dear ' || d.name || ', invoice ' || d.number || ' for ৳'
   || to_char(d.due_minor / 100, 'FM999,999,990') || ' is due on '
   || to_char(d.due_date, 'FMDD FMMonth YYYY')
   || E'. Please pay by then to keep your service running.\n\n' || $4::text),
  ('suspension_warning', d.suspension_warning,
   'Dear ' || d.name || ', ৳' || to_char(d.due_minor / 100, 'FM999,999,990')
   || ' is still due on invoice ' || d.number || '. Your service will be suspended on '
   || to_char(d.suspension_on, 'FMDD FMMonth YYYY')
   || E' unless the invoice is paid in full before then.\n\n' || $4::text),
  ('deletion_warning', d.deletion_warning,
   'Dear ' || d.name || ', ৳' || to_char(d.due_minor / 100, 'FM999,999,990')
   || ' is still due on invoice ' || d.number || '. Your account will be closed for good on '
   || to_char(d.deletion_on, 'FMDD FMMonth YYYY')
   || E' unless the invoice is paid in full before then. A closed account cannot be'
   || E' restored.\n\n' || $4::text)
) AS k(kind, due, text)
WHERE k.due AND d.phone IS NOT NULL AND d.phone <> ''
ON CONFLICT DO NOTHING
""",
)


async def run_ceiling(db: BenchDatabase, tenant: TenantData) -> float:
    """The ceiling's day for `tenant`, timed (connecting is not part of the work)."""
    async with raw_postgres(db) as conn:
        name = await conn.fetchval("SELECT name FROM tenant WHERE id = $1", tenant.tenant_id)
        params = {1: tenant.tenant_id, 2: TODAY, 3: NOW, 4: name}
        began = clock()
        async with conn.transaction():
            for sql in CEILING_SQL:
                used = max((n for n in params if f"${n}" in sql), default=0)
                await conn.execute(sql, *(params[n] for n in range(1, used + 1)))
        return clock() - began


# --- ours, in a child process ---------------------------------------------------------------


def _vm(field: str) -> float:
    """A `/proc/self/status` memory figure in MB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _child(url: str, tenant_id: int) -> None:
    """Run our day for one tenant and print what it took, as JSON on stdout."""
    from dataclasses import asdict

    from core.db.orm import close_database, open_database
    from core.services.dunning import run_dunning_day

    await open_database(url)
    rss_before = _vm("VmRSS")
    began = clock()
    result = await run_dunning_day(tenant_id=tenant_id, day=TODAY, worker="bench", now=NOW)
    seconds = clock() - began
    await close_database()
    assert result is not None
    # VmHWM, not getrusage's ru_maxrss: on Linux ru_maxrss survives execve and starts from
    # the forking parent's peak (here the loader's); VmHWM belongs to this address space.
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": _vm("VmHWM"),
                "rss_before_mb": rss_before,
                "stats": asdict(result.stats),
            }
        )
    )


async def run_ours(db: BenchDatabase, tenant: TenantData) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.dunning",
        "--child",
        db.url,
        str(tenant.tenant_id),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"our run failed (exit {process.returncode})")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


# --- the run --------------------------------------------------------------------------------

WRITTEN_SQL = """
SELECT 'outbox ' || kind || ' ' || status, COUNT(*) FROM outbox_message
 WHERE tenant_id = $1 GROUP BY 1
UNION ALL SELECT 'invoice ' || kind || ' ' || status, COUNT(*) FROM invoice
 WHERE tenant_id = $1 GROUP BY 1
UNION ALL SELECT 'next reminder ' || COALESCE(next_reminder_on::text, '-'), COUNT(*)
 FROM invoice WHERE tenant_id = $1 GROUP BY 1
UNION ALL SELECT 'subscriber ' || status, COUNT(*) FROM subscriber WHERE tenant_id = $1
 GROUP BY 1
UNION ALL SELECT 'ledger ' || account, SUM(amount_minor) FROM ledger_leg
 WHERE tenant_id = $1 GROUP BY 1
UNION ALL SELECT 'postings ' || kind, COUNT(*) FROM ledger_posting WHERE tenant_id = $1
 GROUP BY 1
UNION ALL SELECT 'audit ' || action, COUNT(*) FROM audit_log WHERE tenant_id = $1 GROUP BY 1
"""


async def written(db: BenchDatabase, tenant_id: int) -> dict[str, int]:
    async with raw_postgres(db) as conn:
        return {r[0]: int(r[1]) for r in await conn.fetch(WRITTEN_SQL, tenant_id)}


async def warm_up(db: BenchDatabase) -> None:
    """Read both tenants' rows once, so neither side pays for the first read from disk."""
    async with raw_postgres(db) as conn:
        for table in ("invoice", "subscriber", "customer_class", "tenant"):
            await conn.fetchval(f"SELECT COUNT(*) FROM {table}")


async def bench(invoices: int) -> None:
    say(f"machine: {await describe_machine(['postgres'])}")
    async with throwaway_database("postgres") as db:
        ids = Ids()
        began = clock()
        ours_tenant = await load_tenant_data(db, ids, invoices)
        raw_tenant = await load_tenant_data(db, ids, invoices)
        say(
            f"loaded 2 tenants x {ours_tenant.invoices:,} invoices"
            f" + {ours_tenant.debit_notes:,} debit notes, {ours_tenant.subscribers:,}"
            f" subscribers each, in {clock() - began:.0f} s"
        )
        before = await written(db, ours_tenant.tenant_id)
        await warm_up(db)
        ours = await run_ours(db, ours_tenant)
        raw = await run_ceiling(db, raw_tenant)
        ours_written = await written(db, ours_tenant.tenant_id)
        raw_written = await written(db, raw_tenant.tenant_id)
    if ours_written != raw_written:
        differ = sorted(
            (k, ours_written.get(k), raw_written.get(k))
            for k in ours_written.keys() | raw_written.keys()
            if ours_written.get(k) != raw_written.get(k)
        )
        raise SystemExit(f"ours and the ceiling did not write the same: {differ}")
    stats = ours["stats"]
    say(
        f"the day: {stats['checked']:,} candidates in {stats['batches']} batches;"
        f" {stats['reminders']:,} reminders, {stats['pre_due_notices']:,} pre-due notices,"
        f" {stats['suspension_warnings'] + stats['deletion_warnings']:,} warnings"
        f" ({stats['refused']:,} refused, {stats['no_phone']:,} without a number);"
        f" {stats['late_fees']:,} late fees, {stats['suspensions']:,} suspensions,"
        f" {stats['terminations']:,} terminations, {stats['cancellations']:,} cancellations"
    )
    changed = sum(1 for k in ours_written if ours_written[k] != before.get(k))
    say(f"both sides wrote the same ({changed} figures changed by the day, all equal)")
    seconds = float(ours["seconds"])
    print_table(
        "run_dunning_day vs set-based raw SQL doing the same marking",
        [
            Comparison(
                "postgres",
                "seconds",
                seconds,
                raw,
                raw / seconds,
                GOAL,
                f"{invoices:,} invoices, one run each",
            )
        ],
        "raw/ours",
    )
    peak = float(ours["peak_mb"])
    met = "yes" if peak <= MEMORY_GOAL_MB else "NO"
    print(
        f"\npeak resident memory of the process doing our run: {peak:.0f} MB"
        f" (goal <= {MEMORY_GOAL_MB} MB, met: {met}); {float(ours['rss_before_mb']):.0f} MB"
        " before the run (interpreter, imports, ORM)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument(
        "--invoices", type=int, default=1_000_000, help="invoices per side (default 1,000,000)"
    )
    parser.add_argument("--child", nargs=2, metavar=("URL", "TENANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, tenant = args.child
        asyncio.run(_child(url, int(tenant)))
        return

    async def go() -> None:
        await bench(args.invoices)

    run(go)


if __name__ == "__main__":
    main()
