"""The dunning clock in `collectbot serve`: once a day per tenant, at the tenant's hour.

`schedule_jobs` adds one interval job (every `TICK_SECONDS`, coalesced, one instance at a
time). Each tick asks which tenants' local time has reached their `dunning_hour` today
with no run yet for that day (`due_dunning_days`), and for each:

1. `run_dunning_day` for the tenant's local today: it claims the day in the database, so of
   several processes ticking at once exactly one runs it; the others get None and go on;
2. the day's scheduled invoices (`invoicing.issue_scheduled_invoices`), by the process that
   won the day (so they are issued once); invoices issued today have nothing due today, so
   they join tomorrow's run;
3. the admins' daily summary (`daily_summary`), sent by that same process to each active
   admin with a Telegram account, through the running bot.

A process that was down for days runs once, for today: reminders catch up because they are
due when `next_reminder_on <= today`. A tenant whose run fails is logged and tried again on
the next tick once its claim has gone stale (see `core.services.dunning.STALE_CLAIM`).

This module is a transport: it renders texts (`templates/chat/<language>/dunning.toml`) and
sends them; every decision and every write is in the core services.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import Application

from bot.texts import Locale, render
from collectbot.whatsapp.worker import new_worker_id
from core.config import Settings
from core.domain.dates import utcnow
from core.services.dunning import (
    DailySummary,
    DunningDay,
    daily_summary,
    due_dunning_days,
    run_dunning_day,
)
from core.services.invoicing import issue_scheduled_invoices

log = logging.getLogger("collectbot.scheduler")

TICK_SECONDS = 60
JOB_ID = "dunning"


class DunningClock:
    """The tick of the dunning job, with the bot it sends the admins' summaries through."""

    def __init__(
        self,
        application: Application,
        *,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.application = application
        self.worker_id = worker_id or new_worker_id()
        self._clock = clock

    async def tick(self) -> list[DunningDay]:
        """Run every tenant whose dunning hour has come today; returns the runs this
        process carried out."""
        now = self._clock()
        ran: list[DunningDay] = []
        for tenant_id, day in await due_dunning_days(now):
            try:
                result = await run_dunning_day(
                    tenant_id=tenant_id, day=day, worker=self.worker_id, now=now
                )
            except Exception:
                log.exception("dunning run of tenant %s for %s failed", tenant_id, day)
                continue
            if result is None:
                continue  # another process won the day
            log.info("tenant %s %s: dunning %s", tenant_id, day, result.stats)
            ran.append(result)
            # --- scheduled invoices (core/services/invoicing.py) ------------------------
            # Issued by the process that won the day's dunning claim, so once a day.
            try:
                await issue_scheduled_invoices(tenant_id=tenant_id, day=day)
            except Exception:
                log.exception("scheduled invoices of tenant %s for %s failed", tenant_id, day)
            # ------------------------------------------------------------------------------
            await self.send_summary(await daily_summary(tenant_id=tenant_id, day=day))
        return ran

    async def send_summary(self, summary: DailySummary) -> None:
        """The summary to each admin, in their language; a chat that refuses (the admin
        blocked the bot) is logged and skipped."""
        for recipient in summary.recipients:
            loc = Locale(
                language=recipient.language,
                currency=summary.currency,
                country=summary.country,
                timezone=summary.timezone,
            )
            try:
                await self.application.bot.send_message(
                    chat_id=recipient.telegram_user_id,
                    text=summary_text(loc, summary),
                    parse_mode=ParseMode.HTML,
                )
            except TelegramError as exc:
                log.warning("daily summary to %s not sent: %s", recipient.telegram_user_id, exc)


def summary_text(loc: Locale, summary: DailySummary) -> str:
    """The admins' daily summary as one message (every line balanced HTML)."""
    lines = [render(loc, "dunning.summary.title", s=summary)]
    if summary.unpaid or summary.partial:
        lines.append(render(loc, "dunning.summary.unpaid", s=summary))
        if summary.partial:
            lines.append(render(loc, "dunning.summary.partial", s=summary))
        if summary.overdue:
            lines.append(render(loc, "dunning.summary.overdue", s=summary))
    else:
        lines.append(render(loc, "dunning.summary.nothing_pending"))
    if summary.drafts:
        lines.append(render(loc, "dunning.summary.drafts", s=summary))
    run = summary.run
    if run is not None:
        lines.append(render(loc, "dunning.summary.run", r=run))
        if run.late_fees or run.suspensions or run.terminations or run.cancellations:
            lines.append(render(loc, "dunning.summary.run_actions", r=run))
        if run.refused or run.no_phone:
            lines.append(render(loc, "dunning.summary.run_refused", r=run))
    return "\n".join(lines)


def schedule_jobs(
    scheduler: AsyncIOScheduler,
    *,
    application: Application,
    settings: Settings,
) -> DunningClock:
    """Add the dunning clock's job to `scheduler` (the outbox job is added by serve).

    `settings` is taken for the jobs' configuration; the dunning job needs none today (each
    tenant's hour and time zone are in the database).
    """
    clock = DunningClock(application)
    scheduler.add_job(
        clock.tick,
        "interval",
        seconds=TICK_SECONDS,
        id=JOB_ID,
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    return clock
