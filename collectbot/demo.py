"""`collectbot demo`: the whole collection story, offline, through the real bot.

The real PTB Application and the real aiohttp server run against a fake Telegram Bot API
on loopback (`collectbot.fakes.telegram`); every tap is an update POSTed to `/telegram`
with the webhook secret, exactly as Telegram would deliver it. The office sets up from
the command line (company, first admin, CSV imports), then everything happens in chat:
the admin invites a collector and builds his route; the collector collects one stop in
full with a receipt photo, one in part by bKash, and meets a closed door; the admin reads
the report (PDF and XLSX land in the data directory), pays the commission and looks up an
invoice's story. Between the two, the real outbox worker sends the receipts as PDFs to a
fake Ultramsg gateway, which then calls our real webhook with delivery acknowledgements;
the story shows them. The transcript prints as the chats would read.
"""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import socket
from datetime import UTC, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image, ImageDraw

from bot.app import build_application
from collectbot.fakes.telegram import ChatEntry, FakeTelegram, FakeUser
from collectbot.fakes.whatsapp import FakeUltramsg
from collectbot.whatsapp.setup import build_gateway, retry_policy
from collectbot.whatsapp.worker import OutboxWorker
from core.config import Settings
from core.db.migrate import migrate
from core.db.models import Invoice, LedgerLeg, OutboxMessage, Staff, Subscriber, Tenant
from core.db.orm import database
from core.domain.dates import local_today, utcnow
from core.domain.status import Role
from core.services.access import CLI
from core.services.billing import create_plan, create_reseller, create_tenant
from core.services.cash import cash_on_hand
from core.services.dunning import run_dunning_day
from core.services.importing import import_invoices, import_subscribers
from core.services.staff import create_invite, invite_link
from webhooks.app import SECRET_HEADER, create_runner, create_web_app

TOKEN = "700000001:DEMO-offline-token"
SECRET = "demo-webhook-secret"
BOT_USERNAME = "dhaka_fiber_bot"
WHATSAPP_HOOK_TOKEN = "demo-ultramsg-hook"


def _fresh_dir(data_dir: Path) -> None:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _receipt_photo() -> bytes:
    """A small JPEG of a handwritten-looking receipt, as a collector's phone would send."""
    image = Image.new("RGB", (480, 320), "white")
    pen = ImageDraw.Draw(image)
    pen.text((20, 20), "Dhaka Fiber Net - money receipt", fill="black")
    pen.text((20, 80), "Received 1,200 taka cash", fill="black")
    pen.rectangle((10, 10, 470, 310), outline="black")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def _demo_csv(name: str) -> bytes:
    return resources.files("collectbot").joinpath("demo_data", name).read_bytes()


class Stage:
    """The bot and its far side, and a narrator printing each chat as it changes."""

    def __init__(self, tg: FakeTelegram, application: Any, url: str) -> None:
        self.tg = tg
        self.application = application
        self.url = url
        self.session = aiohttp.ClientSession()
        self.seen: dict[int, dict[int, tuple[str, tuple[tuple[str, ...], ...]]]] = {}

    async def close(self) -> None:
        await self.session.close()

    async def deliver(self, update: dict[str, Any]) -> None:
        """POST the update to /telegram like Telegram would, and wait until it is handled."""
        async with self.session.post(
            self.url, json=update, headers={SECRET_HEADER: SECRET}
        ) as response:
            response.raise_for_status()
        await self.settle()

    async def settle(self) -> None:
        processor = self.application.update_processor
        for _ in range(500):
            await asyncio.sleep(0.01)
            if self.application.update_queue.empty() and not processor.current_concurrent_updates:
                return
        raise RuntimeError("the bot did not finish handling an update")

    async def say(self, user: FakeUser, text: str) -> None:
        print(f"\n{user.first_name}: {text}")
        await self.deliver(self.tg.message(user, text))
        self.show(user)

    async def tap(self, user: FakeUser, label: str, entry: ChatEntry | None = None) -> None:
        """Press the button `label` (on `entry`, else on the newest message showing it)."""
        print(f"\n{user.first_name}: [{label}]")
        if entry is None:
            update = self.tg.press(user, label)
        else:
            update = self.tg.callback(user, _callback_data(entry, label), entry.message_id)
        await self.deliver(update)
        self.show(user)

    async def send_photo(self, user: FakeUser, data: bytes) -> None:
        print(f"\n{user.first_name}: [photo of the receipt]")
        self.tg.add_file("receipt-photo-1", data)
        await self.deliver(self.tg.photo(user, "receipt-photo-1", file_size=len(data)))
        self.show(user)

    def show(self, user: FakeUser) -> None:
        """Print the bot's messages in this chat that are new or changed since last time."""
        seen = self.seen.setdefault(user.id, {})
        for entry in self.tg.chat_log(user.id):
            state = (entry.text, entry.buttons)
            before = seen.get(entry.message_id)
            if not entry.from_bot or before == state:
                continue
            seen[entry.message_id] = state
            if before is not None and before[0] == entry.text:
                continue  # only its buttons were retired: nothing new to read
            print(entry.render("Bot"))

    def bot_entries(self, user: FakeUser) -> list[ChatEntry]:
        return [e for e in self.tg.chat_log(user.id) if e.from_bot]


