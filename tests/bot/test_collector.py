"""A collector's day through the real bot, the real database and the fake Bot API.

Each test reads what the chat shows (texts, buttons, answers to presses) and what the
database holds (payments, stops, invoices, stored receipts).
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
from babel.dates import format_date
from telegram import Update

from bot.app import build_application
from collectbot.fakes.telegram import FakeUser
from core.db.models import (
    Assignment,
    BotState,
    Invoice,
    OutboxMessage,
    Payment,
    Staff,
    StoredFile,
    Tenant,
)
from core.domain.dates import add_months, local_today, utcnow
from core.domain.status import (
    AssignmentStatus,
    FailureReason,
    InvoicePurpose,
    InvoiceStatus,
    PaymentMethod,
    Role,
)
from core.services.assignments import assign_invoices, unassign
from core.services.collection import mark_collected, mark_failed
from tests.factories import make_invoice, make_staff, make_subscriber, make_tenant

# A real 16x16 JPEG (543 bytes), as a phone camera would send a receipt, only smaller.
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEAAQABAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsO"
    "CwkJDRENDg8QEBEQCgwSExIQEw8QEBD/2wBDAQMDAwQDBAgEBAgQCwkLEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ"
    "EBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBD/wAARCAAQABADASIAAhEBAxEB/8QAFgABAQEAAAAAAAAAAAAAAAAA"
    "BwQF/8QAJBAAAQQBBAICAwAAAAAAAAAAAQIDBAYFBwgSExEiABQJMTL/xAAVAQEBAAAAAAAAAAAAAAAAAAAABv/E"
    "ACMRAAECBQMFAAAAAAAAAAAAAAECEQMEBQYhABIxFRZhgeH/2gAMAwEAAhEDEQA/ABSm0mobc8HmExLUlRzzEWPk"
    "JWW+ulrsaUVAseUgslSlH9LKuPryIKuWPZdskzXmm3fX5m2nF4GlVxx/HOpx4ks51+MiU/Iaad7UcUo4tILoS4kq"
    "cWkezS0hO/HvuRp0rO6hWnWO1UisZVuFi4GFeyEpmGepa5S5SWVPuciFKRFLgSrwetnyPIB+Vb4N9mKhQMzo5po9"
    "XLdDs9d6ZVix2VEhiL9kuNPxw2gEKcDQ/rs8AuA8VAe0vdl7VOYn+27flGAUgmITjbhSmCg3BYlyeWDkMolvw4KO"
    "p1KM6iCNvngZHwetf//Z"
)


def _png() -> bytes:
    """A valid 1x1 white PNG, built chunk by chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\xff\xff")
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


PNG = _png()
BACK = "« Back"
ALL_DONE = "That was the last open stop of today. Well done!"
RECEIPT_QUEUED = "Receipt is on its way to their WhatsApp."


@dataclass
class Scene:
    tenant: Tenant
    admin: Staff
    collector: Staff
    user: FakeUser
    invoices: list[Invoice]
    stops: list[int]
    today: date = field(default_factory=lambda: local_today(utcnow(), "Asia/Dhaka"))


RAHIM = {
    "name": "Rahim Uddin",
    "phone": "+8801711000001",
    "address": "House 12, Road 5",
    "area": "Dhanmondi",
    "street": "Road 5",
    "latitude": 23.7465,
    "longitude": 90.376,
}
SALMA = {
    "name": "Salma Begum",
    "phone": "+8801711000002",
    "address": "Flat 3B, Lake Road",
    "area": "Mirpur",
    "street": "Lake Road",
}


async def _scene(
    chat: Any,
    *people: tuple[dict[str, Any], int],
    language: str = "en",
    telegram_id: int = 7001,
    tenant: Tenant | None = None,
) -> Scene:
    """A collector (5 % commission) with one stop per (subscriber, amount) on today's route."""
    tenant = tenant or await make_tenant(name="Dhaka Fiber Net")
    admin = await make_staff(tenant, Role.ADMIN, name="Nadia")
    collector = await make_staff(
        tenant,
        Role.COLLECTOR,
        name="Karim",
        commission_bp=500,
        language=language,
        telegram_user_id=telegram_id,
    )
    invoices = []
    for fields_, amount in people or ((RAHIM, 150_000),):
        subscriber = await make_subscriber(tenant, **fields_)
        invoices.append(await make_invoice(subscriber, amount))
    result = await assign_invoices(
        admin, collector_id=collector.id, numbers=[i.number for i in invoices]
    )
    stops = [o.assignment_id for o in result.outcomes]
    assert None not in stops
    user = chat.tg.user(telegram_id, "Karim", language)
    return Scene(tenant, admin, collector, user, invoices, [s for s in stops if s is not None])


def _day(value: date, pattern: str = "EEEE d MMM", language: str = "en") -> str:
    return format_date(value, pattern, locale=language)


