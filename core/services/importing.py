"""CSV import of subscribers and invoices: reading the file, the per-row report, the bulk write.

This module owns what an uploaded CSV must look like (UTF-8, a header row, at most 5 MB and
50,000 rows), how each row of a subscribers or invoices file is checked against the tenant's
data, and writing a whole file in one transaction.

Invariants:
- All or nothing. Every field of every row is checked before anything is written; if any
  is wrong, `ImportRejected` lists every (row, field, message) and no row is written. A dry
  run stops after the checks.
- Row numbers are the ones a spreadsheet shows: the header is row 1, the first data row 2
  (a quoted cell spanning lines is still one row; blank rows keep their number but are
  skipped).
- Unknown columns are refused, never ignored: a typo such as "phnoe" must not drop data.
- Only rows of the actor's tenant are read or written: usernames, plan, class and reseller
  names of other tenants are invisible, so they are "unknown", never "taken".
- An imported invoice is what `billing.create_invoice` would have written: `unpaid`, its
  first reminder and the plan's suspension and deletion dates set by the same rules
  (`core.domain.terms`), with one balanced `invoice_issued` posting (receivable of the
  subscriber +A, revenue -A).
- Lookups cost a few queries per file, never one per row, and writes are bulk INSERTs.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.db.models import (
    CustomerClass,
    Invoice,
    LedgerLeg,
    LedgerPosting,
    Plan,
    Reseller,
    Staff,
    Subscriber,
    Tenant,
)
from core.domain import ledger
from core.domain.dates import local_today, utcnow
from core.domain.money import parse_amount
from core.domain.phones import normalise_phone
from core.domain.status import BillingMode, InvoiceKind, InvoicePurpose, InvoiceStatus
from core.domain.terms import (
    PlanOffsets,
    default_due_date,
    default_dunning_dates,
    default_reminder_days,
)
from core.errors import ImportRejected, InvalidInput
from core.services.access import SYSTEM, Origin, require_admin
from core.services.audit import write_audit
from core.services.billing import SubscriberInput, subscriber_fields

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 50_000

SUBSCRIBER_COLUMNS = (
    ("username", "name", "phone"),
    (
        "address",
        "area",
        "street",
        "latitude",
        "longitude",
        "expiry_date",
        "billing_mode",
        "plan",
        "customer_class",
        "reseller",
    ),
)
INVOICE_COLUMNS = (
    ("number", "username", "amount"),
    ("issue_date", "due_date", "purpose", "kind", "reminder_days"),
)

MAX_REMINDER_DAYS = 365
# The largest value a BIGINT money column holds; a bigger amount is a typo, not a bill.
MAX_AMOUNT_MINOR = 2**63 - 1
# Values per `IN (...)` lookup: under SQLite's historical 999-variable limit, so it holds on
# any SQLite build as well as on PostgreSQL (whose limit is 32,767).
IN_CHUNK = 900
# Rows per INSERT batch: bounds the memory of one statement for a 50,000-row file.
INSERT_BATCH = 1000

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SPREADSHEET_SIGNATURES = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")  # .xlsx (zip), legacy .xls
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_SAVE_AS_CSV = "In your spreadsheet choose Save As > 'CSV UTF-8' and import that file."

# The columns that tell a file's kind from its header (`header_kind`), invoices first.
_HEADER_MARKERS = (
    ("invoices", frozenset({"number", "amount"})),
    ("subscribers", frozenset({"username", "name"})),
)

_E = TypeVar("_E", bound=StrEnum)


@dataclass(frozen=True)
class RowError:
    """One problem in an uploaded file.

    Attributes:
        row: the line number a spreadsheet shows: header = 1, first data row = 2.
        field: the column name, or "" for a problem with the whole row.
        message: one sentence the admin can act on.
    """

    row: int
    field: str
    message: str


@dataclass(frozen=True)
class ImportReport:
    """What an import did. `created` is 0 on a dry run."""

    kind: str  # "subscribers" | "invoices"
    rows: int
    created: int
    dry_run: bool


async def import_subscribers(
    actor: Staff, data: bytes, *, dry_run: bool = False, origin: Origin = SYSTEM
) -> ImportReport:
    """Add every subscriber of a CSV file to the actor's company, or none of them.

    Columns: `username,name,phone` required (a blank phone cell is allowed: the subscriber
    has none); optional `address,area,street,latitude,longitude,expiry_date,billing_mode,
    plan,customer_class,reseller`, where the last three are names of existing rows.

    Raises:
        PermissionDenied: the actor is not an admin (or was removed).
        ImportRejected: anything wrong with the file or any row; nothing was written.
    """
    require_admin(actor, "import subscribers")
    tenant = await Tenant.get(id=actor.tenant_id)
    table = _read_table("subscribers", data, *SUBSCRIBER_COLUMNS)
    values = await _check_subscribers(tenant, table.rows)
    if dry_run:
        return ImportReport("subscribers", len(values), 0, True)
    try:
        async with in_transaction() as conn:
            await Subscriber.bulk_create(
                [Subscriber(**row) for row in values], batch_size=INSERT_BATCH, using_db=conn
            )
            await _audit(actor, "subscribers", table, len(values), origin, conn)
    except IntegrityError as exc:
        raise _raced("usernames") from exc
    return ImportReport("subscribers", len(values), len(values), False)


async def import_invoices(
    actor: Staff,
    data: bytes,
    *,
    dry_run: bool = False,
    origin: Origin = SYSTEM,
    today: date | None = None,
) -> ImportReport:
    """Issue every invoice of a CSV file, with its receivable posting, or none of them.

    Columns: `number,username,amount` required (amount in major units, e.g. 1500.50);
    optional `issue_date` (default `today`, the tenant's local day), `due_date` (default:
    the customer class's terms, or 30 days), `purpose`, `kind`, `reminder_days`.

    Raises:
        PermissionDenied: the actor is not an admin (or was removed).
        ImportRejected: anything wrong with the file or any row; nothing was written.
    """
    require_admin(actor, "import invoices")
    tenant = await Tenant.get(id=actor.tenant_id)
    table = _read_table("invoices", data, *INVOICE_COLUMNS)
    today = today or local_today(utcnow(), tenant.timezone)
    values = await _check_invoices(tenant, table.rows, today)
    if dry_run:
        return ImportReport("invoices", len(values), 0, True)
    try:
        async with in_transaction() as conn:
            await _write_invoices(actor, values, conn)
            await _audit(actor, "invoices", table, len(values), origin, conn)
    except IntegrityError as exc:
        raise _raced("invoice numbers") from exc
    return ImportReport("invoices", len(values), len(values), False)


def header_kind(data: bytes) -> str | None:
    """Which kind of file the header row looks like, for a file sent without saying.

    "invoices" if it names `number` and `amount`, "subscribers" if `username` and `name`
    (an invoices file names a username too, so invoices are checked first), else None.

    Raises:
        ImportRejected: the file cannot be imported as either kind (too large, a workbook,
            not UTF-8, empty), with the sentence an import would give.
    """
    text = _text(data)
    if not text.strip():
        raise ImportRejected(
            "The file is empty: export the subscribers or invoices as a CSV file whose first "
            "row names the columns.",
            [],
        )
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first_line))
    try:
        columns = {cell.strip().lower() for cell in next(reader, [])}
    except csv.Error:
        return None  # importing it says what is wrong with the line
    for kind, markers in _HEADER_MARKERS:
        if markers <= columns:
            return kind
    return None


# --- reading the file ---------------------------------------------------------------------


@dataclass
class _Row:
    """One data row being checked: typed values are read out of its cells, errors collected."""

    number: int
    cells: dict[str, str]
    errors: list[RowError] = field(default_factory=list)

    def fail(self, column: str, message: str) -> None:
        self.errors.append(RowError(self.number, column, message))

    def text(self, column: str, *, required: bool = False, max_length: int | None = None) -> str:
        value = self.cells.get(column, "")
        if required and not value:
            self.fail(column, f"Every row needs a {_words(column)}; this one is empty.")
        elif max_length is not None and len(value) > max_length:
            self.fail(
                column,
                f"The {_words(column)} is {len(value)} characters long; the most is {max_length}.",
            )
        return value

    def day(self, column: str) -> date | None:
        value = self.cells.get(column, "")
        if not value:
            return None
        try:
            # fromisoformat alone would also take "20261130" or "2026-W48": insist on one form.
            if _ISO_DATE.match(value):
                return date.fromisoformat(value)
        except ValueError:
            pass
        self.fail(column, f"{value!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-11-30.")
        return None

    def coordinate(self, column: str, limit: int, example: str) -> float | None:
        value = self.cells.get(column, "")
        if not value:
            return None
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or not -limit <= number <= limit:
            self.fail(
                column,
                f"{value!r} is not a {column}; write a number from -{limit} to {limit}, "
                f"e.g. {example}.",
            )
            return None
        return number

    def choice(self, column: str, enum: type[_E], default: _E) -> _E | None:
        value = self.cells.get(column, "")
        if not value:
            return default
        # People write "Out of turn" or "debit-note" for the stored out_of_turn / debit_note.
        key = re.sub(r"[\s-]+", "_", value.lower())
        try:
            return enum(key)
        except ValueError:
            options = ", ".join(member.value for member in enum)
            self.fail(column, f"{value!r} is not a {_words(column)}; use one of {options}.")
            return None

    def named(self, column: str, index: _NameIndex) -> int | None:
        value = self.cells.get(column, "")
        if not value:
            return None
        found = index.find(value)
        if found is None:
            self.fail(
                column,
                f"There is no {_words(column)} named {value!r} in your company; "
                "create it first or fix the name.",
            )
        return found

    def whole_number(self, column: str, low: int, high: int) -> int | None:
        value = self.cells.get(column, "")
        if not value:
            return None
        if value.isascii() and value.isdigit() and low <= int(value) <= high:
            return int(value)
        self.fail(column, f"{value!r} is not a whole number from {low} to {high}.")
        return None


@dataclass(frozen=True)
class _Table:
    rows: list[_Row]
    sha256: str


def _read_table(
    kind: str, data: bytes, required: Sequence[str], optional: Sequence[str]
) -> _Table:
    """The data rows of an uploaded CSV, keyed by column, or `ImportRejected` on a bad file."""
    text = _text(data)
    if not text.strip():
        raise ImportRejected(
            f"The file is empty: export the {kind} as a CSV file whose first row names "
            f"the columns ({','.join(required)}).",
            [],
        )
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=_delimiter(first_line), strict=True
    )
    try:
        columns = _read_header(kind, next(reader), required, optional)
        rows: list[_Row] = []
        # A spreadsheet numbers records, not text lines: row N is the (N-1)th data record.
        for number, record in enumerate(reader, start=2):
            if not any(cell.strip() for cell in record):
                continue
            if len(rows) == MAX_ROWS:
                raise ImportRejected(
                    f"The file has more than {MAX_ROWS:,} rows; split it into files of at "
                    f"most {MAX_ROWS:,} rows each.",
                    [],
                )
            rows.append(_row(number, record, columns))
    except csv.Error as exc:
        raise ImportRejected(
            f"Line {reader.line_num} of the file is not valid CSV ({exc}). Check its quotes, "
            f"or save the file again from your spreadsheet. {_SAVE_AS_CSV}",
            [],
        ) from exc
    if not rows:
        raise ImportRejected(f"The file has a header but no {kind} under it.", [])
    return _Table(rows, hashlib.sha256(data).hexdigest())


def _text(data: bytes) -> str:
    """The file as text, or `ImportRejected` if it is too large or not UTF-8 CSV text."""
    if len(data) > MAX_BYTES:
        raise ImportRejected(
            f"The file is {len(data) / 1024 / 1024:.1f} MB; an import takes at most "
            f"{MAX_BYTES // 1024 // 1024} MB. Split it into smaller files.",
            [],
        )
    return _decode(data)


def _delimiter(first_line: str) -> str:
    # Spreadsheets set to a locale with decimal commas export CSV with ";" between cells.
    return "," if "," in first_line else ";" if ";" in first_line else ","


def _decode(data: bytes) -> str:
    if data.startswith(_SPREADSHEET_SIGNATURES):
        raise ImportRejected(f"This is an Excel workbook, not a CSV file. {_SAVE_AS_CSV}", [])
    if data.startswith(_UTF16_BOMS):
        raise ImportRejected(f"The file is saved as UTF-16, not UTF-8. {_SAVE_AS_CSV}", [])
    try:
        text = data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportRejected(
            f"The file is not UTF-8 text (line {line} has a character it cannot be read as). "
            f"{_SAVE_AS_CSV}",
            [],
        ) from exc
    if "\x00" in text:
        raise ImportRejected(f"This is not a CSV text file. {_SAVE_AS_CSV}", [])
    return text


def _read_header(
    kind: str, header: list[str], required: Sequence[str], optional: Sequence[str]
) -> list[str]:
    """The column name of each cell position ("" for an unnamed one), or `ImportRejected`."""
    known = (*required, *optional)
    columns = [cell.strip().lower() for cell in header]
    errors: list[RowError] = []
    seen: set[str] = set()
    for raw, column in zip(header, columns, strict=True):
        if not column:
            continue  # a trailing ",," in the header: refused per row if a value is under it
        if column in seen:
            errors.append(RowError(1, column, f"The column {column!r} appears more than once."))
        elif column not in known:
            close = difflib.get_close_matches(column, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            errors.append(
                RowError(
                    1,
                    raw.strip(),
                    f"{raw.strip()!r} is not a column of a {kind} file; {hint}"
                    f"the columns are {', '.join(known)}.",
                )
            )
        seen.add(column)
    for column in required:
        if column not in seen:
            errors.append(RowError(1, column, f"The required column {column!r} is missing."))
    if errors:
        raise ImportRejected(
            f"Nothing was imported: the header row has {_count(len(errors), 'problem')}. "
            "Fix it and import the file again.",
            [astuple(error) for error in errors],
        )
    return columns


def _row(number: int, record: list[str], columns: list[str]) -> _Row:
    row = _Row(number, {})
    for position, cell in enumerate(record):
        value = cell.strip()
        if position >= len(columns):
            if value:
                row.fail("", "This row has more cells than the header has columns.")
                break
        elif columns[position]:
            row.cells[columns[position]] = value
        elif value:
            row.fail("", f"Column {position + 1} has no name in the header but a value here.")
    return row


# --- checking subscribers -----------------------------------------------------------------


async def _check_subscribers(tenant: Tenant, rows: list[_Row]) -> list[dict[str, Any]]:
    """Column values of each new subscriber, or `ImportRejected` listing every problem."""
    plans = await _NameIndex.load(Plan, tenant.id)
    classes = await _NameIndex.load(CustomerClass, tenant.id)
    resellers = await _NameIndex.load(Reseller, tenant.id)
    taken = await _existing(
        Subscriber, tenant.id, "username", [row.cells.get("username", "") for row in rows]
    )
    max_length = _max_lengths(Subscriber)
    first_row: dict[str, int] = {}
    values: list[dict[str, Any]] = []
    for row in rows:
        username = row.text("username", required=True, max_length=max_length["username"])
        if username in taken:
            row.fail("username", f"A subscriber with username {username!r} already exists.")
        elif username and username in first_row:
            row.fail(
                "username",
                f"Username {username!r} is also on row {first_row[username]}; "
                "a subscriber can be in the file only once.",
            )
        first_row.setdefault(username, row.number)
        name = row.text("name", required=True, max_length=max_length["name"])
        phone = _phone(row, tenant.country)
        texts = {
            column: row.text(column, max_length=max_length[column])
            for column in ("address", "area", "street")
        }
        latitude = row.coordinate("latitude", 90, "23.7461")
        longitude = row.coordinate("longitude", 180, "90.3742")
        for column, other in (("latitude", "longitude"), ("longitude", "latitude")):
            if row.cells.get(other) and not row.cells.get(column):
                row.fail(column, "Give both latitude and longitude, or neither.")
        expiry_date = row.day("expiry_date")
        billing_mode = row.choice("billing_mode", BillingMode, BillingMode.PREPAID)
        plan_id = row.named("plan", plans)
        class_id = row.named("customer_class", classes)
        reseller_id = row.named("reseller", resellers)
        if row.errors or billing_mode is None:
            continue
        data = SubscriberInput(
            username=username,
            name=name,
            phone=phone,
            latitude=latitude,
            longitude=longitude,
            expiry_date=expiry_date,
            billing_mode=billing_mode,
            reseller_id=reseller_id,
            plan_id=plan_id,
            customer_class_id=class_id,
            **texts,
        )
        try:
            # The one definition of a subscriber's columns, shared with `create_subscriber`.
            values.append(subscriber_fields(tenant, data))
        except InvalidInput as exc:  # a rule added there that the checks above do not know
            row.fail("", str(exc))
    _raise_if_any("subscribers", rows)
    return values


def _phone(row: _Row, country: str) -> str | None:
    raw = row.text("phone")
    if not raw:
        return None
    try:
        return normalise_phone(raw, country)
    except InvalidInput as exc:
        row.fail("phone", str(exc))
        return None


# --- checking and writing invoices --------------------------------------------------------


@dataclass(frozen=True)
class _Customer:
    id: int
    customer_class_id: int | None
    plan_id: int | None


async def _check_invoices(tenant: Tenant, rows: list[_Row], today: date) -> list[dict[str, Any]]:
    """Column values of each new invoice, or `ImportRejected` listing every problem."""
    usernames = _storable(Subscriber, "username", [row.cells.get("username", "") for row in rows])
    customers: dict[str, _Customer] = {}
    for chunk in _chunks(usernames):
        found = await Subscriber.filter(tenant_id=tenant.id, username__in=chunk).values_list(
            "username", "id", "customer_class_id", "plan_id"
        )
        customers.update({name: _Customer(*ids) for name, *ids in found})
    terms = {
        class_id: (net, out_of_turn_net)
        for class_id, net, out_of_turn_net in await CustomerClass.filter(
            tenant_id=tenant.id
        ).values_list("id", "net_days", "out_of_turn_net_days")
    }
    plans = {
        plan_id: (reminders, PlanOffsets(cancel, suspend, delete))
        for plan_id, reminders, cancel, suspend, delete in await Plan.filter(
            tenant_id=tenant.id
        ).values_list(
            "id",
            "reminder_days",
            "request_cancellation_days",
            "suspension_days",
            "deletion_days",
        )
    }
    taken = await _existing(
        Invoice, tenant.id, "number", [row.cells.get("number", "") for row in rows]
    )
    max_number = _max_lengths(Invoice)["number"]
    first_row: dict[str, int] = {}
    values: list[dict[str, Any]] = []
    for row in rows:
        number = row.text("number", required=True, max_length=max_number)
        if number in taken:
            row.fail("number", f"Invoice number {number} is already used.")
        elif number and number in first_row:
            row.fail(
                "number",
                f"Invoice number {number} is also on row {first_row[number]}; "
                "each number can be used once.",
            )
        first_row.setdefault(number, row.number)
        username = row.text("username", required=True)
        customer = customers.get(username)
        if username and customer is None:
            row.fail(
                "username",
                f"There is no subscriber with username {username!r}; "
                "import the subscriber first or fix the username.",
            )
        amount_minor = _amount(row, tenant.currency)
        issue_date = row.day("issue_date") or today
        due_date = row.day("due_date")
        purpose = row.choice("purpose", InvoicePurpose, InvoicePurpose.RENEWAL)
        kind = row.choice("kind", InvoiceKind, InvoiceKind.INVOICE)
        reminder_days = row.whole_number("reminder_days", 1, MAX_REMINDER_DAYS)
        if due_date is not None and due_date < issue_date:
            row.fail("due_date", "The due date cannot be before the issue date.")
        if row.errors or customer is None or amount_minor is None or not (purpose and kind):
            continue
        if due_date is None:
            due_date = default_due_date(
                issue_date, purpose, terms.get(customer.customer_class_id or 0)
            )
        plan_reminders, offsets = plans.get(customer.plan_id or 0, (None, None))
        if reminder_days is None:
            reminder_days = default_reminder_days(kind, plan_reminders)
        dates = default_dunning_dates(
            issue_date=issue_date,
            due_date=due_date,
            reminder_days=reminder_days,
            offsets=offsets,
            request_pending=False,
            system_generated=False,
        )
        values.append(
            {
                "tenant_id": tenant.id,
                "subscriber_id": customer.id,
                "number": number,
                "kind": kind,
                "purpose": purpose,
                "amount_minor": amount_minor,
                "status": InvoiceStatus.UNPAID,
                "issue_date": issue_date,
                "due_date": due_date,
                "reminder_days": reminder_days,
                "next_reminder_on": dates.next_reminder_on,
                "suspension_on": dates.suspension_on,
                "deletion_on": dates.deletion_on,
            }
        )
    _raise_if_any("invoices", rows)
    return values


def _amount(row: _Row, currency: str) -> int | None:
    raw = row.text("amount", required=True)
    if not raw:
        return None
    try:
        amount_minor = parse_amount(raw, currency)
    except InvalidInput as exc:
        row.fail("amount", str(exc))
        return None
    if amount_minor > MAX_AMOUNT_MINOR:
        row.fail("amount", f"{raw} {currency} is too large for an invoice.")
        return None
    return amount_minor


async def _write_invoices(
    actor: Staff, values: list[dict[str, Any]], conn: BaseDBAsyncClient
) -> None:
    """Insert the invoices and their `invoice_issued` postings, a batch at a time.

    The bulk twin of `billing.create_invoice` + `ledger.post`: Tortoise's `bulk_create`
    does not return primary keys, so the new invoices are read back by their (unique)
    number, and the postings by their invoice, which is new and so has exactly one.
    """
    await Invoice.bulk_create(
        [Invoice(**row) for row in values], batch_size=INSERT_BATCH, using_db=conn
    )
    invoice_ids = await _ids_by(
        Invoice, conn, actor.tenant_id, "number", [row["number"] for row in values]
    )
    await LedgerPosting.bulk_create(
        [
            LedgerPosting(
                tenant_id=actor.tenant_id,
                kind="invoice_issued",
                memo=row["number"],
                invoice_id=invoice_ids[row["number"]],
                created_by_id=actor.id,
            )
            for row in values
        ],
        batch_size=INSERT_BATCH,
        using_db=conn,
    )
    posting_ids = await _ids_by(
        LedgerPosting, conn, actor.tenant_id, "invoice_id", list(invoice_ids.values())
    )
    await LedgerLeg.bulk_create(
        [
            LedgerLeg(
                tenant_id=actor.tenant_id,
                posting_id=posting_ids[invoice_ids[row["number"]]],
                account=leg.account,
                staff_id=leg.staff_id,
                subscriber_id=leg.subscriber_id,
                amount_minor=leg.amount_minor,
            )
            for row in values
            # `invoice_issued` checks the legs balance, as `ledger.post` would.
            for leg in ledger.invoice_issued(
                subscriber_id=row["subscriber_id"], amount_minor=row["amount_minor"]
            )
        ],
        batch_size=INSERT_BATCH,
        using_db=conn,
    )


# --- shared helpers -----------------------------------------------------------------------


class _NameIndex:
    """Rows of one tenant by name: exact match first, else a unique case-insensitive one."""

    def __init__(self, pairs: list[tuple[int, str]]) -> None:
        self._exact = {name: row_id for row_id, name in pairs}
        folded: dict[str, list[int]] = {}
        for row_id, name in pairs:
            folded.setdefault(name.casefold(), []).append(row_id)
        self._folded = {name: ids[0] for name, ids in folded.items() if len(ids) == 1}

    @classmethod
    async def load(
        cls, model: type[Plan | CustomerClass | Reseller], tenant_id: int
    ) -> _NameIndex:
        return cls(list(await model.filter(tenant_id=tenant_id).values_list("id", "name")))

    def find(self, name: str) -> int | None:
        return self._exact.get(name, self._folded.get(name.casefold()))


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]


async def _existing(
    model: type[Subscriber | Invoice], tenant_id: int, column: str, values: list[str]
) -> set[str]:
    """Which of `values` the tenant already has in `column` (a query per chunk, not per row)."""
    found: set[str] = set()
    for chunk in _chunks(_storable(model, column, values)):
        query = model.filter(tenant_id=tenant_id, **{f"{column}__in": chunk})
        found.update(str(value) for value in await query.values_list(column, flat=True))
    return found


def _storable(model: type[Subscriber | Invoice], column: str, values: list[str]) -> list[str]:
    """The distinct non-blank `values` that fit the column, the only ones worth looking up.

    A longer one cannot be stored, so it is not there (and Tortoise refuses it as a filter).
    """
    limit = _max_lengths(model)[column]
    return sorted(value for value in set(values) if 0 < len(value) <= limit)


async def _ids_by(
    model: type[Invoice | LedgerPosting],
    conn: BaseDBAsyncClient,
    tenant_id: int,
    column: str,
    values: list[Any],
) -> dict[Any, int]:
    ids: dict[Any, int] = {}
    for chunk in _chunks(values):
        query = model.filter(tenant_id=tenant_id, **{f"{column}__in": chunk}).using_db(conn)
        ids.update(dict(await query.values_list(column, "id")))
    return ids


def _max_lengths(model: type[Subscriber | Invoice]) -> dict[str, int]:
    """CharField limits from the model: PostgreSQL refuses longer text, SQLite would not."""
    limits = {
        name: getattr(column, "max_length", None)
        for name, column in model._meta.fields_map.items()
    }
    return {name: limit for name, limit in limits.items() if isinstance(limit, int)}


def _raise_if_any(kind: str, rows: list[_Row]) -> None:
    errors = [error for row in rows for error in row.errors]
    if errors:
        bad_rows = sum(1 for row in rows if row.errors)
        raise ImportRejected(
            f"Nothing was imported: the {kind} file has {_count(len(errors), 'problem')} in "
            f"{_count(bad_rows, 'row')}. Fix them and import the file again.",
            [astuple(error) for error in errors],
        )


async def _audit(
    actor: Staff, kind: str, table: _Table, rows: int, origin: Origin, conn: BaseDBAsyncClient
) -> None:
    await write_audit(
        tenant_id=actor.tenant_id,
        actor=actor,
        action=f"import.{kind}",
        object_type=kind.removesuffix("s"),
        object_id=None,
        origin=origin,
        details={"rows": rows, "sha256": table.sha256},
        using_db=conn,
    )


def _raced(what: str) -> ImportRejected:
    # The checks ran before the transaction; a unique index caught a row added since.
    return ImportRejected(
        f"Nothing was imported: some of these {what} were added by someone else while the "
        "file was being imported. Import it again to see which.",
        [],
    )


def _words(column: str) -> str:
    return column.replace("_", " ")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