def _callback_data(entry: ChatEntry, label: str) -> str:
    for row in (entry.message.get("reply_markup") or {}).get("inline_keyboard", []):
        for button in row:
            if button.get("text") == label and "callback_data" in button:
                return str(button["callback_data"])
    raise LookupError(f"no button {label!r} on message {entry.message_id}")


async def run_demo(data_dir: Path) -> None:
    await asyncio.to_thread(_fresh_dir, data_dir)
    url = f"sqlite://{data_dir / 'demo.sqlite3'}"
    applied = await migrate(url)
    print(f"== A fresh database at {data_dir / 'demo.sqlite3'} ({len(applied)} migration(s))")
    async with (
        database(url),
        FakeTelegram(token=TOKEN, bot_username=BOT_USERNAME) as tg,
        FakeUltramsg() as ultramsg,
    ):
        port = _free_port()
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            data_dir=data_dir,
            bot_token=TOKEN,
            bot_username=BOT_USERNAME,
            telegram_api_url=tg.base_url,
            telegram_file_url=tg.base_file_url,
            telegram_mode="webhook",
            telegram_webhook_secret=SECRET,
            http_port=port,
            whatsapp_provider="ultramsg",
            ultramsg_api_url=ultramsg.url,
            ultramsg_instance_id=ultramsg.instance_id,
            ultramsg_token=ultramsg.token,
            ultramsg_webhook_token=WHATSAPP_HOOK_TOKEN,
        )
        application = build_application(settings)
        runner = create_runner(create_web_app(settings, application))
        async with application:
            await application.start()
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            stage = Stage(tg, application, f"http://127.0.0.1:{port}/telegram")
            whatsapp = WhatsApp(settings, ultramsg, f"http://127.0.0.1:{port}")
            try:
                await _story(stage, whatsapp, data_dir)
            finally:
                await stage.close()
                await application.stop()
                await runner.cleanup()


class WhatsApp:
    """The receipts' side of the story: the real worker, a fake Ultramsg, our webhook."""

    def __init__(self, settings: Settings, gateway: FakeUltramsg, server_url: str) -> None:
        self.settings = settings
        self.gateway = gateway
        self.hook = f"{server_url}/webhooks/whatsapp/ultramsg/{WHATSAPP_HOOK_TOKEN}"

    async def send_receipts(self, data_dir: Path) -> list[Path]:
        """One pass of the outbox worker, as `collectbot serve` runs every few seconds."""
        async with aiohttp.ClientSession() as http:
            gateway = build_gateway(self.settings, http)
            assert gateway is not None
            worker = OutboxWorker(gateway, policy=retry_policy(self.settings))
            await worker.send_due_messages()
        saved = []
        for sent in self.gateway.sent:
            path = data_dir / sent.filename
            await asyncio.to_thread(path.write_bytes, sent.document)
            saved.append(path)
            caption = sent.caption.replace("\n", "\n           ")
            print(f"\nWhatsApp -> {sent.to}: {sent.filename} ({len(sent.document):,} bytes)")
            print(f"  caption: {caption}")
        return saved

    async def send_due(self) -> None:
        """One pass of the outbox worker (reminders are sent like receipts)."""
        async with aiohttp.ClientSession() as http:
            gateway = build_gateway(self.settings, http)
            assert gateway is not None
            await OutboxWorker(gateway, policy=retry_policy(self.settings)).send_due_messages()

    async def acknowledge(self, ack: str) -> None:
        """Ultramsg calls our webhook as the receipts reach the phones."""
        for sent in self.gateway.sent:
            response = await self.gateway.post_ack(self.hook, sent, ack)
            print(
                f"Ultramsg -> POST /webhooks/whatsapp/ultramsg/… ack={ack} for {sent.to}"
                f" -> HTTP {response.status}"
            )


