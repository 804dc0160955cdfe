"""The dunning clock: one tenant's daily run, which tenants are due one, and the admins'
daily summary.

`run_dunning_day` is the scheduler's job (collectbot/scheduler.py), once a day per tenant at
the tenant's `dunning_hour`. It asks the pure rules (`core.domain.dunning.actions_due`) what
is due for each collectible invoice and carries it out:

    reminder            text queued; next_reminder_on moves one interval on
    pre-due notice      text queued
    late fee            a debit note (`<number>-LF`, purpose late_fee, due on the class's
                        out-of-turn terms, reminded every 5 days) and its receivable posting
    suspension warning  text queued
    suspend             subscriber active -> suspended (audited, actor "system")
    deletion warning    text queued
    terminate           subscriber -> terminated (audited; nothing undoes it)
    cancel request      invoice and its request -> cancelled, its receivable reversed, any
                        open route stop taken off (audited)

Invariants:
- One run per tenant and day: the run is claimed by inserting `JobRun("dunning", tenant,
  day)` (UNIQUE); a second process gets None. A process that was down for days runs once,
  for the day it is asked about: reminders catch up because they are due when
  `next_reminder_on <= today`, suspensions and deletions when their date has passed. A
  claim whose run never finished (the process died) may be taken over after
  `STALE_CLAIM`.
- Every action is idempotent by itself too, so carrying a day out twice (a takeover after
  a crash mid-run) does nothing twice: texts have a dedupe key per invoice, kind and day;
  next_reminder_on moves by a conditional UPDATE (only if due); a fee's debit note is
  UNIQUE per invoice (`late_fee_for`) and its posting by idempotency key; subscribers and
  cancelled invoices change by conditional UPDATEs, and only what changed is audited.
- Bounded memory and time: invoices are read in keyset batches of `BATCH` by id, up to the
  highest id at the start (a fee charged today is chased from tomorrow), each batch one
  transaction of a few set-based statements (`core.db.bulk`). The SQL narrows the batch
  to invoices something may be due for, on invoice columns only; the pure rules decide.
- Every issued invoice has its `invoice_issued` posting (billing, import, this run), so a
  cancellation reverses the receivable by posting the same legs with the signs swapped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.db.bulk import as_date, in_ids, insert_rows
from core.db.models import (
    CustomerClass,
    Invoice,
    JobRun,
    LedgerLeg,
    LedgerPosting,
    Staff,
    Tenant,
)
from core.db.sql import fetch
from core.documents.notices import (
    DELETION_WARNING,
    PRE_DUE_NOTICE,
    REMINDER,
    SUSPENSION_WARNING,
)
from core.domain import ledger
from core.domain.dates import utcnow
from core.domain.dunning import (
    Action,
    InvoiceState,
    Policy,
    actions_due,
    first_reminder_on,
    late_fee_minor,
)
from core.domain.status import (
    InvoiceKind,
    InvoicePurpose,
    InvoiceStatus,
    RequestStatus,
    Role,
    SubscriberStatus,
)
from core.domain.terms import DEBIT_NOTE_REMINDER_DAYS
from core.services.access import SYSTEM
from core.services.reminders import (
    Notice,
    Sender,
    audit_row,
    compose,
    dates_ahead,
    move_next_reminders,
    queue_notices,
    write_audit_rows,
)

JOB = "dunning"
BATCH = 1000
STALE_CLAIM = timedelta(hours=1)
LATE_FEE_SUFFIX = "-LF"

_TEXTS = {
    Action.PRE_DUE_NOTICE: PRE_DUE_NOTICE,
    Action.SUSPENSION_WARNING: SUSPENSION_WARNING,
    Action.DELETION_WARNING: DELETION_WARNING,
}


@dataclass
class DunningStats:
    """What one day's run did (stored in `JobRun.stats`)."""

    checked: int = 0  # invoices read as candidates
    batches: int = 0
    reminders: int = 0  # texts written, refused ones included
    pre_due_notices: int = 0
    suspension_warnings: int = 0
    deletion_warnings: int = 0
    refused: int = 0  # of the texts above, stored refused (a landline)
    no_phone: int = 0  # texts due to a subscriber without a number
    late_fees: int = 0
    late_fee_minor: int = 0
    suspensions: int = 0
    terminations: int = 0
    cancellations: int = 0
    stops_removed: int = 0


