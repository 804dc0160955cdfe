"""The office's `/remind` in the chat: a preview, a confirm button, reminders queued once.

The real Application over the fake Bot API, against the real database.
"""

from __future__ import annotations

from datetime import timedelta

from core.db.models import AuditLog, OutboxMessage
from core.domain.dates import local_today, utcnow
from core.domain.status import InvoiceStatus, Role
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant

NADIA, KARIM, RESELLER = 9001, 9101, 9201


async def _office(chat):
    """Dhaka Fiber Net: Nadia (admin); three open invoices in Dhanmondi (one overdue, one
    partly paid, one to a landline), one in Mirpur with a pending request."""
    tenant = await make_tenant(name="Dhaka Fiber Net")
    await make_staff(tenant, Role.ADMIN, name="Nadia", telegram_user_id=NADIA)
    today = local_today(utcnow(), tenant.timezone)
    invoices = [
        await make_invoice(
            await make_subscriber(tenant, area=area, name=name, phone=phone), amount, **extra
        )
        for area, name, phone, amount, extra in (
            ("Dhanmondi", "Rahim Uddin", "+8801811000001", 150_000,
             {"due_date": today - timedelta(days=3)}),
            ("Dhanmondi", "Salma Begum", "+8801811000002", 100_000,
             {"paid_minor": 40_000, "status": InvoiceStatus.PARTIAL,
              "due_date": today + timedelta(days=9)}),
            ("Dhanmondi", "Abul Kalam", "+88029660001", 80_000,
             {"due_date": today + timedelta(days=9)}),
            ("Mirpur", "Keya Das", "+8801811000004", 70_000, {"request_status": "pending"}),
        )
    ]  # fmt: skip
    return tenant, invoices, chat.tg.user(NADIA, "Nadia")


async def test_remind_previews_who_is_reached_then_queues_the_reminders_on_confirm(chat):
    _, invoices, nadia = await _office(chat)

    await chat.say(nadia, "/remind")

    preview = chat.tg.chat_log(NADIA)[-1]
    assert preview.text == (
        "📨 Remind 3 subscribers on WhatsApp · all unpaid and partly paid invoices:"
        " ৳2,900 due.\n"
        "Left out: 1 with a request still pending."
    )
    assert preview.buttons == (("📨 Send 3 reminders", "Cancel"),)

    await chat.tap(nadia, "📨 Send 3 reminders")

    assert chat.last_text(nadia) == (
        "✅ 2 reminders on the way to WhatsApp.\n"
        "1 refused: a number that cannot receive WhatsApp (see /undelivered).\n"
        "1 left out: a request still pending, no phone number, or reminded today."
    )
    reminded = await OutboxMessage.filter(kind="reminder").values_list("invoice_id", flat=True)
    assert sorted(reminded) == sorted(i.id for i in invoices[:3])
    audit = await AuditLog.filter(action="invoice.remind").first()
    assert audit is not None and audit.telegram_user_id == NADIA


async def test_remind_filters_by_status_area_and_overdue(chat):
    await _office(chat)
    nadia = chat.tg.user(NADIA, "Nadia")

    await chat.say(nadia, "/remind status=partial area=dhanmondi")
    await chat.say(nadia, "/remind overdue")
    await chat.say(nadia, "/remind area=Mirpur")

    assert chat.texts(nadia) == [
        "📨 Remind 1 subscriber on WhatsApp · partly paid · dhanmondi: ৳600 due.",
        "📨 Remind 1 subscriber on WhatsApp · overdue: ৳1,500 due.",
        "Nobody to remind for Mirpur.\nLeft out: 1 with a request still pending.",
    ]


async def test_a_double_tapped_send_reminds_once_and_says_the_preview_is_gone(chat):
    await _office(chat)
    nadia = chat.tg.user(NADIA, "Nadia")
    await chat.say(nadia, "/remind")
    first = chat.tg.press(nadia, "📨 Send 3 reminders")
    second = chat.tg.press(nadia, "📨 Send 3 reminders")

    await chat.feed(first)
    await chat.feed(second)

    assert await OutboxMessage.filter(kind="reminder").count() == 3
    answers = chat.tg.sent(method="answerCallbackQuery")
    assert answers[-1].params["text"] == (
        "This preview was already used or has expired. Send /remind again."
    )


async def test_a_second_remind_the_same_day_finds_everyone_already_reminded(chat):
    await _office(chat)
    nadia = chat.tg.user(NADIA, "Nadia")
    await chat.say(nadia, "/remind")
    await chat.tap(nadia, "📨 Send 3 reminders")

    await chat.say(nadia, "/remind")

    assert chat.last_text(nadia) == (
        "Nobody to remind for all unpaid and partly paid invoices.\n"
        "Left out: 1 with a request still pending, 3 already reminded today."
    )


async def test_cancel_sends_nothing(chat):
    await _office(chat)
    nadia = chat.tg.user(NADIA, "Nadia")
    await chat.say(nadia, "/remind")

    await chat.tap(nadia, "Cancel")

    assert chat.last_text(nadia) == "Cancelled. Nothing was changed."
    assert await OutboxMessage.all().count() == 0


async def test_remind_with_arguments_that_do_not_fit_gets_one_sentence(chat):
    await _office(chat)
    nadia = chat.tg.user(NADIA, "Nadia")

    await chat.say(nadia, "/remind status=paid")
    await chat.say(nadia, "/remind Dhanmondi")
    await chat.say(nadia, "/remind colour=red")

    assert chat.texts(nadia) == [
        "“paid” is not a status reminders go to. Use status=unpaid or status=partial.",
        "Send it like this: /remind, or /remind status=unpaid area=Dhanmondi overdue",
        "I do not know “colour=”. Use status, area.",
    ]
    assert await OutboxMessage.all().count() == 0


async def test_reseller_staff_remind_their_own_subscribers_and_collectors_cannot(chat):
    tenant, _, _ = await _office(chat)
    reseller = await make_reseller(tenant, name="Uttara Net")
    await make_staff(
        tenant, Role.RESELLER, name="Rana", reseller=reseller, telegram_user_id=RESELLER
    )
    await make_staff(tenant, Role.COLLECTOR, name="Karim", telegram_user_id=KARIM)
    await make_invoice(await make_subscriber(tenant, reseller=reseller), 60_000)
    rana, karim = chat.tg.user(RESELLER, "Rana"), chat.tg.user(KARIM, "Karim")

    await chat.say(rana, "/remind")
    await chat.say(karim, "/remind")

    assert chat.last_text(rana).startswith("📨 Remind 1 subscriber on WhatsApp")
    assert chat.last_text(karim) == "That is not one of your commands. Send /help to see yours."


async def test_remind_speaks_bengali_to_a_bengali_reader(chat):
    tenant, _, _ = await _office(chat)
    await make_staff(tenant, Role.ADMIN, name="Rupa", language="bn", telegram_user_id=9003)
    rupa = chat.tg.user(9003, "Rupa", "bn")

    await chat.say(rupa, "/remind overdue")

    assert chat.last_text(rupa) == ("📨 হোয়াটসঅ্যাপে 1 জন গ্রাহককে রিমাইন্ডার · মেয়াদোত্তীর্ণ: বাকি ৳1,500।")
