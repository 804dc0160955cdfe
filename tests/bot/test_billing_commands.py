"""Invoicing in the chat: invoices, create and claim, drafts and their approval, requests,
billing cycles, the dashboard and the bulk suspension of flagged subscribers.

The real Application over the fake Bot API against the real database; history is made with
the core services or written straight to the database by the factories.
"""

from __future__ import annotations

from datetime import date, timedelta

from babel.dates import format_date

from core.db.models import AuditLog, Invoice, LedgerPosting, Payment, Staff, Subscriber
from core.domain.dates import local_today, utcnow
from core.domain.status import BillingMode, InvoiceStatus, RequestStatus, Role, SubscriberStatus
from core.services.billing import create_invoice, create_plan
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant

NADIA, KARIM, LIMA = 9001, 9101, 9201


async def _office(chat):
    """Dhaka Fiber Net: Nadia (admin), a ৳1,500 monthly plan reminding every 7 days, and
    Rahim Uddin (prepaid, username rahim) on it."""
    tenant = await make_tenant(name="Dhaka Fiber Net")
    admin = await make_staff(tenant, Role.ADMIN, name="Nadia", telegram_user_id=NADIA)
    plan = await create_plan(admin, name="Home", price_minor=150_000, reminder_days=7)
    rahim = await make_subscriber(tenant, username="rahim", name="Rahim Uddin", plan=plan)
    return tenant, admin, plan, rahim, chat.tg.user(NADIA, "Nadia")


def _today() -> date:
    return local_today(utcnow(), "Asia/Dhaka")


def _d(day: date, pattern: str = "d MMM") -> str:
    return format_date(day, pattern, locale="en")


def _buttons(chat, user) -> list[tuple[str, str]]:
    message = chat.tg.chat_log(user.id)[-1].message
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [(b["text"], b["callback_data"]) for row in rows for b in row]


def _last_answer(chat):
    return chat.tg.sent(method="answerCallbackQuery")[-1].params


async def _drafts(admin, subscriber, amounts=(150_000, 90_000)):
    return [
        await create_invoice(
            admin,
            subscriber_id=subscriber.id,
            amount_minor=amount,
            issue_date=date(2026, 11, 1),
            draft=True,
        )
        for amount in amounts
    ]


# --- invoices ------------------------------------------------------------------------------


async def test_newinvoice_issues_an_invoice_and_says_its_dates(chat):
    *_, nadia = await _office(chat)
    first = _today() + timedelta(days=3)

    await chat.say(
        nadia,
        "/newinvoice rahim 800 manual due=2027-01-10 remind=3"
        " suspend=2027-01-20 delete=2027-02-20",
    )

    number = f"INV-{_today().year}-0001"
    assert chat.last_text(nadia) == (
        f"✅ {number} issued · Rahim Uddin (rahim) · manual ৳800\n"
        f"Due 10 Jan 2027 · reminded every 3 days until paid, first {_d(first)}\n"
        "Suspension 20 Jan 2027 · deletion 20 Feb 2027"
    )
    invoice = await Invoice.get(number=number)
    assert (invoice.amount_minor, invoice.purpose, invoice.next_reminder_on) == (
        80_000,
        "manual",
        first,
    )


async def test_newinvoice_refuses_zero_reminder_days_and_a_deletion_before_suspension(chat):
    *_, nadia = await _office(chat)

    await chat.say(nadia, "/newinvoice rahim 800 remind=0")
    await chat.say(nadia, "/newinvoice rahim 800 suspend=2027-02-01 delete=2027-01-01")
    await chat.say(nadia, "/newinvoice rahim 800 due=tomorrow")
    await chat.say(nadia, "/newinvoice rahim 800 monthly")
    await chat.say(nadia, "/newinvoice rahim")
    await chat.say(nadia, "/newinvoice nobody 800")

    assert chat.texts(nadia) == [
        "Reminder days must be at least 1 day.",
        "The deletion date 2027-01-01 is before the suspension date 2027-02-01;"
        " delete after suspending.",
        "“tomorrow” is not a date. Write dates as YYYY-MM-DD, like 2026-12-24.",
        "I do not know “monthly” here. Use renewal, new, manual, out-of-turn, late-fee,"
        " chargeback, debit, due=, remind=, suspend=, delete=.",
        "Send it like this: /newinvoice rahim 1500 [renewal|new|manual|out-of-turn] [debit]"
        " [due=2026-12-24] [remind=7] [suspend=2027-01-05] [delete=2027-02-05]",
        "There is no subscriber “nobody” in your company.",
    ]
    assert await Invoice.all().count() == 0


