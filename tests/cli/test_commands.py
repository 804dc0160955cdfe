"""The `collectbot` command line, run as a user runs it: a real process, a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(*args: str, cwd: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"DATABASE_URL": database_url, "BOT_USERNAME": "dhaka_fiber_bot"}
    return subprocess.run(
        [sys.executable, "-m", "collectbot.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> tuple[Path, str]:
    return tmp_path, f"sqlite://{tmp_path}/office.sqlite3"


def test_the_demo_plays_the_whole_story_through_the_bot_and_leaves_the_documents(tmp_path):
    result = _run(
        "demo",
        "--data-dir",
        str(tmp_path / "demo"),
        cwd=tmp_path,
        database_url="sqlite://unused.sqlite3",
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in (
        "Welcome, Karim! You are now a collector",
        "[Assign 4 to Karim]",
        "refused: not found",
        "posted · INV-2026-0044 paid",
        "partly paid",
        "Noted: not home",
        "✅ Paid Karim",
        "Receipt photo · INV-2026-0044",
        "WhatsApp receipt to +8801552000004: sent ",
        "2 WhatsApp receipts were delivered.",
        "your service will be suspended on",
        "is suspended",
        "Rafiqul Islam is active again.",
        "legs sum to 0.",
    ):
        assert line in out, line
    assert "Traceback" not in result.stderr
    made = sorted(p.suffix for p in (tmp_path / "demo").glob("collector-report-*"))
    assert made == [".pdf", ".xlsx"]
    receipts = sorted((tmp_path / "demo").glob("receipt-*.pdf"))
    assert len(receipts) == 2 and all(p.read_bytes().startswith(b"%PDF") for p in receipts)


def test_an_office_is_set_up_from_the_command_line(workdir):
    cwd, url = workdir
    assert _run("migrate", cwd=cwd, database_url=url).stdout.startswith("Applied 1")
    assert "up to date" in _run("migrate", cwd=cwd, database_url=url).stdout
    created = _run("tenant", "--name", "Dhaka Fiber Net", cwd=cwd, database_url=url)
    assert "with id 1" in created.stdout

    invite = _run(
        "invite", "--tenant", "1", "--role", "admin", "--name", "Nadia", cwd=cwd, database_url=url
    )

    assert invite.returncode == 0, invite.stderr
    assert "https://t.me/dhaka_fiber_bot?start=" in invite.stdout


def test_an_import_with_errors_names_each_row_and_field_and_writes_nothing(workdir):
    cwd, url = workdir
    _run("migrate", cwd=cwd, database_url=url)
    _run("tenant", "--name", "Dhaka Fiber Net", cwd=cwd, database_url=url)
    _run(
        "invite", "--tenant", "1", "--role", "admin", "--name", "Nadia", cwd=cwd, database_url=url
    )
    bad = cwd / "subscribers.csv"
    bad.write_text(
        "username,name,phone\nrahim,Rahim Uddin,01711-000001\n"
        "karim,Karim,12345\nrahim,Rahim Again,01711-000009\n",
        encoding="utf-8",
    )

    result = _run("import", "subscribers", str(bad), "--tenant", "1", cwd=cwd, database_url=url)

    assert result.returncode == 2
    assert "row 3, phone" in result.stderr
    assert "row 4, username" in result.stderr
    dry = _run(
        "import", "subscribers", str(bad), "--tenant", "1", "--dry-run", cwd=cwd, database_url=url
    )
    assert dry.returncode == 2
    good = cwd / "good.csv"
    good.write_text("username,name,phone\nrahim,Rahim Uddin,01711-000001\n", encoding="utf-8")
    assert (
        "nothing written"
        in _run(
            "import",
            "subscribers",
            str(good),
            "--tenant",
            "1",
            "--dry-run",
            cwd=cwd,
            database_url=url,
        ).stdout
    )
    assert (
        "1 imported"
        in _run(
            "import", "subscribers", str(good), "--tenant", "1", cwd=cwd, database_url=url
        ).stdout
    )


def test_an_import_before_any_admin_exists_says_what_to_do_first(workdir):
    cwd, url = workdir
    _run("migrate", cwd=cwd, database_url=url)
    _run("tenant", "--name", "Dhaka Fiber Net", cwd=cwd, database_url=url)
    (cwd / "s.csv").write_text("username,name,phone\n", encoding="utf-8")
    result = _run("import", "subscribers", "s.csv", "--tenant", "1", cwd=cwd, database_url=url)
    assert result.returncode == 2
    assert "collectbot invite --tenant 1 --role admin" in result.stderr


def test_every_command_has_help(tmp_path: Path):
    for command in ("migrate", "tenant", "invite", "import", "demo"):
        result = _run(command, "--help", cwd=tmp_path, database_url="sqlite://x.sqlite3")
        assert result.returncode == 0
        assert "usage: collectbot" in result.stdout