def _last(chat: Any, user: FakeUser) -> Any:
    return chat.tg.chat_log(user.id)[-1]


def _entry(chat: Any, user: FakeUser, message_id: int) -> Any:
    return next(e for e in chat.tg.chat_log(user.id) if e.message_id == message_id)


def _data(chat: Any, user: FakeUser, message_id: int, label: str) -> str:
    rows = _entry(chat, user, message_id).message["reply_markup"]["inline_keyboard"]
    return next(b["callback_data"] for row in rows for b in row if b["text"] == label)


async def _tap_on(chat: Any, user: FakeUser, message_id: int, label: str) -> None:
    """Press the button labelled `label` under one particular message."""
    data = _data(chat, user, message_id, label)
    await chat.feed(chat.tg.callback(user, data, message_id))


def _answers(chat: Any) -> list[tuple[str | None, bool]]:
    """Every answerCallbackQuery the bot made: (toast or alert text, shown as an alert)."""
    return [
        (c.params.get("text"), bool(c.params.get("show_alert")))
        for c in chat.tg.sent(method="answerCallbackQuery")
    ]


def _answered_ids(chat: Any) -> list[str]:
    return [c.params["callback_query_id"] for c in chat.tg.sent(method="answerCallbackQuery")]


async def _open_card(chat: Any, scene: Scene) -> int:
    """/route, and the message id of the (last) card."""
    await chat.say(scene.user, "/route")
    return _last(chat, scene.user).message_id


# --------------------------------------------------------------------------- the route


async def test_the_route_shows_todays_totals_then_one_card_per_stop_in_route_order(chat):
    scene = await _scene(chat, (SALMA, 100_000), (RAHIM, 150_000))
    salma_invoice, rahim_invoice = scene.invoices

    await chat.say(scene.user, "/route")

    header, rahim, salma = chat.tg.chat_log(scene.user.id)[-3:]
    assert header.text == (
        f"{_day(scene.today)} · 2 stops · to collect ৳2,500 · collected ৳0 · commission ৳0"
    )
    # Dhanmondi before Mirpur: area, then street.
    assert rahim.text == (
        "1/2  Rahim Uddin · +8801711000001\n"
        "House 12, Road 5 · Dhanmondi\n"
        f"due ৳1,500 ({rahim_invoice.number}, renewal)"
    )
    assert rahim.buttons == (("Collected", "Failed", "Map"),)
    map_button = rahim.message["reply_markup"]["inline_keyboard"][0][2]
    assert map_button == {"text": "Map", "url": "https://maps.google.com/?q=23.7465,90.376"}
    assert salma.text == (
        "2/2  Salma Begum · +8801711000002\n"
        "Flat 3B, Lake Road · Mirpur\n"
        f"due ৳1,000 ({salma_invoice.number}, renewal)"
    )
    assert salma.buttons == (("Collected", "Failed"),)  # no coordinates, no map
    data = [b["callback_data"] for b in rahim.message["reply_markup"]["inline_keyboard"][0][:2]]
    assert data == [f"c:col:{scene.stops[1]}", f"c:fail:{scene.stops[1]}"]


async def test_the_menu_button_shows_the_route_like_the_command(chat):
    scene = await _scene(chat)
    await chat.say(scene.user, "🗺 Today's route")
    assert _last(chat, scene.user).text.startswith("1/1  Rahim Uddin")


async def test_an_empty_route_says_so_kindly(chat):
    tenant = await make_tenant()
    await make_staff(tenant, Role.COLLECTOR, telegram_user_id=7002)
    user = chat.tg.user(7002, "Jamal")
    today = local_today(utcnow(), "Asia/Dhaka")

    await chat.say(user, "/route")

    assert chat.texts(user)[-2:] == [
        f"{_day(today)} · 0 stops · to collect ৳0 · collected ৳0 · commission ৳0",
        "No stops on your route today. Enjoy the quiet day, or ask the office for more.",
    ]


# --------------------------------------------------------------------------- collecting