@dataclass(frozen=True)
class DunningDay:
    """A day's run that this call carried out."""

    tenant_id: int
    day: date
    worker: str
    stats: DunningStats


@dataclass(frozen=True)
class _Terms:
    """A customer class's overdue policy, and the terms a late fee's debit note gets."""

    policy: Policy
    fee_net_days: int


_NO_CLASS = _Terms(Policy(), 6)


def _terms(c: CustomerClass) -> _Terms:
    policy = Policy(
        pre_due_notice_days=c.pre_due_notice_days,
        late_fee_flat_minor=c.late_fee_flat_minor,
        late_fee_bp=c.late_fee_bp,
        collection_threshold_minor=c.collection_threshold_minor,
        warning_days=c.warning_days,
    )
    return _Terms(policy, c.out_of_turn_net_days)


# --- claiming a day -----------------------------------------------------------------------


async def _claim(tenant_id: int, day: date, worker: str, now: datetime) -> bool:
    """Insert the day's JobRun; or take over one whose worker died before finishing."""
    try:
        await JobRun.create(
            job=JOB, tenant_id=tenant_id, day=day, claimed_by=worker, started_at=now
        )
        return True
    except IntegrityError:
        taken = await JobRun.filter(
            job=JOB,
            tenant_id=tenant_id,
            day=day,
            finished_at__isnull=True,
            started_at__lt=now - STALE_CLAIM,
        ).update(claimed_by=worker, started_at=now)
        return taken == 1


# --- the day's run ------------------------------------------------------------------------


async def run_dunning_day(
    *, tenant_id: int, day: date, worker: str, now: datetime | None = None
) -> DunningDay | None:
    """Carry out everything the dunning rules say is due on `day` (the tenant's local
    calendar day) for the tenant's collectible invoices.

    Returns None when the day was already claimed by another run (this one or another
    process's), having changed nothing.
    """
    now = now or utcnow()
    if not await _claim(tenant_id, day, worker, now):
        return None
    tenant = await Tenant.get(id=tenant_id)
    classes = {c.id: _terms(c) for c in await CustomerClass.filter(tenant_id=tenant_id)}
    run = _Run(tenant_id, day, now, Sender.of(tenant), classes)
    newest = await fetch("SELECT MAX(id) AS id FROM invoice WHERE tenant_id = ?", [tenant_id])
    max_id = int(newest[0]["id"] or 0)
    sql, params = run.candidates_sql()
    last_id = 0
    while last_id < max_id:
        async with in_transaction() as conn:
            rows = await fetch(sql, [tenant_id, last_id, max_id, *params, BATCH], conn)
            if not rows:
                break
            last_id = rows[-1]["id"]
            run.stats.checked += len(rows)
            run.stats.batches += 1
            await run.carry_out(conn, rows)
        if len(rows) < BATCH:
            break
    await JobRun.filter(job=JOB, tenant_id=tenant_id, day=day, claimed_by=worker).update(
        finished_at=utcnow(), stats=asdict(run.stats)
    )
    return DunningDay(tenant_id, day, worker, run.stats)


_CANDIDATES_SQL = """
SELECT i.id, i.number, i.kind, i.status, i.amount_minor, i.paid_minor, i.issue_date,
       i.due_date, i.reminder_days, i.next_reminder_on, i.request_status, i.system_generated,
       i.request_cancellation_on, i.suspension_on, i.deletion_on, i.subscriber_id,
       EXISTS (SELECT 1 FROM invoice f WHERE f.late_fee_for_id = i.id) AS late_fee_charged,
       s.name, s.phone, s.language, s.status AS subscriber_status, s.customer_class_id
FROM invoice i
JOIN subscriber s ON s.id = i.subscriber_id
WHERE i.tenant_id = ? AND i.id > ? AND i.id <= ? AND i.status IN ('unpaid', 'partial')
  AND ({due})
ORDER BY i.id
LIMIT ?
"""


