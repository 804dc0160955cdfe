"""Hand-written SQL for the queries that must be one statement (routes, reports).

Queries are written once with `?` placeholders; `fetch` rewrites them to `$1, $2, ...` for
PostgreSQL and turns dates into ISO text for SQLite (where Tortoise stores them as text),
so the same SQL runs on both.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

# Parameter types SQLite takes as they are: most parameters, so they skip the isinstance
# checks below (`fetch` is on the delivery webhooks' hot path, a dozen parameters an event).
_SQLITE_NATIVE = frozenset({int, str, float, bool, bytes, type(None)})


# The texts are the module-level constants of a few services, and the shapes the delivery
# webhooks build per batch size: a bounded set, each rewritten once.
@lru_cache(maxsize=1024)
def _to_postgres(sql: str) -> str:
    parts = sql.split("?")
    out = [parts[0]]
    for n, part in enumerate(parts[1:], start=1):
        out.append(f"${n}{part}")
    return "".join(out)


def _sqlite_value(value: Any) -> Any:
    if type(value) in _SQLITE_NATIVE:
        return value
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


async def fetch(
    sql: str, params: list[Any], conn: BaseDBAsyncClient | None = None
) -> list[dict[str, Any]]:
    """Run one SELECT with `?` placeholders on the default connection; rows as dicts."""
    conn = conn or connections.get("default")
    if conn.capabilities.dialect == "postgres":
        return list(await conn.execute_query_dict(_to_postgres(sql), params))
    return list(await conn.execute_query_dict(sql, [_sqlite_value(p) for p in params]))