async def test_a_full_cash_collection_takes_three_taps_on_one_message(chat):
    scene = await _scene(chat)
    invoice, stop_id = scene.invoices[0], scene.stops[0]
    card = await _open_card(chat, scene)

    await chat.tap(scene.user, "Collected")
    step = _last(chat, scene.user)
    assert (step.message_id, step.text) == (card, f"{invoice.number} · Rahim Uddin · due ৳1,500")
    assert step.buttons == (("Full ৳1,500 · cash",), ("Other amount", "Other method"), (BACK,))

    await chat.tap(scene.user, "Full ৳1,500 · cash")
    step = _last(chat, scene.user)
    assert step.text == (
        f"Post ৳1,500 cash for {invoice.number}? Send a photo of the receipt, or:"
    )
    assert step.buttons == (("Post without photo", BACK),)

    await chat.tap(scene.user, "Post without photo")

    result = _last(chat, scene.user)
    expiry = _day(add_months(scene.today, 1), "d MMM")
    assert (result.message_id, result.text, result.buttons) == (
        card,
        f"✅ ৳1,500 posted · {invoice.number} paid · Rahim Uddin's service runs to {expiry}\n"
        f"{RECEIPT_QUEUED} Today: ৳1,500 collected · commission ৳75\n{ALL_DONE}",
        (),
    )
    payment = await Payment.get(invoice_id=invoice.id)
    assert (payment.amount_minor, payment.method, payment.collector_id) == (
        150_000,
        PaymentMethod.CASH,
        scene.collector.id,
    )
    assert payment.idempotency_key == f"tg:{scene.user.id}:{card}:{stop_id}"
    assert payment.receipt_file_id is None
    stop = await Assignment.get(id=stop_id)
    assert (stop.status, stop.collected_minor, stop.commission_minor) == (
        AssignmentStatus.COLLECTED,
        150_000,
        7_500,
    )
    await invoice.refresh_from_db()
    assert (invoice.paid_minor, invoice.status) == (150_000, InvoiceStatus.PAID)
    assert await OutboxMessage.filter(payment_id=payment.id, kind="receipt").count() == 1
    assert _answers(chat) == [(None, False)] * 3


async def test_a_partial_payment_is_typed_and_posted_from_a_new_confirm_message(chat):
    scene = await _scene(chat)
    invoice = scene.invoices[0]
    card = await _open_card(chat, scene)
    await chat.tap(scene.user, "Collected")
    await chat.tap(scene.user, "Other amount")
    assert _last(chat, scene.user).text == "Type the amount (at most ৳1,500)."
    assert _last(chat, scene.user).buttons == ((BACK,),)

    await chat.say(scene.user, "1,000")

    confirm = _last(chat, scene.user)
    assert (
        confirm.text == f"Post ৳1,000 cash for {invoice.number}? Send a photo of the receipt, or:"
    )
    assert _entry(chat, scene.user, card).buttons == ()  # the question's Back is retired
    await chat.tap(scene.user, "Post without photo")

    assert _last(chat, scene.user).text == (
        f"✅ ৳1,000 posted · {invoice.number} partly paid · ৳500 still due\n"
        f"{RECEIPT_QUEUED} Today: ৳1,000 collected · commission ৳50\n{ALL_DONE}"
    )
    await invoice.refresh_from_db()
    assert (invoice.paid_minor, invoice.status) == (100_000, InvoiceStatus.PARTIAL)
    payment = await Payment.get(invoice_id=invoice.id)
    assert payment.idempotency_key == f"tg:{scene.user.id}:{confirm.message_id}:{scene.stops[0]}"


@pytest.mark.parametrize(
    ("typed", "sentence"),
    [
        ("fifteen hundred", "Type the amount as a number, like 1500 or 1500.50."),
        ("0", "The amount must be more than zero."),
        ("-200", "The amount must be more than zero."),
        ("10.005", "Use at most 2 decimals."),
        ("1600", "At most ৳1,500 is due on {number}."),
    ],
)
async def test_a_bad_typed_amount_gets_one_sentence_and_the_same_question(chat, typed, sentence):
    scene = await _scene(chat)
    invoice = scene.invoices[0]
    await _open_card(chat, scene)
    await chat.tap(scene.user, "Collected")
    await chat.tap(scene.user, "Other amount")

    await chat.say(scene.user, typed)

    assert _last(chat, scene.user).text == (
        sentence.format(number=invoice.number) + "\nType the amount (at most ৳1,500)."
    )
    assert await Payment.all().count() == 0
    # The step is still waiting: a good amount goes on to the confirm step.
    await chat.say(scene.user, "1500")
    assert _last(chat, scene.user).text.startswith("Post ৳1,500 cash for")


async def test_another_method_is_chosen_before_the_amount(chat):
    scene = await _scene(chat)
    invoice = scene.invoices[0]
    await _open_card(chat, scene)
    await chat.tap(scene.user, "Collected")

    await chat.tap(scene.user, "Other method")
    step = _last(chat, scene.user)
    assert step.text == f"{invoice.number} · Rahim Uddin · due ৳1,500\nHow did they pay?"
    assert step.buttons == (("cash", "bKash", "Nagad"), ("card", "bank", "other"), (BACK,))
    await chat.tap(scene.user, "bKash")
    assert _last(chat, scene.user).buttons[0] == ("Full ৳1,500 · bKash",)
    await chat.tap(scene.user, "Full ৳1,500 · bKash")
    assert _last(chat, scene.user).text.startswith(f"Post ৳1,500 bKash for {invoice.number}?")
    await chat.tap(scene.user, "Post without photo")

    payment = await Payment.get(invoice_id=invoice.id)
    assert (payment.method, payment.amount_minor) == (PaymentMethod.BKASH, 150_000)


