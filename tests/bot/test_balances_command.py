"""What subscribers owe, in the chat: `/subscriber <username>` and `/balances`.

The real Application over the fake Bot API against the real database; invoices come from
the factories and payments from the core services, the way a collector makes them.
"""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime

from core.db.models import Payment, Plan, Staff
from core.documents.receipt import receipt_number
from core.domain.dates import local_today, utcnow
from core.domain.status import BillingMode, InvoicePurpose, InvoiceStatus, Role
from core.services.access import COLLECTORS_VIEW, Origin
from core.services.assignments import assign_invoices
from core.services.collection import mark_collected
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant

NADIA, KARIM, CLERK = 9001, 9101, 9201
DHAKA = ZoneInfo("Asia/Dhaka")


def _today() -> date:
    return local_today(utcnow(), "Asia/Dhaka")


def _d(day: date) -> str:
    return format_date(day, "d MMM y", locale="en")


async def _office(chat):
    """Dhaka Fiber Net: Nadia (admin) and Karim (collector)."""
    tenant = await make_tenant(name="Dhaka Fiber Net")
    admin = await make_staff(tenant, Role.ADMIN, name="Nadia", telegram_user_id=NADIA)
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim", telegram_user_id=KARIM)
    return tenant, admin, karim, chat.tg.user(NADIA, "Nadia")


async def _owes(tenant, amount_minor, *, days_late=0, **subscriber):
    """A subscriber with one unpaid invoice, due `days_late` days ago (0: today)."""
    sub = await make_subscriber(tenant, **subscriber)
    await make_invoice(sub, amount_minor, due_date=_today() - timedelta(days=days_late))
    return sub


async def _collect(admin, collector, invoice, amount_minor):
    route = await assign_invoices(admin, collector_id=collector.id, numbers=[invoice.number])
    return await mark_collected(
        collector,
        assignment_id=route.outcomes[0].assignment_id,
        idempotency_key=f"tg:{invoice.number}",
        amount_minor=amount_minor,
        origin=Origin(channel="telegram", telegram_user_id=collector.telegram_user_id),
    )


# --- /subscriber ---------------------------------------------------------------------------


async def test_subscriber_tells_who_they_are_what_they_owe_and_their_last_payments(chat):
    tenant, admin, karim, nadia = await _office(chat)
    reseller = await make_reseller(tenant, name="Mirpur Net")
    plan = await Plan.create(tenant=tenant, name="Home 10 Mbps", price_minor=150_000)
    today = _today()
    rahim = await make_subscriber(
        tenant,
        username="rahim",
        name="Rahim Uddin",
        phone="+8801711000001",
        address="House 12, Road 5",
        street="Road 5",
        area="Dhanmondi",
        expiry_date=today + timedelta(days=10),
        billing_mode=BillingMode.PREPAID,
        reseller=reseller,
        plan=plan,
    )
    late = await make_invoice(rahim, 150_000, due_date=today - timedelta(days=3))
    fee = await make_invoice(
        rahim, 20_000, due_date=today + timedelta(days=4), purpose=InvoicePurpose.LATE_FEE
    )
    await make_invoice(rahim, 99_000, status=InvoiceStatus.DRAFT)
    await _collect(admin, karim, late, 100_000)
    payment = await Payment.get(invoice_id=late.id)
    moment = format_datetime(payment.received_at, "d MMM HH:mm", tzinfo=DHAKA, locale="en")

    await chat.say(nadia, "/subscriber rahim")

    assert chat.last_text(nadia).splitlines() == [
        "Rahim Uddin · rahim · reseller Mirpur Net",
        "+8801711000001 · House 12, Road 5, Dhanmondi",
        f"active · prepaid · Home 10 Mbps · service runs to {_d(today + timedelta(days=10))}",
        f"Owes ৳700 (৳500 overdue) in 2 invoices since {_d(today - timedelta(days=3))}",
        "Open invoices",
        f"• {late.number} · renewal · ৳1,500 · paid ৳1,000, ৳500 left · "
        f"due {_d(today - timedelta(days=3))} · ⚠️ overdue",
        f"• {fee.number} · late fee · ৳200 · due {_d(today + timedelta(days=4))}",
        "Last payments",
        f"• {receipt_number(payment.id)} · {moment} · ৳1,000 cash · {late.number} · Karim",
    ]


async def test_a_subscriber_who_owes_nothing_and_never_paid_is_said_so(chat):
    tenant, admin, karim, nadia = await _office(chat)
    await make_subscriber(
        tenant, username="salma", name="Salma Begum", phone=None, address="", street="", area=""
    )

    await chat.say(nadia, "/subscriber SALMA")

    assert chat.last_text(nadia).splitlines() == [
        "Salma Begum · salma",
        "no phone",
        "active · prepaid",
        "Owes nothing.",
        "Last payments: none yet",
    ]


