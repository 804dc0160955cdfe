"""WhatsApp status webhooks: events per second through the real receiver, against a bare 200.

Ours: `webhooks.app.create_web_app` (the app `collectbot serve` runs), in a server process of
its own on loopback, against the bench database: every event is verified (Ultramsg's path
token; Meta's HMAC-SHA256 of the body), parsed by `webhooks.whatsapp` and stored through the
app's `core.services.delivery.DeliveryRecorder` (group commit: the requests that arrive while
a transaction is in flight share the next one, of three statements: find the messages, log
the events, move the statuses forward).

Ceiling: an aiohttp app in a server process of the same kind, whose handlers on the same
paths read the body and answer 200: the HTTP hop and nothing else.

Load: a generator in a third process (so it does not share the server's event loop)
POSTs pre-built bodies over `--connections` keep-alive connections, each connection sending
its next body when the previous answer is in. Ours and the ceiling get the identical
generator and identical bodies, in rounds that alternate who goes first, after a warm-up.
Each event is distinct: one `delivered` status for its own pre-created outbox message (sent,
not yet delivered), so ours stores one row and moves one message per event. Two measures:
Meta statuses (signed bodies, matched by `wamid`) and Ultramsg acks (matched by our
reference). Goal: ours >= 0.4 x the ceiling's events/s. Afterwards every message must be
`delivered` with exactly one log row.

All three processes and the database share the machine: on a small one the figures move
with whatever else runs; compare the ratio, and run it twice. The note says where the CPU
went, per event: the server process (on SQLite that includes the database engine, which
runs in it), the load generator, and on PostgreSQL the bench database's backends.

The database is made by `bench.common.throwaway_database` (PostgreSQL: a new database on
`TEST_POSTGRES_URL`'s server, default postgres://postgres@127.0.0.1:5432; SQLite: a temp
file) and dropped at the end.

    .venv/bin/python -m bench.webhooks [--backend sqlite|postgres|both] [--events 5000]
                                       [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import math
import os
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.common import (
    BACKENDS,
    LOADED_AT,
    BenchDatabase,
    Comparison,
    Ids,
    bulk_load,
    captured_statements,
    chosen_backends,
    clock,
    describe_machine,
    load_open_invoices,
    load_tenant,
    print_table,
    run,
    say,
    statement_kinds,
    throwaway_database,
)
from core.config import Settings
from core.db.models import NotificationLog, OutboxMessage
from core.db.orm import database
from core.domain.delivery import DeliveryStatus
from core.services.delivery import StatusEvent, record_delivery_events, reference_for

ULTRAMSG_TOKEN = "bench-ultramsg-token"
META_APP_SECRET = "bench-meta-app-secret"
GOAL = 0.4
ROUNDS = 4  # timed rounds per measure, ours and the ceiling alternating who goes first
WARM_UP = 200  # untimed events per side and measure
EVENT_TIME = 1_790_000_000
REPO = Path(__file__).resolve().parents[1]
META_PATH = "/webhooks/whatsapp/meta"
ULTRAMSG_PATH = f"/webhooks/whatsapp/ultramsg/{ULTRAMSG_TOKEN}"


class BenchFailure(RuntimeError):
    """The bench cannot give a figure: a server misbehaved or a check failed."""


# --- the servers under test (each runs as its own process) -----------------------------------


async def bare_ok(request: web.Request) -> web.Response:
    """The ceiling's whole receiver: take the body, answer 200."""
    await request.read()
    return web.json_response({"ok": True})


def bare_app() -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_get("/healthz", bare_ok)
    app.router.add_post(META_PATH, bare_ok)
    app.router.add_post("/webhooks/whatsapp/ultramsg/{token}", bare_ok)
    return app


def bench_settings(url: str, port: int) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        http_port=port,
        ultramsg_webhook_token=ULTRAMSG_TOKEN,
        meta_app_secret=META_APP_SECRET,
    )


async def serve(kind: str, url: str, port: int) -> None:
    """One server for this bench, until SIGTERM: ours on the bench database, or the bare app."""
    # Imported here: the load generator and the bare server should not pay for PTB's import.
    from webhooks.app import create_web_app

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        if kind == "ours":
            await stack.enter_async_context(database(url))
            app = create_web_app(bench_settings(url, port), None)
        else:
            app = bare_app()
        runner = web.AppRunner(app)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await stop.wait()


