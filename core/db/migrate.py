"""Applying the aerich migrations: bring the database at a URL up to the models' schema.

One migration set per dialect (aerich writes dialect-specific SQL, DESIGN.md section 10):
`migrations/sqlite/models/` and `migrations/postgres/models/`, chosen from the URL. The
sets are regenerated from the models by `core/db/makemigrations.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from aerich import Command
from aerich.models import Aerich
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.context import TortoiseContext

from core.db.orm import dialect_of, ensure_sqlite_dir, tortoise_config

# The migration sets live in the source tree, next to `core/`, not under the current
# directory: the service may be started from anywhere. (A wheel install would not ship
# them; collectbot is installed editable, from the checkout.)
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# aerich's app label: the sets sit in `<location>/<app>/`, and the `aerich` table records it.
APP = "models"
# Key of the PostgreSQL advisory lock migrators take; any constant shared by all processes.
_PG_LOCK_KEY = 0x636F6C6C


@asynccontextmanager
async def _one_migrator_at_a_time(url: str) -> AsyncIterator[None]:
    """Hold a PostgreSQL advisory lock: several processes may start (and migrate) at once.

    Without it, two processes seeing an empty database both create the tables and one
    fails. The lock lives on its own connection (closing it releases the lock), so aerich's
    pool can be as small as one. SQLite serves a single process and needs none.
    """
    if dialect_of(url) != "postgres":
        yield
        return
    credentials = expand_db_url(url)["credentials"]
    conn = await asyncpg.connect(
        host=credentials.get("host"),
        port=credentials.get("port"),
        user=credentials.get("user"),
        password=credentials.get("password"),
        database=credentials.get("database"),
        ssl=credentials.get("ssl"),
    )
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _PG_LOCK_KEY)
        yield
    finally:
        await conn.close()


def _forget_cached_aerich_sql() -> None:
    """Drop Tortoise's cached INSERT/UPDATE/DELETE SQL for aerich's own table.

    Tortoise keeps that SQL in a process-wide cache keyed by (connection name, schema,
    table), not by dialect: after migrating a SQLite database, recording the version in a
    PostgreSQL one (same connection name, `default`) would reuse SQLite's `?` placeholders
    and fail. Only the `aerich` row is written through the ORM here, so only it is dropped.
    """
    for key in [key for key in EXECUTOR_CACHE if key[2] == Aerich._meta.db_table]:
        del EXECUTOR_CACHE[key]


def migrations_location(dialect: str) -> Path:
    """The `location` aerich is given for a dialect (its files are under `<location>/models`)."""
    return MIGRATIONS_DIR / dialect


async def migrate(url: str) -> list[str]:
    """Apply the migrations the database at `url` lacks; return their file names, in order.

    Safe to run on every start, by several processes at once: an up-to-date database gets
    nothing and returns `[]`; an empty one (first run on a new machine) gets the whole set.
    """
    location = migrations_location(dialect_of(url))
    if not any((location / APP).glob("[0-9]*_*.py")):
        raise FileNotFoundError(
            f"No migrations in {location / APP}: run `make migrations` in the source tree"
        )
    ensure_sqlite_dir(url)
    # aerich's Command calls `Tortoise.init`, which binds to the *current* Tortoise context
    # (a context variable) and, if there is none, creates one that outlives this call. A
    # private context keeps aerich's connections (and its extra `aerich` model) away from
    # whatever the caller initialises before or after, and closes them on the way out.
    async with _one_migrator_at_a_time(url), TortoiseContext():
        command = Command(
            tortoise_config=tortoise_config(url, with_aerich=True),
            app=APP,
            location=str(location),
        )
        await command.init()
        _forget_cached_aerich_sql()
        return await command.upgrade(run_in_transaction=True)
