"""The migrations give exactly the schema the models describe, on SQLite and PostgreSQL.

Each comparison builds two empty databases of one dialect: one by `core.db.migrate.migrate`
(the aerich set on disk), one the way the test fixtures do (`Tortoise.generate_schemas()`
plus `core.db.constraints`). Their catalogues are read back, normalised and compared.
These tests make their own databases and never use the `db` fixture.

Tortoise caches each model's INSERT/UPDATE/DELETE SQL per connection name, not per dialect,
so the SQLite tests (which also run in the PostgreSQL session) write rows with plain SQL
only: an ORM write here would leave SQLite SQL behind for the PostgreSQL tests, or the
other way round.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from tortoise import Tortoise, connections
from tortoise.context import TortoiseContext
from tortoise.exceptions import IntegrityError, OperationalError

from core.db import constraints
from core.db.makemigrations import (
    DEFAULT_POSTGRES_URL,
    INITIAL_NAME,
    render,
    throwaway_postgres,
)
from core.db.migrate import APP, migrate, migrations_location
from core.db.models import Invoice, Tenant
from core.db.orm import tortoise_config

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
DIALECTS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres_only)]
AERICH_TABLE = "aerich"


def _version_files(dialect: str) -> list[str]:
    files = (migrations_location(dialect) / APP).glob("[0-9]*_*.py")
    return sorted((path.name for path in files), key=lambda name: int(name.split("_", 1)[0]))


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def _sqlite_path(url: str) -> str:
    return url.split("://", 1)[1]


def _squash(sql: str) -> str:
    return " ".join(sql.split())


@pytest_asyncio.fixture
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a brand-new, empty database of the dialect in `request.param`."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path}/fresh/empty.sqlite3"
    else:
        async with throwaway_postgres(PG_ADMIN_URL, "collectbot_test_mig") as url:
            yield url


async def _build_from_models(url: str, dialect: str) -> None:
    """The schema the test fixtures build: the models, then the row rules."""
    async with TortoiseContext():
        await Tortoise.init(config=tortoise_config(url))
        await Tortoise.generate_schemas(safe=False)
        conn = connections.get("default")
        for sql in constraints.statements(dialect):
            await conn.execute_script(sql)


# ---------------------------------------------------------------- SQLite catalogue


def sqlite_schema(path: str) -> dict[str, Any]:
    """Tables, columns, indexes, foreign keys and triggers of a SQLite file, normalised."""
    with closing(sqlite3.connect(path)) as db:
        objects = db.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master"
            " WHERE name NOT LIKE 'sqlite_%' AND tbl_name != ?",
            (AERICH_TABLE,),
        ).fetchall()
        tables: dict[str, Any] = {}
        for kind, name, _table, sql in objects:
            if kind != "table":
                continue
            columns = {
                # Keyed by name: column order is not part of the model, and an
                # `ALTER TABLE ... ADD COLUMN` in a later migration appends.
                col_name: {"type": col_type, "notnull": notnull, "default": default, "pk": pk}
                for _cid, col_name, col_type, notnull, default, pk, _hidden in db.execute(
                    f'PRAGMA table_xinfo("{name}")'
                )
            }
            indexes = []
            for _seq, index, unique, origin, partial in db.execute(
                f'PRAGMA index_list("{name}")'
            ).fetchall():
                index_columns = [row[2] for row in db.execute(f'PRAGMA index_info("{index}")')]
                # Indexes SQLite makes for inline UNIQUE constraints are named by their
                # position in the table (`sqlite_autoindex_<table>_<n>`): their columns say
                # what they are, the number does not.
                label = "<auto>" if index.startswith("sqlite_autoindex_") else index
                indexes.append((label, tuple(index_columns), unique, origin, partial))
            foreign_keys = sorted(
                # Drop the constraint's ordinal (`id`): it only numbers them in the table.
                (ref_table, from_col, to_col, on_update, on_delete, match)
                for _id, _seq, ref_table, from_col, to_col, on_update, on_delete, match in (
                    db.execute(f'PRAGMA foreign_key_list("{name}")')
                )
            )
            tables[name] = {
                "columns": columns,
                "indexes": sorted(indexes),
                "foreign_keys": foreign_keys,
                # Not visible to any PRAGMA; it decides whether ids are ever reused.
                "autoincrement": "AUTOINCREMENT" in sql.upper(),
            }
        triggers = {
            name: (table, _squash(sql)) for kind, name, table, sql in objects if kind == "trigger"
        }
    return {"tables": tables, "triggers": triggers}


async def test_sqlite_migrations_give_the_models_schema(tmp_path: Path) -> None:
    migrated = tmp_path / "migrated.sqlite3"
    reference = tmp_path / "reference.sqlite3"

    assert await migrate(f"sqlite://{migrated}") == _version_files("sqlite")
    await _build_from_models(f"sqlite://{reference}", "sqlite")

    got, want = sqlite_schema(str(migrated)), sqlite_schema(str(reference))
    assert set(got["tables"]) == set(want["tables"])
    for table in want["tables"]:
        assert got["tables"][table] == want["tables"][table], table
    assert got["triggers"] == want["triggers"]
    # The comparison must have had something to compare.
    assert "invoice" in want["tables"] and len(want["triggers"]) == len(constraints.SQLITE)


# ------------------------------------------------------------ PostgreSQL catalogue

_PG_COLUMNS = """
SELECT c.table_name, c.column_name, c.data_type, c.udt_name, c.character_maximum_length,
       c.numeric_precision, c.is_nullable, c.column_default, c.is_identity,
       col_description(format('%I.%I', c.table_schema, c.table_name)::regclass,
                       c.ordinal_position) AS comment
FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.table_name <> $1
"""
_PG_TABLES = """
SELECT c.relname AS name, obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> $1
"""
_PG_INDEXES = """
SELECT tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename <> $1
"""
_PG_CONSTRAINTS = """
SELECT cl.relname AS table_name, co.conname, co.contype::text AS contype,
       pg_get_constraintdef(co.oid) AS definition
FROM pg_constraint co
JOIN pg_class cl ON cl.oid = co.conrelid
JOIN pg_namespace n ON n.oid = cl.relnamespace
WHERE n.nspname = 'public' AND cl.relname <> $1
"""
_PG_TRIGGERS = """
SELECT cl.relname AS table_name, t.tgname, pg_get_triggerdef(t.oid) AS definition
FROM pg_trigger t JOIN pg_class cl ON cl.oid = t.tgrelid
WHERE NOT t.tgisinternal AND cl.relname <> $1
"""
# `nextval('tenant_id_seq'::regclass)`: the sequence name follows the table's name at
# creation and survives a rename; what matters is that the column draws from a sequence.
_SEQUENCE_DEFAULT = re.compile(r"nextval\('[^']+'::regclass\)")


def _normalise_default(default: str | None) -> str | None:
    return None if default is None else _SEQUENCE_DEFAULT.sub("nextval(<sequence>)", default)


def _normalise_indexdef(definition: str) -> str:
    # pg_indexes qualifies the table by schema (`ON public.invoice`); the schema is given
    # by the connection's search_path, not by the migrations.
    return _squash(definition.replace(" ON public.", " ON "))


async def postgres_schema(url: str) -> dict[str, Any]:
    """Tables, columns, indexes, constraints and triggers of a PostgreSQL database."""
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        tables = {
            row["name"]: row["comment"] for row in await conn.fetch(_PG_TABLES, AERICH_TABLE)
        }
        columns = {
            (row["table_name"], row["column_name"]): {
                **dict(row),
                "column_default": _normalise_default(row["column_default"]),
            }
            for row in await conn.fetch(_PG_COLUMNS, AERICH_TABLE)
        }
        indexes = sorted(
            (row["tablename"], row["indexname"], _normalise_indexdef(row["indexdef"]))
            for row in await conn.fetch(_PG_INDEXES, AERICH_TABLE)
        )
        checks = sorted(
            (row["table_name"], row["conname"], row["contype"], row["definition"])
            for row in await conn.fetch(_PG_CONSTRAINTS, AERICH_TABLE)
        )
        triggers = sorted(
            tuple(row.values()) for row in await conn.fetch(_PG_TRIGGERS, AERICH_TABLE)
        )
    finally:
        await conn.close()
    return {
        "tables": tables,
        "columns": columns,
        "indexes": indexes,
        "constraints": checks,
        "triggers": triggers,
    }


@pytest.mark.postgres_only
async def test_postgres_migrations_give_the_models_schema() -> None:
    async with (
        throwaway_postgres(PG_ADMIN_URL, "collectbot_test_mig") as migrated,
        throwaway_postgres(PG_ADMIN_URL, "collectbot_test_ref") as reference,
    ):
        assert await migrate(migrated) == _version_files("postgres")
        await _build_from_models(reference, "postgres")
        got, want = await postgres_schema(migrated), await postgres_schema(reference)

    # Table and column comments included: they come from the model docstrings and enums.
    assert got["tables"] == want["tables"]
    assert set(got["columns"]) == set(want["columns"])
    for key, column in want["columns"].items():
        assert got["columns"][key] == column, key
    assert got["indexes"] == want["indexes"]
    assert got["constraints"] == want["constraints"]
    assert got["triggers"] == want["triggers"]
    names = {name for _table, name, _type, _definition in want["constraints"]}
    assert "ck_invoice_paid_within_amount" in names


# ------------------------------------------------------------------ behaviour


@pytest.mark.parametrize("empty_database", DIALECTS, indirect=True)
async def test_migrating_twice_applies_nothing_the_second_time(
    empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # migrations are found from the code, not the working dir
    dialect = "sqlite" if empty_database.startswith("sqlite") else "postgres"
    assert await migrate(empty_database) == _version_files(dialect)
    assert await migrate(empty_database) == []


@pytest.mark.postgres_only
async def test_processes_starting_together_migrate_once() -> None:
    async with throwaway_postgres(PG_ADMIN_URL, "collectbot_test_mig") as url:
        first, second = await asyncio.gather(migrate(url), migrate(url))
    assert sorted([first, second]) == [[], _version_files("postgres")]


_INSERT_TENANT = "INSERT INTO tenant (id, name, currency, country, timezone, locale,"
_INSERT_TENANT += " reschedule_days, failed_visits_before_flag, dunning_hour, renewal_lead_days,"
_INSERT_TENANT += " created_at)"
_INSERT_TENANT += " VALUES (1, 'ISP', 'BDT', 'BD', 'Asia/Dhaka', 'en', 2, 3, 9, 5,"
_INSERT_TENANT += " CURRENT_TIMESTAMP)"
_INSERT_SUBSCRIBER = (
    "INSERT INTO subscriber (id, tenant_id, username, name, address, area, street, status,"
    " billing_mode, usage_bytes, billing_cycle_months, created_at)"
    " VALUES (1, 1, 'u1', 'Subscriber', '', '', '', 'active', 'prepaid', 0, 1, CURRENT_TIMESTAMP)"
)


def _insert_invoice(number: str, amount: int, paid: int) -> str:
    return (
        "INSERT INTO invoice (tenant_id, subscriber_id, number, kind, purpose, amount_minor,"
        " paid_minor, status, issue_date, due_date, failed_visits, system_generated,"
        " created_at) VALUES"
        f" (1, 1, '{number}', 'invoice', 'renewal', {amount}, {paid}, 'unpaid',"
        " CURRENT_DATE, CURRENT_DATE, 0, FALSE, CURRENT_TIMESTAMP)"
    )


@pytest.mark.parametrize("empty_database", DIALECTS, indirect=True)
async def test_migrated_database_is_ready_for_the_orm_and_holds_the_row_rules(
    empty_database: str,
) -> None:
    await migrate(empty_database)

    # What the service does next: a plain, global init on the migrated database.
    await Tortoise.init(config=tortoise_config(empty_database))
    try:
        conn = connections.get("default")
        assert await Tenant.all().count() == 0
        # Plain SQL, not the ORM: see the module docstring.
        await conn.execute_script(_INSERT_TENANT)
        await conn.execute_script(_INSERT_SUBSCRIBER)
        await conn.execute_script(_insert_invoice("INV-1", amount=1000, paid=1000))
        with pytest.raises((IntegrityError, OperationalError), match=r"(?i)check"):
            await conn.execute_script(_insert_invoice("INV-2", amount=1000, paid=1001))
        with pytest.raises((IntegrityError, OperationalError), match=r"(?i)check"):
            await conn.execute_script(
                "UPDATE invoice SET paid_minor = 1001 WHERE number = 'INV-1'"
            )
        assert await Invoice.filter(tenant_id=1).values_list("number", "paid_minor") == [
            ("INV-1", 1000)
        ]
    finally:
        await connections.close_all()


@pytest.mark.parametrize("empty_database", DIALECTS, indirect=True)
async def test_migrate_leaves_the_callers_tortoise_context_alone(empty_database: str) -> None:
    # A caller that initialised Tortoise first (on a SQLite URL its directory must exist).
    if empty_database.startswith("sqlite"):
        Path(_sqlite_path(empty_database)).parent.mkdir(parents=True)
    async with TortoiseContext() as ctx:
        await Tortoise.init(config=tortoise_config(empty_database))
        await migrate(empty_database)
        assert Tortoise._get_context() is ctx
        assert "Aerich" not in Tortoise.apps["models"]
        assert await Tenant.all().count() == 0


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
async def test_committed_migrations_are_what_the_models_generate(dialect: str) -> None:
    """Fails when the models changed without `make migrations` (or the file was edited)."""
    # Until the first deployment each set is one initial migration, rebuilt from scratch.
    # After it, migrations become incremental and this test gives way to the schema ones.
    assert _version_files(dialect) == [INITIAL_NAME], f"run `make migrations` ({dialect})"
    want, _sql = await render(dialect)
    got = (migrations_location(dialect) / APP / INITIAL_NAME).read_text(encoding="utf-8")
    assert got == want, f"migrations/{dialect} is stale: run `make migrations`"
    assert "import core" not in got and "from core" not in got