@dataclass
class _Run:
    tenant_id: int
    day: date
    now: datetime
    sender: Sender
    classes: dict[int, _Terms]
    stats: DunningStats = field(default_factory=DunningStats)

    def candidates_sql(self) -> tuple[str, list[Any]]:
        """The batch query, narrowed on invoice columns to a superset of what may be due."""
        day = self.day
        policies = [t.policy for t in self.classes.values()]
        warn = timedelta(days=max([p.warning_days for p in policies] + [Policy().warning_days]))
        terms = [
            "(i.reminder_days IS NOT NULL AND (i.next_reminder_on IS NULL"
            " OR i.next_reminder_on <= ?))",
            "i.request_cancellation_on <= ?",
            "i.suspension_on <= ?",
            "i.deletion_on <= ?",
        ]
        params: list[Any] = [day, day, day + warn, day + warn]
        notices = [p.pre_due_notice_days for p in policies if p.pre_due_notice_days]
        if notices:
            terms.append("i.due_date BETWEEN ? AND ?")
            params += [day + timedelta(days=min(notices)), day + timedelta(days=max(notices))]
        if any(p.late_fee_flat_minor > 0 or p.late_fee_bp > 0 for p in policies):
            terms.append(
                "(i.due_date < ? AND i.kind = 'invoice' AND NOT EXISTS"
                " (SELECT 1 FROM invoice f WHERE f.late_fee_for_id = i.id))"
            )
            params.append(day)
        return _CANDIDATES_SQL.format(due="\n    OR ".join(terms)), params

    async def carry_out(self, conn: BaseDBAsyncClient, rows: Sequence[dict[str, Any]]) -> None:
        """Decide for each row, then act per kind of action, a statement or two each."""
        due: dict[Action, list[tuple[dict[str, Any], _Terms]]] = defaultdict(list)
        for r in rows:
            terms = self.classes.get(r["customer_class_id"], _NO_CLASS)
            for action in actions_due(_state(r), terms.policy, self.day):
                due[action].append((r, terms))
        await self._cancel(conn, [r for r, _ in due[Action.CANCEL_REQUEST]])
        # Termination before suspension: a subscriber both are due for ends terminated.
        await self._set_status(
            conn, due[Action.TERMINATE], SubscriberStatus.TERMINATED, "subscriber.terminate"
        )
        await self._set_status(
            conn, due[Action.SUSPEND], SubscriberStatus.SUSPENDED, "subscriber.suspend"
        )
        await self._charge_late_fees(conn, due[Action.LATE_FEE])
        notices = await self._reminders(conn, due[Action.REMINDER])
        for action, kind in _TEXTS.items():
            notices += [self._notice(kind, r, t) for r, t in due[action] if r["phone"]]
            self.stats.no_phone += sum(1 for r, _ in due[action] if not r["phone"])
        written = await queue_notices(
            conn, tenant_id=self.tenant_id, day=self.day, notices=notices, now=self.now
        )
        for w in written:
            if w.kind == REMINDER:
                self.stats.reminders += 1
            elif w.kind == PRE_DUE_NOTICE:
                self.stats.pre_due_notices += 1
            elif w.kind == SUSPENSION_WARNING:
                self.stats.suspension_warnings += 1
            elif w.kind == DELETION_WARNING:
                self.stats.deletion_warnings += 1
            self.stats.refused += w.refused

    # --- texts ------------------------------------------------------------------------------

    def _notice(self, kind: str, r: dict[str, Any], terms: _Terms) -> Notice:
        due_minor = int(r["amount_minor"]) - int(r["paid_minor"])
        suspension_on, deletion_on = as_date(r["suspension_on"]), as_date(r["deletion_on"])
        if kind == REMINDER:
            suspension_on, deletion_on = dates_ahead(
                self.day,
                suspension_on=suspension_on,
                deletion_on=deletion_on,
                subscriber_status=r["subscriber_status"],
                over_threshold=due_minor > terms.policy.collection_threshold_minor,
            )
        due_date = as_date(r["due_date"])
        assert due_date is not None
        return compose(
            kind,
            self.sender,
            today=self.day,
            invoice_id=r["id"],
            number=r["number"],
            due_minor=due_minor,
            due_date=due_date,
            name=r["name"],
            phone=r["phone"],
            language=r["language"],
            suspension_on=suspension_on if kind != DELETION_WARNING else None,
            deletion_on=deletion_on if kind != SUSPENSION_WARNING else None,
        )

    async def _reminders(
        self, conn: BaseDBAsyncClient, due: list[tuple[dict[str, Any], _Terms]]
    ) -> list[Notice]:
        """Move each due invoice's next reminder on; a text for each one that moved."""
        if not due:
            return []
        moved = set(
            await move_next_reminders(
                conn, self.day, [(r["id"], r["reminder_days"]) for r, _ in due]
            )
        )
        notices = []
        for r, terms in due:
            if r["id"] not in moved:
                continue
            if r["phone"]:
                notices.append(self._notice(REMINDER, r, terms))
            else:
                self.stats.no_phone += 1
        return notices

    # --- the subscriber's service -------------------------------------------------------------

    async def _set_status(
        self,
        conn: BaseDBAsyncClient,
        due: list[tuple[dict[str, Any], _Terms]],
        status: SubscriberStatus,
        action: str,
    ) -> None:
        """Suspend (only active subscribers) or terminate (any not yet terminated)."""
        if not due:
            return
        by_subscriber = {r["subscriber_id"]: r for r, _ in due}
        condition, params = in_ids(conn, "id", list(by_subscriber))
        before = (
            "status = 'active'"
            if status == SubscriberStatus.SUSPENDED
            else "status <> 'terminated'"
        )
        changed = await fetch(
            f"UPDATE subscriber SET status = ? WHERE {condition} AND {before} RETURNING id",
            [status.value, *params],
            conn,
        )
        if status == SubscriberStatus.SUSPENDED:
            self.stats.suspensions += len(changed)
        else:
            self.stats.terminations += len(changed)
        await write_audit_rows(
            conn,
            [
                audit_row(
                    self.tenant_id,
                    actor=None,
                    action=action,
                    object_type="subscriber",
                    object_id=c["id"],
                    origin=SYSTEM,
                    at=self.now,
                    details={
                        "invoice_id": by_subscriber[c["id"]]["id"],
                        "number": by_subscriber[c["id"]]["number"],
                        "day": self.day.isoformat(),
                    },
                )
                for c in changed
            ],
        )

    # --- money ----------------------------------------------------------------------------------

    async def _charge_late_fees(
        self, conn: BaseDBAsyncClient, due: list[tuple[dict[str, Any], _Terms]]
    ) -> None:
        """One debit note per overdue invoice (UNIQUE `late_fee_for`), with its posting."""
        if not due:
            return
        day = self.day
        notes = []
        for r, terms in due:
            fee = late_fee_minor(_state(r), terms.policy)
            number = f"{r['number']}{LATE_FEE_SUFFIX}"
            notes.append(
                {
                    "tenant_id": self.tenant_id,
                    "subscriber_id": r["subscriber_id"],
                    "number": number if len(number) <= 40 else f"LF-{r['id']}",
                    "kind": InvoiceKind.DEBIT_NOTE.value,
                    "purpose": InvoicePurpose.LATE_FEE.value,
                    "amount_minor": fee,
                    "paid_minor": 0,
                    "status": InvoiceStatus.UNPAID.value,
                    "issue_date": day,
                    "due_date": day + timedelta(days=terms.fee_net_days),
                    "reminder_days": DEBIT_NOTE_REMINDER_DAYS,
                    "next_reminder_on": first_reminder_on(day, DEBIT_NOTE_REMINDER_DAYS),
                    "system_generated": True,
                    "late_fee_for_id": r["id"],
                    "created_at": self.now,
                }
            )
        written = await insert_rows(
            conn,
            Invoice,
            notes,
            returning=("id", "late_fee_for_id", "subscriber_id", "amount_minor", "number"),
        )
        await self._post(
            conn,
            "invoice_issued",
            [
                (
                    w["id"],
                    w["number"],
                    f"late_fee:{w['late_fee_for_id']}",
                    ledger.invoice_issued(
                        subscriber_id=w["subscriber_id"], amount_minor=int(w["amount_minor"])
                    ),
                )
                for w in written
            ],
        )
        self.stats.late_fees += len(written)
        self.stats.late_fee_minor += sum(int(w["amount_minor"]) for w in written)
        await write_audit_rows(
            conn,
            [
                audit_row(
                    self.tenant_id,
                    actor=None,
                    action="invoice.late_fee",
                    object_type="invoice",
                    object_id=w["late_fee_for_id"],
                    origin=SYSTEM,
                    at=self.now,
                    details={
                        "debit_note_id": w["id"],
                        "number": w["number"],
                        "amount_minor": int(w["amount_minor"]),
                    },
                )
                for w in written
            ],
        )

    async def _cancel(self, conn: BaseDBAsyncClient, due: list[dict[str, Any]]) -> None:
        """Cancel unpaid system invoices whose request is still pending on their date."""
        if not due:
            return
        condition, params = in_ids(conn, "id", [r["id"] for r in due])
        cancelled = await fetch(
            f"UPDATE invoice SET status = 'cancelled', request_status = ?,"
            f" request_cancellation_on = NULL WHERE {condition} AND status = 'unpaid'"
            " AND paid_minor = 0 AND request_status = ? AND system_generated = ?"
            " RETURNING id, number, subscriber_id, amount_minor",
            [RequestStatus.CANCELLED.value, *params, RequestStatus.PENDING.value, True],
            conn,
        )
        if not cancelled:
            return
        self.stats.cancellations += len(cancelled)
        await self._post(
            conn,
            "invoice_cancelled",
            [
                (
                    c["id"],
                    c["number"],
                    f"cancel:{c['id']}",
                    _reversed(
                        ledger.invoice_issued(
                            subscriber_id=c["subscriber_id"], amount_minor=int(c["amount_minor"])
                        )
                    ),
                )
                for c in cancelled
            ],
        )
        # A stop on a route for a cancelled invoice has nothing left to collect.
        stops, stop_params = in_ids(conn, "open_invoice_id", [c["id"] for c in cancelled])
        removed = await fetch(
            "UPDATE assignment SET status = 'removed', open_invoice_id = NULL, closed_at = ?,"
            f" closed_on = ? WHERE {stops} RETURNING id",
            [self.now, self.day, *stop_params],
            conn,
        )
        self.stats.stops_removed += len(removed)
        await write_audit_rows(
            conn,
            [
                audit_row(
                    self.tenant_id,
                    actor=None,
                    action="invoice.cancel_request",
                    object_type="invoice",
                    object_id=c["id"],
                    origin=SYSTEM,
                    at=self.now,
                    details={"number": c["number"], "day": self.day.isoformat()},
                )
                for c in cancelled
            ],
        )

    async def _post(
        self,
        conn: BaseDBAsyncClient,
        kind: str,
        postings: list[tuple[int, str, str, list[ledger.Leg]]],
    ) -> None:
        """Balanced postings (invoice id, memo, idempotency key, legs) in two statements."""
        if not postings:
            return
        legs_of = {invoice_id: ledger.balanced(legs) for invoice_id, _, _, legs in postings}
        written = await insert_rows(
            conn,
            LedgerPosting,
            [
                {
                    "tenant_id": self.tenant_id,
                    "kind": kind,
                    "memo": memo,
                    "invoice_id": invoice_id,
                    "idempotency_key": key,
                    "created_at": self.now,
                }
                for invoice_id, memo, key, _ in postings
            ],
            returning=("id", "invoice_id"),
        )
        await insert_rows(
            conn,
            LedgerLeg,
            [
                {
                    "tenant_id": self.tenant_id,
                    "posting_id": w["id"],
                    "account": leg.account,
                    "staff_id": leg.staff_id,
                    "subscriber_id": leg.subscriber_id,
                    "amount_minor": leg.amount_minor,
                }
                for w in written
                for leg in legs_of[w["invoice_id"]]
            ],
        )


