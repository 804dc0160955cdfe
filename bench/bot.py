"""The bot end to end: updates through the real webhook and Application, against a no-op bot.

Every update takes the way Telegram's would: an HTTP POST to `/telegram` of the real aiohttp
app (`webhooks.app.create_web_app`: secret header checked, `Update.de_json`, the update queue),
the real PTB Application (`PerPersonUpdateProcessor`, `OrmPersistence` read before and written
after each update, our handlers and services on the bench database), and the replies sent
over HTTP to the fake Bot API (`collectbot.fakes.telegram`) on loopback.

Ours: the collector's handlers (`bot.app.register_handlers`) in an Application built as
`bot.app.build_application` builds it. Ceiling: the same HTTP POST, secret check, `de_json`
and PTB Application (same processor), with one handler that answers every update with ONE
sendMessage, and no persistence. Both run as separate bot processes; this process is
Telegram's side: the fake Bot API and the collectors, who POST an update and wait for its
reply. So the fake's work (which Telegram does elsewhere in production) is not charged to
the bot, which makes 11 Bot API calls per /route against the ceiling's one.

1. Route (read path): `/route` of a collector with 10 open stops; ours answers with a header
   and one card per stop (11 sendMessage). Goal: ours >= 0.5 x no-op updates/s.
2. Collect (write path): the `[Post without photo]` press (`c:post:<stop>:<amount>:cash`), each
   on another open stop; ours posts the payment (answerCallbackQuery, editMessageText).
   Goal: ours >= 0.25 x no-op updates/s.
   Both throughput runs build the Applications WITHOUT PTB's AIORateLimiter (30 calls/s
   overall): through it they would measure Telegram's limit, not the bot. Each collector
   waits for the reply before its next update; all collectors at once; ours and the
   ceiling alternate in rounds after a warm-up.
3. Latency: every collector at once does /route, [Collected], [Full], [Post without photo]
   on a stop of their own, each press after the reply to the previous one; p50/p95 from
   the POST to the reply the fake records. With the real rate limiter (as served), and
   without it (what the bot itself takes); the no-op bot for context.
4. Memory: `collectbot serve` as a real subprocess in webhook mode against the bench
   database and this fake; VmRSS idle, then peak (VmHWM, and VmRSS sampled) while the
   collectors of 3. drive it. Goal: <= 150 MB. SIGTERM must stop it with exit status 0.

The database is built by `bench.common.throwaway_database` (models plus constraints, the
schema the migrations give: tests/services/test_migrations.py) and dropped at the end; aerich
is told the migrations are applied, so `collectbot serve`'s start-up migration is a no-op.

    .venv/bin/python -m bench.bot [--backend sqlite|postgres] [--collectors 100] [--updates N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from aerich import Command
from aiohttp import web
from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ContextTypes,
    Defaults,
    TypeHandler,
)
from tortoise import Tortoise
from tortoise.context import TortoiseContext

from bench.common import (
    BACKENDS,
    BenchDatabase,
    Comparison,
    Ids,
    TenantSet,
    captured_statements,
    clock,
    describe_machine,
    load_open_invoices,
    load_open_stops,
    load_tenant,
    print_table,
    run,
    say,
    statement_kinds,
    throwaway_database,
)
from bot.app import build_application, register_handlers
from bot.errors import on_error
from bot.persistence import OrmPersistence
from bot.processor import PerPersonUpdateProcessor
from collectbot.fakes.telegram import Call, FakeTelegram, FakeUser
from core.config import Settings
from core.db.migrate import APP, migrations_location
from core.db.models import Assignment
from core.db.orm import database, dialect_of, tortoise_config
from core.domain.dates import local_today, utcnow
from webhooks.app import SECRET_HEADER, create_web_app

TOKEN = "800000001:BENCH-token"
SECRET = "bench-webhook-secret"
ROUTE_STOPS = 10  # open stops on a collector's route (route and latency runs)
ROUNDS = 4  # timed rounds per throughput run, ours and the ceiling alternating
ROUTE_GOAL, COLLECT_GOAL, RSS_GOAL_MB = 0.5, 0.25, 150.0
THROUGHPUT_TIMEOUT, LATENCY_TIMEOUT = 60.0, 300.0  # seconds one reply may take
RSS_SAMPLE_SECONDS = 0.05
REPO = Path(__file__).resolve().parents[1]  # bench bots run `-m bench.bot` from a temp dir


class BenchFailure(RuntimeError):
    """The bench cannot give a figure: a bot misbehaved or a check failed."""


# --- the bots under test (each runs as its own process) ------------------------------------


def webhook_application(
    settings: Settings, *, rate_limiter: bool, persistence: bool
) -> Application:
    """An Application wired as `build_application` wires it in webhook mode, before handlers."""
    builder: Any = (  # PTB's builder is generic in what it is given; Any keeps this readable
        ApplicationBuilder()
        .token(settings.bot_token or "")
        .base_url(settings.telegram_api_url)
        .base_file_url(settings.telegram_file_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML))
        .concurrent_updates(PerPersonUpdateProcessor())
        .updater(None)
    )
    if rate_limiter:
        builder = builder.rate_limiter(AIORateLimiter(max_retries=3))
    if persistence:
        builder = builder.persistence(OrmPersistence())
    application: Application = builder.build()
    return application


def our_application(settings: Settings, *, rate_limiter: bool) -> Application:
    """`bot.app.build_application`; without the limiter, the same wiring rebuilt minus it
    (`build_application` has no switch for its rate limiter)."""
    if rate_limiter:
        return build_application(settings)
    application = webhook_application(settings, rate_limiter=False, persistence=True)
    application.bot_data["settings"] = settings
    register_handlers(application)
    application.add_error_handler(on_error)
    return application


async def reply_once(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The ceiling's whole bot: one sendMessage to whoever wrote or pressed."""
    if update.effective_chat is not None:
        await context.bot.send_message(update.effective_chat.id, "ok")


