"""Imports from the chat: an admin sends a CSV file, sees the check, and confirms.

The real Application over the fake Bot API against the real database (SQLite or
PostgreSQL); the file goes through Telegram's getFile like any upload, and the import
through `core.services.importing`, the same rules as `collectbot import`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools

from telegram import Update

from bot.app import build_application
from bot.handlers.imports import error_report
from core.db.models import AuditLog, Invoice, LedgerPosting, Subscriber
from core.domain.status import InvoiceStatus, Role
from core.services.access import COLLECTORS_VIEW
from tests.factories import make_reseller, make_staff, make_subscriber, make_tenant

NADIA, KARIM, CLERK = 9001, 9101, 9201
SUBSCRIBERS = (
    b"username,name,phone,area\n"
    b"rahim,Rahim Uddin,01711000001,Dhanmondi\n"
    b"salma,Salma Begum,01711000002,Dhanmondi\n"
    b"keya,Keya Das,,Mirpur\n"
)
_file_ids = itertools.count(1)


async def _office(chat, language="en"):
    """Dhaka Fiber Net with Nadia, its admin, in her chat with the bot."""
    tenant = await make_tenant(name="Dhaka Fiber Net")
    admin = await make_staff(
        tenant, Role.ADMIN, name="Nadia", telegram_user_id=NADIA, language=language
    )
    return tenant, admin, chat.tg.user(NADIA, "Nadia")


async def _upload(chat, user, name, data, mime="text/csv", *, caption=None, file_size=None):
    """`user` sends `data` as a document called `name`; Telegram holds the bytes."""
    file_id = f"BQACAgIAAx-{next(_file_ids)}"
    chat.tg.add_file(file_id, data, f"documents/file_{file_id}.csv")
    await chat.feed(chat.tg.document(user, file_id, name, mime, file_size, caption=caption))


def _button_data(chat, user) -> list[str]:
    message = chat.tg.chat_log(user.id)[-1].message
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [button["callback_data"] for row in rows for button in row]


def _waiting_files(chat) -> list[str]:
    folder = chat.settings.data_dir / "imports"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _answers(chat) -> int:
    return len(chat.tg.sent(method="answerCallbackQuery"))


def _bad_phones(count: int) -> bytes:
    lines = ["username,name,phone"]
    lines += [f"user{n},Person {n},12345" for n in range(count)]
    return ("\n".join(lines) + "\n").encode()


# --- a file with errors --------------------------------------------------------------------


async def test_a_subscribers_file_with_errors_lists_each_one_and_imports_nothing(chat):
    tenant, admin, nadia = await _office(chat)
    await make_subscriber(tenant, username="salma")
    data = (
        b"username,name,phone,expiry_date\n"
        b"rahim,Rahim Uddin,01711000001,2026-13-01\n"
        b"salma,Salma Begum,12345,\n"
    )

    await _upload(chat, nadia, "subs.csv", data)

    assert chat.texts(nadia) == [
        "❌ Nothing was imported from subs.csv: 3 problems in 2 rows. "
        "Fix them and send the file again.\n"
        "row 2 · expiry_date: '2026-13-01' is not a date; write it as YYYY-MM-DD, "
        "e.g. 2026-11-30.\n"
        "row 3 · username: A subscriber with username 'salma' already exists.\n"
        "row 3 · phone: '12345' is not a valid phone number for BD."
    ]
    assert _button_data(chat, nadia) == []
    assert chat.tg.sent(method="sendDocument") == []
    assert await Subscriber.all().count() == 1
    assert _waiting_files(chat) == []


async def test_many_errors_are_cut_short_in_the_chat_and_all_sent_as_a_csv_report(chat):
    tenant, admin, nadia = await _office(chat)

    await _upload(chat, nadia, "subs.csv", _bad_phones(20), caption="subscribers")

    text = chat.texts(nadia)[0]
    lines = text.splitlines()
    assert lines[0] == (
        "❌ Nothing was imported from subs.csv: 20 problems in 20 rows. "
        "Fix them and send the file again."
    )
    assert lines[1:16] == [
        f"row {row} · phone: '12345' is not a valid phone number for BD." for row in range(2, 17)
    ]
    assert lines[16:] == ["… and 5 more: every problem is in the file below."]
    [sent] = chat.tg.sent(chat_id=NADIA, method="sendDocument")
    [report] = sent.files.values()
    assert report.filename == "import-errors-subs.csv"
    assert list(csv.reader(io.StringIO(report.data.decode("utf-8-sig")))) == [
        ["row", "field", "message"],
        *(
            [str(row), "phone", "'12345' is not a valid phone number for BD."]
            for row in range(2, 22)
        ),
    ]
    assert chat.tg.chat_log(NADIA)[-1].text == "All 20 problems in subs.csv"
    assert await Subscriber.all().count() == 0


def test_a_report_cell_a_spreadsheet_would_run_as_a_formula_is_made_inert():
    report = error_report([(1, "=HYPERLINK(x)", "'=HYPERLINK(x)' is not a column"), (2, "", "-")])

    assert list(csv.reader(io.StringIO(report.decode("utf-8-sig")))) == [
        ["row", "field", "message"],
        ["1", "'=HYPERLINK(x)", "'=HYPERLINK(x)' is not a column"],
        ["2", "", "'-"],
    ]


async def test_a_header_that_does_not_say_the_kind_asks_for_a_caption(chat):
    tenant, admin, nadia = await _office(chat)
    data = b"user,fullname,mobile\nrahim,Rahim Uddin,01711000001\n"

    await _upload(chat, nadia, "people.csv", data)
    assert chat.last_text(nadia) == (
        "I cannot tell what people.csv holds. "
        "Send it again with the caption “subscribers” or “invoices”."
    )

    await _upload(chat, nadia, "people.csv", data, caption="Subscribers")
    assert chat.last_text(nadia).splitlines()[:2] == [
        "❌ Nothing was imported from people.csv: 6 problems in 1 row. "
        "Fix them and send the file again.",
        "row 1 · user: 'user' is not a column of a subscribers file; did you mean 'username'? "
        "the columns are username, name, phone, address, area, street, latitude, longitude, "
        "expiry_date, billing_mode, plan, customer_class, reseller.",
    ]
    assert await Subscriber.all().count() == 0


# --- a clean file, confirmed ---------------------------------------------------------------


async def test_a_clean_subscribers_file_is_imported_when_the_admin_confirms(chat):
    tenant, admin, nadia = await _office(chat)

    await _upload(chat, nadia, "subs.csv", SUBSCRIBERS)

    assert chat.tg.chat_log(NADIA)[-1].text == (
        "3 subscribers ready to import from subs.csv. Nothing is written until you press Import."
    )
    assert chat.tg.chat_log(NADIA)[-1].buttons == (("Import 3 subscribers", "Cancel"),)
    assert len(_button_data(chat, nadia)[0].encode()) <= 64
    sha256 = hashlib.sha256(SUBSCRIBERS).hexdigest()
    assert _waiting_files(chat) == [f"{NADIA}-{sha256}.csv"]
    assert await Subscriber.all().count() == 0  # the check wrote nothing

    await chat.tap(nadia, "Import 3 subscribers")

    assert chat.tg.chat_log(NADIA)[-1].text == "✅ 3 subscribers imported from subs.csv."
    assert chat.tg.chat_log(NADIA)[-1].buttons == ()
    assert _answers(chat) == 1
    imported = await Subscriber.filter(tenant=tenant).order_by("username")
    assert [(s.username, s.name, s.phone, s.area) for s in imported] == [
        ("keya", "Keya Das", None, "Mirpur"),
        ("rahim", "Rahim Uddin", "+8801711000001", "Dhanmondi"),
        ("salma", "Salma Begum", "+8801711000002", "Dhanmondi"),
    ]
    audit = await AuditLog.get(action="import.subscribers")
    assert (audit.actor_staff_id, audit.telegram_user_id, audit.telegram_chat_id) == (
        admin.id,
        NADIA,
        NADIA,
    )
    assert audit.details == {"rows": 3, "sha256": sha256}
    assert _waiting_files(chat) == []


async def test_an_invoices_file_is_recognised_by_its_header(chat):
    tenant, admin, nadia = await _office(chat)
    rahim = await make_subscriber(tenant, username="rahim")
    salma = await make_subscriber(tenant, username="salma")
    data = (
        "\ufeffnumber,username,amount,due_date\n"
        "INV-2026-0100,rahim,1500,2026-12-10\n"
        "INV-2026-0101,salma,1000.50,2026-12-10\n"
    ).encode()

    # text/plain: what some phones say about a .csv file
    await _upload(chat, nadia, "November.CSV", data, "text/plain")

    assert chat.last_text(nadia) == (
        "2 invoices ready to import from November.CSV. Nothing is written until you press Import."
    )
    await chat.tap(nadia, "Import 2 invoices")

    assert chat.last_text(nadia) == "✅ 2 invoices imported from November.CSV."
    invoices = await Invoice.filter(tenant_id=tenant.id).order_by("number")
    assert [(i.number, i.subscriber_id, i.amount_minor, i.status) for i in invoices] == [
        ("INV-2026-0100", rahim.id, 150_000, InvoiceStatus.UNPAID),
        ("INV-2026-0101", salma.id, 100_050, InvoiceStatus.UNPAID),
    ]
    assert await LedgerPosting.filter(kind="invoice_issued").count() == 2
    assert (await AuditLog.get(action="import.invoices")).telegram_user_id == NADIA


async def test_a_bengali_caption_names_the_kind_and_the_bengali_admin_reads_bengali(chat):
    tenant, admin, nadia = await _office(chat, language="bn")

    await _upload(chat, nadia, "গ্রাহক.csv", SUBSCRIBERS, caption="নতুন গ্রাহক")

    assert chat.last_text(nadia) == (
        "গ্রাহক.csv থেকে 3 জন গ্রাহক ইমপোর্টের জন্য তৈরি। “ইমপোর্ট করুন” চাপার আগে কিছুই লেখা হবে না।"
    )
    await chat.tap(nadia, "3 জন গ্রাহক ইমপোর্ট করুন")
    assert chat.last_text(nadia) == "✅ গ্রাহক.csv থেকে 3 জন গ্রাহক ইমপোর্ট হয়েছে।"
    assert await Subscriber.all().count() == 3


async def test_a_second_press_of_import_imports_nothing(chat):
    tenant, admin, nadia = await _office(chat)
    await _upload(chat, nadia, "subs.csv", SUBSCRIBERS)
    preview = chat.tg.chat_log(NADIA)[-1]
    go = _button_data(chat, nadia)[0]

    await chat.feed(chat.tg.callback(nadia, go, preview.message_id))
    await chat.feed(chat.tg.callback(nadia, go, preview.message_id))

    [first, second] = chat.tg.sent(method="answerCallbackQuery")
    assert first.params.get("text") is None
    assert second.params["text"] == (
        "This import was already done, cancelled or has expired. Send the file again to import it."
    )
    assert chat.last_text(nadia) == "✅ 3 subscribers imported from subs.csv."
    assert await Subscriber.all().count() == 3
    assert await AuditLog.filter(action="import.subscribers").count() == 1


async def test_cancel_forgets_the_file_and_imports_nothing(chat):
    tenant, admin, nadia = await _office(chat)
    await _upload(chat, nadia, "subs.csv", SUBSCRIBERS)
    preview = chat.tg.chat_log(NADIA)[-1]
    go = _button_data(chat, nadia)[0]

    await chat.tap(nadia, "Cancel")

    assert chat.last_text(nadia) == "Cancelled. Nothing was changed."
    assert _waiting_files(chat) == []
    await chat.feed(chat.tg.callback(nadia, go, preview.message_id))  # a stale Import
    assert _answers(chat) == 2
    assert chat.tg.sent(method="answerCallbackQuery")[-1].params["show_alert"] is True
    assert await Subscriber.all().count() == 0
    assert await AuditLog.filter(action="import.subscribers").count() == 0


async def test_the_confirm_press_is_served_by_another_process_after_a_restart(chat):
    tenant, admin, nadia = await _office(chat)
    await _upload(chat, nadia, "subs.csv", SUBSCRIBERS)
    press = chat.tg.press(nadia, "Import 3 subscribers")
    await chat.app.shutdown()  # the process that showed the preview is gone

    other = build_application(chat.settings)
    await other.initialize()
    try:
        await other.process_update(Update.de_json(press, other.bot))
    finally:
        await other.shutdown()
        await chat.app.initialize()  # for the fixture's own shutdown

    assert chat.last_text(nadia) == "✅ 3 subscribers imported from subs.csv."
    assert await Subscriber.all().count() == 3


async def test_a_row_made_invalid_after_the_check_is_reported_and_nothing_is_written(chat):
    tenant, admin, nadia = await _office(chat)
    await _upload(chat, nadia, "subs.csv", SUBSCRIBERS)
    await make_subscriber(tenant, username="salma")  # someone else was quicker

    await chat.tap(nadia, "Import 3 subscribers")

    preview, errors = chat.tg.chat_log(NADIA)[-2:]
    assert preview.text == (
        "❌ Nothing was imported from subs.csv (the data changed since the check): "
        "1 problem in 1 row. Fix it and send the file again."
    )
    assert preview.buttons == ()
    assert errors.text == "row 3 · username: A subscriber with username 'salma' already exists."
    assert _answers(chat) == 1
    assert await Subscriber.all().count() == 1
    assert await AuditLog.filter(action="import.subscribers").count() == 0
    assert _waiting_files(chat) == []


# --- files that are not importable ---------------------------------------------------------


async def test_a_file_that_is_not_utf8_is_refused_with_one_sentence(chat):
    tenant, admin, nadia = await _office(chat)
    data = "username,name,phone\nrene,René Café,01711000001\n".encode("cp1252")

    await _upload(chat, nadia, "subs.csv", data, caption="subscribers")
    await _upload(chat, nadia, "subs.csv", data)  # no caption: the same sentence

    assert (
        chat.texts(nadia)
        == [
            "❌ subs.csv: The file is not UTF-8 text (line 2 has a character it cannot be read "
            "as). In your spreadsheet choose Save As > 'CSV UTF-8' and import that file."
        ]
        * 2
    )
    assert await Subscriber.all().count() == 0
    assert _waiting_files(chat) == []


async def test_an_empty_file_is_refused_with_one_sentence(chat):
    tenant, admin, nadia = await _office(chat)

    await _upload(chat, nadia, "subs.csv", b"\n\n")

    assert chat.texts(nadia) == [
        "❌ subs.csv: The file is empty: export the subscribers or invoices as a CSV file "
        "whose first row names the columns."
    ]


async def test_a_workbook_or_a_pdf_is_refused_with_how_to_save_it_as_csv(chat):
    tenant, admin, nadia = await _office(chat)
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    await _upload(chat, nadia, "subs.xlsx", b"PK\x03\x04 workbook", xlsx)
    await _upload(chat, nadia, "list.pdf", b"%PDF-1.4", "application/pdf")
    assert chat.texts(nadia) == [
        f"{name} is not a CSV file. In your spreadsheet choose Save As › “CSV UTF-8” "
        "and send me that file."
        for name in ("subs.xlsx", "list.pdf")
    ]
    assert chat.tg.sent(method="getFile") == []  # refused on what it is called

    # Renamed to .csv, it is still a workbook: the bytes say so.
    await _upload(chat, nadia, "subs.csv", b"PK\x03\x04 workbook", xlsx)
    assert chat.last_text(nadia) == (
        "❌ subs.csv: This is an Excel workbook, not a CSV file. "
        "In your spreadsheet choose Save As > 'CSV UTF-8' and import that file."
    )


async def test_a_file_telegram_says_is_over_five_megabytes_is_refused_without_downloading(chat):
    tenant, admin, nadia = await _office(chat)

    await _upload(chat, nadia, "subs.csv", SUBSCRIBERS, file_size=6 * 1024 * 1024)

    assert chat.texts(nadia) == [
        "subs.csv is 6.0 MB; an import takes at most 5 MB. "
        "Split it into smaller files and send them one by one."
    ]
    assert chat.tg.sent(method="getFile") == []


# --- who may import ------------------------------------------------------------------------


async def test_reseller_staff_and_collectors_are_told_it_is_not_their_command(chat):
    tenant, admin, nadia = await _office(chat)
    reseller = await make_reseller(tenant)
    await make_staff(
        tenant,
        Role.RESELLER,
        reseller=reseller,
        permissions=[COLLECTORS_VIEW],
        telegram_user_id=CLERK,
    )
    await make_staff(tenant, Role.COLLECTOR, name="Karim", telegram_user_id=KARIM)
    clerk, karim = chat.tg.user(CLERK, "Clerk"), chat.tg.user(KARIM, "Karim")

    for user in (clerk, karim):
        await _upload(chat, user, "subs.csv", SUBSCRIBERS, caption="subscribers")

    refusal = "That is not one of your commands. Send /help to see yours."
    assert (chat.texts(clerk), chat.texts(karim)) == ([refusal], [refusal])
    assert chat.tg.sent(method="getFile") == []
    assert await Subscriber.all().count() == 0


async def test_a_collectors_file_that_is_not_a_csv_still_goes_to_the_receipt_step(chat):
    tenant, admin, nadia = await _office(chat)
    await make_staff(tenant, Role.COLLECTOR, name="Karim", telegram_user_id=KARIM)
    karim = chat.tg.user(KARIM, "Karim")

    await _upload(chat, karim, "receipt.pdf", b"%PDF-1.4", "application/pdf")

    assert chat.texts(karim) == [
        "To attach a receipt photo, press Collected on a stop and send the photo at the last step."
    ]


async def test_a_stranger_sending_a_file_gets_the_one_sentence(chat):
    stranger = chat.tg.user(666, "Mallory")

    await _upload(chat, stranger, "subs.csv", SUBSCRIBERS)

    assert chat.texts(stranger) == [
        "This bot is for the staff of an internet provider. "
        "Ask your office for an invitation link."
    ]
    assert chat.tg.sent(method="getFile") == []