async def test_back_walks_the_steps_back_to_the_card_and_nothing_is_posted(chat):
    scene = await _scene(chat)
    card = await _open_card(chat, scene)
    original = _last(chat, scene.user)
    await chat.tap(scene.user, "Collected")
    await chat.tap(scene.user, "Full ৳1,500 · cash")
    await chat.tap(scene.user, BACK)
    assert _last(chat, scene.user).buttons[0] == ("Full ৳1,500 · cash",)
    await chat.tap(scene.user, BACK)

    back = _entry(chat, scene.user, card)
    assert (back.text, back.buttons) == (original.text, original.buttons)
    assert await Payment.all().count() == 0


# --------------------------------------------------------------------------- receipt photos


async def test_a_receipt_photo_is_stored_by_hash_and_posted_with_the_payment(chat):
    scene = await _scene(chat)
    invoice = scene.invoices[0]
    card = await _open_card(chat, scene)
    await chat.tap(scene.user, "Collected")
    await chat.tap(scene.user, "Full ৳1,500 · cash")
    chat.tg.add_file("AgACAgIAAx-receipt-1", JPEG)

    await chat.feed(chat.tg.photo(scene.user, "AgACAgIAAx-receipt-1", width=16, height=16))

    digest = hashlib.sha256(JPEG).hexdigest()
    stored = await StoredFile.get(tenant_id=scene.tenant.id, sha256=digest)
    assert (stored.path, stored.content_type, stored.size_bytes, stored.telegram_file_id) == (
        f"files/{digest[:2]}/{digest}.jpg",
        "image/jpeg",
        len(JPEG),
        "AgACAgIAAx-receipt-1",
    )
    on_disk = (chat.settings.data_dir / stored.path).read_bytes()
    assert hashlib.sha256(on_disk).hexdigest() == digest
    payment = await Payment.get(invoice_id=invoice.id)
    assert (payment.receipt_file_id, payment.amount_minor) == (stored.id, 150_000)
    assert payment.idempotency_key == f"tg:{scene.user.id}:{card}:{scene.stops[0]}"
    assert _last(chat, scene.user).text.startswith(f"✅ ৳1,500 posted · {invoice.number} paid")
    assert _entry(chat, scene.user, card).buttons == ()  # no second post from the old step


async def test_an_image_sent_as_a_file_is_accepted_as_the_receipt(chat):
    scene = await _scene(chat)
    await _open_card(chat, scene)
    await chat.tap(scene.user, "Collected")
    await chat.tap(scene.user, "Full ৳1,500 · cash")
    chat.tg.add_file("BQACAgIAAx-receipt-png", PNG, "documents/file_9.png")

    await chat.feed(chat.tg.document(scene.user, "BQACAgIAAx-receipt-png", "r.png", "image/png"))

    stored = await StoredFile.get(tenant_id=scene.tenant.id)
    assert (stored.content_type, stored.path.endswith(".png")) == ("image/png", True)
    assert (chat.settings.data_dir / stored.path).read_bytes() == PNG
    assert (await Payment.get()).receipt_file_id == stored.id


async def test_a_document_that_is_not_an_image_is_refused_and_the_step_stays(chat):
    scene = await _scene(chat)
    await _open_card(chat, scene)
    await chat.tap(scene.user, "Collected")
    await chat.tap(scene.user, "Full ৳1,500 · cash")
    chat.tg.add_file("BQAC-pdf", b"%PDF-1.4 not a photo", "documents/file_7.pdf")
    chat.tg.add_file("BQAC-fake-jpg", b"%PDF-1.4 renamed", "documents/file_8.jpg")
    refusal = "That is not a photo. Send the receipt as a photo (JPEG or PNG)."

    await chat.feed(chat.tg.document(scene.user, "BQAC-pdf", "receipt.pdf", "application/pdf"))
    assert chat.last_text(scene.user) == refusal
    assert chat.tg.sent(method="getFile") == []  # refused on its declared type
    # Declared as a JPEG, but the bytes say otherwise.
    await chat.feed(chat.tg.document(scene.user, "BQAC-fake-jpg", "receipt.jpg", "image/jpeg"))
    assert chat.last_text(scene.user) == refusal

    assert (await StoredFile.all().count(), await Payment.all().count()) == (0, 0)
    chat.tg.add_file("AgAC-real", JPEG)
    await chat.feed(chat.tg.photo(scene.user, "AgAC-real"))
    assert (await Payment.get()).receipt_file_id is not None