async def test_subscriber_unknown_or_missing_or_two_names_get_one_sentence(chat):
    tenant, admin, karim, nadia = await _office(chat)
    await _owes(await make_tenant(), 10_000, username="elsewhere")

    await chat.say(nadia, "/subscriber nobody")
    await chat.say(nadia, "/subscriber elsewhere")
    await chat.say(nadia, "/subscriber")
    await chat.say(nadia, "/subscriber rahim salma")

    usage = "Send it like this: /subscriber rahim (the subscriber's username)."
    assert chat.texts(nadia) == [
        "There is no subscriber “nobody” in your company.",
        "There is no subscriber “elsewhere” in your company.",
        usage,
        usage,
    ]


async def test_reseller_staff_see_their_own_subscribers_and_no_one_elses(chat):
    tenant, admin, karim, nadia = await _office(chat)
    mirpur, uttara = await make_reseller(tenant), await make_reseller(tenant)
    await make_staff(
        tenant, Role.RESELLER, reseller=mirpur, permissions=[], telegram_user_id=CLERK
    )
    await _owes(tenant, 10_000, username="ours", name="Our Subscriber", reseller=mirpur)
    await _owes(tenant, 20_000, username="theirs", reseller=uttara)
    clerk = chat.tg.user(CLERK, "Clerk")

    await chat.say(clerk, "/subscriber ours")
    await chat.say(clerk, "/subscriber theirs")

    replies = chat.texts(clerk)
    assert replies[0].startswith("Our Subscriber · ours")
    assert replies[1] == "There is no subscriber “theirs” in your company."


async def test_a_collector_is_told_these_commands_are_not_theirs(chat):
    tenant, admin, karim, nadia = await _office(chat)
    await _owes(tenant, 10_000, username="rahim")
    collector = chat.tg.user(KARIM, "Karim")

    await chat.say(collector, "/subscriber rahim")
    await chat.say(collector, "/balances")

    refusal = "That is not one of your commands. Send /help to see yours."
    assert chat.texts(collector) == [refusal, refusal]


async def test_names_are_shown_as_typed_and_never_parsed_as_html(chat):
    tenant, admin, karim, nadia = await _office(chat)
    await _owes(tenant, 10_000, username="co", name="<b>Rahim</b> & Co", area="Old <Town>")

    await chat.say(nadia, "/subscriber co")
    await chat.say(nadia, "/balances")

    story, listing = chat.tg.sent(NADIA, "sendMessage")[-2:]
    assert story.params["text"].startswith("<b>&lt;b&gt;Rahim&lt;/b&gt; &amp; Co</b> · co")
    assert (
        "&lt;b&gt;Rahim&lt;/b&gt; &amp; Co</b> · co · Old &lt;Town&gt;" in listing.params["text"]
    )
    assert chat.texts(nadia)[0].startswith("<b>Rahim</b> & Co · co")


# --- /balances -----------------------------------------------------------------------------


async def test_balances_lists_the_largest_first_with_totals_over_everyone(chat):
    tenant, admin, karim, nadia = await _office(chat)
    today = _today()
    keya = await _owes(
        tenant, 70_000, days_late=5, username="keya", name="Keya Das", area="Mirpur"
    )
    await make_invoice(keya, 30_000, due_date=today)
    await _owes(tenant, 50_000, username="rahim", name="Rahim Uddin", phone="+8801711000001")
    await _owes(tenant, 20_000, days_late=1, username="salma")

    await chat.say(nadia, "/balances limit=2")

    assert chat.last_text(nadia).splitlines() == [
        "Largest balances · all subscribers",
        f"1. Keya Das · keya · Mirpur · {keya.phone} · owes ৳1,000 (৳700 overdue) "
        f"in 2 invoices since {_d(today - timedelta(days=5))}",
        "2. Rahim Uddin · rahim · Dhanmondi · +8801711000001 · owes ৳500 "
        f"in 1 invoice since {_d(today)}",
        "3 subscribers owe ৳1,700 in all (৳900 overdue); the largest 2 are shown.",
    ]


async def test_balances_filters_by_area_reseller_and_overdue(chat):
    tenant, admin, karim, nadia = await _office(chat)
    mirpur = await make_reseller(tenant, name="Mirpur Net")
    await _owes(tenant, 70_000, days_late=2, username="keya", name="Keya", area="Old Town")
    await _owes(tenant, 50_000, username="rahim", name="Rahim", area="Old Town")
    await _owes(tenant, 40_000, username="toma", name="Toma", reseller=mirpur)

    await chat.say(nadia, "/balances area=old town overdue")
    await chat.say(nadia, "/balances reseller=Mirpur Net")

    by_area, by_reseller = chat.texts(nadia)
    assert by_area.splitlines()[0] == "Largest balances · old town · overdue"
    assert [line.split(" · ")[0] for line in by_area.splitlines()[1:-1]] == ["1. Keya"]
    assert by_area.splitlines()[-1] == "1 subscriber owes ৳700 in all (৳700 overdue)."
    assert by_reseller.splitlines()[0] == "Largest balances · Mirpur Net"
    assert by_reseller.splitlines()[1].startswith("1. Toma · ")
    assert by_reseller.splitlines()[-1] == "1 subscriber owes ৳400 in all."


