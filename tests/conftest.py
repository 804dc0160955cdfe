"""Test database wiring: every test gets a clean database of the backend under test.

`COLLECTBOT_TEST_DB=sqlite` (default) gives each test a fresh file-backed SQLite database.
`COLLECTBOT_TEST_DB=postgres` creates one throw-away PostgreSQL database for the session
(dropped at the end, so runs never collide or leave data behind) and truncates it before
each test. The schema comes from the models plus `core/db/constraints.py`, exactly what
the migrations produce (tests/services/test_migrations.py proves that).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from tortoise import Tortoise, connections

from core.db import constraints
from core.db.orm import tortoise_config

# PTB 22 warns on every RetryAfter unless opted in to timedelta values (its next major's
# behaviour); warnings are errors here, and the application opts in the same way.
os.environ.setdefault("PTB_TIMEDELTA", "1")

BACKEND = os.environ.get("COLLECTBOT_TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def pytest_report_header() -> str:
    return f"collectbot test database: {BACKEND}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND == "postgres":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (run with COLLECTBOT_TEST_DB=postgres)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


def _asyncpg_url(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


@pytest_asyncio.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """A brand-new PostgreSQL database for this test session, dropped afterwards."""
    name = f"collectbot_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_url(PG_ADMIN_URL))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    await Tortoise.init(config=tortoise_config(url))
    await Tortoise.generate_schemas(safe=False)
    conn = connections.get("default")
    for sql in constraints.statements("postgres"):
        await conn.execute_script(sql)
    await connections.close_all()
    try:
        yield url
    finally:
        admin = await asyncpg.connect(_asyncpg_url(PG_ADMIN_URL))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if BACKEND == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite://{tmp_path}/test.sqlite3"


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[str]:
    """An open, empty database with the full schema; yields its URL."""
    await Tortoise.init(config=tortoise_config(database_url))
    conn = connections.get("default")
    if BACKEND == "postgres":
        tables = [m._meta.db_table for m in Tortoise.apps["models"].values()]
        await conn.execute_script(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    else:
        await Tortoise.generate_schemas(safe=False)
        for sql in constraints.statements("sqlite"):
            await conn.execute_script(sql)
    try:
        yield database_url
    finally:
        await connections.close_all()