def _reversed(legs: list[ledger.Leg]) -> list[ledger.Leg]:
    return [
        ledger.Leg(leg.account, -leg.amount_minor, leg.staff_id, leg.subscriber_id) for leg in legs
    ]


def _state(r: dict[str, Any]) -> InvoiceState:
    """The rules' view of a candidate row. An invoice never given a next reminder day (one
    issued before the clock ran) is first reminded one interval after its issue date."""
    reminder_days = r["reminder_days"]
    next_on = as_date(r["next_reminder_on"])
    if next_on is None and reminder_days:
        next_on = first_reminder_on(as_date(r["issue_date"]) or date.min, reminder_days)
    subscriber_status = r["subscriber_status"]
    due_date = as_date(r["due_date"])
    assert due_date is not None
    return InvoiceState(
        kind=InvoiceKind(r["kind"]),
        status=InvoiceStatus(r["status"]),
        amount_minor=int(r["amount_minor"]),
        paid_minor=int(r["paid_minor"]),
        due_date=due_date,
        reminder_days=reminder_days,
        next_reminder_on=next_on,
        request_pending=r["request_status"] == RequestStatus.PENDING,
        system_generated=bool(r["system_generated"]),
        request_cancellation_on=as_date(r["request_cancellation_on"]),
        suspension_on=as_date(r["suspension_on"]),
        deletion_on=as_date(r["deletion_on"]),
        late_fee_charged=bool(r["late_fee_charged"]),
        subscriber_suspended=subscriber_status == SubscriberStatus.SUSPENDED,
        subscriber_terminated=subscriber_status == SubscriberStatus.TERMINATED,
    )


