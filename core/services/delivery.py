"""Delivery statuses reported by the WhatsApp gateways, and subscribers' inbound messages.

The webhooks parse a gateway's body into `StatusEvent`s and `InboundMessage`s (the
gateway's words already mapped to `core.domain.delivery.DeliveryStatus`); this module
stores them. It is on the hot path of every delivery receipt: a batch of events costs one
transaction of three statements (find the messages, log the events, move the statuses),
whatever its size, and `DeliveryRecorder` makes one batch of the requests that arrive
while the previous transaction is in flight (group commit).

Invariants:
- One `NotificationLog` row per (message, status): the UNIQUE index decides, through
  `INSERT ... ON CONFLICT DO NOTHING`, so a redelivered webhook (gateways deliver at least
  once) stores nothing new and audits nothing twice.
- `OutboxMessage.delivery_status` only moves forward (`core.domain.delivery.rank`). The move
  is one conditional UPDATE comparing ranks in SQL, never a read-then-write: of two events
  racing on two connections the lower one finds the higher already there (on PostgreSQL the
  second UPDATE waits for the first's row lock and re-checks its WHERE against the new row).
  Out-of-order events are still logged; they just do not move the message.
- An event's log row and its status move commit together, so a gateway's redelivery after
  a crash finds both or neither.
- An event names its message by our reference (`collectbot-<outbox id>`, which Ultramsg
  echoes as `referenceId` and Meta as `biz_opaque_callback_data`) or by the gateway's
  message id, and only among messages of that same gateway (or, by reference, a WhatsApp
  message still being handed to a gateway). Events for messages we do not know are
  counted, not stored.
- A stored `failed` status also writes an audit row (actor `webhook`), so the office sees
  gateway failures in the audit trail with the gateway's error text.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, lru_cache
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from core.db.sql import fetch
from core.domain.dates import utcnow
from core.domain.delivery import DeliveryStatus, rank
from core.services.access import Origin
from core.services.audit import write_audit

ULTRAMSG = "ultramsg"
META = "meta"
WHATSAPP = "whatsapp"  # OutboxMessage.channel

# The sender passes `reference_for(message.id)` to the gateway (Ultramsg `referenceId`, Meta
# `biz_opaque_callback_data`), which echoes it in the message's events: a match that does not
# depend on the gateway's id format, nor on the sender having recorded that id yet.
REFERENCE_PREFIX = "collectbot-"
_REFERENCE = re.compile(r"collectbot-([1-9][0-9]{0,9})")
_MAX_ID = 2**31 - 1  # outbox_message.id is an INT


@dataclass(frozen=True)
class StatusEvent:
    """One delivery-status report about one message we sent, in our vocabulary.

    `provider_message_id` and `alternate_id` are the gateway's ids for the message ("" when
    absent); Ultramsg gives its send id and WhatsApp's own id, Meta one `wamid`. `reference`
    is what we asked the gateway to echo ("" when absent). `raw` is the gateway's own JSON
    for this event (stored as it came); `error` is the gateway's reason for a failure.
    """

    provider: str
    provider_message_id: str
    status: DeliveryStatus
    occurred_at: datetime
    raw: dict[str, Any]
    reference: str = ""
    alternate_id: str = ""
    error: str = ""


@dataclass(frozen=True)
class RecordedEvents:
    """What became of a batch of status events.

    `stored`: new log rows; `duplicates`: events already logged (same message and status);
    `unknown`: events naming no message of ours (their ids in `unknown_ids`, for a log line);
    `status_moved`: messages whose delivery status moved forward (counted for the request
    whose event moved it).
    """

    stored: int = 0
    duplicates: int = 0
    unknown: int = 0
    status_moved: int = 0
    unknown_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class InboundMessage:
    """A subscriber wrote to our WhatsApp number: `phone` in E.164, at `sent_at` (UTC)."""

    phone: str
    sent_at: datetime


@dataclass(frozen=True)
class RecordedInbound:
    """`subscribers`: rows whose last-inbound time moved later (a phone can be on several)."""

    messages: int
    subscribers: int


def reference_for(message_id: int) -> str:
    """The reference the sender passes to the gateway for outbox message `message_id`."""
    return f"{REFERENCE_PREFIX}{message_id}"


def message_id_from_reference(reference: str) -> int | None:
    """The outbox message id in one of our references, or None if it is not one."""
    match = _REFERENCE.fullmatch(reference)
    if match is None or int(match.group(1)) > _MAX_ID:
        return None
    return int(match.group(1))


def _rank_sql(column: str) -> str:
    """SQL for `rank(column)`, generated from the domain's table so the two cannot differ."""
    whens = " ".join(f"WHEN '{s.value}' THEN {rank(s)}" for s in DeliveryStatus)
    return f"(CASE {column} {whens} ELSE 0 END)"