# --- the load generator (its own process) -----------------------------------------------------


async def generate_load(spec: dict[str, Any]) -> None:
    """POST every request of the spec over N connections; print the seconds and the answers.

    The clock runs from the first request to the last answer; loading the spec and opening
    the session happen before it starts.
    """
    base: str = spec["base"]
    requests = [(base + r["path"], r["headers"], r["body"].encode()) for r in spec["requests"]]
    statuses: Counter[int] = Counter()
    queue = iter(requests)
    connector = aiohttp.TCPConnector(limit=spec["connections"])
    async with aiohttp.ClientSession(connector=connector) as session:

        async def connection() -> None:
            for url, headers, body in queue:  # one shared iterator: each request sent once
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] += 1

        began, cpu = clock(), time.process_time()
        async with asyncio.TaskGroup() as group:
            for _ in range(spec["connections"]):
                group.create_task(connection())
        seconds, cpu = clock() - began, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu": cpu, "statuses": dict(statuses)}), flush=True)


# --- processes, seen from the bench ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def module_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.webhooks", *args]


def child_env() -> dict[str, str]:
    return os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    }


@dataclass
class Server:
    """One receiver on its own port, started as a subprocess."""

    kind: str  # "ours" or "bare"
    url: str
    workdir: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.kind}.log"

    async def start(self) -> None:
        argv = module_argv("--serve", self.kind, "--url", self.url, "--port", str(self.port))
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *argv, env=child_env(), cwd=self.workdir, stdout=log, stderr=log
            )
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                if self.process.returncode is not None:
                    break
                try:
                    async with session.get(f"{self.base}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
        raise BenchFailure(f"{self.kind} never became healthy:\n{self.tail()}")

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout=30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self.process.returncode != 0:
            raise BenchFailure(
                f"{self.kind} exited with {self.process.returncode}:\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


Request = dict[str, Any]  # {"path", "headers", "body"} as the generator reads it


async def load(
    server: Server, requests: Sequence[Request], connections: int
) -> tuple[float, float]:
    """Run the generator against `server`: the seconds it took and the generator's own CPU
    seconds in that time. Any answer but 200 fails the bench."""
    spec = server.workdir / "spec.json"
    spec.write_text(
        json.dumps({"base": server.base, "connections": connections, "requests": requests})
    )
    process = await asyncio.create_subprocess_exec(
        *module_argv("--load", str(spec)),
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise BenchFailure(f"the load generator failed:\n{err.decode()[-2000:]}")
    result = json.loads(out)
    if result["statuses"] != {"200": len(requests)}:
        raise BenchFailure(f"{server.kind} answered {result['statuses']}:\n{server.tail()}")
    return float(result["seconds"]), float(result["cpu"])


# --- the data set and the bodies ----------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """A pre-created outbox message, as the sending worker left it."""

    message_id: int
    provider: str
    provider_message_id: str


async def load_sent_messages(db: BenchDatabase, ids: Ids, count: int, provider: str) -> list[Sent]:
    """`count` WhatsApp receipts sent through `provider`, each on its own invoice."""
    tenant = await load_tenant(db, ids, collectors=1)
    invoices = await load_open_invoices(db, ids, tenant, count, today=LOADED_AT.date())
    message_ids = ids.take("outbox_message", count)
    sent = [
        Sent(m, provider, f"wamid.bench.{m}" if provider == "meta" else str(900_000 + m))
        for m in message_ids
    ]
    await bulk_load(
        db,
        "outbox_message",
        (
            {
                "id": s.message_id,
                "tenant_id": tenant.tenant_id,
                "channel": "whatsapp",
                "kind": "receipt",
                "recipient": "+8801711000001",
                "invoice_id": inv.invoice_id,
                "payment_id": None,
                "payload": {},
                "dedupe_key": f"receipt:bench:{s.message_id}",
                "status": "sent",
                "attempts": 1,
                "provider": s.provider,
                "provider_message_id": s.provider_message_id,
                "delivery_status": "sent",
                "created_at": LOADED_AT,
                "sent_at": LOADED_AT,
            }
            for s, inv in zip(sent, invoices, strict=True)
        ),
    )
    return sent


def meta_request(s: Sent) -> Request:
    status = {
        "id": s.provider_message_id,
        "status": "delivered",
        "timestamp": str(EVENT_TIME),
        "recipient_id": "8801711000001",
        "conversation": {"id": "c0ffee", "origin": {"type": "utility"}},
        "pricing": {"billable": True, "pricing_model": "CBP", "category": "utility"},
    }
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "8801700000000",
                                    "phone_number_id": "106540352242922",
                                },
                                "statuses": [status],
                            },
                        }
                    ],
                }
            ],
        }
    )
    signature = hmac.new(META_APP_SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "facebookexternalua",
        "X-Hub-Signature-256": f"sha256={signature}",
    }
    return {"path": META_PATH, "headers": headers, "body": body}