async def _story(stage: Stage, whatsapp: WhatsApp, data_dir: Path) -> None:
    tg = stage.tg
    print("\n== The office sets up (command line)")
    tenant = await create_tenant(
        name="Dhaka Fiber Net", currency="BDT", country="BD", timezone="Asia/Dhaka", origin=CLI
    )
    invite = await create_invite(
        None,
        tenant_id=tenant.id,
        role=Role.ADMIN,
        name="Nadia",
        phone="01911-000010",
        origin=CLI,
    )
    print("$ collectbot tenant --name 'Dhaka Fiber Net'      -> company 1")
    print(
        f"$ collectbot invite --tenant 1 --role admin --name Nadia\n"
        f"  {invite_link(BOT_USERNAME, invite.token)}"
    )
    admin = invite.staff
    await create_plan(admin, name="Home 20 Mbps", price_minor=150_000, origin=CLI)
    await create_reseller(admin, name="Lalmatia Net", origin=CLI)
    nadia = tg.user(5551001, "Nadia")
    await stage.say(nadia, f"/start {invite.token}")
    subs = await import_subscribers(await _bound(admin.id), _demo_csv("subscribers.csv"))
    invs = await import_invoices(await _bound(admin.id), _demo_csv("invoices.csv"))
    print(f"\n$ collectbot import subscribers subscribers.csv --tenant 1   -> {subs.created}")
    print(f"$ collectbot import invoices invoices.csv --tenant 1         -> {invs.created}")

    print("\n== Nadia invites a collector and builds his route")
    await stage.say(nadia, "/newcollector Karim 01811-000020 5")
    token = re.search(r"start=([A-Za-z0-9_-]+)", stage.bot_entries(nadia)[-1].text)
    assert token is not None, "the bot did not answer with an invitation link"
    karim = tg.user(5551002, "Karim")
    await stage.say(karim, f"/start {token.group(1)}")
    await stage.say(nadia, "/assign Karim area=Dhanmondi status=unpaid")
    await stage.tap(nadia, _button_starting(stage, nadia, "Assign "))
    await stage.say(nadia, "/assign Karim INV-2026-0046 INV-2026-0099")

    print("\n== Karim walks his route")
    await stage.say(karim, "🗺 Today's route")
    cards = [e for e in stage.bot_entries(karim) if e.buttons and "Collected" in e.buttons[0]]
    first, second, third = cards[0], cards[1], cards[2]
    await stage.tap(karim, "Collected", first)
    await stage.tap(karim, _button_starting(stage, karim, "Full "))
    await stage.send_photo(karim, _receipt_photo())

    await stage.tap(karim, "Collected", second)
    await stage.tap(karim, "Other method")
    await stage.tap(karim, "bKash")
    await stage.tap(karim, "Other amount")
    await stage.say(karim, "1000")
    await stage.tap(karim, "Post without photo")

    await stage.tap(karim, "Failed", third)
    await stage.tap(karim, "Not home")
    await stage.say(karim, "💰 Today")

    print("\n== The receipts go out on WhatsApp, and come back delivered")
    receipts = await whatsapp.send_receipts(data_dir)
    await whatsapp.acknowledge("device")
    await whatsapp.acknowledge("read")

    print("\n== Nadia closes the day: the cash, the payments, the commission")
    await stage.say(nadia, "/report")
    await stage.say(nadia, "/handover Karim")
    karim_staff = await Staff.get(telegram_user_id=karim.id)
    held = await cash_on_hand(tenant.id, karim_staff.id)
    # Karim hands in ৳100 less than he holds: the shortage becomes his debt.
    await stage.say(nadia, f"/handover Karim {(held - 10_000) // 100}")
    await stage.tap(nadia, _button_starting(stage, nadia, "✅ Record "))
    await stage.say(nadia, "/reconcile Karim")
    await stage.say(nadia, "/payments")
    await stage.tap(nadia, "⬇️ CSV")
    saved = receipts + await asyncio.to_thread(_save_documents, tg, nadia, data_dir)
    await stage.say(nadia, "/pay Karim")
    await stage.tap(nadia, _button_starting(stage, nadia, "Pay ", "deduct"))
    await stage.say(nadia, f"/invoice {_first_invoice_number(first)}")

    await _dunning(stage, whatsapp, tenant.id, nadia, karim)

    delivered = await OutboxMessage.filter(
        tenant_id=tenant.id, delivery_status__in=("delivered", "read")
    ).count()
    legs = [
        int(str(amount))
        for amount in await LedgerLeg.filter(tenant_id=tenant.id).values_list(
            "amount_minor", flat=True
        )
    ]
    print(
        f"\n{delivered} WhatsApp receipts were delivered."
        f"\nThe ledger's {len(legs)} legs sum to {sum(legs)}."
        f"\nIn {data_dir}: " + ", ".join(p.name for p in saved)
    )
    if sum(legs) != 0:
        raise SystemExit("the ledger does not balance")