# Statements take at most this many events (SQLite builds may allow only 999 parameters:
# the INSERT binds 9 per event); a bigger batch runs them in chunks, in one transaction.
_CHUNK = 100

_FIND_SQL = """
SELECT id, tenant_id, invoice_id, channel, provider, provider_message_id
FROM outbox_message
WHERE id IN ({ids}) OR provider_message_id IN ({provider_ids})
"""

# Unless (message, status) is logged already; RETURNING says which rows went in.
_LOG_SQL = """
INSERT INTO notification_log
    (tenant_id, message_id, invoice_id, status, occurred_at, received_at,
     remote_addr, user_agent, event)
VALUES {rows}
ON CONFLICT (message_id, status) DO NOTHING
RETURNING message_id, status
"""

# Each message to its new status, only if that is further on than where it is: the rank is
# compared by the database, in the same statement that writes.
_MOVE_SQL = f"""
UPDATE outbox_message SET delivery_status = CASE id {{to_status}} END
WHERE id IN ({{ids}}) AND {_rank_sql("delivery_status")} < CASE id {{to_rank}} END
RETURNING id
"""

_INBOUND_SQL = """
UPDATE subscriber SET whatsapp_inbound_at = ?
WHERE phone = ? AND (whatsapp_inbound_at IS NULL OR whatsapp_inbound_at < ?)
RETURNING id
"""


def _marks(count: int) -> str:
    """`?, ?, ?` for an IN list; `NULL` (matches nothing) for none."""
    return ", ".join("?" * count) if count else "NULL"


# The statements' texts depend only on how many values they bind, so each shape is built
# once (and is then the same string object, which `fetch` and the drivers' statement
# caches recognise at once). At most `_CHUNK` events a statement bounds the shapes (the
# lookup's two lists vary apart, so its cache is bounded too).
@lru_cache(maxsize=512)
def _find_sql(ids: int, provider_ids: int) -> str:
    return _FIND_SQL.format(ids=_marks(ids), provider_ids=_marks(provider_ids))