def noop_application(settings: Settings, *, rate_limiter: bool) -> Application:
    application = webhook_application(settings, rate_limiter=rate_limiter, persistence=False)
    application.add_handler(TypeHandler(Update, reply_once))
    return application


async def serve_bench_bot(bot: str, *, rate_limiter: bool) -> None:
    """A bot process for this bench: `collectbot serve` minus migrations and the scheduler."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]  # from the environment
    build = our_application if bot == "ours" else noop_application
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with database(settings.database_url):
        application = build(settings, rate_limiter=rate_limiter)
        runner = web.AppRunner(create_web_app(settings, application))
        async with application:
            await application.start()
            await runner.setup()
            await web.TCPSite(runner, settings.http_host, settings.http_port).start()
            await stop.wait()
            await application.stop()
        await runner.cleanup()


# --- bot processes, seen from outside -------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_status_kb(pid: int, name: str) -> int:
    """A `VmRSS`/`VmHWM` line of /proc/<pid>/status, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise LookupError(f"no {name} for process {pid}")


def proc_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class BotProcess:
    """One bot serving `/telegram` on its own port, started as a subprocess."""

    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    port: int
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/telegram"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    async def start(self, session: aiohttp.ClientSession) -> None:
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, cwd=self.workdir, stdout=log, stderr=log
            )
        await self._healthy(session)

    async def _healthy(self, session: aiohttp.ClientSession) -> None:
        assert self.process is not None
        for _ in range(600):
            if self.process.returncode is not None:
                break
            try:
                async with session.get(f"http://127.0.0.1:{self.port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
        raise BenchFailure(f"{self.name} never became healthy:\n{self.tail()}")

    async def stop(self) -> int:
        """SIGTERM, then its exit status (killed after 30 s). Stopping twice is harmless."""
        if self.process is None:
            return 0
        if self.process.returncode is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout=30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise BenchFailure(f"{self.name} did not stop on SIGTERM:\n{self.tail()}") from None

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def bot_env(db: BenchDatabase, tg: FakeTelegram, port: int, workdir: Path) -> dict[str, str]:
    """The environment `collectbot serve` reads (DESIGN.md section 6), pointed at the bench."""
    return os.environ | {
        "DATABASE_URL": db.url,
        "DATA_DIR": str(workdir / "data"),
        "BOT_TOKEN": TOKEN,
        "BOT_USERNAME": "bench_bot",
        "TELEGRAM_API_URL": tg.base_url,
        "TELEGRAM_FILE_URL": tg.base_file_url,
        "TELEGRAM_MODE": "webhook",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
    }


def bench_bot(
    bot: str, rate_limiter: bool, db: BenchDatabase, tg: FakeTelegram, workdir: Path
) -> BotProcess:
    limiter = "limiter" if rate_limiter else "no-limiter"
    argv = [sys.executable, "-m", "bench.bot", "--serve", bot]
    if not rate_limiter:
        argv.append("--no-rate-limiter")
    port = free_port()
    env = bot_env(db, tg, port, workdir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return BotProcess(f"{bot}-{limiter}", argv, env, workdir, port)


def collectbot_serve(db: BenchDatabase, tg: FakeTelegram, workdir: Path) -> BotProcess:
    port = free_port()
    argv = [sys.executable, "-m", "collectbot.cli", "serve"]
    return BotProcess("collectbot-serve", argv, bot_env(db, tg, port, workdir), workdir, port)


@asynccontextmanager
async def running(
    stack: AsyncExitStack, session: aiohttp.ClientSession, *bots: BotProcess
) -> AsyncIterator[dict[str, int]]:
    """Start the bots, stop them after the block with SIGTERM; yields {name: exit status}.

    `stack` stops them too if the block fails (the bench's last resort, before the database
    is dropped).
    """
    statuses: dict[str, int] = {}
    for bot in bots:
        stack.push_async_callback(bot.stop)
        await bot.start(session)
    yield statuses
    for bot in bots:
        statuses[bot.name] = await bot.stop()


def require_clean_exits(statuses: dict[str, int], *bots: BotProcess) -> None:
    for bot in bots:
        if statuses[bot.name] != 0:
            raise BenchFailure(f"{bot.name} exited with {statuses[bot.name]}:\n{bot.tail()}")


# --- Telegram's side: the fake Bot API and the people on it ---------------------------------


class BenchTelegram(FakeTelegram):
    """The fake Bot API, telling a waiting collector when a reply in their chat arrives.

    `FakeTelegram.wait_for` scans every recorded call on every call; with a hundred waiters
    that would cost more than the bot. Here replies are counted per (chat, method).
    """

    def __init__(self) -> None:
        super().__init__(token=TOKEN, bot_username="bench_bot")
        self.replies: Counter[tuple[int, str]] = Counter()
        self.failed: list[Call] = []
        self._waiters: dict[tuple[int, str], list[tuple[int, asyncio.Future[float]]]] = {}

    def expect(self, chat_id: int, method: str, count: int) -> asyncio.Future[float]:
        """A future set to the clock when `count` more `method` calls reach this chat."""
        key = (chat_id, method)
        future = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append((self.replies[key] + count, future))
        return future

    def _record(self, call: Call) -> None:
        super()._record(call)
        if not call.ok:
            self.failed.append(call)
        if not call.ok or not isinstance(call.chat_id, int):
            return
        key = (call.chat_id, call.method)
        self.replies[key] += 1
        waiting = self._waiters.get(key, [])
        for target, future in [w for w in waiting if w[0] <= self.replies[key]]:
            waiting.remove((target, future))
            if not future.done():
                future.set_result(clock())

    def message_showing(self, chat_id: int, callback_data: str) -> int:
        """The bot's message with that button, else the bot's latest message."""
        entries = [e for e in self.chat_log(chat_id) if e.from_bot]
        for entry in entries:
            rows = (entry.message.get("reply_markup") or {}).get("inline_keyboard", [])
            if any(b.get("callback_data") == callback_data for row in rows for b in row):
                return entry.message_id
        return entries[-1].message_id


@dataclass(frozen=True)
class Collector:
    """A person on Telegram and the open stops (assignment id, amount due) they work on."""

    user: FakeUser
    stops: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Replies:
    """What a bot answers: (method, calls) to /route and to a button press."""

    route: tuple[str, int]
    press: tuple[str, int]


OURS = Replies(route=("sendMessage", 1 + ROUTE_STOPS), press=("editMessageText", 1))
NOOP = Replies(route=("sendMessage", 1), press=("sendMessage", 1))


@dataclass
class Wire:
    """POSTing updates to a bot's webhook as Telegram does, and waiting for the replies."""

    tg: BenchTelegram
    session: aiohttp.ClientSession

    async def exchange(
        self,
        url: str,
        update: dict[str, Any],
        chat_id: int,
        reply: tuple[str, int],
        patience: float,
    ) -> tuple[float, float]:
        """Seconds from the POST to the first and to the last reply of the update."""
        method, count = reply
        first, last = self.tg.expect(chat_id, method, 1), self.tg.expect(chat_id, method, count)
        began = clock()
        async with self.session.post(url, json=update, headers={SECRET_HEADER: SECRET}) as r:
            body = await r.json()
            if r.status != 200 or body.get("duplicate"):
                raise BenchFailure(f"the webhook answered {r.status} {body}")
        try:
            async with asyncio.timeout(patience):
                return await first - began, await last - began
        except TimeoutError:
            raise BenchFailure(
                f"no {count} x {method} in chat {chat_id} within {patience:.0f} s;"
                f" refused calls: {[(c.method, c.status) for c in self.tg.failed[-5:]]}"
            ) from None

    async def bot_message(self, chat_id: int, text: str) -> int:
        """A message from the bot in the chat (for buttons to be pressed on), by sendMessage."""
        url = f"{self.tg.base_url}{TOKEN}/sendMessage"
        async with self.session.post(url, json={"chat_id": chat_id, "text": text}) as r:
            return int((await r.json())["result"]["message_id"])


# --- data sets ------------------------------------------------------------------------------


async def load_collectors(
    db: BenchDatabase, ids: Ids, tg: FakeTelegram, count: int, stops_each: int, today: date
) -> list[Collector]:
    """`count` collectors of a new tenant, each with `stops_each` open stops for today."""
    tenant = await load_tenant(db, ids, collectors=count)
    invoices = await load_open_invoices(db, ids, tenant, count * stops_each, today=today)
    await load_open_stops(db, ids, tenant, invoices, today)
    return await collectors_of(tenant, tg)


async def collectors_of(tenant: TenantSet, tg: FakeTelegram) -> list[Collector]:
    rows = (
        await Assignment.filter(tenant_id=tenant.tenant_id)
        .order_by("id")
        .values_list("id", "collector_id", "collector__telegram_user_id", "invoice__amount_minor")
    )
    stops: dict[int, list[tuple[int, int]]] = {c: [] for c in tenant.collector_ids}
    telegram_ids: dict[int, int] = {}
    for stop_id, collector_id, telegram_id, due in rows:
        stops[collector_id].append((stop_id, due))
        telegram_ids[collector_id] = telegram_id
    return [
        Collector(tg.user(telegram_ids[c], f"Collector {c}"), tuple(stops[c]))
        for c in tenant.collector_ids
    ]


async def collected(collectors: Sequence[Collector]) -> int:
    stop_ids = [stop for c in collectors for stop, _ in c.stops]
    return await Assignment.filter(id__in=stop_ids, status="collected").count()


async def record_migrations_applied(url: str) -> None:
    """Tell aerich the bench schema is its migrations' (so `collectbot serve` applies none)."""
    async with TortoiseContext():  # as core.db.migrate does: the caller's ORM stays as it is
        command = Command(
            tortoise_config=tortoise_config(url, with_aerich=True),
            app=APP,
            location=str(migrations_location(dialect_of(url))),
        )
        await command.init()
        await Tortoise.generate_schemas(safe=True)  # only aerich's own table is missing
        await command.upgrade(fake=True)


# --- 1 and 2: throughput ---------------------------------------------------------------------

Work = list[tuple[int, list[Callable[[], dict[str, Any]]]]]  # (chat, updates to send) each


@dataclass
class Side:
    """One bot in a throughput run: its process, its people's updates, what it spent."""

    bot: BotProcess
    reply: tuple[str, int]
    work: Work
    seconds: float = 0.0
    cpu: float = 0.0
    updates: int = 0


async def closed_loop(wire: Wire, side: Side, start: int, stop: int) -> None:
    """Every person sends updates [start:stop] of theirs, each after the previous reply."""

    async def person(chat_id: int, updates: list[Callable[[], dict[str, Any]]]) -> None:
        for make in updates[start:stop]:
            await wire.exchange(side.bot.url, make(), chat_id, side.reply, THROUGHPUT_TIMEOUT)

    async with asyncio.TaskGroup() as group:  # one failure cancels the others
        for chat_id, updates in side.work:
            group.create_task(person(chat_id, updates))


async def throughput(wire: Wire, sides: list[Side], per_person: int) -> None:
    """One untimed update per person, then ROUNDS timed rounds, rotating who goes first."""
    for side in sides:
        await closed_loop(wire, side, 0, 1)
    chunk = math.ceil(per_person / ROUNDS)
    for n, start in enumerate(range(1, per_person + 1, chunk)):
        stop = min(start + chunk, per_person + 1)
        for side in sides[n % len(sides) :] + sides[: n % len(sides)]:
            cpu, began = proc_cpu_seconds(side.bot.pid), clock()
            await closed_loop(wire, side, start, stop)
            side.seconds += clock() - began
            side.cpu += proc_cpu_seconds(side.bot.pid) - cpu
            side.updates += (stop - start) * len(side.work)


def compare(backend: str, measure: str, sides: Sequence[Side], goal: float) -> Comparison:
    ours, noop = sides
    rate_ours, rate_noop = ours.updates / ours.seconds, noop.updates / noop.seconds
    note = (
        f"{ours.updates:,} each; bot CPU per update: ours {1000 * ours.cpu / ours.updates:.2f}"
        f" ms, no-op {1000 * noop.cpu / noop.updates:.2f} ms"
    )
    return Comparison(backend, measure, rate_ours, rate_noop, rate_ours / rate_noop, goal, note)


def route_work(tg: FakeTelegram, collectors: Sequence[Collector], count: int) -> Work:
    def route(user: FakeUser) -> Callable[[], dict[str, Any]]:
        return lambda: tg.message(user, "/route")

    return [(c.user.id, [route(c.user)] * count) for c in collectors]


async def post_work(wire: Wire, collectors: Sequence[Collector], count: int) -> Work:
    """[Post without photo] on `count` stops per person, pressed under a confirm message."""

    def press(user: FakeUser, data: str, message_id: int) -> Callable[[], dict[str, Any]]:
        return lambda: wire.tg.callback(user, data, message_id)

    work: Work = []
    for c in collectors:
        message_id = await wire.bot_message(c.user.id, "Post ৳1,500 in cash?")
        posts = [f"c:post:{stop}:{due}:cash" for stop, due in c.stops[:count]]
        work.append((c.user.id, [press(c.user, data, message_id) for data in posts]))
    return work


# --- 3 and 4: latency of a hundred collectors at once ----------------------------------------

STEPS = ("route: first reply", "route: all replies", "[Collected]", "[Full]", "[Post]")


async def visit(wire: Wire, url: str, c: Collector, replies: Replies) -> list[float]:
    """/route, then [Collected], [Full], [Post without photo] on the person's first stop."""
    stop, due = c.stops[0]
    update = wire.tg.message(c.user, "/route")
    latencies = list(await wire.exchange(url, update, c.user.id, replies.route, LATENCY_TIMEOUT))
    card = wire.tg.message_showing(c.user.id, f"c:col:{stop}")
    for data in (f"c:col:{stop}", f"c:cf:{stop}:{due}:cash", f"c:post:{stop}:{due}:cash"):
        update = wire.tg.callback(c.user, data, card)
        _, last = await wire.exchange(url, update, c.user.id, replies.press, LATENCY_TIMEOUT)
        latencies.append(last)
    return latencies


@dataclass
class Latency:
    """Seconds per step, over all collectors of one run."""

    label: str
    steps: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


async def everyone_at_once(
    wire: Wire, url: str, collectors: Sequence[Collector], replies: Replies, label: str
) -> Latency:
    began = clock()
    async with asyncio.TaskGroup() as group:
        runs = [group.create_task(visit(wire, url, c, replies)) for c in collectors]
    result = Latency(label, seconds=clock() - began)
    for n, step in enumerate(STEPS):
        result.steps[step] = [run.result()[n] for run in runs]
    return result


def percentile(values: Sequence[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def p50_p95(seconds: Sequence[float]) -> str:
    return f"{1000 * percentile(seconds, 50):,.0f} / {1000 * percentile(seconds, 95):,.0f}"


def print_latencies(title: str, runs: Sequence[Latency]) -> None:
    header = ["run", *STEPS, "whole run"]
    rows = [header] + [
        [
            r.label,
            *(p50_p95(r.steps[s]) for s in STEPS),
            f"{r.seconds:.1f} s",
        ]
        for r in runs
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


@dataclass
class Memory:
    idle_mb: float
    peak_mb: float
    sampled_mb: float
    exit_status: int
    load: Latency

    @property
    def met(self) -> bool:
        return self.peak_mb <= RSS_GOAL_MB and self.exit_status == 0


async def peak_rss_during(pid: int, load: Awaitable[Latency]) -> tuple[Latency, float]:
    """Run `load`, sampling the process's VmRSS; the result and the highest sample (MB)."""
    samples = [proc_status_kb(pid, "VmRSS")]
    task = asyncio.ensure_future(load)
    while not task.done():
        await asyncio.wait([task], timeout=RSS_SAMPLE_SECONDS)
        samples.append(proc_status_kb(pid, "VmRSS"))
    return task.result(), max(samples) / 1024


async def serve_memory(
    wire: Wire, stack: AsyncExitStack, serve: BotProcess, collectors: Sequence[Collector]
) -> Memory:
    async with running(stack, wire.session, serve) as statuses:
        await asyncio.sleep(1)  # let start-up settle
        idle = proc_status_kb(serve.pid, "VmRSS") / 1024
        load = everyone_at_once(wire, serve.url, collectors, OURS, "collectbot serve")
        latency, sampled = await peak_rss_during(serve.pid, load)
        peak = proc_status_kb(serve.pid, "VmHWM") / 1024
    return Memory(idle, peak, sampled, statuses[serve.name], latency)


# --- what ours sends per update ---------------------------------------------------------------


async def statements_per_update(tg: BenchTelegram, c: Collector, settings: Settings) -> str:
    """Feed one /route and one [Post without photo] to ours in this process; count what it
    sends to the database (Tortoise's log) and to the Bot API (the fake's record)."""
    application = our_application(settings, rate_limiter=False)
    stop, due = c.stops[0]
    counts = []
    async with application:
        for make in (
            lambda: tg.message(c.user, "/route"),
            lambda: tg.callback(
                c.user, f"c:post:{stop}:{due}:cash", tg.chat_log(c.user.id)[-1].message_id
            ),
        ):
            update = Update.de_json(make(), application.bot)
            calls = len(tg.calls)
            with captured_statements() as sent:
                await application.process_update(update)
            methods = Counter(call.method for call in tg.calls[calls:])
            counts.append(
                f"{len(sent)} SQL statements ({statement_kinds(sent)}), Bot API calls: "
                + ", ".join(f"{n} {method}" for method, n in methods.items())
            )
    return f"/route: {counts[0]}\n[Post]: {counts[1]}"


@dataclass
class Results:
    throughput: list[Comparison] = field(default_factory=list)
    latency: list[Latency] = field(default_factory=list)
    memory: Memory | None = None
    statements: str = ""


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Bench:
    """What every part of the run shares: the database, the fake, the wire, the people."""

    args: argparse.Namespace
    db: BenchDatabase
    wire: Wire
    stack: AsyncExitStack
    workdir: Path
    route_people: list[Collector] = field(default_factory=list)
    collect_people: list[Collector] = field(default_factory=list)
    latency_people: list[list[Collector]] = field(default_factory=list)
    noop_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(9_000_000))

    @property
    def tg(self) -> BenchTelegram:
        return self.wire.tg

    @property
    def per_person(self) -> int:
        return math.ceil(self.args.updates / self.args.collectors)

    def bots(self, rate_limiter: bool) -> tuple[BotProcess, BotProcess]:
        ours, noop = (bench_bot(b, rate_limiter, self.db, self.tg, self.workdir) for b in BOTS)
        return ours, noop

    def noop_people(self, collectors: Sequence[Collector]) -> list[Collector]:
        """The no-op side's people: other Telegram users sending the same updates."""
        return [Collector(self.tg.user(next(self.noop_ids), "Noop"), c.stops) for c in collectors]


BOTS = ("ours", "noop")


async def load_people(b: Bench, today: date) -> Collector:
    """Every data set, each on a tenant of its own; returns the probe for statement counts."""
    people = b.args.collectors
    say(f"loading {b.args.backend}: {people} collectors per data set, open stops for today ...")
    ids = Ids()
    b.route_people = await load_collectors(b.db, ids, b.tg, people, ROUTE_STOPS, today)
    stops = 1 + b.per_person + ROUTE_STOPS  # warm-up, timed, and a route still left at the end
    b.collect_people = await load_collectors(b.db, ids, b.tg, people, stops, today)
    for _ in range(3):  # latency without and with the limiter, and collectbot serve
        b.latency_people.append(await load_collectors(b.db, ids, b.tg, people, ROUTE_STOPS, today))
    return (await load_collectors(b.db, ids, b.tg, 1, ROUTE_STOPS, today))[0]


async def route_and_collect(b: Bench, ours: BotProcess, noop: BotProcess) -> list[Comparison]:
    n, backend = b.per_person, b.args.backend
    say(f"route: {n} x /route per collector, {b.args.collectors} collectors at once ...")
    sides = [
        Side(ours, OURS.route, route_work(b.tg, b.route_people, 1 + n)),
        Side(noop, NOOP.route, route_work(b.tg, b.noop_people(b.route_people), 1 + n)),
    ]
    await throughput(b.wire, sides, n)
    route = compare(backend, "/route updates/s", sides, ROUTE_GOAL)
    say(f"collect: {n} x [Post without photo] per collector ...")
    sides = [
        Side(ours, OURS.press, await post_work(b.wire, b.collect_people, 1 + n)),
        Side(noop, NOOP.press, await post_work(b.wire, b.noop_people(b.collect_people), 1 + n)),
    ]
    await throughput(b.wire, sides, n)
    await check_collected(b.collect_people, 1 + n)
    return [route, compare(backend, "[Post] updates/s", sides, COLLECT_GOAL)]


async def latencies(
    b: Bench, ours: BotProcess, noop: BotProcess, people: list[Collector], limiter: str
) -> list[Latency]:
    say(f"latency, {limiter} ...")
    return [
        await everyone_at_once(b.wire, ours.url, people, OURS, f"ours, {limiter}"),
        await everyone_at_once(b.wire, noop.url, b.noop_people(people), NOOP, f"no-op, {limiter}"),
    ]


async def check_collected(collectors: Sequence[Collector], each: int) -> None:
    posted = await collected(collectors)
    if posted != each * len(collectors):
        raise BenchFailure(f"ours posted {posted} payments, not {each * len(collectors)}")


async def run_parts(b: Bench) -> Results:
    results = Results()
    probe = await load_people(b, local_today(utcnow(), "Asia/Dhaka"))
    await record_migrations_applied(b.db.url)
    results.statements = await statements_per_update(b.tg, probe, bench_settings(b.db, b.tg))
    say(f"what ours sends per update (10 open stops):\n{results.statements}")
    ours, noop = b.bots(rate_limiter=False)
    async with running(b.stack, b.wire.session, ours, noop) as statuses:
        results.throughput = await route_and_collect(b, ours, noop)
        results.latency += await latencies(b, ours, noop, b.latency_people[0], "no limiter")
    require_clean_exits(statuses, ours, noop)
    ours, noop = b.bots(rate_limiter=True)
    async with running(b.stack, b.wire.session, ours, noop) as statuses:
        results.latency += await latencies(b, ours, noop, b.latency_people[1], "limiter")
    require_clean_exits(statuses, ours, noop)
    say("collectbot serve: memory idle and under the same load ...")
    serve = collectbot_serve(b.db, b.tg, b.workdir)
    results.memory = await serve_memory(b.wire, b.stack, serve, b.latency_people[2])
    results.latency.append(results.memory.load)
    for people in b.latency_people:
        await check_collected(people, 1)
    if b.tg.failed:
        raise BenchFailure(f"the fake refused {len(b.tg.failed)} calls: {b.tg.failed[:3]}")
    return results


async def bench(args: argparse.Namespace) -> Results:
    workdir = Path(tempfile.mkdtemp(prefix="collectbot_bench_bot_"))
    try:
        async with (
            throwaway_database(args.backend) as db,
            BenchTelegram() as tg,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
            AsyncExitStack() as stack,
        ):
            return await run_parts(Bench(args, db, Wire(tg, session), stack, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def bench_settings(db: BenchDatabase, tg: FakeTelegram) -> Settings:
    """What `bot_env` gives a bot process, for ours run in this process."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=db.url,
        bot_token=TOKEN,
        bot_username="bench_bot",
        telegram_api_url=tg.base_url,
        telegram_file_url=tg.base_file_url,
        telegram_mode="webhook",
        telegram_webhook_secret=SECRET,
    )


def report(backend: str, results: Results) -> None:
    print_table(
        "Bot updates through the webhook: ours vs a no-op PTB bot",
        results.throughput,
        "ours/no-op",
    )
    print_latencies("Latency, ms p50 / p95, from the POST to the reply", results.latency)
    memory = results.memory
    assert memory is not None
    print(
        f"\ncollectbot serve ({backend}): RSS idle {memory.idle_mb:.1f} MB,"
        f" peak {memory.peak_mb:.1f} MB (VmHWM; highest sample {memory.sampled_mb:.1f} MB);"
        f" goal <= {RSS_GOAL_MB:g} MB; exit status after SIGTERM {memory.exit_status}:"
        f" {'met' if memory.met else 'NOT met'}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, default="postgres")
    parser.add_argument("--collectors", type=int, default=100, help="people at once (100)")
    parser.add_argument(
        "--updates", type=int, default=2_000, help="timed updates per bot and run (2,000)"
    )
    parser.add_argument("--serve", choices=("ours", "noop"), help=argparse.SUPPRESS)
    parser.add_argument("--no-rate-limiter", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    say(f"machine: {await describe_machine([args.backend])}")
    results = await bench(args)
    report(args.backend, results)


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.serve:  # one of the bots under test, started by the bench itself
        asyncio.run(serve_bench_bot(ARGS.serve, rate_limiter=not ARGS.no_rate_limiter))
    else:
        run(partial(main, ARGS))
