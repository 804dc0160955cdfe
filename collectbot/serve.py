"""`collectbot serve`: the bot, the aiohttp server and the scheduler in one process.

Order matters: the ORM is opened first, in this task, because Tortoise keeps its
connections in a context variable that tasks created earlier would not see. Shutdown runs
in reverse: stop taking updates, finish the ones in flight, flush, close the database.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from telegram import Update

from bot.app import build_application
from collectbot.scheduler import schedule_jobs
from collectbot.whatsapp.setup import build_gateway, check_whatsapp_settings, retry_policy
from collectbot.whatsapp.worker import OutboxWorker
from core.config import Settings
from core.db.migrate import migrate
from core.db.orm import close_database, open_database
from webhooks.app import create_runner, create_web_app

log = logging.getLogger("collectbot.serve")

ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]


def check_settings(settings: Settings) -> None:
    """Refuse to start on a configuration that cannot work, with what to set."""
    if not settings.bot_token:
        raise SystemExit("Set BOT_TOKEN to the token @BotFather gave your bot.")
    if settings.telegram_mode not in ("polling", "webhook"):
        raise SystemExit("TELEGRAM_MODE is either polling or webhook.")
    if settings.telegram_mode == "webhook" and not settings.telegram_webhook_secret:
        raise SystemExit(
            "Webhook mode needs TELEGRAM_WEBHOOK_SECRET (1-256 characters of A-Z a-z 0-9 _ -),"
            " so nobody else can post updates to /telegram."
        )
    check_whatsapp_settings(settings)


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or until `stop` is set, for tests)."""
    check_settings(settings)
    applied = await migrate(settings.database_url)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    await open_database(settings.database_url)
    stop = stop or _stop_on_signals()
    application = build_application(settings)
    webhook = settings.telegram_mode == "webhook"
    runner = create_runner(create_web_app(settings, application if webhook else None))
    scheduler = AsyncIOScheduler(timezone="UTC")
    http = aiohttp.ClientSession()
    gateway = build_gateway(settings, http)
    if gateway is not None:
        worker = OutboxWorker(gateway, policy=retry_policy(settings))
        # One pass every few seconds; a pass still running makes the next one skip.
        scheduler.add_job(
            worker.send_due_messages,
            "interval",
            seconds=settings.outbox_poll_seconds,
            id="outbox",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
    else:
        log.info("WHATSAPP_PROVIDER=none: receipts wait in the outbox until one is set")
    # The dunning clock: each tenant's daily run at its local hour (collectbot/scheduler.py).
    schedule_jobs(scheduler, application=application, settings=settings)
    try:
        async with application:
            await application.start()
            if webhook:
                if settings.public_url:
                    await application.bot.set_webhook(
                        url=settings.public_url.rstrip("/") + "/telegram",
                        secret_token=settings.telegram_webhook_secret,
                        allowed_updates=ALLOWED_UPDATES,
                    )
            else:
                assert application.updater is not None
                await application.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
            await runner.setup()
            await web.TCPSite(runner, settings.http_host, settings.http_port).start()
            scheduler.start()
            log.info(
                "serving: bot in %s mode, http on %s:%s",
                settings.telegram_mode,
                settings.http_host,
                settings.http_port,
            )
            await stop.wait()
            log.info("stopping")
            scheduler.shutdown(wait=False)
            if application.updater is not None and application.updater.running:
                await application.updater.stop()
            await application.stop()
    finally:
        await runner.cleanup()
        await http.close()
        await close_database()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