async def test_claim_records_a_payment_at_the_office_once_per_message(chat):
    tenant, admin, plan, rahim, nadia = await _office(chat)
    await Subscriber.filter(id=rahim.id).update(expiry_date=date(2030, 1, 15))
    update = chat.tg.message(nadia, "/claim rahim 1500 bkash ref=TX 77")

    await chat.feed(update)
    await chat.feed(update)  # Telegram delivering the same update twice

    texts = chat.texts(nadia)
    assert texts[0] == (
        f"✅ INV-{_today().year}-0001 · Rahim Uddin · ৳1,500 bKash received at the office · paid\n"
        "Service runs to 15 Feb 2030. The receipt is on its way to WhatsApp."
    )
    assert texts[1] == "This payment was already recorded; nothing more was posted."
    assert texts[2] == texts[0]
    payment = await Payment.get()
    assert (payment.reference, payment.collector_id, payment.amount_minor) == (
        "TX 77",
        None,
        150_000,
    )
    assert await Invoice.all().count() == 1


async def test_claim_with_an_unknown_method_changes_nothing(chat):
    *_, nadia = await _office(chat)

    await chat.say(nadia, "/claim rahim 1500 cheque")
    await chat.say(nadia, "/claim rahim zero")

    assert chat.texts(nadia)[0].startswith("I do not know “cheque” here. Use cash, bkash,")
    assert chat.texts(nadia)[1] == "Type the amount as a number, like 1500 or 1500.50."
    assert await Payment.all().count() == 0


async def test_execute_marks_a_pending_request_and_refuses_a_second_time(chat):
    tenant, admin, plan, rahim, nadia = await _office(chat)
    invoice = await make_invoice(
        rahim,
        system_generated=True,
        request_status=RequestStatus.PENDING,
        request_cancellation_on=date(2026, 12, 5),
    )

    await chat.say(nadia, f"/execute {invoice.number}")
    await chat.say(nadia, f"/execute {invoice.number}")

    assert chat.texts(nadia) == [
        f"✅ The request of {invoice.number} (Rahim Uddin) is marked executed: it will not be"
        " cancelled, and reminders run until it is paid.",
        f"{invoice.number} has no pending request (it is executed).",
    ]
    assert (await Invoice.get(id=invoice.id)).request_cancellation_on is None


# --- drafts --------------------------------------------------------------------------------


async def test_drafts_are_listed_each_with_an_approve_button_and_an_approve_all(chat):
    tenant, admin, plan, rahim, nadia = await _office(chat)
    first, second = await _drafts(admin, rahim)

    await chat.say(nadia, "/drafts")

    log = chat.tg.chat_log(NADIA)[-3:]
    assert [e.text for e in log] == [
        "Drafts waiting for approval: 2 · ৳2,400",
        f"{first.number} · Rahim Uddin (rahim) · ৳1,500 · issued 1 Nov · due 1 Dec",
        f"{second.number} · Rahim Uddin (rahim) · ৳900 · issued 1 Nov · due 1 Dec",
    ]
    assert [e.buttons for e in log] == [
        (("✅ Approve all 2",),),
        (("✅ Approve",),),
        (("✅ Approve",),),
    ]
    assert log[1].message["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == (
        f"bil:ap:{first.id}"
    )


async def test_approving_one_draft_edits_its_card_and_a_second_press_is_refused(chat):
    tenant, admin, plan, rahim, nadia = await _office(chat)
    first, _ = await _drafts(admin, rahim)
    await chat.say(nadia, "/drafts")
    card = chat.tg.chat_log(NADIA)[-2]

    await chat.feed(chat.tg.callback(nadia, f"bil:ap:{first.id}", card.message_id))
    await chat.feed(chat.tg.callback(nadia, f"bil:ap:{first.id}", card.message_id))

    edited = next(e for e in chat.tg.chat_log(NADIA) if e.message_id == card.message_id)
    assert edited.text == f"✅ {first.number} approved · ৳1,500 now due."
    assert edited.buttons == ()
    assert _last_answer(chat)["text"] == (
        f"{first.number} is not a draft (it is unpaid); there is nothing to approve."
    )
    assert _last_answer(chat)["show_alert"] is True
    assert await LedgerPosting.filter(invoice_id=first.id).count() == 1


async def test_approve_all_asks_to_confirm_then_approves_every_draft(chat):
    tenant, admin, plan, rahim, nadia = await _office(chat)
    await _drafts(admin, rahim)
    await chat.say(nadia, "/drafts")

    await chat.tap(nadia, "✅ Approve all 2")
    header = chat.tg.chat_log(NADIA)[-3]
    assert header.text == (
        "Approve all 2 drafts, ৳2,400? They become unpaid invoices: they count, and the"
        " subscribers are reminded until they pay."
    )
    assert header.buttons == (("Approve 2", "Cancel"),)
    await chat.tap(nadia, "Approve 2")

    assert chat.tg.chat_log(NADIA)[-3].text == "✅ 2 drafts approved · ৳2,400 now due."
    assert await Invoice.filter(status=InvoiceStatus.DRAFT).count() == 0
    await chat.say(nadia, "/drafts")
    assert chat.last_text(nadia) == "No drafts are waiting for approval."


