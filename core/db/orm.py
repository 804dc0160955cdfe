"""ORM wiring: the Tortoise config for a `DATABASE_URL`, and opening/closing it.

Tortoise 1.x keeps its connections in a context variable: call `open_database` in the task
that then starts everything else (bot, web server, scheduler), never before spawning them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url

MODEL_MODULES = ["core.db.models"]


def dialect_of(url: str) -> str:
    """`sqlite` or `postgres`, from a Tortoise database URL."""
    scheme = url.split(":", 1)[0]
    if scheme == "sqlite":
        return "sqlite"
    if scheme in {"postgres", "asyncpg", "psycopg", "postgresql"}:
        return "postgres"
    raise ValueError(f"Unsupported database URL scheme {scheme!r}: use sqlite:// or postgres://")


async def _return_to_pool(connection: Any) -> None:
    """Ready a PostgreSQL connection for its next borrower, in place of asyncpg's reset.

    asyncpg's default (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) costs a
    round trip after every statement Tortoise sends outside a transaction: on a short query
    that is a third of its time. The application leaves none of that state on pooled
    connections: settings are `SET LOCAL`, there are no cursors, LISTENs or advisory locks
    (the migrator's lock has its own connection). What can be left is a transaction a
    cancelled task never ended: that is rolled back.
    """
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


def tortoise_config(url: str, *, with_aerich: bool = False) -> dict[str, Any]:
    """The Tortoise config dict for one connection named `default`."""
    modules = [*MODEL_MODULES, "aerich.models"] if with_aerich else list(MODEL_MODULES)
    connection: str | dict[str, Any] = url
    if dialect_of(url) == "postgres":
        connection = expand_db_url(url)
        connection["credentials"]["reset"] = _return_to_pool
    return {
        "connections": {"default": connection},
        "apps": {"models": {"models": modules, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


def ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a file-backed SQLite database (first run on a new machine)."""
    if dialect_of(url) == "sqlite":
        path = url.split("://", 1)[1].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


async def open_database(url: str) -> None:
    ensure_sqlite_dir(url)
    await Tortoise.init(config=tortoise_config(url))


async def close_database() -> None:
    await connections.close_all()


@asynccontextmanager
async def database(url: str) -> AsyncIterator[None]:
    await open_database(url)
    try:
        yield
    finally:
        await close_database()


def current_dialect() -> str:
    """The dialect of the open `default` connection."""
    return str(connections.get("default").capabilities.dialect)
