"""Picking the migration set from a database URL, and the generator's string escaping."""

from __future__ import annotations

import pytest

from core.db.makemigrations import _py_string_body
from core.db.migrate import APP, MIGRATIONS_DIR, migrations_location
from core.db.orm import dialect_of


@pytest.mark.parametrize(
    ("url", "dialect"),
    [
        ("sqlite://data/collectbot.sqlite3", "sqlite"),
        ("sqlite:///abs/path.sqlite3", "sqlite"),
        ("postgres://u:p@h:5432/db", "postgres"),
        ("asyncpg://u@h/db", "postgres"),
        ("psycopg://u@h/db", "postgres"),
    ],
)
def test_dialect_of_picks_the_migration_set(url: str, dialect: str) -> None:
    assert dialect_of(url) == dialect
    assert (migrations_location(dialect) / APP).is_dir()


def test_dialect_of_rejects_other_databases() -> None:
    with pytest.raises(ValueError, match="mysql"):
        dialect_of("mysql://u@h/db")


def test_migrations_are_found_from_the_code_not_the_working_directory() -> None:
    assert MIGRATIONS_DIR.is_absolute()
    assert (MIGRATIONS_DIR.parent / "core" / "db" / "migrate.py").is_file()


@pytest.mark.parametrize(
    "sql",
    [
        'COMMENT ON COLUMN "staff"."role" IS \'ADMIN: admin\\nCOLLECTOR: collector\';',
        'SELECT """quoted""" AS x;',
        "trailing backslash \\",
        'ends in a quoted identifier "x"',
        'four quotes """" and two at the end ""',
    ],
)
def test_sql_survives_the_trip_through_a_python_string(sql: str) -> None:
    source = f'value = """\n{_py_string_body(sql)}"""'
    namespace: dict[str, str] = {}
    exec(source, namespace)
    assert namespace["value"] == "\n" + sql
