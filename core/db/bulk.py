"""Set-based statements for sweeps: many rows in one statement, on both dialects.

The daily dunning run writes thousands of rows a batch (outbox messages, debit notes,
postings, audit rows). Tortoise's `bulk_create` builds a model object per row and returns
no ids on every backend, so sweeps use these instead:

- `insert_rows`: PostgreSQL gets each column as one array parameter
  (`INSERT ... SELECT ... FROM unnest($1::int[], ...)`), so a thousand rows are one statement
  with a handful of parameters; SQLite gets multi-row `VALUES` in chunks under its
  parameter limit. Rows a UNIQUE index refuses are skipped (`ON CONFLICT DO NOTHING`), and
  the columns asked for come back for the rows actually written: that is how a sweep knows
  what it did, and why running it twice writes nothing twice. Columns a row leaves out get
  the model's default (the schema has no DEFAULT clauses: Tortoise fills them in Python),
  so a column added to a model later does not break the sweeps.
- `in_ids`: `column = ANY(?)` (one array parameter) or `column IN (?, ?, ...)`.

Values go in as Python values; rows come back as the drivers give them: PostgreSQL gives
dates and booleans, SQLite ISO text and 0/1 (see `as_date`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

from core.db.sql import fetch

# SQLite allows 32,766 parameters a statement (3.32+); stay well under it.
SQLITE_MAX_PARAMS = 30_000
SQLITE_MAX_ROWS = 500

_MISSING = object()
_NOW = object()  # an auto_now_add column left out: the time of the insert


def _is_postgres(conn: BaseDBAsyncClient) -> bool:
    return conn.capabilities.dialect == "postgres"


def _pg_type(field: fields.Field) -> str:
    if isinstance(field, fields.JSONField):
        return "jsonb"
    if isinstance(field, fields.BigIntField):
        return "bigint"
    if isinstance(field, fields.BooleanField):
        return "bool"
    if isinstance(field, fields.DatetimeField):
        return "timestamptz"
    if isinstance(field, fields.DateField):
        return "date"
    if isinstance(field, fields.FloatField):
        return "float8"
    if isinstance(field, fields.IntField | fields.SmallIntField):
        return "int"
    return "text"


@lru_cache(maxsize=64)
def _columns(model: type[Model], given: tuple[str, ...]) -> tuple[tuple[str, str, Any], ...]:
    """(column, PostgreSQL type, value when left out) for `given` and every other column
    that needs a value; `_MISSING` for the given ones."""
    meta = model._meta
    out: list[tuple[str, str, Any]] = []
    by_column = {column: name for name, column in meta.fields_db_projection.items()}
    for column in given:
        if column not in by_column:
            raise ValueError(f"{meta.db_table} has no column {column!r}")
        out.append((column, _pg_type(meta.fields_map[by_column[column]]), _MISSING))
    for name, column in meta.fields_db_projection.items():
        field = meta.fields_map[name]
        if column in given or field.pk or field.null:
            continue
        if getattr(field, "auto_now_add", False) or getattr(field, "auto_now", False):
            default: Any = _NOW
        elif field.default is None:
            raise ValueError(f"{meta.db_table}.{column} needs a value")
        else:
            default = field.default
        out.append((column, _pg_type(field), default))
    return tuple(out)


def _value(value: Any, pg_type: str, now: datetime) -> Any:
    if value is _NOW:
        return now
    if callable(value):
        value = value()
    if isinstance(value, Enum):
        value = value.value
    if pg_type == "jsonb" and value is not None:
        return json.dumps(value, separators=(",", ":"))
    return value


async def insert_rows(
    conn: BaseDBAsyncClient,
    model: type[Model],
    rows: Sequence[dict[str, Any]],
    *,
    returning: Sequence[str] = ("id",),
) -> list[dict[str, Any]]:
    """Insert `rows` (dicts of column -> value, all with the same keys) into `model`'s table,
    skipping any a UNIQUE index refuses. Returns the `returning` columns of the rows
    written (not of the skipped ones)."""
    if not rows:
        return []
    table = model._meta.db_table
    columns = _columns(model, tuple(rows[0]))
    now = datetime.now(UTC)
    records = [
        tuple(_value(row[c] if d is _MISSING else d, t, now) for c, t, d in columns)
        for row in rows
    ]
    names = ", ".join(c for c, _, _ in columns)
    back = ", ".join(returning)
    if _is_postgres(conn):
        arrays = [list(values) for values in zip(*records, strict=True)]
        unnest = ", ".join(f"?::{'text' if t == 'jsonb' else t}[]" for _, t, _ in columns)
        select = ", ".join(f"u.{c}::jsonb" if t == "jsonb" else f"u.{c}" for c, t, _ in columns)
        sql = (
            f"INSERT INTO {table} ({names}) SELECT {select} FROM unnest({unnest}) AS u({names})"
            f" ON CONFLICT DO NOTHING RETURNING {back}"
        )
        return await fetch(sql, arrays, conn)
    per_chunk = max(1, min(SQLITE_MAX_ROWS, SQLITE_MAX_PARAMS // len(columns)))
    marks = "(" + ", ".join("?" * len(columns)) + ")"
    written: list[dict[str, Any]] = []
    for start in range(0, len(records), per_chunk):
        chunk = records[start : start + per_chunk]
        sql = (
            f"INSERT INTO {table} ({names}) VALUES {', '.join([marks] * len(chunk))}"
            f" ON CONFLICT DO NOTHING RETURNING {back}"
        )
        written.extend(await fetch(sql, [_sqlite(v) for record in chunk for v in record], conn))
    return written


def _sqlite(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def in_ids(conn: BaseDBAsyncClient, column: str, ids: Sequence[int]) -> tuple[str, list[Any]]:
    """A condition `column` is one of `ids`, and its parameters (nothing matches no ids)."""
    if not ids:
        return "1 = 0", []
    if _is_postgres(conn):
        return f"{column} = ANY(?::int[])", [list(ids)]
    return f"{column} IN ({', '.join('?' * len(ids))})", list(ids)


def as_date(value: Any) -> date | None:
    """A DATE column as read raw (SQLite gives ISO text)."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