def ultramsg_request(s: Sent) -> Request:
    body = json.dumps(
        {
            "event_type": "message_ack",
            "instanceId": "12345",
            "id": s.provider_message_id,
            "referenceId": reference_for(s.message_id),
            "hash": "8c4f7e0b3a",
            "data": {
                "id": f"true_8801711000001@c.us_3EB0{s.message_id:012X}",
                "from": "8801700000000@c.us",
                "to": "8801711000001@c.us",
                "author": "",
                "pushname": "",
                "ack": "device",
                "type": "document",
                "body": "",
                "media": "",
                "fromMe": True,
                "self": False,
                "isForwarded": False,
                "isMentioned": False,
                "quotedMsg": {},
                "mentionedIds": [],
                "time": EVENT_TIME,
            },
        }
    )
    headers = {"Content-Type": "application/json", "User-Agent": "UltraMsg"}
    return {"path": ULTRAMSG_PATH, "headers": headers, "body": body}


BUILDERS = {"meta": meta_request, "ultramsg": ultramsg_request}


# --- measuring ----------------------------------------------------------------------------------


CPU_PARTS = ("server", "load", "database")


@dataclass
class Side:
    """One receiver in a measure: its events, the seconds they took and the CPU they cost."""

    server: Server
    db_name: str  # PostgreSQL: whose backends' CPU to count; SQLite works inside the server
    seconds: float = 0.0
    events: int = 0
    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CPU_PARTS, 0.0))

    def cpu_ms(self, part: str) -> float:
        return 1000 * self.cpu[part] / self.events


def database_cpu_seconds(db_name: str) -> float:
    """CPU of the PostgreSQL backends serving `db_name` (found by their process titles).

    Shared processes (WAL writer, checkpointer) are not counted.
    """
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes()
            if title.startswith(b"postgres:") and db_name.encode() in title:
                total += cpu_seconds(int(proc.name))
        except OSError:  # gone meanwhile
            continue
    return total


async def timed(side: Side, requests: Sequence[Request], connections: int) -> None:
    before = cpu_seconds(side.server.pid), database_cpu_seconds(side.db_name)
    seconds, load_cpu = await load(side.server, requests, connections)
    after = cpu_seconds(side.server.pid), database_cpu_seconds(side.db_name)
    side.seconds += seconds
    side.cpu["server"] += after[0] - before[0]
    side.cpu["database"] += after[1] - before[1]
    side.cpu["load"] += load_cpu
    side.events += len(requests)


async def measure(
    provider: str,
    sent: Sequence[Sent],
    ours: Server,
    bare: Server,
    *,
    db: BenchDatabase,
    connections: int,
) -> Comparison:
    """Warm both up, then ROUNDS timed rounds over distinct events, rotating who goes first."""
    requests = [BUILDERS[provider](s) for s in sent]
    warm, timed_requests = requests[:WARM_UP], requests[WARM_UP:]
    db_name = db.url.rsplit("/", 1)[-1] if db.backend == "postgres" else "-"
    sides = [Side(ours, db_name), Side(bare, db_name)]
    for side in sides:
        await load(side.server, warm, connections)
    chunk = math.ceil(len(timed_requests) / ROUNDS)
    for n, start in enumerate(range(0, len(timed_requests), chunk)):
        batch = timed_requests[start : start + chunk]
        for side in sides[n % 2 :] + sides[: n % 2]:
            await timed(side, batch, connections)
    mine, ceiling = sides
    rate_ours, rate_bare = mine.events / mine.seconds, ceiling.events / ceiling.seconds
    parts = CPU_PARTS if db.backend == "postgres" else CPU_PARTS[:2]
    note = f"{mine.events:,} events each; CPU ms per event, ours / bare: " + ", ".join(
        f"{part} {mine.cpu_ms(part):.2f} / {ceiling.cpu_ms(part):.2f}" for part in parts
    )
    label = "Meta statuses/s" if provider == "meta" else "Ultramsg acks/s"
    return Comparison(db.backend, label, rate_ours, rate_bare, rate_ours / rate_bare, GOAL, note)


