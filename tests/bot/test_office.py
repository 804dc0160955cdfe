"""The office in the chat: collectors, routes, reports, commission and invoice stories.

Every test drives the real Application over the fake Bot API against the real database;
history is made with the core services, the way collectors make it at the door.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from bot.handlers.office import split_message
from core.db.models import Assignment, LedgerPosting, Staff, StoredFile, Subscriber, Tenant
from core.domain.dates import local_today, utcnow
from core.domain.status import AssignmentStatus, FailureReason, Role
from core.services.access import (
    COLLECTORS_ASSIGN,
    COLLECTORS_COMMISSION_PAY,
    COLLECTORS_VIEW,
    Origin,
)
from core.services.assignments import assign_invoices
from core.services.collection import mark_collected, mark_failed
from core.services.commission import commission_balance
from core.services.reports import collector_report
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant

NADIA, KARIM, JAMAL = 9001, 9101, 9102


async def _office(chat):
    """Dhaka Fiber Net: Nadia (admin), Karim (5 %) and Jamal (collectors), four unpaid
    invoices in Dhanmondi and one in Mirpur."""
    tenant = await make_tenant(name="Dhaka Fiber Net")
    admin = await make_staff(tenant, Role.ADMIN, name="Nadia", telegram_user_id=NADIA)
    karim = await make_staff(
        tenant,
        Role.COLLECTOR,
        name="Karim",
        phone="+8801811000002",
        commission_bp=500,
        telegram_user_id=KARIM,
    )
    jamal = await make_staff(tenant, Role.COLLECTOR, name="Jamal", telegram_user_id=JAMAL)
    invoices = [
        await make_invoice(await make_subscriber(tenant, area=area, name=name), amount)
        for area, name, amount in (
            ("Dhanmondi", "Rahim Uddin", 150_000),
            ("Dhanmondi", "Salma Begum", 100_000),
            ("Dhanmondi", "Abul Kalam", 80_000),
            ("Dhanmondi", "Toma Akter", 50_000),
            ("Mirpur", "Keya Das", 70_000),
        )
    ]
    nadia = chat.tg.user(NADIA, "Nadia")
    return tenant, admin, karim, jamal, invoices, nadia


def _buttons_data(chat, user) -> list[str]:
    message = chat.tg.chat_log(user.id)[-1].message
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [button["callback_data"] for row in rows for button in row]


async def _collect(admin, collector, invoice, *, amount_minor=None, key="k1", photo_id=None):
    result = await assign_invoices(admin, collector_id=collector.id, numbers=[invoice.number])
    return await mark_collected(
        collector,
        assignment_id=result.outcomes[0].assignment_id,
        idempotency_key=key,
        amount_minor=amount_minor,
        receipt_file_id=photo_id,
        origin=Origin(channel="telegram", telegram_user_id=collector.telegram_user_id),
    )


# --- collectors ----------------------------------------------------------------------------


async def test_collectors_lists_each_collector_with_this_months_figures_and_open_stops(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await _collect(admin, karim, invoices[0])
    await assign_invoices(admin, collector_id=karim.id, numbers=[invoices[1].number])

    await chat.say(nadia, "/collectors")

    assert chat.last_text(nadia) == (
        "Collectors (2) · this month so far\n"
        f"Jamal #{jamal.id} · {jamal.phone} · 0% commission\n"
        "visits 0 · collected 0 · cash ৳0 · commission balance ৳0 · open stops 0 (৳0)\n"
        f"Karim #{karim.id} · +8801811000002 · 5% commission\n"
        "visits 1 · collected 1 · cash ৳1,500 · commission balance ৳75 · "
        "open stops 1 (৳1,000)"
    )


async def test_a_reseller_sees_only_their_own_collectors(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    reseller = await make_reseller(tenant)
    await make_staff(
        tenant,
        Role.RESELLER,
        reseller=reseller,
        permissions=[COLLECTORS_VIEW],
        telegram_user_id=9201,
    )
    rafiq = await make_staff(tenant, Role.COLLECTOR, reseller=reseller, name="Rafiq")
    clerk = chat.tg.user(9201, "Clerk")

    await chat.say(clerk, "/collectors")
    await chat.say(clerk, f"/open {karim.id}")

    listed = chat.texts(clerk)[0]
    assert f"Rafiq #{rafiq.id}" in listed
    assert "Karim" not in listed and "Jamal" not in listed
    assert chat.last_text(clerk) == (
        f"There is no collector “{karim.id}” among yours. Send /collectors to see their numbers."
    )


async def test_newcollector_replies_with_a_one_time_link_that_binds_the_new_collector(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)

    await chat.say(nadia, "/newcollector Rafiq Islam 01911000003 2.5%")

    rafiq = await Staff.get(name="Rafiq Islam")
    assert (rafiq.role, rafiq.phone, rafiq.commission_bp, rafiq.telegram_user_id) == (
        Role.COLLECTOR,
        "+8801911000003",
        250,
        None,
    )
    reply = chat.last_text(nadia)
    assert reply.startswith(
        f"✅ Rafiq Islam (#{rafiq.id}) is invited as a collector with 2.5% commission.\n"
        "Send them this link. It works once, until "
    )
    link = reply.splitlines()[-1]
    assert link.startswith("https://t.me/dhaka_fiber_bot?start=")
    newcomer = chat.tg.user(9301, "Rafiq")
    await chat.say(newcomer, f"/start {link.split('start=')[1]}")
    assert (await Staff.get(id=rafiq.id)).telegram_user_id == 9301


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/newcollector Rafiq", "Send it like this: /newcollector Karim Hossain 01811000002 5%"),
        (
            "/newcollector Rafiq 12345 5%",
            "12345 is not a phone number I can use. Write it like 01811000002 or +8801811000002.",
        ),
        (
            "/newcollector Rafiq 01911000003 lots",
            "lots is not a commission. Write a percentage from 0 to 100, like 5% or 2.5%.",
        ),
        (
            "/newcollector Rafiq 01911000003 150%",
            "150% is not a commission. Write a percentage from 0 to 100, like 5% or 2.5%.",
        ),
    ],
)
async def test_newcollector_with_bad_arguments_gets_one_sentence_and_creates_nobody(
    chat, command, expected
):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)

    await chat.say(nadia, command)

    assert chat.texts(nadia) == [expected]
    assert await Staff.filter(tenant_id=tenant.id).count() == 3


async def test_editcollector_changes_the_name_phone_and_commission(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)

    await chat.say(
        nadia, f"/editcollector {karim.id} name=Karim Hossain phone=01811000009 commission=7%"
    )

    saved = await Staff.get(id=karim.id)
    assert (saved.name, saved.phone, saved.commission_bp) == (
        "Karim Hossain",
        "+8801811000009",
        700,
    )
    assert chat.last_text(nadia) == (
        f"✅ Saved: Karim Hossain (#{karim.id}) · +8801811000009 · 7% commission."
    )


async def test_editcollector_with_an_unknown_field_or_no_field_is_refused(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)

    await chat.say(nadia, "/editcollector karim colour=blue")
    await chat.say(nadia, "/editcollector karim")
    await chat.say(nadia, "/editcollector nobody name=X")

    assert chat.texts(nadia) == [
        "I do not know “colour=”. Use name, phone, commission, cap.",
        "Send it like this: /editcollector 12 name=Karim Hossain phone=01811000002"
        " commission=5% cap=20000 (cap=none removes the cash cap)",
        "There is no collector “nobody” among yours. Send /collectors to see their numbers.",
    ]
    assert (await Staff.get(id=karim.id)).name == "Karim"


async def test_resetcollector_unbinds_the_old_account_and_gives_a_new_link(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)

    await chat.say(nadia, "/resetcollector Karim")

    assert (await Staff.get(id=karim.id)).telegram_user_id is None
    reply = chat.last_text(nadia).splitlines()
    assert reply[0] == "✅ Karim is signed out of the bot and their old links no longer work."
    new_phone = chat.tg.user(9302, "Karim")
    await chat.say(new_phone, f"/start {reply[-1].split('start=')[1]}")
    assert (await Staff.get(id=karim.id)).telegram_user_id == 9302


async def test_deletecollector_asks_first_and_removes_only_on_confirm(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await assign_invoices(admin, collector_id=karim.id, numbers=[invoices[0].number])

    await chat.say(nadia, "/deletecollector karim")
    question = chat.tg.chat_log(NADIA)[-1]
    assert question.buttons == (("Remove Karim", "Cancel"),)
    await chat.tap(nadia, "Cancel")
    assert chat.last_text(nadia) == "Cancelled. Nothing was changed."
    assert (await Staff.get(id=karim.id)).deleted_at is None

    await chat.say(nadia, "/deletecollector karim")
    await chat.tap(nadia, "Remove Karim")

    assert (await Staff.get(id=karim.id)).deleted_at is not None
    assert chat.last_text(nadia) == (
        "✅ Karim was removed. Their history stays; give their open stops to someone else "
        "with /assign."
    )
    assert chat.tg.chat_log(NADIA)[-1].buttons == ()
    assert await Assignment.filter(status=AssignmentStatus.ASSIGNED).count() == 0


# --- assigning -----------------------------------------------------------------------------


async def test_assign_by_numbers_answers_one_line_per_invoice(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await _collect(admin, jamal, invoices[1])
    await assign_invoices(admin, collector_id=jamal.id, numbers=[invoices[2].number])

    await chat.say(
        nadia,
        f"/assign karim {invoices[0].number} {invoices[1].number} {invoices[2].number} "
        "INV-0000-0000",
    )

    assert chat.last_text(nadia) == (
        f"{invoices[0].number} assigned\n"
        f"{invoices[1].number} refused: already paid\n"
        f"{invoices[2].number} refused: already on Jamal's route\n"
        "INV-0000-0000 refused: not found\n"
        "Karim now has 1 open stop (৳1,500)."
    )


async def test_assign_names_an_unknown_or_ambiguous_collector_and_assigns_nothing(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    ali = await make_staff(tenant, Role.COLLECTOR, name="Rafiq Ali", telegram_user_id=9103)
    khan = await make_staff(tenant, Role.COLLECTOR, name="Rafiq Khan", telegram_user_id=9104)

    await chat.say(nadia, f"/assign zorro {invoices[0].number}")
    await chat.say(nadia, f"/assign rafiq {invoices[0].number}")
    await chat.say(nadia, "/assign karim")

    assert chat.texts(nadia) == [
        "There is no collector “zorro” among yours. Send /collectors to see their numbers.",
        f"Several collectors are called “rafiq”: Rafiq Ali (#{ali.id}), Rafiq Khan (#{khan.id}). "
        "Use the number instead.",
        "Send it like this: /assign Karim INV-2026-0042 INV-2026-0050, or /assign Karim "
        "area=Dhanmondi status=unpaid",
    ]
    assert await Assignment.all().count() == 0


async def test_assign_by_filter_previews_then_assigns_on_confirm(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await assign_invoices(admin, collector_id=jamal.id, numbers=[invoices[3].number])

    await chat.say(nadia, "/assign Karim area=dhanmondi status=unpaid")

    preview = chat.tg.chat_log(NADIA)[-1]
    assert preview.text == (
        "Karim · dhanmondi · unpaid: 3 invoices, ৳3,300 due\n"
        "1 already on other routes are left out."
    )
    assert preview.buttons == (("Assign 3 to Karim",), ("Show list", "Cancel"))
    assert all(len(data.encode()) <= 64 for data in _buttons_data(chat, nadia))

    await chat.tap(nadia, "Show list")
    assert chat.last_text(nadia) == " · ".join(i.number for i in invoices[:3])
    await chat.tap(nadia, "Assign 3 to Karim")

    assert chat.tg.chat_log(NADIA)[-2].text == (
        "✅ 3 stops added to Karim's route for today. Karim now has 3 open stops (৳3,300)."
    )
    open_for_karim = await Assignment.filter(
        collector_id=karim.id, status=AssignmentStatus.ASSIGNED
    ).values_list("invoice__number", flat=True)
    assert sorted(open_for_karim) == sorted(i.number for i in invoices[:3])


async def test_a_double_tapped_assign_confirm_assigns_once_and_says_so(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await chat.say(nadia, "/assign karim area=Dhanmondi")
    first = chat.tg.press(nadia, "Assign 4 to Karim")
    second = chat.tg.press(nadia, "Assign 4 to Karim")

    await chat.feed(first)
    await chat.feed(second)

    assert await Assignment.filter(collector_id=karim.id).count() == 4
    answers = chat.tg.sent(method="answerCallbackQuery")
    assert answers[-1].params["text"] == (
        "This preview was already used or has expired. Send /assign again."
    )
    assert answers[-1].params["show_alert"] is True


async def test_a_forged_assign_token_is_refused_and_assigns_nothing(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await chat.say(nadia, "/assign karim area=Dhanmondi")
    preview = chat.tg.chat_log(NADIA)[-1].message_id

    await chat.feed(chat.tg.callback(nadia, "off:as:forged", preview))
    # Another admin cannot press Nadia's button either: the token lives in her data only.
    await make_staff(tenant, Role.ADMIN, name="Other", telegram_user_id=9002)
    other = chat.tg.user(9002, "Other")
    await chat.say(other, "/help")
    token = _buttons_data(chat, nadia)[0]
    await chat.feed(chat.tg.callback(other, token, chat.tg.chat_log(other.id)[-1].message_id))

    assert await Assignment.all().count() == 0
    texts = [c.params.get("text") for c in chat.tg.sent(method="answerCallbackQuery")]
    assert texts == ["This preview was already used or has expired. Send /assign again."] * 2


async def test_when_the_invoices_were_taken_meanwhile_the_confirm_says_nothing_was_added(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await chat.say(nadia, "/assign karim area=Mirpur")
    await assign_invoices(admin, collector_id=jamal.id, numbers=[invoices[4].number])

    await chat.tap(nadia, "Assign 1 to Karim")

    assert chat.last_text(nadia) == (
        "Nothing was added to Karim's route: the invoice was refused. Karim has 0 open stops "
        "(৳0).\n"
        f"{invoices[4].number} refused: already on Jamal's route"
    )


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ("colour=red", "I do not know “colour=”. Use area, status, reseller, limit."),
        (
            "status=lost",
            "“lost” is not a status I can filter on. "
            "Use status=unpaid, status=partial or status=overdue.",
        ),
        ("limit=-3", "“-3” is not a limit. Write a whole number above zero, like limit=30."),
        ("reseller=Nowhere", "There is no reseller “Nowhere” in your company."),
        (
            "area=Dhanmondi INV-1 status=",
            "Send it like this: /assign Karim INV-2026-0042 INV-2026-0050, or /assign Karim "
            "area=Dhanmondi status=unpaid",
        ),
    ],
)
async def test_bad_filters_get_one_sentence_and_no_preview(chat, filters, expected):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)

    await chat.say(nadia, f"/assign karim {filters}")

    assert chat.texts(nadia) == [expected]


async def test_an_empty_filter_says_there_is_nothing_to_assign(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)

    await chat.say(nadia, "/assign karim area=Gulshan status=partial")

    assert chat.last_text(nadia) == "Nothing to assign for Karim · Gulshan · partly paid."
    assert chat.tg.chat_log(NADIA)[-1].buttons == ()


async def test_a_reseller_without_the_assign_permission_is_refused(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    reseller = await make_reseller(tenant)
    await make_staff(
        tenant,
        Role.RESELLER,
        reseller=reseller,
        permissions=[COLLECTORS_VIEW],
        telegram_user_id=9201,
    )
    await make_staff(tenant, Role.COLLECTOR, reseller=reseller, name="Rafiq")
    clerk = chat.tg.user(9201, "Clerk")

    await chat.say(clerk, f"/assign rafiq {invoices[0].number}")
    await chat.say(clerk, "/assign rafiq area=Dhanmondi")

    assert (
        chat.texts(clerk)
        == ["You are not allowed to assign invoices to collectors. Ask an admin."] * 2
    )
    assert await Assignment.all().count() == 0


async def test_a_collector_typing_office_commands_is_refused(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    collector = chat.tg.user(KARIM, "Karim")

    for command in ("/assign karim area=Dhanmondi", "/pay karim", "/collectors", "/report"):
        await chat.say(collector, command)

    assert (
        chat.texts(collector) == ["That is not one of your commands. Send /help to see yours."] * 4
    )
    assert await Assignment.all().count() == 0


async def test_unassign_takes_an_invoice_off_its_route(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await assign_invoices(admin, collector_id=karim.id, numbers=[invoices[0].number])

    await chat.say(nadia, f"/unassign {invoices[0].number.lower()} {invoices[1].number}")
    await chat.say(nadia, "/unassign")

    assert chat.texts(nadia) == [
        f"{invoices[0].number} taken off Karim's route.\n"
        f"{invoices[1].number} is not on any route.",
        "Send it like this: /unassign INV-2026-0042",
    ]
    assert await Assignment.filter(status=AssignmentStatus.REMOVED).count() == 1


async def test_open_lists_open_stops_per_collector_with_totals(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await assign_invoices(
        admin, collector_id=karim.id, numbers=[invoices[0].number, invoices[4].number]
    )
    await assign_invoices(admin, collector_id=jamal.id, numbers=[invoices[1].number])
    today = local_today(utcnow(), tenant.timezone).strftime("%-d %b")

    await chat.say(nadia, "/open")
    everyone = chat.last_text(nadia)
    await chat.say(nadia, "/open jamal")

    assert everyone == (
        "Open stops: 3 · ৳3,200 due\n"
        "Jamal · 1 stop · ৳1,000\n"
        f"• {invoices[1].number} · Salma Begum · Dhanmondi · ৳1,000 · {today}\n"
        "Karim · 2 stops · ৳2,200\n"
        f"• {invoices[0].number} · Rahim Uddin · Dhanmondi · ৳1,500 · {today}\n"
        f"• {invoices[4].number} · Keya Das · Mirpur · ৳700 · {today}"
    )
    assert chat.last_text(nadia).splitlines()[1] == "Jamal · 1 stop · ৳1,000"
    await make_staff(tenant, Role.COLLECTOR, name="Idle", telegram_user_id=9104)
    await chat.say(nadia, "/open idle")
    assert chat.last_text(nadia) == "Idle has no open stops."


# --- report and commission -----------------------------------------------------------------


async def _a_day_of_work(admin, karim, invoices):
    """Karim collects ৳1,500 and ৳1,000 of ৳1,000 and fails one door, all today."""
    await _collect(admin, karim, invoices[0], key="a")
    await _collect(admin, karim, invoices[1], key="b")
    result = await assign_invoices(admin, collector_id=karim.id, numbers=[invoices[2].number])
    await mark_failed(karim, assignment_id=result.outcomes[0].assignment_id, reason="not_home")


async def test_report_sends_the_figures_as_text_and_as_pdf_and_xlsx_documents(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await _a_day_of_work(admin, karim, invoices)
    expected = await collector_report(admin)

    await chat.say(nadia, "/report")

    text = chat.texts(nadia)[0]
    assert "Karim\nvisits 3 · collected 2 · failed 1 · success 66.7%\n" in text
    assert "cash ৳2,500 · commission ৳125 · paid out ৳0 · balance ৳125" in text
    assert "Jamal\nvisits 0 · collected 0 · failed 0 · success –\n" in text
    assert "Total\nvisits 3 · collected 2 · failed 1" in text
    documents = chat.tg.sent(NADIA, "sendDocument")
    names = [c.files["document"].filename for c in documents]
    stem = f"collector-report-{expected.start.isoformat()}-{expected.end.isoformat()}"
    assert names == [f"{stem}.pdf", f"{stem}.xlsx"]

    pdf = PdfReader(io.BytesIO(documents[0].files["document"].data))
    pdf_text = "".join(page.extract_text() for page in pdf.pages)
    for figure in ("Dhaka Fiber Net", "Karim", "2,500.00", "125.00", "66.7%", "Jamal"):
        assert figure in pdf_text, figure

    sheet = load_workbook(io.BytesIO(documents[1].files["document"].data)).worksheets[0]
    rows = [row for row in sheet.iter_rows(values_only=True)]
    karims = next(r for r in rows if r[0] == "Karim")
    k = next(r for r in expected.rows if r.name == "Karim")
    assert karims[2:5] == (k.visits, k.collected, k.failed)
    assert karims[6:] == (
        k.cash_collected_minor / 100,
        k.commission_earned_minor / 100,
        k.paid_out_minor / 100,
        k.balance_minor / 100,
        k.cash_on_hand_minor / 100,
        k.debt_minor / 100,
    )
    assert rows[-1][0] == "Total"
    assert rows[-1][6] == expected.total("cash_collected_minor") / 100


async def test_report_for_one_collector_and_a_period(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await _a_day_of_work(admin, karim, invoices)
    today = local_today(utcnow(), tenant.timezone)
    start = today - timedelta(days=40)

    await chat.say(nadia, f"/report karim {start.isoformat()} {today.isoformat()}")

    text = chat.texts(nadia)[0]
    assert text.startswith("Collector report · ")
    assert "Karim\nvisits 3" in text and "Jamal" not in text and "Total" not in text
    assert len(chat.tg.sent(NADIA, "sendDocument")) == 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            "2026-11-24 2026-11-01",
            "The first date is after the second. Put the earlier date first, like /report "
            "2026-11-01 2026-11-24",
        ),
        (
            "2026-02-30 2026-03-01",
            "2026-02-30 is not a date. Write dates as YYYY-MM-DD, like /report 2026-11-01 "
            "2026-11-24",
        ),
        (
            "2024-01-01 2026-01-01",
            "Ask for at most a year at a time, like /report 2026-01-01 2026-12-31",
        ),
        (
            "karim 2026-11-01",
            "Send it like this: /report, /report Karim, or /report Karim 2026-11-01 2026-11-24",
        ),
        (
            "nobody",
            "There is no collector “nobody” among yours. Send /collectors to see their numbers.",
        ),
    ],
)
async def test_report_with_bad_dates_or_collector_gets_one_sentence_and_no_files(
    chat, args, expected
):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)

    await chat.say(nadia, f"/report {args}")

    assert chat.texts(nadia) == [expected]
    assert chat.tg.sent(NADIA, "sendDocument") == []


async def test_pay_confirms_then_pays_once_even_when_tapped_twice(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await _a_day_of_work(admin, karim, invoices)

    await chat.say(nadia, "/pay karim 100")
    assert chat.tg.chat_log(NADIA)[-1].text == ("Pay Karim ৳100 of the ৳125 commission balance?")
    first = chat.tg.press(nadia, "Pay ৳100")
    second = chat.tg.press(nadia, "Pay ৳100")
    await chat.feed(first)
    await chat.feed(second)

    assert chat.last_text(nadia) == "✅ Paid Karim ৳100. Balance now ৳25."
    assert await LedgerPosting.filter(kind="commission_payout").count() == 1
    assert await commission_balance(tenant.id, karim.id) == 2_500
    answers = chat.tg.sent(method="answerCallbackQuery")
    assert answers[-1].params["text"] == "This was already paid; nothing more was paid."


async def test_pay_without_an_amount_offers_the_whole_balance(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await _a_day_of_work(admin, karim, invoices)

    await chat.say(nadia, "/pay Karim")
    await chat.tap(nadia, "Pay ৳125")

    assert chat.last_text(nadia) == "✅ Paid Karim ৳125. Balance now ৳0."
    assert await commission_balance(tenant.id, karim.id) == 0


async def test_pay_above_the_balance_or_with_nothing_due_or_a_bad_amount_is_refused(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await _a_day_of_work(admin, karim, invoices)

    await chat.say(nadia, "/pay karim 500")
    await chat.say(nadia, "/pay jamal")
    await chat.say(nadia, "/pay karim 1.234")
    await chat.say(nadia, "/pay")

    assert chat.texts(nadia) == [
        "Karim has only ৳125 to pay.",
        "Jamal has no commission to pay.",
        "Use at most 2 decimals.",
        "Send it like this: /pay Karim (the whole balance) or /pay Karim 500",
    ]
    assert await LedgerPosting.filter(kind="commission_payout").count() == 0


async def test_a_forged_pay_button_for_another_companys_collector_pays_nothing(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await _a_day_of_work(admin, karim, invoices)
    elsewhere = await make_staff(await make_tenant(), Role.COLLECTOR, name="Far")
    await chat.say(nadia, "/pay karim")
    question = chat.tg.chat_log(NADIA)[-1].message_id

    await chat.feed(chat.tg.callback(nadia, f"off:pay:{elsewhere.id}:100", question))
    await chat.feed(chat.tg.callback(nadia, "off:pay:not-a-number", question))

    assert await LedgerPosting.filter(kind="commission_payout").count() == 0
    answers = chat.tg.sent(method="answerCallbackQuery")
    assert answers[-2].params["text"] == "There is no such collector in your company."
    assert answers[-2].params["show_alert"] is True
    assert chat.last_text(nadia) == "Pay Karim ৳125 of the ৳125 commission balance?"


async def test_a_reseller_pays_only_with_the_commission_permission(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    reseller = await make_reseller(tenant)
    rafiq = await make_staff(
        tenant, Role.COLLECTOR, reseller=reseller, name="Rafiq", commission_bp=1_000
    )
    sub = await make_subscriber(tenant, reseller=reseller)
    await make_staff(
        tenant,
        Role.RESELLER,
        reseller=reseller,
        permissions=[COLLECTORS_VIEW, COLLECTORS_ASSIGN],
        telegram_user_id=9201,
    )
    await make_staff(
        tenant,
        Role.RESELLER,
        reseller=reseller,
        permissions=[COLLECTORS_COMMISSION_PAY],
        telegram_user_id=9202,
    )
    await _collect(admin, rafiq, await make_invoice(sub, 100_000))
    viewer, payer = chat.tg.user(9201, "Viewer"), chat.tg.user(9202, "Payer")

    await chat.say(viewer, "/pay rafiq")
    await chat.say(payer, "/pay karim")
    await chat.say(payer, "/pay rafiq")
    await chat.tap(payer, "Pay ৳100")

    assert chat.texts(viewer) == ["You are not allowed to pay commission. Ask an admin."]
    assert chat.texts(payer)[0] == (
        "There is no collector “karim” among yours. Send /collectors to see their numbers."
    )
    assert chat.last_text(payer) == "✅ Paid Rafiq ৳100. Balance now ৳0."


# --- the invoice's story -------------------------------------------------------------------


async def test_invoice_tells_the_whole_story_and_sends_the_receipt_photo(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    invoice = invoices[0]
    photo_bytes = b"\xff\xd8\xff\xe0 receipt photo bytes"
    photo_dir = Path(chat.settings.data_dir) / "photos"
    photo_dir.mkdir(parents=True)
    (photo_dir / "r1.jpg").write_bytes(photo_bytes)
    photo = await StoredFile.create(
        tenant=tenant,
        sha256="cd" * 32,
        path="photos/r1.jpg",
        content_type="image/jpeg",
        size_bytes=len(photo_bytes),
    )
    by_nadia = Origin(channel="telegram", telegram_user_id=NADIA)
    first = await assign_invoices(
        admin, collector_id=karim.id, numbers=[invoice.number], origin=by_nadia
    )
    failed = await mark_failed(
        karim,
        assignment_id=first.outcomes[0].assignment_id,
        reason=FailureReason.OTHER,
        note="gate locked, dog",
        origin=Origin(channel="telegram", telegram_user_id=KARIM),
    )
    await mark_collected(
        karim,
        assignment_id=failed.next_assignment_id,
        idempotency_key="tg:42",
        receipt_file_id=photo.id,
        origin=Origin(channel="telegram", telegram_user_id=KARIM),
    )
    tz = (await Tenant.get(id=tenant.id)).timezone
    today = local_today(utcnow(), tz).strftime("%-d %b")
    invoice_phone = (await Subscriber.get(id=invoice.subscriber_id)).phone

    await chat.say(nadia, f"/invoice {invoice.number}")

    log = chat.tg.chat_log(NADIA)
    story = log[-2].text.splitlines()
    assert story[0].startswith(f"{invoice.number} · Rahim Uddin · renewal ৳1,500 · paid {today}")
    assert story[2] == "Rahim Uddin owes nothing on any invoice."
    assert story[3] == "Payments"
    assert story[4].startswith("• R-") and f" · ৳1,500 cash · {today} " in story[4]
    assert story[4].endswith("· collected by Karim (+8801811000002) · 📷 receipt photo below")
    assert story[5:8] == [
        "Visits",
        f"• {today} · Karim · other: gate locked, dog",
        f"• {today} · Karim · collected ৳1,500",
    ]
    assert story[8] == "Messages"
    assert story[9] == f"• WhatsApp receipt to {invoice_phone}: waiting to be sent"
    assert story[10] == "Audit"
    assert story[11].endswith(f"· assigned to Karim by Nadia (Telegram {NADIA})")
    assert story[12].endswith(f"· marked failed by Karim (Telegram {KARIM})")
    assert story[13].endswith(f"· collected by Karim (Telegram {KARIM})")
    assert log[-1].photo is True
    assert log[-1].text.startswith(f"Receipt photo · {invoice.number} · ৳1,500 · {today}")
    upload = chat.tg.sent(NADIA, "sendPhoto")[0]
    assert upload.files["photo"].data == photo_bytes


async def test_a_receipt_photo_known_to_telegram_is_sent_by_its_file_id(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    chat.tg.add_file("AgACknown", b"\xff\xd8 known photo")
    photo = await StoredFile.create(
        tenant=tenant,
        sha256="ef" * 32,
        path="photos/gone.jpg",
        content_type="image/jpeg",
        size_bytes=10,
        telegram_file_id="AgACknown",
    )
    await _collect(admin, karim, invoices[0], photo_id=photo.id)

    await chat.say(nadia, f"/invoice {invoices[0].number}")

    call = chat.tg.sent(NADIA, "sendPhoto")[0]
    assert (call.params["photo"], call.files) == ("AgACknown", {})


async def test_a_receipt_photo_missing_from_disk_is_said_not_crashed(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    photo = await StoredFile.create(
        tenant=tenant,
        sha256="aa" * 32,
        path="photos/missing.jpg",
        content_type="image/jpeg",
        size_bytes=10,
    )
    await _collect(admin, karim, invoices[0], photo_id=photo.id)

    await chat.say(nadia, f"/invoice {invoices[0].number}")

    assert chat.last_text(nadia) == (
        "The receipt photo of the ৳1,500 payment is no longer in the file store."
    )
    assert chat.tg.sent(NADIA, "sendPhoto") == []


async def test_invoice_of_another_company_or_a_bad_number_is_not_found(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    foreign = await make_invoice(await make_subscriber(await make_tenant()))

    await chat.say(nadia, f"/invoice {foreign.number}")
    await chat.say(nadia, "/invoice")

    assert chat.texts(nadia) == [
        f"There is no invoice {foreign.number} in your company.",
        "Send it like this: /invoice INV-2026-0042",
    ]


async def test_a_long_story_is_split_between_lines_into_messages_telegram_accepts(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    invoice = invoices[0]
    for n in range(45):
        result = await assign_invoices(admin, collector_id=karim.id, numbers=[invoice.number])
        await mark_failed(
            karim,
            assignment_id=result.outcomes[0].assignment_id,
            reason=FailureReason.OTHER,
            note=f"visit {n}: " + "<gate> & dog " * 30,
        )
        await Assignment.filter(invoice_id=invoice.id, status=AssignmentStatus.ASSIGNED).update(
            status=AssignmentStatus.REMOVED, open_invoice_id=None
        )

    await chat.say(nadia, f"/invoice {invoice.number}")

    messages = chat.tg.sent(NADIA, "sendMessage")
    assert len(messages) >= 2
    assert all(call.ok for call in chat.tg.calls if call.method == "sendMessage")
    lines = "\n".join(chat.texts(nadia)).splitlines()
    assert sum(1 for line in lines if "<gate> & dog" in line) == 45


# --- language and plumbing -----------------------------------------------------------------


async def test_an_admin_reading_bengali_gets_the_office_in_bengali(chat):
    tenant, admin, karim, jamal, invoices, nadia = await _office(chat)
    await Staff.filter(id=admin.id).update(language="bn")

    await chat.say(nadia, "/collectors")
    await chat.say(nadia, "/pay karim 5")
    await chat.say(nadia, "/invoice INV-0000-0000")

    replies = chat.texts(nadia)
    assert replies[0].startswith("কালেক্টর (2) · এই মাসে এখন পর্যন্ত")
    assert replies[1] == "Karim-এর পরিশোধ করার মতো কোনো কমিশন নেই।"
    assert replies[2] == "আপনার কোম্পানিতে INV-0000-0000 নামে কোনো ইনভয়েস নেই।"


def test_a_long_text_is_cut_only_between_lines_and_never_inside_a_tag():
    lines = [f"<b>line {n}</b> " + "x" * 90 for n in range(100)]

    chunks = split_message("\n".join(lines), limit=1000)

    assert all(len(chunk) <= 1000 for chunk in chunks)
    assert "\n".join(chunks).splitlines() == lines
    assert all(chunk.count("<b>") == chunk.count("</b>") for chunk in chunks)


def test_a_single_overlong_line_is_sent_as_escaped_plain_text_pieces():
    line = "<b>" + "a &amp; b " * 50 + "</b>"

    chunks = split_message(line, limit=100)

    assert all(len(chunk) <= 100 and "<b>" not in chunk for chunk in chunks)
    assert "".join(chunks).replace("&amp;", "&") == "a & b " * 50


def test_the_longest_pay_button_the_handler_accepts_fits_telegrams_64_bytes():
    assert len(f"off:pay:{10**12 - 1}:{10**15 - 1}".encode()) <= 64