async def test_cancelling_approve_all_changes_nothing(chat):
    tenant, admin, plan, rahim, nadia = await _office(chat)
    await _drafts(admin, rahim)
    await chat.say(nadia, "/drafts")
    await chat.tap(nadia, "✅ Approve all 2")

    await chat.tap(nadia, "Cancel")

    assert chat.tg.chat_log(NADIA)[-3].text == "Cancelled. Nothing was changed."
    assert await Invoice.filter(status=InvoiceStatus.DRAFT).count() == 2


async def test_approve_by_number_and_an_already_approved_one_is_refused(chat):
    tenant, admin, plan, rahim, nadia = await _office(chat)
    first, second = await _drafts(admin, rahim)

    await chat.say(nadia, f"/approve {first.number.lower()}")
    await chat.say(nadia, f"/approve {second.number} {first.number}")

    assert chat.texts(nadia) == [
        f"✅ Approved 1: {first.number} · ৳1,500 now due.",
        f"{first.number} is not a draft (it is unpaid); there is nothing to approve.",
    ]
    assert (await Invoice.get(id=second.id)).status == InvoiceStatus.DRAFT


async def test_a_forged_approve_button_for_another_companys_draft_finds_nothing(chat):
    tenant, admin, plan, rahim, nadia = await _office(chat)
    await _drafts(admin, rahim, amounts=(1,))
    elsewhere = await make_tenant()
    (foreign,) = await _drafts(
        await make_staff(elsewhere, Role.ADMIN), await make_subscriber(elsewhere), amounts=(5,)
    )
    await chat.say(nadia, "/drafts")

    await chat.feed(
        chat.tg.callback(nadia, f"bil:ap:{foreign.id}", chat.tg.chat_log(NADIA)[-1].message_id)
    )

    assert _last_answer(chat)["text"] == f"There is no invoice #{foreign.id} in your company."
    assert (await Invoice.get(id=foreign.id)).status == InvoiceStatus.DRAFT


# --- billing cycles ------------------------------------------------------------------------


async def test_cycle_starts_changes_and_stops_a_postpaid_subscribers_billing(chat):
    tenant, admin, plan, rahim, nadia = await _office(chat)
    await make_subscriber(
        tenant, username="corp", name="Corp Ltd", plan=plan, billing_mode=BillingMode.POSTPAID
    )

    await chat.say(nadia, "/cycle corp start 1 2030-01-31")
    await chat.say(nadia, "/cycle corp change 3")
    await chat.say(nadia, "/cycle corp stop")

    assert chat.texts(nadia) == [
        "✅ Corp Ltd (corp) is billed every 1 month: the first draft is made on 31 Jan 2030.",
        "✅ Corp Ltd (corp) is now billed every 3 months: the next draft is made on 31 Mar 2030.",
        "✅ Corp Ltd (corp): billing cycle stopped. No more recurring drafts until you start it"
        " again.",
    ]


async def test_cycle_refuses_a_prepaid_subscriber_and_bad_months(chat):
    tenant, admin, plan, rahim, nadia = await _office(chat)
    await make_subscriber(tenant, username="corp", plan=plan, billing_mode=BillingMode.POSTPAID)

    await chat.say(nadia, "/cycle rahim start")
    await chat.say(nadia, "/cycle corp start 0")
    await chat.say(nadia, "/cycle corp start two")
    await chat.say(nadia, "/cycle corp pause")

    assert chat.texts(nadia) == [
        "rahim pays in advance (prepaid): they are billed by renewal, not by a billing cycle.",
        "A billing cycle is 1 to 12 months, not 0.",
        "“two” is not a whole number of months.",
        "Send it like this: /cycle corp start [months] [first day YYYY-MM-DD],"
        " /cycle corp change 3, or /cycle corp stop",
    ]


# --- the dashboard -------------------------------------------------------------------------


async def test_the_dashboard_shows_approved_drafts_paid_unsettled_overdue_and_outstanding(chat):
    tenant, admin, plan, rahim, nadia = await _office(chat)
    today = _today()
    await make_invoice(rahim, 100_000, due_date=today - timedelta(days=1))
    await make_invoice(
        rahim, 50_000, paid_minor=20_000, status=InvoiceStatus.PARTIAL, due_date=today
    )
    await make_invoice(rahim, 30_000, paid_minor=30_000, status=InvoiceStatus.PAID)
    await make_invoice(rahim, 9_000, status=InvoiceStatus.DRAFT)

    await chat.say(nadia, "/dashboard")

    assert chat.last_text(nadia) == (
        f"Invoices · {_d(today, 'd MMM y')}\n"
        "Total 4: approved 3 · not approved (drafts) 1 (৳90)\n"
        "Paid 1 · unsettled 2 (unpaid 1, partly paid 1)\n"
        "Overdue 1 (৳1,000)\n"
        "Outstanding ৳1,300 · received ৳500"
    )