async def _dunning(
    stage: Stage, whatsapp: WhatsApp, tenant_id: int, nadia: FakeUser, karim: FakeUser
) -> None:
    """An out-of-turn invoice nobody pays: reminders, a warning, suspension; then Karim
    collects it and the service comes back. The days pass by calling the daily run for
    each date, as the scheduler in `collectbot serve` does once a day at the tenant's hour.
    """
    print("\n== The dunning clock: an invoice nobody pays")
    tenant = await Tenant.get(id=tenant_id)
    today = local_today(utcnow(), tenant.timezone)
    due, suspend = today + timedelta(days=3), today + timedelta(days=7)
    await stage.say(
        nadia,
        f"/newinvoice mdp-islam 800 out-of-turn due={due.isoformat()} remind=2"
        f" suspend={suspend.isoformat()}",
    )
    number = _first_invoice_number(stage.bot_entries(nadia)[-1])
    invoice = await Invoice.get(tenant_id=tenant_id, number=number)
    subscriber = await Subscriber.get(id=invoice.subscriber_id)
    already = len(whatsapp.gateway.sent)
    for n in range(1, 8):
        day = today + timedelta(days=n)
        ran = await run_dunning_day(
            tenant_id=tenant_id,
            day=day,
            worker="demo",
            now=datetime.combine(day, time(3, 0), tzinfo=UTC),
        )
        assert ran is not None
        await whatsapp.send_due()
        await subscriber.refresh_from_db()
        texts = [m for m in whatsapp.gateway.sent[already:] if m.to == subscriber.phone]
        already = len(whatsapp.gateway.sent)
        st = ran.stats
        print(
            f"\n{day:%a %d %b} daily run: reminders {st.reminders} · pre-due notices"
            f" {st.pre_due_notices} · suspension warnings {st.suspension_warnings} ·"
            f" suspensions {st.suspensions} · {subscriber.name} is {subscriber.status.value}"
        )
        for text in texts:
            body = text.text.replace("\n", "\n    ")
            print(f"  WhatsApp -> {text.to}:\n    {body}")
    print(f"\n{subscriber.name} pays at the door:")
    await stage.say(nadia, f"/assign Karim {number}")
    await stage.say(karim, "🗺 Today's route")
    card = next(e for e in reversed(stage.bot_entries(karim)) if number in e.text)
    await stage.tap(karim, "Collected", card)
    await stage.tap(karim, _button_starting(stage, karim, "Full "))
    await stage.tap(karim, "Post without photo")
    await subscriber.refresh_from_db()
    print(f"\n{subscriber.name} is {subscriber.status.value} again.")
    await stage.say(nadia, "/dashboard")


async def _bound(staff_id: int) -> Any:
    from core.db.models import Staff

    return await Staff.get(id=staff_id)


def _button_starting(stage: Stage, user: FakeUser, prefix: str, containing: str = "") -> str:
    for entry in reversed(stage.bot_entries(user)):
        for row in entry.buttons:
            for label in row:
                if label.startswith(prefix) and containing in label:
                    return label
    raise LookupError(f"no button starting with {prefix!r} for {user.first_name}")


def _first_invoice_number(card: ChatEntry) -> str:
    found = re.search(r"INV-\d{4}-\d{4}", card.text)
    assert found is not None
    return found.group(0)


def _save_documents(tg: FakeTelegram, user: FakeUser, data_dir: Path) -> list[Path]:
    """The documents the admin received in the chat (the report's PDF and XLSX, exports)."""
    saved: list[Path] = []
    for call in tg.sent(chat_id=user.id, method="sendDocument"):
        for upload in call.files.values():
            path = data_dir / (upload.filename or f"document-{len(saved) + 1}")
            path.write_bytes(upload.data)
            saved.append(path)
    return saved
