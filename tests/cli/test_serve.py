"""`collectbot serve` as a real process: polling the (fake) Bot API, serving /healthz."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from collectbot.fakes.telegram import FakeTelegram
from collectbot.fakes.whatsapp import FakeUltramsg
from core.db.models import NotificationLog, OutboxMessage
from core.db.orm import database
from core.domain.status import Role
from core.services.assignments import assign_invoices
from core.services.collection import mark_collected
from tests.factories import make_invoice, make_staff, make_subscriber, make_tenant

TOKEN = "424242:SERVE-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(*args: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "collectbot.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


async def _healthy(port: int) -> dict:
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    return dict(await response.json())
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise AssertionError("serve never answered /healthz")


async def test_serve_polls_the_bot_api_answers_an_invited_admin_and_stops_cleanly(tmp_path):
    async with FakeTelegram(token=TOKEN, bot_username="dhaka_fiber_bot") as tg:
        port = _free_port()
        env = os.environ | {
            "DATABASE_URL": f"sqlite://{tmp_path}/serve.sqlite3",
            "DATA_DIR": str(tmp_path / "data"),
            "BOT_TOKEN": TOKEN,
            "BOT_USERNAME": "dhaka_fiber_bot",
            "TELEGRAM_API_URL": tg.base_url,
            "TELEGRAM_FILE_URL": tg.base_file_url,
            "HTTP_PORT": str(port),
        }
        _cli("migrate", env=env, cwd=tmp_path)
        _cli("tenant", "--name", "Dhaka Fiber Net", env=env, cwd=tmp_path)
        link = _cli(
            "invite", "--tenant", "1", "--role", "admin", "--name", "Nadia", env=env, cwd=tmp_path
        )
        token = re.search(r"start=([A-Za-z0-9_-]+)", link).group(1)  # type: ignore[union-attr]

        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "collectbot.cli",
            "serve",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            assert await _healthy(port) == {"status": "ok", "database": "ok"}
            nadia = tg.user(9201, "Nadia")
            tg.push(tg.message(nadia, f"/start {token}"))
            sent = await tg.wait_for("sendMessage", chat_id=nadia.id, timeout=15)
            assert "Welcome, Nadia! You are now an admin at" in sent[0].params["text"]
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 0, output.decode()
        assert b"serving: bot in polling mode" in output


def test_serve_refuses_to_start_without_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "BOT_TOKEN"} | {
        "DATABASE_URL": f"sqlite://{tmp_path}/x.sqlite3"
    }
    done = subprocess.run(
        [sys.executable, "-m", "collectbot.cli", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "Set BOT_TOKEN" in done.stderr


def test_webhook_mode_refuses_to_start_without_a_secret(tmp_path):
    env = os.environ | {
        "DATABASE_URL": f"sqlite://{tmp_path}/x.sqlite3",
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_MODE": "webhook",
    }
    env.pop("TELEGRAM_WEBHOOK_SECRET", None)
    done = subprocess.run(
        [sys.executable, "-m", "collectbot.cli", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "TELEGRAM_WEBHOOK_SECRET" in done.stderr


async def _collected_receipt(url: str) -> str:
    """A collector takes a payment; returns the invoice number whose receipt is queued."""

    async with database(url):
        tenant = await make_tenant()
        admin = await make_staff(tenant, Role.ADMIN)
        collector = await make_staff(tenant, Role.COLLECTOR)
        invoice = await make_invoice(await make_subscriber(tenant, phone="+8801711000001"))
        assigned = await assign_invoices(
            admin, collector_id=collector.id, numbers=[invoice.number]
        )
        await mark_collected(
            collector, assignment_id=assigned.outcomes[0].assignment_id, idempotency_key="k"
        )
        return invoice.number


async def _delivery_log(url: str) -> list[tuple[str, str]]:

    async with database(url):
        message = await OutboxMessage.get()
        events = await NotificationLog.filter(message_id=message.id).values_list(
            "status", "user_agent"
        )
        return [(message.status, message.delivery_status or "")] + [
            (str(s), str(ua)) for s, ua in events
        ]


async def test_serve_sends_a_queued_receipt_on_whatsapp_and_logs_its_delivery(tmp_path):
    url = f"sqlite://{tmp_path}/serve.sqlite3"
    port = _free_port()
    async with FakeTelegram(token=TOKEN) as tg, FakeUltramsg() as ultramsg:
        env = os.environ | {
            "DATABASE_URL": url,
            "DATA_DIR": str(tmp_path / "data"),
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": tg.base_url,
            "TELEGRAM_FILE_URL": tg.base_file_url,
            "HTTP_PORT": str(port),
            "WHATSAPP_PROVIDER": "ultramsg",
            "ULTRAMSG_API_URL": ultramsg.url,
            "ULTRAMSG_INSTANCE_ID": ultramsg.instance_id,
            "ULTRAMSG_TOKEN": ultramsg.token,
            "ULTRAMSG_WEBHOOK_TOKEN": "hook-secret-1",
            "OUTBOX_POLL_SECONDS": "0.2",
        }
        _cli("migrate", env=env, cwd=tmp_path)
        number = await _collected_receipt(url)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "collectbot.cli",
            "serve",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await _healthy(port)
            [sent] = await asyncio.wait_for(ultramsg.wait_for_sent(1), timeout=20)
            hook = f"http://127.0.0.1:{port}/webhooks/whatsapp/ultramsg/hook-secret-1"
            assert (await ultramsg.post_ack(hook, sent, "device")).status == 200
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 0, output.decode()

    assert sent.to == "+8801711000001" and sent.document.startswith(b"%PDF")
    assert number in sent.caption
    assert await _delivery_log(url) == [
        ("sent", "delivered"),
        ("delivered", "Ultramsg-Webhook/1.0"),
    ]


def test_serve_refuses_a_whatsapp_provider_without_its_credentials(tmp_path):
    env = os.environ | {
        "DATABASE_URL": f"sqlite://{tmp_path}/x.sqlite3",
        "BOT_TOKEN": TOKEN,
        "WHATSAPP_PROVIDER": "ultramsg",
        "ULTRAMSG_INSTANCE_ID": "instance1",
    }
    env.pop("ULTRAMSG_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "collectbot.cli", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "WHATSAPP_PROVIDER=ultramsg needs ULTRAMSG_TOKEN." in done.stderr