async def test_an_oversize_photo_is_refused_without_downloading_and_the_step_stays(chat):
    scene = await _scene(chat)
    await _open_card(chat, scene)
    await chat.tap(scene.user, "Collected")
    await chat.tap(scene.user, "Full ৳1,500 · cash")

    await chat.feed(chat.tg.photo(scene.user, "AgAC-huge", file_size=21 * 1024 * 1024))

    assert chat.last_text(scene.user) == (
        "That file is larger than 20 MB. Send a smaller photo of the receipt."
    )
    assert chat.tg.sent(method="getFile") == []
    assert (await StoredFile.all().count(), await Payment.all().count()) == (0, 0)
    await chat.tap(scene.user, "Post without photo")
    assert (await Payment.get()).amount_minor == 150_000


async def test_a_photo_outside_the_confirm_step_is_not_taken_as_a_receipt(chat):
    scene = await _scene(chat)
    chat.tg.add_file("AgAC-early", JPEG)
    await chat.feed(chat.tg.photo(scene.user, "AgAC-early"))
    assert chat.last_text(scene.user) == (
        "To attach a receipt photo, press Collected on a stop and send the photo at the last step."
    )
    assert await StoredFile.all().count() == 0


async def test_a_photo_and_a_tap_on_the_same_confirm_step_post_once(chat):
    scene = await _scene(chat)
    await _open_card(chat, scene)
    await chat.tap(scene.user, "Collected")
    await chat.tap(scene.user, "Full ৳1,500 · cash")
    late_tap = chat.tg.press(scene.user, "Post without photo")  # pressed before the upload ends
    chat.tg.add_file("AgAC-both", JPEG)

    await chat.feed(chat.tg.photo(scene.user, "AgAC-both"))
    await chat.feed(late_tap)

    payment = await Payment.get()
    assert payment.receipt_file_id is not None
    assert await Payment.all().count() == 1
    assert _answers(chat)[-1] == (None, False)


# --------------------------------------------------------------------------- failed visits


@pytest.mark.parametrize(
    ("label", "reason", "words"),
    [
        ("Not home", FailureReason.NOT_HOME, "not home"),
        ("Refused", FailureReason.REFUSED, "refused to pay"),
        ("Wrong address", FailureReason.WRONG_ADDRESS, "wrong address"),
        ("Number dead", FailureReason.DISCONNECTED, "number dead"),
    ],
)
async def test_a_failed_visit_is_noted_and_comes_back_in_two_days(chat, label, reason, words):
    scene = await _scene(chat)
    card = await _open_card(chat, scene)

    await chat.tap(scene.user, "Failed")
    step = _last(chat, scene.user)
    assert (step.message_id, step.text) == (card, "What happened at Rahim Uddin's?")
    assert step.buttons == (
        ("Not home", "Refused"),
        ("Wrong address", "Number dead"),
        ("Other", BACK),
    )
    await chat.tap(scene.user, label)

    back_on = scene.today + timedelta(days=2)
    assert _last(chat, scene.user).text == (
        f"Noted: {words}. This stop comes back on {_day(back_on)}.\n{ALL_DONE}"
    )
    stop = await Assignment.get(id=scene.stops[0])
    assert (stop.status, stop.failure_reason) == (AssignmentStatus.FAILED, reason)
    comeback = await Assignment.get(invoice_id=scene.invoices[0].id, status="assigned")
    assert comeback.scheduled_on == back_on
    assert (await Invoice.get(id=scene.invoices[0].id)).failed_visits == 1
    assert _answers(chat) == [(None, False)] * 2


async def test_other_asks_for_one_typed_line_and_keeps_it_as_the_note(chat):
    scene = await _scene(chat)
    card = await _open_card(chat, scene)
    await chat.tap(scene.user, "Failed")
    await chat.tap(scene.user, "Other")
    assert _last(chat, scene.user).text == "Tell me what happened (one line)."

    await chat.say(scene.user, "gate locked, dog")

    back_on = _day(scene.today + timedelta(days=2))
    assert chat.last_text(scene.user) == (
        f"Noted: gate locked, dog. This stop comes back on {back_on}.\n{ALL_DONE}"
    )
    stop = await Assignment.get(id=scene.stops[0])
    assert (stop.failure_reason, stop.failure_note) == (FailureReason.OTHER, "gate locked, dog")
    assert _entry(chat, scene.user, card).buttons == ()


async def test_a_note_that_is_too_long_is_asked_again(chat):
    scene = await _scene(chat)
    await _open_card(chat, scene)
    await chat.tap(scene.user, "Failed")
    await chat.tap(scene.user, "Other")

    await chat.say(scene.user, "x" * 501)

    assert chat.last_text(scene.user) == (
        "Keep the note under 500 characters.\nTell me what happened (one line)."
    )
    assert (await Assignment.get(id=scene.stops[0])).status == AssignmentStatus.ASSIGNED


