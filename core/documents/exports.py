"""Writing the payments log to a CSV or XLSX file, batch by batch, off the event loop.

The rows come from the database in keyset batches (`core/services/payments_log.py`); each
batch is turned into cells and written in a worker thread, so the event loop keeps serving
other people while a million rows are written, and memory holds one batch at a time:
- CSV: the standard library's writer on a file (UTF-8 with a BOM, so Excel reads it as
  UTF-8, not the machine's code page);
- XLSX: openpyxl in write-only mode, which streams each row to a temporary file and zips
  the sheet at the end.

Telegram lets a bot send documents of at most 50 MB. A larger CSV is zipped (payments
compress about eightfold); a file still too large is refused by the caller with a
sentence asking for a shorter period.
"""

from __future__ import annotations

import asyncio
import csv
import zipfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from core.domain.money import minor_digits

# A spreadsheet of the log takes about 80 bytes a row zipped, so past about 600,000 rows it
# is over what Telegram lets a bot send (and takes minutes): refused up front, CSV instead.
XLSX_MAX_ROWS = 500_000
TELEGRAM_MAX_BYTES = 50 * 1024 * 1024
FORMATS = ("csv", "xlsx")


@dataclass(frozen=True)
class ExportFile:
    path: Path
    filename: str
    rows: int
    size_bytes: int
    zipped: bool


HEADER = (
    "receipt",
    "date",
    "time",
    "customer",
    "username",
    "invoice",
    "amount",
    "currency",
    "method",
    "taken_by",
    "collector",
    "reference",
    "note",
    "reversed_at",
    "reversal_reason",
)


class _Writer(Protocol):
    def write(self, rows: Sequence[Any]) -> None: ...
    def close(self) -> None: ...


class _Cells:
    """One row's values, in the tenant's time zone and the currency's major units."""

    def __init__(self, currency: str, timezone: str, method_word: Callable[[str], str]) -> None:
        self.currency = currency
        self.zone = ZoneInfo(timezone)
        self.method_word = method_word
        # Looked up once: per row, Babel's currency data costs more than the rest of a cell.
        self.exponent = -minor_digits(currency)
        self.words: dict[str, str] = {}

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def _word(self, method: str) -> str:
        word = self.words.get(method)
        if word is None:
            word = self.words[method] = self.method_word(method)
        return word

    def values(self, p: Any) -> list[Any]:
        at = self.local(p.received_at)
        reversed_at = self.local(p.reversed_at) if p.reversed_at else None
        return [
            p.receipt_number,
            at.date(),
            at.time().replace(microsecond=0),
            p.customer,
            p.username,
            p.invoice,
            Decimal(p.amount_minor).scaleb(self.exponent),
            self.currency,
            self._word(p.method.value),
            p.taken_by or "",
            p.collector or "",
            p.reference,
            p.note,
            reversed_at.replace(microsecond=0) if reversed_at else None,
            p.reversal_reason or "",
        ]


class _CsvWriter:
    def __init__(self, path: Path, cells: _Cells) -> None:
        self.handle = path.open("w", encoding="utf-8-sig", newline="")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(HEADER)
        self.cells = cells

    def write(self, rows: Sequence[Any]) -> None:
        self.writer.writerows(["" if v is None else v for v in self.cells.values(p)] for p in rows)

    def close(self) -> None:
        self.handle.close()


class _XlsxWriter:
    def __init__(self, path: Path, cells: _Cells, title: str) -> None:
        self.path = path
        self.cells = cells
        self.book = Workbook(write_only=True)
        self.sheet = self.book.create_sheet(title[:31])
        digits = minor_digits(cells.currency)
        self.money_format = "#,##0." + "0" * digits if digits else "#,##0"
        widths = (10, 11, 9, 24, 16, 18, 12, 9, 12, 16, 16, 18, 24, 17, 24)
        for index, width in enumerate(widths):
            self.sheet.column_dimensions[chr(ord("A") + index)].width = width
        self.sheet.append(list(HEADER))

    def _cell(self, value: Any, number_format: str) -> WriteOnlyCell:
        cell = WriteOnlyCell(self.sheet, value=value)
        cell.number_format = number_format
        return cell

    def write(self, rows: Sequence[Any]) -> None:
        for p in rows:
            values = self.cells.values(p)
            # Dates, times and amounts as typed cells: the spreadsheet sorts and sums them.
            values[1] = self._cell(values[1], "yyyy-mm-dd")
            values[2] = self._cell(values[2], "hh:mm:ss")
            values[6] = self._cell(values[6], self.money_format)
            if values[13] is not None:
                values[13] = self._cell(values[13], "yyyy-mm-dd hh:mm")
            self.sheet.append(values)

    def close(self) -> None:
        self.book.save(self.path)


async def write_export(
    batches: AsyncIterator[Sequence[Any]],
    *,
    path: Path,
    fmt: str,
    currency: str,
    timezone: str,
    convert: Callable[[Any], Any] = lambda row: row,
    method_word: Callable[[str], str] = str,
    title: str = "payments",
) -> ExportFile:
    """Write every batch to `path` (`fmt` csv or xlsx); zip a CSV over Telegram's limit.

    `convert` turns a fetched row into the object the cells read (a `LoggedPayment`); it
    runs in the worker thread with the writing, so the event loop only fetches. The next
    batch is fetched while this one is written.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    cells = _Cells(currency, timezone, method_word)
    writer: _Writer = await asyncio.to_thread(
        (lambda: _CsvWriter(path, cells))
        if fmt == "csv"
        else (lambda: _XlsxWriter(path, cells, title))
    )

    def write(batch: Sequence[Any]) -> None:
        writer.write([convert(row) for row in batch])

    rows = 0
    source = aiter(batches)
    following = asyncio.ensure_future(anext(source, None))
    try:
        while (batch := await following) is not None:
            following = asyncio.ensure_future(anext(source, None))
            rows += len(batch)
            if fmt == "xlsx" and rows > XLSX_MAX_ROWS:
                raise OverflowError("more rows than the spreadsheet export takes")
            await asyncio.to_thread(write, batch)
    finally:
        if not following.done():
            following.cancel()
        await asyncio.to_thread(writer.close)
    return await asyncio.to_thread(_finish, path, fmt, rows)


def _finish(path: Path, fmt: str, rows: int) -> ExportFile:
    size = path.stat().st_size
    if fmt == "csv" and size > TELEGRAM_MAX_BYTES:
        zipped = _zip(path)
        return ExportFile(zipped, zipped.name, rows, zipped.stat().st_size, True)
    return ExportFile(path, path.name, rows, size, False)


def _zip(path: Path) -> Path:
    target = path.with_suffix(path.suffix + ".zip")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.write(path, arcname=path.name)
    path.unlink()
    return target
