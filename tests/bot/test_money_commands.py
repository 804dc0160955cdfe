"""The office's money in the chat: the payments log with pages, search and exports, a
payment recorded by hand, a reversal, a cash handover with a shortage deducted from the
next payout, the daily reconciliation, and a collector at their cash cap.

The real Application over the fake Bot API, against the real database.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

from openpyxl import load_workbook

from core.db.models import (
    CashHandover,
    Invoice,
    LedgerPosting,
    Payment,
    PaymentReversal,
    StoredFile,
    Subscriber,
)
from core.documents.receipt import receipt_number
from core.domain.dates import local_today, utcnow
from core.domain.status import InvoiceStatus, PaymentMethod, Role
from core.services.assignments import assign_invoices
from core.services.cash import cash_on_hand, collector_debt
from core.services.collection import mark_collected
from core.services.commission import commission_balance
from core.services.payments import record_payment
from tests.factories import make_invoice, make_staff, make_subscriber, make_tenant

NADIA, KARIM = 9001, 9101


async def _office(chat, payments=0):
    """Dhaka Fiber Net: Nadia (admin), Karim (collector, 5 %), and `payments` earlier
    payments recorded at the office, one an hour back from now (bKash for odd ones)."""
    tenant = await make_tenant(name="Dhaka Fiber Net")
    admin = await make_staff(tenant, Role.ADMIN, name="Nadia", telegram_user_id=NADIA)
    karim = await make_staff(
        tenant, Role.COLLECTOR, name="Karim", telegram_user_id=KARIM, commission_bp=500
    )
    now = utcnow()
    for n in range(payments):
        sub = await make_subscriber(
            tenant, username=f"user{n:02d}", name=("Salma" if n == 3 else "Rahim") + f" {n:02d}"
        )
        await make_invoice(sub, 100_000, number=f"INV-2026-{n:04d}")
        await record_payment(
            admin,
            target=sub.username,
            amount_minor=100_000,
            method=PaymentMethod.BKASH if n % 2 else PaymentMethod.CASH,
            reference=f"TRX{n:04d}" if n % 2 else "",
            idempotency_key=f"seed{n}",
            now=now - timedelta(hours=n, minutes=1),
        )
    return tenant, admin, karim, chat.tg.user(NADIA, "Nadia"), chat.tg.user(KARIM, "Karim")


async def _karim_collects(tenant, admin, karim, amounts, key="door"):
    invoices = [
        await make_invoice(await make_subscriber(tenant, name=f"Door {n}"), amount)
        for n, amount in enumerate(amounts)
    ]
    assigned = await assign_invoices(
        admin, collector_id=karim.id, numbers=[i.number for i in invoices]
    )
    return [
        await mark_collected(karim, assignment_id=o.assignment_id, idempotency_key=f"{key}{n}")
        for n, o in enumerate(assigned.outcomes)
    ]


# --- the payments log ----------------------------------------------------------------------


async def test_the_log_pages_newest_first_with_older_and_newer_buttons(chat):
    await _office(chat, payments=12)
    nadia = chat.tg.user(NADIA, "Nadia")

    await chat.say(nadia, "/payments")

    first = chat.tg.chat_log(NADIA)[-1]
    lines = first.text.split("\n")
    assert lines[1] == "12 payments · ৳12,000"
    assert [line.split(" · ")[2] for line in lines[2:]] == [
        f"{'Salma' if n == 3 else 'Rahim'} {n:02d} (user{n:02d})" for n in range(10)
    ]
    assert first.buttons == (("Older »",), ("⬇️ CSV", "⬇️ Excel"))

    await chat.tap(nadia, "Older »")
    older = chat.tg.chat_log(NADIA)[-1].text.split("\n")
    assert [line.split(" · ")[2] for line in older[1:]] == [
        "Rahim 10 (user10)",
        "Rahim 11 (user11)",
    ]
    assert chat.tg.chat_log(NADIA)[-1].buttons == (("« Newer",), ("⬇️ CSV", "⬇️ Excel"))

    await chat.tap(nadia, "« Newer")
    again = chat.tg.chat_log(NADIA)[-1].text.split("\n")
    assert again[1].split(" · ")[2] == "Rahim 00 (user00)"


async def test_the_log_filters_by_method_and_searches_names_and_references(chat):
    await _office(chat, payments=6)
    nadia = chat.tg.user(NADIA, "Nadia")

    await chat.say(nadia, "/payments method=bkash")
    await chat.say(nadia, "/payments salma")
    await chat.say(nadia, "/payments search=trx0005 operator=nadia")

    bkash, salma, reference = chat.texts(nadia)
    assert bkash.split("\n")[1] == "3 payments · ৳3,000"
    assert " · bKash" in bkash.split("\n")[0]
    assert "Salma 03 (user03)" in salma and salma.split("\n")[1] == "1 payment · ৳1,000"
    assert "ref TRX0005" in reference and reference.split("\n")[1] == "1 payment · ৳1,000"


async def test_bad_log_filters_get_one_sentence(chat):
    await _office(chat, payments=1)
    nadia = chat.tg.user(NADIA, "Nadia")

    await chat.say(nadia, "/payments colour=red")
    await chat.say(nadia, "/payments from=2026-11-22 to=2026-11-01")
    await chat.say(nadia, "/payments from=22/11/2026")
    await chat.say(nadia, "/payments method=cheque")
    await chat.say(nadia, "/payments operator=Nobody")

    assert chat.texts(nadia) == [
        "I do not know the filter “colour”. Use from, to, operator, method, search,"
        " like /payments from=2026-11-01 method=bkash",
        "The period starts after it ends. Put the earlier date in from=,"
        " like /payments from=2026-11-01 to=2026-11-22",
        "22/11/2026 is not a date. Write dates as YYYY-MM-DD, like from=2026-11-01",
        "“cheque” is not a payment method. Use cash, bkash, nagad, sslcommerz,"
        " recharge_card, card, bank or other.",
        "Nobody called “Nobody” takes payments here.",
    ]


async def test_both_exports_hold_the_filtered_payments_as_the_database_has_them(chat):
    await _office(chat, payments=7)
    nadia = chat.tg.user(NADIA, "Nadia")
    await chat.say(nadia, "/payments method=cash")

    await chat.tap(nadia, "⬇️ CSV")
    await chat.tap(nadia, "⬇️ Excel")

    csv_call, xlsx_call = chat.tg.sent(NADIA, "sendDocument")
    assert csv_call.files["document"].filename.endswith(".csv")
    assert csv_call.params["caption"] == "Payments · 4 rows"
    rows = list(csv.DictReader(io.StringIO(csv_call.files["document"].data.decode("utf-8-sig"))))
    payments = (
        await Payment.filter(method="cash").order_by("-received_at").prefetch_related("subscriber")
    )
    assert [(r["receipt"], r["username"], Decimal(r["amount"]), r["method"]) for r in rows] == [
        (receipt_number(p.id), p.subscriber.username, Decimal(p.amount_minor) / 100, "cash")
        for p in payments
    ]
    book = load_workbook(io.BytesIO(xlsx_call.files["document"].data), read_only=True)
    cells = list(book.active.iter_rows(values_only=True))
    book.close()
    assert [c[0] for c in cells[1:]] == [r["receipt"] for r in rows]
    assert [c[4] for c in cells[1:]] == [r["username"] for r in rows]
    # The files were sent, then removed from the data folder.
    assert list((chat.settings.data_dir / "exports").iterdir()) == []
    toasts = [c.params.get("text") for c in chat.tg.sent(method="answerCallbackQuery")]
    assert toasts[-2:] == ["Preparing the CSV file…", "Preparing the XLSX file…"]


async def test_a_forged_or_expired_log_button_changes_nothing(chat):
    await _office(chat, payments=1)
    nadia = chat.tg.user(NADIA, "Nadia")
    await chat.say(nadia, "/payments")
    message = chat.tg.chat_log(NADIA)[-1].message

    await chat.feed(chat.tg.callback(nadia, "pl:x:forged:csv", message))

    answers = chat.tg.sent(method="answerCallbackQuery")
    assert answers[-1].params["text"] == "This list has expired. Send /payments again."
    assert chat.tg.sent(NADIA, "sendDocument") == []


# --- recording and reversing ---------------------------------------------------------------


async def test_a_payment_recorded_in_the_chat_settles_the_oldest_invoice_first(chat):
    tenant, _, _, nadia, _ = await _office(chat)
    rahim = await make_subscriber(tenant, username="rahim01", name="Rahim Uddin", phone=None)
    today = local_today(utcnow(), tenant.timezone)
    await make_invoice(rahim, 150_000, number="INV-A", due_date=today - timedelta(days=5))
    await make_invoice(rahim, 150_000, number="INV-B", due_date=today + timedelta(days=5))

    await chat.say(nadia, "/recordpayment rahim01 2000 bkash ref=8N7A6D5 note=sent by his son")
    assert chat.tg.chat_log(NADIA)[-1].text == (
        "Record ৳2,000 bKash from Rahim Uddin (rahim01), ref 8N7A6D5?\n"
        "• INV-A: ৳1,500 (paid in full)\n"
        "• INV-B: ৳500 of ৳1,500\n"
        "Rahim Uddin owes ৳3,000 in all."
    )
    await chat.tap(nadia, "✅ Record ৳2,000")

    first, second = await Payment.filter(subscriber_id=rahim.id).order_by("id")
    assert chat.last_text(nadia) == (
        "✅ ৳2,000 bKash recorded for Rahim Uddin.\n"
        f"• {receipt_number(first.id)} · INV-A: ৳1,500 · paid\n"
        f"• {receipt_number(second.id)} · INV-B: ৳500 · ৳1,000 still due\n"
        f"Service runs to {(await Subscriber.get(id=rahim.id)).expiry_date:%-d %b %Y}."
    )
    assert (first.reference, first.note) == ("8N7A6D5", "sent by his son")
    assert (await Invoice.get(number="INV-B")).status == InvoiceStatus.PARTIAL


async def test_a_payment_above_what_is_owed_is_refused_and_nothing_is_recorded(chat):
    tenant, _, _, nadia, _ = await _office(chat)
    rahim = await make_subscriber(tenant, username="rahim01")
    await make_invoice(rahim, 150_000, number="INV-A")

    await chat.say(nadia, "/recordpayment rahim01 1600")
    await chat.say(nadia, "/recordpayment rahim01 lots")
    await chat.say(nadia, "/recordpayment rahim01")

    assert chat.texts(nadia) == [
        "At most ৳1,500 is owed by rahim01.",
        "Type the amount as a number, like 1500 or 1500.50.",
        "Send it like this: /recordpayment rahim01 1500 bkash ref=8N7A6D5 note=paid by son"
        " (the method is cash if you leave it out)",
    ]
    assert await Payment.all().count() == 0


async def test_reversing_a_payment_reopens_its_invoice_and_takes_the_commission_back(chat):
    tenant, admin, karim, nadia, _ = await _office(chat)
    (collected,) = await _karim_collects(tenant, admin, karim, [150_000])
    receipt = receipt_number(collected.payment_id)

    await chat.say(nadia, f"/reverse {receipt} wrong house, the money went back")
    assert chat.tg.chat_log(NADIA)[-1].buttons == (("↩️ Reverse payment", "Cancel"),)
    await chat.tap(nadia, "↩️ Reverse payment")

    assert chat.last_text(nadia) == (
        f"↩️ {receipt} reversed: ৳1,500 comes out of the collector's cash (not handed in yet).\n"
        f"{collected.invoice_number} is unpaid again: ৳1,500 due.\n"
        "Commission taken back from Karim: ৳75.\n"
        "The subscriber's expiry was not changed."
    )
    assert (await Invoice.get(number=collected.invoice_number)).status == InvoiceStatus.UNPAID
    assert await commission_balance(tenant.id, karim.id) == 0
    await chat.say(nadia, f"/invoice {collected.invoice_number}")
    story = chat.texts(nadia)[-1].splitlines()
    assert (
        story[2]
        == "Door 0 owes ৳1,500 in all, on 1 invoice (/subscriber "
        + (
            await Payment.get(id=collected.payment_id).prefetch_related("subscriber")
        ).subscriber.username
        + ")"
    )
    assert story[4].startswith(f"• ↩️ {receipt} · ৳1,500 cash")
    assert story[4].endswith(": wrong house, the money went back")

    await chat.say(nadia, f"/reverse {receipt} again")
    assert chat.last_text(nadia) == (
        f"{receipt} was already reversed (wrong house, the money went back). Nothing was done."
    )
    await chat.say(nadia, f"/reverse {receipt}")
    await chat.say(nadia, "/reverse R-99x oops")
    assert chat.texts(nadia)[-2:] == [
        "Send it like this: /reverse R-00000123 the bKash transfer was charged back",
        "“R-99x” is not a receipt number; they look like R-00000123.",
    ]
    assert await PaymentReversal.all().count() == 1


# --- cash ----------------------------------------------------------------------------------


async def test_a_short_handover_is_booked_as_debt_then_deducted_from_the_payout(chat):
    tenant, admin, karim, nadia, _ = await _office(chat)
    await _karim_collects(tenant, admin, karim, [150_000, 100_000])  # commission ৳125

    await chat.say(nadia, "/handover karim")
    assert chat.last_text(nadia) == (
        "Karim holds ৳2,500 in cash (2 cash payments since the last handover)."
        " Count it, then send /handover Karim and the amount."
    )
    await chat.say(nadia, "/handover karim 2400")
    assert chat.last_text(nadia) == (
        "Karim holds ৳2,500 by the books (2 cash payments since the last handover)."
        " Counted: ৳2,400.\n"
        "⚠️ Short ৳100: it becomes Karim's debt (owed now: ৳100), deducted from a later"
        " commission payout if you agree then."
    )
    await chat.tap(nadia, "✅ Record ৳2,400 handed in")
    assert chat.last_text(nadia) == (
        "✅ Handover recorded: Karim handed in ৳2,400 of ৳2,500.\n"
        "Short ৳100, booked as Karim's debt. Karim owes ৳100."
    )
    assert await collector_debt(tenant.id, karim.id) == 10_000

    await chat.say(nadia, "/report karim")
    assert "holds ৳0 in cash · owes ৳100" in chat.texts(nadia)[-3]

    await chat.say(nadia, "/pay karim")
    assert chat.tg.chat_log(NADIA)[-1].text == (
        "Pay Karim ৳125 of the ৳125 commission balance?\n"
        "Karim owes ৳100 (shortages at cash handovers). Deduct it from this payout?"
    )
    assert chat.tg.chat_log(NADIA)[-1].buttons == (
        ("Pay ৳25 in cash, deduct ৳100 debt",),
        ("Pay ৳125, keep the debt",),
        ("Cancel",),
    )
    await chat.tap(nadia, "Pay ৳25 in cash, deduct ৳100 debt")

    assert chat.last_text(nadia) == (
        "✅ Paid Karim ৳125: ৳25 in cash and ৳100 deducted from the debt. Balance now ৳0."
    )
    assert await collector_debt(tenant.id, karim.id) == 0
    assert await commission_balance(tenant.id, karim.id) == 0


async def test_a_handover_amount_that_is_not_money_or_a_stale_button_records_nothing(chat):
    tenant, admin, karim, nadia, _ = await _office(chat)
    await _karim_collects(tenant, admin, karim, [150_000])

    await chat.say(nadia, "/handover karim 1,5o0")
    await chat.say(nadia, "/handover karim -100")
    await chat.say(nadia, "/handover karim 1500")
    await _karim_collects(tenant, admin, karim, [50_000], key="later")  # more cash meanwhile
    await chat.tap(nadia, "✅ Record ৳1,500 handed in")

    texts = chat.texts(nadia)
    assert texts[0] == "Type the amount as a number, like 1500 or 1500.50."
    assert texts[1] == "The amount must be more than zero."
    answers = chat.tg.sent(method="answerCallbackQuery")
    assert answers[-1].params["text"] == (
        "Karim's cash changed since you checked (a collection or another handover)."
        " Nothing was recorded; send /handover again."
    )
    assert await CashHandover.all().count() == 0
    assert await cash_on_hand(tenant.id, karim.id) == 200_000


async def test_the_daily_reconciliation_lists_the_stops_and_sends_their_photos(chat):
    tenant, admin, karim, nadia, _ = await _office(chat)
    done = await _karim_collects(tenant, admin, karim, [150_000, 100_000])
    for n, result in enumerate(done):
        photo = await StoredFile.create(
            tenant=tenant, sha256=f"{n:064d}", path=f"photos/{n}.jpg",
            content_type="image/jpeg", size_bytes=3, telegram_file_id=f"AgPHOTO{n}",
        )  # fmt: skip
        await Payment.filter(id=result.payment_id).update(receipt_file_id=photo.id)
        chat.tg.add_file(f"AgPHOTO{n}", _JPEG)
    await chat.say(nadia, "/handover karim 2500")
    await chat.tap(nadia, "✅ Record ৳2,500 handed in")

    await chat.say(nadia, "/reconcile karim")

    report = chat.texts(nadia)[-2]
    lines = report.split("\n")
    assert lines[1] == (
        "Karim: held ৳0 at the start · collected ৳2,500 · handed in ৳2,500 of ৳2,500 expected"
        " · holds ৳0"
    )
    assert lines[2] == "Stops collected"
    assert [line.split(" · ")[1:] for line in lines[3:5]] == [
        [
            done[0].invoice_number,
            "Door 0",
            "৳1,500 cash",
            receipt_number(done[0].payment_id),
            "📷",
        ],
        [
            done[1].invoice_number,
            "Door 1",
            "৳1,000 cash",
            receipt_number(done[1].payment_id),
            "📷",
        ],
    ]
    assert lines[5].startswith("🤝 ") and "handed in ৳2,500 of ৳2,500 · taken by Nadia" in lines[5]
    await chat.tap(nadia, "📷 Show 2 photos")
    album = chat.tg.sent(NADIA, "sendMediaGroup")
    assert len(album) == 1 and [m["media"] for m in album[0].params["media"]] == [
        "AgPHOTO0",
        "AgPHOTO1",
    ]


async def test_a_collector_at_the_cash_cap_is_told_to_hand_in_before_taking_more_cash(chat):
    tenant, admin, karim, nadia, karim_user = await _office(chat)
    await chat.say(nadia, "/editcollector karim cap=1500")
    assert chat.last_text(nadia).endswith("· 5% commission · cash cap ৳1,500.")
    await _karim_collects(tenant, admin, karim, [150_000])
    sub = await make_subscriber(tenant, name="Next Door")
    invoice = await make_invoice(sub, 80_000)
    await assign_invoices(admin, collector_id=karim.id, numbers=[invoice.number])

    await chat.say(karim_user, "/route")
    await chat.tap(karim_user, "Collected")

    answers = chat.tg.sent(method="answerCallbackQuery")
    assert answers[-1].params["text"] == (
        "You hold ৳1,500, at or above your cap of ৳1,500. Hand the cash in at the office"
        " before taking more cash."
    )
    await chat.say(karim_user, "/today")
    assert chat.last_text(karim_user).endswith(
        "Cash in hand: ৳1,500 (cap ৳1,500)\n⚠️ Hand the cash in at the office before taking"
        " more cash."
    )
    assert await LedgerPosting.filter(kind="collection").count() == 1


_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c"
    "1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc000"
    "0b080001000101011100ffc4001f0000010501010101010100000000000000000102030405060708090a0bffc400"
    "b5100002010303020403050504040000017d01020300041105122131410613516107227114328191a1082342b1c1"
    "1552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a63"
    "6465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6"
    "b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008"
    "010100003f00fbd3ffd9"
)
