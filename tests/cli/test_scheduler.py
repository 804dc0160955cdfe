"""The dunning clock's job: each tenant's day runs once, at its local hour, and its admins
get the day's summary through the real bot (over the fake Bot API on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest_asyncio
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from telegram.ext import Application

from bot.app import build_application
from collectbot.fakes.telegram import FakeTelegram
from collectbot.scheduler import JOB_ID, TICK_SECONDS, DunningClock, schedule_jobs
from core.config import Settings
from core.db.models import JobRun, OutboxMessage, Tenant
from core.domain.status import InvoiceStatus, Role
from tests.factories import make_invoice, make_staff, make_subscriber, make_tenant

TOKEN = "777:SCHEDULER-test"
NADIA = 9001
DAY = date(2026, 12, 8)


def dhaka(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - timedelta(hours=6)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest_asyncio.fixture
async def bot(db: str, tmp_path: Path) -> AsyncIterator[tuple[Application, FakeTelegram]]:
    async with FakeTelegram(token=TOKEN, bot_username="dhaka_fiber_bot") as tg:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            bot_token=TOKEN,
            bot_username="dhaka_fiber_bot",
            telegram_api_url=tg.base_url,
            telegram_file_url=tg.base_file_url,
            data_dir=tmp_path / "data",
            database_url=db,
        )
        app = build_application(settings)
        await app.initialize()
        try:
            yield app, tg
        finally:
            await app.shutdown()


async def _isp(tg: FakeTelegram, **tenant: object) -> Tenant:
    """Dhaka Fiber Net (runs at 9:00): Nadia the admin, one invoice due a reminder on DAY,
    one partly paid and overdue."""
    isp = await make_tenant(name="Dhaka Fiber Net", **tenant)
    await make_staff(isp, Role.ADMIN, name="Nadia", telegram_user_id=NADIA)
    tg.user(NADIA, "Nadia")
    await make_invoice(
        await make_subscriber(isp),
        150_000,
        due_date=date(2026, 12, 20),
        reminder_days=7,
        next_reminder_on=DAY,
    )
    await make_invoice(
        await make_subscriber(isp),
        100_000,
        paid_minor=40_000,
        status=InvoiceStatus.PARTIAL,
        due_date=date(2026, 12, 1),
    )
    return isp


async def test_before_the_tenants_hour_the_job_does_nothing_and_after_it_runs_once(bot):
    app, tg = bot
    isp = await _isp(tg)
    clock = Clock(dhaka(DAY, 8, 59))
    job = DunningClock(app, worker_id="serve-1", clock=clock)

    assert await job.tick() == []
    assert await JobRun.all().count() == 0
    assert await OutboxMessage.all().count() == 0

    clock.now = dhaka(DAY, 9, 1)
    [ran] = await job.tick()
    clock.now = dhaka(DAY, 9, 2)
    again = await job.tick()

    assert (ran.tenant_id, ran.day, ran.stats.reminders) == (isp.id, DAY, 1)
    assert again == []
    assert await JobRun.filter(tenant_id=isp.id).values_list("day", flat=True) == [DAY]
    assert [m.text for m in tg.chat_log(NADIA)] == [
        "Dunning · Tuesday 8 Dec\n"
        "Unpaid: 1 invoice, ৳1,500\n"
        "Partly paid: 1, ৳600 still due\n"
        "Overdue: 1, ৳600\n"
        "Today: 1 reminder, 0 pre-due notices, 0 warnings sent"
    ]


async def test_a_process_down_for_days_runs_once_for_today(bot):
    app, tg = bot
    isp = await _isp(tg)
    job = DunningClock(app, worker_id="serve-1", clock=Clock(dhaka(DAY, 9) + timedelta(days=5)))

    [ran] = await job.tick()

    assert ran.day == DAY + timedelta(days=5)
    assert await JobRun.filter(tenant_id=isp.id).count() == 1
    assert await OutboxMessage.filter(kind="reminder").count() == 1


async def test_two_processes_ticking_at_once_run_the_day_once_and_send_one_summary(bot):
    app, tg = bot
    await _isp(tg)
    clock = Clock(dhaka(DAY, 9, 30))
    first = DunningClock(app, worker_id="serve-1", clock=clock)
    second = DunningClock(app, worker_id="serve-2", clock=clock)

    results = await asyncio.gather(first.tick(), second.tick())

    assert sorted(len(r) for r in results) == [0, 1]
    assert await OutboxMessage.filter(kind="reminder").count() == 1
    assert len(tg.sent(NADIA, "sendMessage")) == 1


async def test_each_tenant_runs_on_its_own_local_day_and_hour(bot):
    app, tg = bot
    dhaka_isp = await _isp(tg)
    early = await make_tenant(name="Dawn Net", timezone="Asia/Dhaka", dunning_hour=6)
    new_york = await make_tenant(name="Hudson Net", timezone="America/New_York")
    job = DunningClock(app, worker_id="serve-1", clock=Clock(dhaka(DAY, 8)))  # 21:00 in NY

    ran = {(r.tenant_id, r.day) for r in await job.tick()}

    # Dhaka Fiber Net waits for 9:00; New York runs for its own 7 Dec.
    assert ran == {(early.id, DAY), (new_york.id, DAY - timedelta(days=1))}
    assert (dhaka_isp.id, DAY) not in ran


async def test_the_summary_speaks_the_admins_language_and_says_what_the_run_did(bot):
    app, tg = bot
    isp = await _isp(tg)
    await make_staff(isp, Role.ADMIN, name="Rupa", language="bn", telegram_user_id=9003)
    tg.user(9003, "Rupa", "bn")
    await make_staff(isp, Role.ADMIN, name="Unbound", telegram_user_id=None)
    job = DunningClock(app, worker_id="serve-1", clock=Clock(dhaka(DAY, 10)))

    await job.tick()

    assert [m.text for m in tg.chat_log(9003)] == [
        "বকেয়া আদায় · মঙ্গলবার 8 ডিসে\n"
        "অপরিশোধিত: 1টি ইনভয়েস, ৳1,500\n"
        "আংশিক পরিশোধিত: 1টি, এখনও বাকি ৳600\n"
        "মেয়াদোত্তীর্ণ: 1টি, ৳600\n"
        "আজ পাঠানো: 1টি রিমাইন্ডার, 0টি আগাম নোটিশ, 0টি সতর্কবার্তা"
    ]


async def test_schedule_jobs_adds_one_coalesced_job_that_never_overlaps_itself(bot):
    app, _ = bot
    scheduler = AsyncIOScheduler(timezone="UTC")

    schedule_jobs(scheduler, application=app, settings=app.bot_data["settings"])

    job = scheduler.get_job(JOB_ID)
    assert job is not None
    assert isinstance(job.trigger, IntervalTrigger)
    assert job.trigger.interval == timedelta(seconds=TICK_SECONDS)
    assert (job.coalesce, job.max_instances) == (True, 1)
