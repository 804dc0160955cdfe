"""The real aiohttp app (no Telegram application) on loopback, and messages we have sent.

`whatsapp` gives a test an HTTP client for `create_web_app` with all three WhatsApp secrets
configured; `sent_message` writes an outbox message as the sending worker leaves it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from core.config import Settings
from core.db.models import Invoice, OutboxMessage
from tests.factories import make_invoice, make_subscriber, make_tenant
from webhooks.app import create_web_app

ULTRAMSG_TOKEN = "um-webhook-token_for-tests"
META_APP_SECRET = "meta-app-secret-for-tests"
META_VERIFY_TOKEN = "meta-verify-token-for-tests"


def whatsapp_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "ultramsg_webhook_token": ULTRAMSG_TOKEN,
        "meta_app_secret": META_APP_SECRET,
        "meta_verify_token": META_VERIFY_TOKEN,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


async def client_for(settings: Settings) -> TestClient:
    client = TestClient(TestServer(create_web_app(settings, None)))
    await client.start_server()
    return client


@pytest_asyncio.fixture
async def whatsapp(db: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    client = await client_for(whatsapp_settings(db, tmp_path))
    try:
        yield client
    finally:
        await client.close()


async def sent_message(
    provider: str | None,
    provider_message_id: str | None,
    *,
    invoice: Invoice | None = None,
    delivery_status: str | None = None,
) -> OutboxMessage:
    """A WhatsApp receipt the worker has handed to `provider`, which answered with its id.

    `provider=None`: the worker is still waiting for the gateway's answer (status sending).
    """
    if invoice is None:
        invoice = await make_invoice(await make_subscriber(await make_tenant()))
    return await OutboxMessage.create(
        tenant_id=invoice.tenant_id,
        channel="whatsapp",
        kind="receipt",
        recipient="+8801711000001",
        invoice_id=invoice.id,
        dedupe_key=f"receipt:test:{provider}:{provider_message_id}:{invoice.id}",
        status="sent" if provider else "sending",
        attempts=1,
        provider=provider,
        provider_message_id=provider_message_id,
        delivery_status=delivery_status,
    )