async def test_the_third_failed_visit_is_flagged_for_the_office_with_no_return_day(chat):
    scene = await _scene(chat)
    invoice = scene.invoices[0]
    await Invoice.filter(id=invoice.id).update(failed_visits=2)
    await _open_card(chat, scene)

    await chat.tap(scene.user, "Failed")
    await chat.tap(scene.user, "Refused")

    assert _last(chat, scene.user).text == (
        "Noted: refused to pay. That makes 3 visits without payment: the office will decide "
        f"what to do with {invoice.number}.\n{ALL_DONE}"
    )
    await invoice.refresh_from_db()
    assert (invoice.failed_visits, invoice.flagged_at is not None) == (3, True)
    assert await Assignment.filter(invoice_id=invoice.id, status="assigned").count() == 0


# --------------------------------------------------------------------------- next stop


async def test_next_stop_shows_the_following_open_stop_and_retires_its_own_button(chat):
    scene = await _scene(chat, (RAHIM, 150_000), (SALMA, 100_000), ({"area": "Uttara"}, 50_000))
    await chat.say(scene.user, "/route")
    rahim_card = chat.tg.chat_log(scene.user.id)[-3].message_id

    await _tap_on(chat, scene.user, rahim_card, "Failed")
    await _tap_on(chat, scene.user, rahim_card, "Not home")
    result = _entry(chat, scene.user, rahim_card)
    assert result.buttons == (("Next stop",),)
    await _tap_on(chat, scene.user, rahim_card, "Next stop")

    card = _last(chat, scene.user)
    assert card.text.startswith("1/2  Salma Begum · +8801711000002")
    assert card.buttons == (("Collected", "Failed"),)
    assert _entry(chat, scene.user, rahim_card).buttons == ()
    await chat.tap(scene.user, "Collected")
    await chat.tap(scene.user, "Full ৳1,000 · cash")
    await chat.tap(scene.user, "Post without photo")
    assert "Today: ৳1,000 collected · commission ৳50" in chat.last_text(scene.user)
    await chat.tap(scene.user, "Next stop")
    assert chat.last_text(scene.user).startswith("1/1  Subscriber")


# --------------------------------------------------------------------------- today, history


async def test_today_sums_the_days_collections_by_command_and_by_menu_button(chat):
    scene = await _scene(chat, (RAHIM, 150_000), (SALMA, 100_000))
    await mark_collected(scene.collector, assignment_id=scene.stops[0], idempotency_key="k1")

    await chat.say(scene.user, "/today")
    await chat.say(scene.user, "💰 Today")

    expected = (
        f"Today, {_day(scene.today)}\n"
        "Collected ৳1,500 at 1 stop · commission ৳75\n"
        "Still open: 1 stop · ৳1,000 to collect\n"
        "Cash in hand: ৳1,500"
    )
    assert chat.texts(scene.user)[-2:] == [expected, expected]


async def test_history_lists_the_collectors_own_closed_stops_newest_first(chat):
    scene = await _scene(chat, (RAHIM, 150_000), (SALMA, 100_000))
    rahim_invoice, salma_invoice = scene.invoices
    await mark_collected(scene.collector, assignment_id=scene.stops[0], idempotency_key="k1")
    await mark_failed(scene.collector, assignment_id=scene.stops[1], reason="not_home")
    other = await _scene(chat, (SALMA, 90_000), telegram_id=7009, tenant=scene.tenant)
    await mark_collected(other.collector, assignment_id=other.stops[0], idempotency_key="k2")

    await chat.say(scene.user, "🕘 History")

    day = _day(scene.today, "EEE d MMM")
    assert chat.last_text(scene.user) == (
        "Your last 2 closed stops\n"
        f"{day} · Salma Begum · {salma_invoice.number} · failed: not home\n"
        f"{day} · Rahim Uddin · {rahim_invoice.number} · collected ৳1,500 cash"
    )


async def test_history_without_closed_stops_says_where_they_will_appear(chat):
    scene = await _scene(chat)
    await chat.say(scene.user, "/history")
    assert chat.last_text(scene.user) == (
        "You have no closed stops yet. They appear here once you collect or mark a stop failed."
    )


# --------------------------------------------------------------------------- safety


async def test_a_forged_button_for_another_collectors_stop_is_refused_and_changes_nothing(chat):
    scene = await _scene(chat)
    jamal = await _scene(chat, (SALMA, 100_000), telegram_id=7010, tenant=scene.tenant)
    card = await _open_card(chat, scene)
    theirs = jamal.stops[0]

    for data in (f"c:col:{theirs}", f"c:post:{theirs}:100000:cash", f"c:why:{theirs}:refused"):
        await chat.feed(chat.tg.callback(scene.user, data, card))

    assert _answers(chat) == [("This stop is not on your route.", True)] * 3
    assert await Payment.all().count() == 0
    assert (await Assignment.get(id=theirs)).status == AssignmentStatus.ASSIGNED
    assert _entry(chat, scene.user, card).buttons == (("Collected", "Failed", "Map"),)