# --- the scheduler's questions ------------------------------------------------------------


def local_now(now: datetime, timezone: str) -> datetime:
    return now.astimezone(ZoneInfo(timezone))


async def due_dunning_days(now: datetime) -> list[tuple[int, date]]:
    """(tenant id, local day) for each tenant whose local time has reached its dunning hour
    today and whose day has no run yet (or only a claim gone stale: its process died).
    Two small queries whatever the tenants' size."""
    due: list[tuple[int, date]] = []
    for tenant_id, timezone, hour in await Tenant.all().values_list(
        "id", "timezone", "dunning_hour"
    ):
        local = local_now(now, timezone)
        if local.hour >= hour:
            due.append((tenant_id, local.date()))
    if not due:
        return []
    done = {
        (tenant_id, as_date(day))
        for tenant_id, day, finished_at, started_at in await JobRun.filter(
            job=JOB, tenant_id__in=[t for t, _ in due], day__in=list({d for _, d in due})
        ).values_list("tenant_id", "day", "finished_at", "started_at")
        if finished_at is not None or started_at >= now - STALE_CLAIM
    }
    return [(t, d) for t, d in due if (t, d) not in done]


# --- the admins' daily summary --------------------------------------------------------------


@dataclass(frozen=True)
class SummaryRecipient:
    telegram_user_id: int
    language: str