@cache
def _log_sql(rows: int) -> str:
    return _LOG_SQL.format(rows=", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows))


@cache
def _move_sql(messages: int) -> str:
    whens = " ".join(["WHEN CAST(? AS INTEGER) THEN CAST(? AS VARCHAR(16))"] * messages)
    rank_whens = " ".join(["WHEN CAST(? AS INTEGER) THEN CAST(? AS INTEGER)"] * messages)
    return _MOVE_SQL.format(to_status=whens, ids=_marks(messages), to_rank=rank_whens)


# One encoder for the stored events: `json.dumps` with options builds a new one per call.
_encode_event = json.JSONEncoder(ensure_ascii=False).encode


@dataclass(frozen=True)
class _Message:
    id: int
    tenant_id: int
    invoice_id: int | None
    channel: str
    provider: str | None
    provider_message_id: str | None


class _Messages:
    """The outbox messages a batch of events may name, and which one each event names."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.by_id = {int(r["id"]): _Message(**r) for r in rows}
        self.by_provider_id: dict[tuple[str | None, str], _Message] = {}
        for message in sorted(self.by_id.values(), key=lambda m: m.id):  # the newest wins
            if message.provider_message_id:
                self.by_provider_id[(message.provider, message.provider_message_id)] = message

    def named_by(self, event: StatusEvent) -> _Message | None:
        """Our reference first: among this gateway's messages, or a WhatsApp message still
        being handed to one (the worker records the provider once the gateway answered, and
        a fast gateway's first webhook can beat that commit). Else the gateway's ids, among
        its own messages only."""
        outbox_id = message_id_from_reference(event.reference) if event.reference else None
        message = self.by_id.get(outbox_id) if outbox_id is not None else None
        if message is not None and (
            message.provider == event.provider
            or (message.provider is None and message.channel == WHATSAPP)
        ):
            return message
        for provider_id in (event.provider_message_id, event.alternate_id):
            message = self.by_provider_id.get((event.provider, provider_id))
            if provider_id and message is not None:
                return message
        return None


@dataclass(frozen=True)
class _Request:
    """The status events of one webhook request, and where it came from."""

    events: Sequence[StatusEvent]
    origin: Origin


def _request(events: Sequence[StatusEvent], remote_addr: str, user_agent: str) -> _Request:
    origin = Origin(channel="webhook", remote_addr=remote_addr[:64], user_agent=user_agent[:255])
    return _Request(events, origin)


@dataclass
class _Counts:
    stored: int = 0
    duplicates: int = 0
    moved: int = 0
    unknown: list[str] = field(default_factory=list)

    def result(self) -> RecordedEvents:
        return RecordedEvents(
            self.stored, self.duplicates, len(self.unknown), self.moved, tuple(self.unknown)
        )


async def record_delivery_events(
    events: Sequence[StatusEvent],
    *,
    remote_addr: str,
    user_agent: str,
    now: datetime | None = None,
) -> RecordedEvents:
    """Log each event once and move each message's delivery status forward.

    All events go in one transaction of three statements (find the messages, log the
    events, move the statuses) plus an audit row per stored failure, however many events
    there are (up to 100; more take three per hundred). A webhook server should go through
    a `DeliveryRecorder`, which shares each transaction among concurrent requests.
    """
    if not events:
        return RecordedEvents()
    request = _request(events, remote_addr, user_agent)
    return (await _record_requests([request], now or utcnow()))[0]


async def _record_requests(requests: Sequence[_Request], now: datetime) -> list[RecordedEvents]:
    """The events of several requests in one transaction; one result per request."""
    counts = [_Counts() for _ in requests]
    work = [(n, event) for n, request in enumerate(requests) for event in request.events]
    async with in_transaction() as conn:
        for start in range(0, len(work), _CHUNK):
            await _record_chunk(conn, work[start : start + _CHUNK], requests, now, counts)
    return [c.result() for c in counts]


async def _record_chunk(
    conn: BaseDBAsyncClient,
    work: list[tuple[int, StatusEvent]],
    requests: Sequence[_Request],
    now: datetime,
    counts: list[_Counts],
) -> None:
    messages = await _find_messages(conn, [event for _, event in work])
    named: list[tuple[int, StatusEvent, _Message]] = []
    for n, event in work:
        message = messages.named_by(event)
        if message is None:
            counts[n].unknown.append(
                event.reference or event.provider_message_id or event.alternate_id or "?"
            )
        else:
            named.append((n, event, message))
    if not named:
        return
    logged = await _log_events(conn, named, requests, now)
    best: dict[int, tuple[DeliveryStatus, int]] = {}  # message id -> (status, its request)
    for n, event, message in named:
        key = (message.id, event.status.value)
        if key not in logged:
            counts[n].duplicates += 1
            continue
        logged.discard(key)  # the same event again in this batch is a duplicate
        counts[n].stored += 1
        if message.id not in best or rank(event.status) > rank(best[message.id][0]):
            best[message.id] = (event.status, n)
        if event.status == DeliveryStatus.FAILED:
            await _audit_failure(conn, event, message, requests[n].origin)
    for message_id in await _move_statuses(conn, {m: s for m, (s, _) in best.items()}):
        counts[best[message_id][1]].moved += 1


async def _find_messages(conn: BaseDBAsyncClient, events: list[StatusEvent]) -> _Messages:
    ids = sorted(
        {i for e in events if e.reference and (i := message_id_from_reference(e.reference))}
    )
    provider_ids = sorted(
        {i for e in events for i in (e.provider_message_id, e.alternate_id) if i}
    )
    sql = _find_sql(len(ids), len(provider_ids))
    return _Messages(await fetch(sql, [*ids, *provider_ids], conn))


async def _log_events(
    conn: BaseDBAsyncClient,
    named: list[tuple[int, StatusEvent, _Message]],
    requests: Sequence[_Request],
    now: datetime,
) -> set[tuple[int, str]]:
    """Insert the events' log rows; the (message id, status) of those that went in."""
    params: list[Any] = []
    # In (message, status) order: concurrent transactions (several server processes) then
    # wait for each other's rows in one order, and cannot deadlock on them.
    for n, event, message in sorted(named, key=lambda x: (x[2].id, x[1].status.value)):
        origin = requests[n].origin
        params += [
            message.tenant_id,
            message.id,
            message.invoice_id,
            event.status.value,
            event.occurred_at,
            now,
            origin.remote_addr,
            origin.user_agent,
            # The gateway's event as sent, plus its error in our words under "error" (a key
            # neither gateway uses at that level), which the story and /undelivered show.
            _encode_event(event.raw | {"error": event.error} if event.error else event.raw),
        ]
    logged = await fetch(_log_sql(len(named)), params, conn)
    return {(int(r["message_id"]), str(r["status"])) for r in logged}


async def _move_statuses(conn: BaseDBAsyncClient, moves: dict[int, DeliveryStatus]) -> list[int]:
    """Move each message forward to its status; the ids of those that moved."""
    if not moves:
        return []
    ids = sorted(moves)
    sql = _move_sql(len(ids))
    params: list[Any] = [p for i in ids for p in (i, moves[i].value)]
    params += ids
    params += [p for i in ids for p in (i, rank(moves[i]))]
    return [int(r["id"]) for r in await fetch(sql, params, conn)]


class DeliveryRecorder:
    """Group commit for a busy webhook: requests arriving while a transaction is in flight
    are stored together in the next one, and each gets its own result after that commit.

    A lone request waits for nothing but its own transaction. Under load, one transaction
    of three statements (and on SQLite one fsync) serves many requests, instead of one per
    request: the difference between about 500 and over 2,000 events/s on SQLite here
    (`bench/webhooks.py`). Nothing is acknowledged before it is committed. If a shared
    transaction fails, each of its requests is retried in a transaction of its own, so a
    request that cannot be stored fails alone. One per web app; `close()` on shutdown.
    """

    def __init__(self, *, max_events: int = 200) -> None:
        self._max_events = max_events
        self._pending: list[tuple[_Request, asyncio.Future[RecordedEvents]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(
        self, events: Sequence[StatusEvent], *, remote_addr: str, user_agent: str
    ) -> RecordedEvents:
        """As `record_delivery_events`, sharing the transaction with concurrent callers."""
        if not events:
            return RecordedEvents()
        future: asyncio.Future[RecordedEvents] = asyncio.get_running_loop().create_future()
        self._pending.append((_request(events, remote_addr, user_agent), future))
        if self._flusher is None or self._flusher.done():
            # The task copies this caller's context, so it sees the ORM's connections.
            self._flusher = asyncio.create_task(self._flush(), name="delivery-recorder")
        return await future

    async def close(self) -> None:
        """Wait until everything handed in so far is stored."""
        if self._flusher is not None:
            await self._flusher

    def _next_batch(self) -> list[tuple[_Request, asyncio.Future[RecordedEvents]]]:
        size = events = 0
        for request, _ in self._pending:
            if size and events + len(request.events) > self._max_events:
                break
            size += 1
            events += len(request.events)
        batch, self._pending = self._pending[:size], self._pending[size:]
        return batch

    async def _flush(self) -> None:
        while self._pending:
            batch = self._next_batch()
            try:
                results = await _record_requests([r for r, _ in batch], utcnow())
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], error=exc)
                else:
                    await self._one_by_one(batch)
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    _settle(future, result)

    async def _one_by_one(
        self, batch: list[tuple[_Request, asyncio.Future[RecordedEvents]]]
    ) -> None:
        for request, future in batch:
            try:
                (result,) = await _record_requests([request], utcnow())
            except Exception as exc:  # this request's own failure, reported to it alone
                _settle(future, error=exc)
            else:
                _settle(future, result)


def _settle(
    future: asyncio.Future[RecordedEvents],
    result: RecordedEvents | None = None,
    *,
    error: BaseException | None = None,
) -> None:
    if future.done():  # the caller went away (cancelled); the events are stored anyway
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)


async def _audit_failure(
    conn: BaseDBAsyncClient, event: StatusEvent, message: _Message, origin: Origin
) -> None:
    await write_audit(
        tenant_id=message.tenant_id,
        actor=None,
        action="whatsapp.delivery_failed",
        # A message about no invoice (none today) is audited as itself.
        object_type="invoice" if message.invoice_id is not None else "outbox_message",
        object_id=message.invoice_id if message.invoice_id is not None else message.id,
        origin=origin,
        details={
            "message_id": message.id,
            "provider": event.provider,
            "provider_message_id": event.provider_message_id,
            "occurred_at": event.occurred_at.isoformat(),
            "error": event.error,
        },
        using_db=conn,
    )


async def record_inbound_messages(messages: Sequence[InboundMessage]) -> RecordedInbound:
    """Remember when each phone last wrote to us (only ever later), on every subscriber row
    with that phone: the sender may send free-form messages for 24 hours after it.

    One UPDATE per distinct phone, all in one transaction.
    """
    latest: dict[str, datetime] = {}
    for message in messages:
        if message.phone not in latest or message.sent_at > latest[message.phone]:
            latest[message.phone] = message.sent_at
    updated = 0
    if latest:
        async with in_transaction() as conn:
            for phone in sorted(latest):
                at = latest[phone]
                updated += len(await fetch(_INBOUND_SQL, [at, phone, at], conn))
    return RecordedInbound(len(messages), updated)