async def test_a_stale_button_gets_the_sentence_of_what_happened_to_the_stop(chat):
    scene = await _scene(chat, (RAHIM, 150_000), (SALMA, 100_000))
    rahim_invoice, _ = scene.invoices
    await chat.say(scene.user, "/route")
    rahim_card, salma_card = (e.message_id for e in chat.tg.chat_log(scene.user.id)[-2:])
    await unassign(scene.admin, invoice_number=rahim_invoice.number)
    await mark_collected(scene.collector, assignment_id=scene.stops[1], idempotency_key="k1")

    await _tap_on(chat, scene.user, rahim_card, "Collected")
    await _tap_on(chat, scene.user, salma_card, "Failed")

    assert _answers(chat) == [
        ("This stop was taken off your route by the office.", True),
        ("This stop was already collected.", True),
    ]
    assert await Payment.all().count() == 1


async def test_a_stale_confirm_button_posts_nothing_after_the_office_took_the_stop(chat):
    scene = await _scene(chat)
    await _open_card(chat, scene)
    await chat.tap(scene.user, "Collected")
    await chat.tap(scene.user, "Full ৳1,500 · cash")
    await unassign(scene.admin, invoice_number=scene.invoices[0].number)

    await chat.tap(scene.user, "Post without photo")

    assert _answers(chat)[-1] == ("This stop was taken off your route by the office.", True)
    assert await Payment.all().count() == 0


async def test_a_forged_amount_or_a_stop_for_another_day_is_refused_with_what_is_true(chat):
    scene = await _scene(chat)
    number = scene.invoices[0].number
    card = await _open_card(chat, scene)
    stop_id = scene.stops[0]
    await chat.feed(chat.tg.callback(scene.user, f"c:cf:{stop_id}:150001:cash", card))
    await chat.feed(chat.tg.callback(scene.user, f"c:post:{stop_id}:999999:cash", card))
    await mark_failed(scene.collector, assignment_id=stop_id, reason="not_home")
    comeback = await Assignment.get(invoice_id=scene.invoices[0].id, status="assigned")
    await chat.feed(chat.tg.callback(scene.user, f"c:col:{comeback.id}", card))

    assert _answers(chat) == [
        (f"At most ৳1,500 is due on {number}.", True),
        (f"At most ৳1,500 is due on {number}.", True),
        ("This stop is not on today's route.", True),
    ]
    assert await Payment.all().count() == 0


async def test_the_same_update_delivered_twice_posts_one_payment(chat):
    scene = await _scene(chat)
    card = await _open_card(chat, scene)
    await chat.tap(scene.user, "Collected")
    await chat.tap(scene.user, "Full ৳1,500 · cash")
    post = chat.tg.press(scene.user, "Post without photo")

    await chat.feed(post)
    first = _entry(chat, scene.user, card).text
    await chat.feed(post)

    assert await Payment.all().count() == 1
    assert (await Invoice.get(id=scene.invoices[0].id)).paid_minor == 150_000
    assert _entry(chat, scene.user, card).text == first
    assert _answers(chat)[-2:] == [(None, False), (None, False)]


async def test_a_double_tap_on_post_replays_the_first_answer(chat):
    scene = await _scene(chat)
    card = await _open_card(chat, scene)
    await chat.tap(scene.user, "Collected")
    await chat.tap(scene.user, "Full ৳1,500 · cash")
    data = _data(chat, scene.user, card, "Post without photo")

    await chat.feed(chat.tg.callback(scene.user, data, card))
    await chat.feed(chat.tg.callback(scene.user, data, card))  # a second, separate press

    assert await Payment.all().count() == 1
    assert chat.last_text(scene.user).startswith("✅ ৳1,500 posted")
    assert len(set(_answered_ids(chat))) == len(_answered_ids(chat)) == 4


async def test_an_office_admin_pressing_a_collector_button_is_refused(chat):
    scene = await _scene(chat)
    nadia = chat.tg.user(scene.admin.telegram_user_id, "Nadia")
    await chat.say(nadia, "/route")
    assert chat.last_text(nadia) == "That is not one of your commands. Send /help to see yours."

    await chat.feed(chat.tg.callback(nadia, f"c:col:{scene.stops[0]}", _last(chat, nadia).message))

    assert _answers(chat) == [("That is not one of your commands. Send /help to see yours.", True)]
    assert (await Assignment.get(id=scene.stops[0])).status == AssignmentStatus.ASSIGNED


async def test_a_photo_from_office_staff_gets_the_catch_all_answer(chat):
    scene = await _scene(chat)
    nadia = chat.tg.user(scene.admin.telegram_user_id, "Nadia")
    chat.tg.add_file("AgAC-admin", JPEG)
    await chat.feed(chat.tg.photo(nadia, "AgAC-admin"))
    assert chat.last_text(nadia) == "I did not understand that. Send /help to see what I can do."
    assert await StoredFile.all().count() == 0