async def check_stored(sent: Sequence[Sent]) -> None:
    """Every message delivered, with exactly one log row (the bench's events were distinct)."""
    ids = [s.message_id for s in sent]
    logged = await NotificationLog.filter(message_id__in=ids).count()
    delivered = await OutboxMessage.filter(id__in=ids, delivery_status="delivered").count()
    if (logged, delivered) != (len(ids), len(ids)):
        raise BenchFailure(f"{len(ids)} events: {logged} logged, {delivered} delivered")


async def statements_per_batch(probes: Sequence[Sent]) -> str:
    """What one event alone, and a batch of them, send to the database (Tortoise's log)."""
    counts = []
    for batch in (probes[:1], probes[1:]):
        events = [
            StatusEvent(
                provider=p.provider,
                provider_message_id=p.provider_message_id,
                status=DeliveryStatus.DELIVERED,
                occurred_at=datetime.fromtimestamp(EVENT_TIME, UTC),
                raw={"probe": True},
            )
            for p in batch
        ]
        with captured_statements() as sent:
            await record_delivery_events(events, remote_addr="127.0.0.1", user_agent="probe")
        counts.append(f"{len(events)} event(s): {len(sent)} ({statement_kinds(sent)})")
    return "; ".join(counts) + "; each plus BEGIN and COMMIT"


@asynccontextmanager
async def servers(db: BenchDatabase, workdir: Path) -> AsyncIterator[tuple[Server, Server]]:
    ours, bare = Server("ours", db.url, workdir), Server("bare", db.url, workdir)
    try:
        await ours.start()
        await bare.start()
        yield ours, bare
    finally:
        await ours.stop()
        await bare.stop()


async def bench_backend(backend: str, events: int, connections: int) -> list[Comparison]:
    comparisons = []
    with tempfile.TemporaryDirectory(prefix="collectbot_bench_webhooks_") as tmp:
        async with throwaway_database(backend) as db:
            say(f"{backend}: loading {2 * (events + WARM_UP) + 51:,} sent messages ...")
            ids = Ids()
            sent = {p: await load_sent_messages(db, ids, events + WARM_UP, p) for p in BUILDERS}
            probes = await load_sent_messages(db, ids, 51, "meta")
            say(f"{backend}: statements per transaction, {await statements_per_batch(probes)}")
            async with servers(db, Path(tmp)) as (ours, bare):
                for provider, messages in sent.items():
                    say(f"{backend}: {provider}, {events:,} events per side ...")
                    comparisons.append(
                        await measure(
                            provider,
                            messages,
                            ours,
                            bare,
                            db=db,
                            connections=connections,
                        )
                    )
                    await check_stored(messages)
    return comparisons


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument(
        "--events", type=int, default=5_000, help="timed events per side and measure (5,000)"
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="concurrent connections of the load (32)"
    )
    parser.add_argument("--serve", choices=("ours", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    backends = chosen_backends(args.backend)
    say(f"machine: {await describe_machine(backends)}")
    comparisons = []
    for backend in backends:
        comparisons += await bench_backend(backend, args.events, args.connections)
    print_table(
        "WhatsApp status webhooks: ours (verify, parse, store) vs a bare aiohttp 200",
        comparisons,
        "ours/bare",
    )


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.serve:  # one of the servers under test, started by the bench itself
        asyncio.run(serve(ARGS.serve, ARGS.url, ARGS.port))
    elif ARGS.load:  # the load generator, started by the bench itself
        asyncio.run(generate_load(json.loads(Path(ARGS.load).read_text())))
    else:
        run(partial(main, ARGS))