@dataclass(frozen=True)
class DailySummary:
    """What is pending for a tenant's admins on `day`: open invoices (unpaid, partly paid,
    overdue) with what is due on them, drafts awaiting approval, and what the day's run did
    (`run` is None if it has not run)."""

    tenant_id: int
    day: date
    currency: str
    country: str
    timezone: str
    unpaid: int
    unpaid_minor: int
    partial: int
    partial_minor: int
    overdue: int
    overdue_minor: int
    drafts: int
    run: DunningStats | None
    recipients: tuple[SummaryRecipient, ...]


_SUMMARY_SQL = """
SELECT status, COUNT(*) AS invoices, SUM(amount_minor - paid_minor) AS due,
       SUM(CASE WHEN due_date < ? THEN 1 ELSE 0 END) AS overdue,
       SUM(CASE WHEN due_date < ? THEN amount_minor - paid_minor ELSE 0 END) AS overdue_due
FROM invoice
WHERE tenant_id = ? AND status IN ('unpaid', 'partial', 'draft')
GROUP BY status
"""


async def daily_summary(*, tenant_id: int, day: date) -> DailySummary:
    """The day's summary for the tenant's admins, and who they are (active admins with a
    Telegram account), in one aggregate query over the tenant's open invoices."""
    tenant = await Tenant.get(id=tenant_id)
    rows = {r["status"]: r for r in await fetch(_SUMMARY_SQL, [day, day, tenant_id])}

    def of(status: str, column: str) -> int:
        return int((rows.get(status) or {}).get(column) or 0)

    job = await JobRun.get_or_none(job=JOB, tenant_id=tenant_id, day=day)
    run = None
    if job is not None and job.finished_at is not None:
        known = DunningStats.__dataclass_fields__
        run = DunningStats(**{k: int(v) for k, v in (job.stats or {}).items() if k in known})
    admins = (
        await Staff.filter(tenant_id=tenant_id, role=Role.ADMIN, deleted_at__isnull=True)
        .exclude(telegram_user_id=None)
        .order_by("id")
        .values_list("telegram_user_id", "language")
    )
    return DailySummary(
        tenant_id=tenant_id,
        day=day,
        currency=tenant.currency,
        country=tenant.country,
        timezone=tenant.timezone,
        unpaid=of("unpaid", "invoices"),
        unpaid_minor=of("unpaid", "due"),
        partial=of("partial", "invoices"),
        partial_minor=of("partial", "due"),
        overdue=of("unpaid", "overdue") + of("partial", "overdue"),
        overdue_minor=of("unpaid", "overdue_due") + of("partial", "overdue_due"),
        drafts=of("draft", "invoices"),
        run=run,
        recipients=tuple(SummaryRecipient(int(u), str(lang)) for u, lang in admins),
    )


__all__ = [
    "BATCH",
    "JOB",
    "DailySummary",
    "DunningDay",
    "DunningStats",
    "SummaryRecipient",
    "daily_summary",
    "due_dunning_days",
    "run_dunning_day",
]