# --------------------------------------------------------------------------- restart


async def test_a_restart_mid_flow_resumes_the_typed_amount_on_the_new_application(chat):
    scene = await _scene(chat)
    invoice = scene.invoices[0]
    await _open_card(chat, scene)
    await chat.tap(scene.user, "Collected")
    await chat.tap(scene.user, "Other amount")
    assert await BotState.filter(kind="user", key=str(scene.user.id)).exists()

    restarted = build_application(chat.settings)  # a new process: nothing in memory
    await restarted.initialize()
    try:
        typed = chat.tg.message(scene.user, "1200")
        await restarted.process_update(Update.de_json(typed, restarted.bot))
        assert chat.last_text(scene.user) == (
            f"Post ৳1,200 cash for {invoice.number}? Send a photo of the receipt, or:"
        )
        tap = chat.tg.press(scene.user, "Post without photo")
        await restarted.process_update(Update.de_json(tap, restarted.bot))
    finally:
        await restarted.shutdown()

    assert chat.last_text(scene.user).startswith(
        f"✅ ৳1,200 posted · {invoice.number} partly paid · ৳300 still due"
    )
    assert (await Payment.get()).amount_minor == 120_000


# --------------------------------------------------------------------------- Bengali


async def test_a_bengali_collector_does_the_whole_collection_in_bengali(chat):
    scene = await _scene(chat, language="bn")
    invoice = scene.invoices[0]

    await chat.say(scene.user, "🗺 আজকের রুট")
    header, card = chat.tg.chat_log(scene.user.id)[-2:]
    assert header.text == (
        f"{_day(scene.today, language='bn')} · 1টি স্টপ · আদায় বাকি ৳1,500 · আদায় হয়েছে ৳0 · কমিশন ৳0"
    )
    assert card.text == (
        "1/1  Rahim Uddin · +8801711000001\n"
        "House 12, Road 5 · Dhanmondi\n"
        f"বাকি ৳1,500 ({invoice.number}, নবায়ন)"
    )
    assert card.buttons == (("আদায় হয়েছে", "ব্যর্থ", "ম্যাপ"),)

    await chat.tap(scene.user, "আদায় হয়েছে")
    assert _last(chat, scene.user).buttons == (
        ("পুরো ৳1,500 · ক্যাশ",),
        ("অন্য পরিমাণ", "অন্য মাধ্যম"),
        ("« ফিরে যান",),
    )
    await chat.tap(scene.user, "অন্য পরিমাণ")
    assert chat.last_text(scene.user) == "পরিমাণটি লিখুন (সর্বোচ্চ ৳1,500)।"
    await chat.say(scene.user, "এক হাজার")
    assert chat.last_text(scene.user) == (
        "পরিমাণটি সংখ্যায় লিখুন, যেমন 1500 বা 1500.50।\nপরিমাণটি লিখুন (সর্বোচ্চ ৳1,500)।"
    )
    await chat.say(scene.user, "১০০০")  # Bengali digits
    assert chat.last_text(scene.user) == (
        f"{invoice.number}-এর জন্য ক্যাশ-এ ৳1,000 জমা দেবেন? রসিদের একটি ছবি পাঠান, অথবা:"
    )
    await chat.tap(scene.user, "ছবি ছাড়াই জমা দিন")

    assert chat.last_text(scene.user) == (
        f"✅ ৳1,000 জমা হয়েছে · {invoice.number} আংশিক পরিশোধিত · এখনও বাকি ৳500\n"
        "রসিদটি তাঁর হোয়াটসঅ্যাপে পাঠানো হচ্ছে। আজ: আদায় ৳1,000 · কমিশন ৳50\n"
        "এটি ছিল আজকের শেষ খোলা স্টপ। চমৎকার কাজ!"
    )
    assert (await Payment.get()).amount_minor == 100_000


async def test_a_subscriber_without_a_phone_gets_no_receipt_and_the_collector_is_told(chat):
    scene = await _scene(chat, ({**RAHIM, "phone": None}, 150_000))
    await Invoice.filter(id=scene.invoices[0].id).update(purpose=InvoicePurpose.NEW)
    await _open_card(chat, scene)
    assert chat.last_text(scene.user).startswith("1/1  Rahim Uddin\n")
    await chat.tap(scene.user, "Collected")
    await chat.tap(scene.user, "Full ৳1,500 · cash")
    await chat.tap(scene.user, "Post without photo")

    assert chat.last_text(scene.user) == (
        f"✅ ৳1,500 posted · {scene.invoices[0].number} paid\n"
        "No receipt could be sent: Rahim Uddin has no phone number. "
        f"Today: ৳1,500 collected · commission ৳75\n{ALL_DONE}"
    )
    assert await OutboxMessage.all().count() == 0