async def test_balances_with_nobody_owing_says_so(chat):
    tenant, admin, karim, nadia = await _office(chat)
    await _owes(tenant, 10_000, area="Dhanmondi")

    await chat.say(nadia, "/balances area=Mirpur overdue")

    assert chat.last_text(nadia) == "Nobody owes anything for Mirpur · overdue."


async def test_unknown_filters_and_bad_limits_are_answered_with_the_usage(chat):
    tenant, admin, karim, nadia = await _office(chat)
    await _owes(tenant, 10_000)

    for text in (
        "/balances colour=red",
        "/balances limit=many",
        "/balances limit=101",
        "/balances limit=0",
        "/balances Dhanmondi",
        "/balances area=",
        "/balances reseller=Nope",
    ):
        await chat.say(nadia, text)

    usage = (
        "Send it like this: /balances, or /balances area=Dhanmondi reseller=Mirpur Net "
        "overdue limit=50"
    )
    assert chat.texts(nadia) == [
        "I do not know “colour=”. Send it like this: "
        "/balances area=Dhanmondi reseller=Mirpur Net overdue limit=50",
        "The limit is a number from 1 to 100, not “many”. Send it like this: /balances limit=50",
        "The limit is a number from 1 to 100, not “101”. Send it like this: /balances limit=50",
        "The limit is a number from 1 to 100, not “0”. Send it like this: /balances limit=50",
        usage,
        usage,
        "There is no reseller “Nope” in your company.",
    ]


async def test_a_hundred_balances_are_split_into_messages_telegram_accepts(chat):
    tenant, admin, karim, nadia = await _office(chat)
    for n in range(101):
        await _owes(tenant, 1_000 * (n + 1), username=f"user{n:03d}", name="Long Name " + "x" * 60)

    await chat.say(nadia, "/balances limit=100")

    assert len(chat.tg.sent(NADIA, "sendMessage")) >= 2
    assert all(call.ok for call in chat.tg.calls if call.method == "sendMessage")
    lines = "\n".join(chat.texts(nadia)).splitlines()
    assert lines[1].startswith("1. Long Name") and "user100" in lines[1]
    assert lines[100].startswith("100. Long Name") and "user001" in lines[100]
    assert lines[-1] == "101 subscribers owe ৳51,510 in all; the largest 100 are shown."


async def test_balances_of_reseller_staff_cover_only_their_own_subscribers(chat):
    tenant, admin, karim, nadia = await _office(chat)
    mirpur, uttara = await make_reseller(tenant), await make_reseller(tenant)
    await make_staff(
        tenant,
        Role.RESELLER,
        reseller=mirpur,
        permissions=[COLLECTORS_VIEW],
        telegram_user_id=CLERK,
    )
    ours = await _owes(tenant, 10_000, username="ours", name="Ours", reseller=mirpur)
    await _owes(tenant, 90_000, username="theirs", name="Theirs", reseller=uttara)
    clerk = chat.tg.user(CLERK, "Clerk")

    await chat.say(clerk, "/balances")
    await chat.say(clerk, f"/balances reseller={uttara.name}")

    listing, refused = chat.texts(clerk)
    assert listing.splitlines()[1:] == [
        f"1. Ours · ours · Dhanmondi · {ours.phone} · owes ৳100 in 1 invoice since {_d(_today())}",
        "1 subscriber owes ৳100 in all.",
    ]
    assert refused == f"There is no reseller “{uttara.name}” in your company."


# --- language ------------------------------------------------------------------------------


async def test_an_admin_reading_bengali_gets_balances_in_bengali(chat):
    tenant, admin, karim, nadia = await _office(chat)
    await Staff.filter(id=admin.id).update(language="bn")
    await _owes(tenant, 150_000, days_late=2, username="rahim", name="Rahim Uddin")

    await chat.say(nadia, "/subscriber rahim")
    await chat.say(nadia, "/balances limit=500")
    await chat.say(nadia, "/subscriber nobody")

    story, bad_limit, not_found = chat.texts(nadia)
    assert story.splitlines()[2] == "চালু · প্রিপেইড"
    assert story.splitlines()[3].startswith("বাকি ৳1,500 (মেয়াদোত্তীর্ণ ৳1,500) · 1টি ইনভয়েসে")
    assert bad_limit.startswith("limit হবে 1 থেকে 100-এর মধ্যে একটি সংখ্যা, “500” নয়।")
    assert not_found == "আপনার কোম্পানিতে “nobody” নামে কোনো গ্রাহক নেই।"