async def test_reseller_staff_see_the_dashboard_of_their_own_subscribers_only(chat):
    tenant, admin, plan, rahim, nadia = await _office(chat)
    ours = await make_reseller(tenant)
    await make_staff(tenant, Role.RESELLER, reseller=ours, telegram_user_id=LIMA)
    await make_invoice(await make_subscriber(tenant, reseller=ours), 40_000)
    await make_invoice(rahim, 100_000)
    lima = chat.tg.user(LIMA, "Lima")

    await chat.say(lima, "/dashboard")
    await chat.say(lima, "/drafts")

    assert chat.texts(lima)[0].splitlines()[1:] == [
        "Total 1: approved 1 · not approved (drafts) 0",
        "Paid 0 · unsettled 1 (unpaid 1, partly paid 0)",
        "Overdue 0",
        "Outstanding ৳400 · received ৳0",
    ]
    assert chat.texts(lima)[1] == "Only an admin can do that."


async def test_a_collector_has_none_of_these_commands(chat):
    tenant, *_ = await _office(chat)
    await make_staff(tenant, Role.COLLECTOR, telegram_user_id=KARIM)
    karim = chat.tg.user(KARIM, "Karim")

    await chat.say(karim, "/dashboard")

    assert chat.last_text(karim) == "That is not one of your commands. Send /help to see yours."


# --- bulk suspension of flagged subscribers ------------------------------------------------


async def test_suspendflagged_previews_then_suspends_on_the_button_once(chat):
    tenant, admin, plan, rahim, nadia = await _office(chat)
    await make_invoice(rahim, 150_000, failed_visits=3, flagged_at=utcnow())
    salma = await make_subscriber(tenant, username="salma", name="Salma Begum", area="")
    await make_invoice(salma, 80_000, failed_visits=4, flagged_at=utcnow())

    await chat.say(nadia, "/suspendflagged")

    assert chat.last_text(nadia) == (
        "Suspend 2 subscribers flagged for failed visits (৳2,300 unpaid)? Their service stops"
        " until they pay in full.\n"
        "• Salma Begum (salma) · ৳800 due · 4 failed visits\n"
        "• Rahim Uddin (rahim) · Dhanmondi · ৳1,500 due · 3 failed visits"
    )
    assert [label for label, _ in _buttons(chat, nadia)] == ["⛔ Suspend 2", "Cancel"]
    suspend_data = _buttons(chat, nadia)[0][1]
    preview = chat.tg.chat_log(NADIA)[-1]

    await chat.tap(nadia, "⛔ Suspend 2")
    await chat.feed(chat.tg.callback(nadia, suspend_data, preview.message_id))  # again

    assert chat.tg.chat_log(NADIA)[-1].text == "✅ Suspended 2: rahim, salma."
    assert _last_answer(chat)["text"] == (
        "This preview was already used or has expired. Send /suspendflagged again."
    )
    statuses = await Subscriber.filter(tenant_id=tenant.id).values_list("status", flat=True)
    assert set(statuses) == {SubscriberStatus.SUSPENDED}
    assert await AuditLog.filter(action="subscriber.suspend").count() == 2


async def test_suspendflagged_with_nobody_flagged_says_so(chat):
    *_, nadia = await _office(chat)

    await chat.say(nadia, "/suspendflagged")

    assert chat.last_text(nadia) == (
        "No active subscriber has an unpaid invoice flagged for failed visits."
    )


# --- catalogs and button data --------------------------------------------------------------


async def test_an_admin_reading_bengali_gets_invoicing_in_bengali(chat):
    tenant, admin, plan, rahim, nadia = await _office(chat)
    await Staff.filter(id=admin.id).update(language="bn")

    await chat.say(nadia, "/drafts")
    await chat.say(nadia, "/newinvoice rahim 800 remind=0")

    assert chat.texts(nadia) == [
        "অনুমোদনের অপেক্ষায় কোনো খসড়া নেই।",
        "রিমাইন্ডারের দিন অন্তত ১ দিন হতে হবে।",
    ]


def test_the_longest_button_data_fits_telegrams_64_bytes():
    assert len(f"bil:ap:{10**12 - 1}".encode()) <= 64
    assert len(f"bil:sf:{'x' * 16}".encode()) <= 64
