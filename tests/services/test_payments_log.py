"""The payments log: filters, search, keyset pages, and exports read back from the files."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from core.db.models import Payment
from core.documents.receipt import receipt_number
from core.domain.status import PaymentMethod, Role
from core.errors import InvalidInput, NotFound
from core.services.payments import record_payment, reverse_payment
from core.services.payments_log import (
    PaymentFilter,
    export_payments,
    payments_page,
    resolve_operator,
)
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant

pytestmark = pytest.mark.usefixtures("db")

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)  # noon in Dhaka


async def _ledger_of_payments(count=25):
    """`count` payments by Nadia over the last days (one every two hours, newest first
    received at NOW), alternating cash and bKash, to subscribers Rahim 0.. in two resellers."""
    tenant = await make_tenant()
    north, south = (
        await make_reseller(tenant, name="North"),
        await make_reseller(tenant, name="South"),
    )
    nadia = await make_staff(tenant, Role.ADMIN, name="Nadia")
    for n in range(count):
        sub = await make_subscriber(
            tenant,
            username=f"user{n:02d}",
            name=f"Rahim {n:02d}" if n % 5 else f"Salma {n:02d}",
            reseller=north if n % 2 else south,
        )
        await make_invoice(sub, 100_000 + n * 100, number=f"INV-{n:04d}")
        await record_payment(
            nadia,
            target=f"user{n:02d}",
            amount_minor=100_000 + n * 100,
            method=PaymentMethod.BKASH if n % 2 else PaymentMethod.CASH,
            reference=f"TRX{n:04d}" if n % 2 else "",
            idempotency_key=f"p{n}",
            now=NOW - timedelta(hours=2 * n),
        )
    return tenant, nadia


async def test_pages_run_newest_first_and_page_back_and_forth_without_gaps():
    _, nadia = await _ledger_of_payments(25)
    filters = PaymentFilter()

    first = await payments_page(nadia, filters, now=NOW)
    # Later pages keep the first page's period, resolved in the company's time zone, even
    # when they are asked for after midnight.
    kept = first.filters
    assert (kept.start, kept.end, kept.timezone) == (
        date(2026, 10, 24),
        date(2026, 11, 22),
        "Asia/Dhaka",
    )
    later = NOW + timedelta(days=1)
    second = await payments_page(nadia, kept, older_than=first.rows[-1].id, now=later)
    third = await payments_page(nadia, kept, older_than=second.rows[-1].id, now=later)
    back = await payments_page(nadia, kept, newer_than=third.rows[0].id, now=later)

    seen = [p.username for page in (first, second, third) for p in page.rows]
    assert seen == [f"user{n:02d}" for n in range(25)]
    assert (first.has_newer, first.has_older, third.has_older) == (False, True, False)
    assert (first.count, first.total_minor) == (25, sum(100_000 + n * 100 for n in range(25)))
    assert [p.id for p in back.rows] == [p.id for p in second.rows] and back.has_newer


async def test_filters_by_period_method_operator_and_search():
    tenant, nadia = await _ledger_of_payments(25)
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim")

    today = await payments_page(nadia, PaymentFilter(start=date(2026, 11, 22)), now=NOW)
    bkash = await payments_page(nadia, PaymentFilter(method=PaymentMethod.BKASH), now=NOW)
    by_nadia = await payments_page(nadia, PaymentFilter(operator_id=nadia.id), now=NOW)
    by_karim = await payments_page(nadia, PaymentFilter(operator_id=karim.id), now=NOW)
    salma = await payments_page(nadia, PaymentFilter(search="salma"), now=NOW)
    by_ref = await payments_page(nadia, PaymentFilter(search="trx0013"), now=NOW)
    by_user = await payments_page(nadia, PaymentFilter(search="USER07"), now=NOW)
    wildcard = await payments_page(nadia, PaymentFilter(search="%"), now=NOW)

    # Noon in Dhaka back to local midnight: payments 0..6 (12:00, 10:00, ... 00:00).
    assert today.count == 7
    assert bkash.count == 12 and {p.method for p in bkash.rows} == {PaymentMethod.BKASH}
    assert (by_nadia.count, by_karim.count) == (25, 0)
    assert [p.customer for p in salma.rows] == [f"Salma {n:02d}" for n in (0, 5)] + [
        f"Salma {n:02d}" for n in (10, 15, 20)
    ]
    assert [p.reference for p in by_ref.rows] == ["TRX0013"]
    assert [p.username for p in by_user.rows] == ["user07"]
    assert wildcard.count == 0  # a % is searched for, not a wildcard


async def test_reseller_staff_see_only_their_subscribers_payments():
    tenant, _ = await _ledger_of_payments(10)
    north = await make_reseller(tenant, name="North 2")
    staff = await make_staff(tenant, Role.RESELLER, reseller=north)
    sub = await make_subscriber(tenant, username="own", reseller=north)
    await make_invoice(sub, 5_000, number="INV-OWN")
    admin = await make_staff(tenant, Role.ADMIN)
    await record_payment(admin, target="own", amount_minor=5_000, idempotency_key="own", now=NOW)

    page = await payments_page(staff, PaymentFilter(), now=NOW)

    assert [p.username for p in page.rows] == ["own"]


async def test_reversed_payments_stay_in_the_log_but_out_of_the_totals():
    _, nadia = await _ledger_of_payments(3)
    newest = (await payments_page(nadia, PaymentFilter(), now=NOW)).rows[0]
    await reverse_payment(nadia, ref=newest.receipt_number, reason="charged back")

    page = await payments_page(nadia, PaymentFilter(), now=NOW)

    assert page.count == 3 and page.reversed_count == 1
    assert page.total_minor == 100_100 + 100_200
    assert page.rows[0].reversal_reason == "charged back"


async def test_bad_filters_are_refused_with_a_sentence():
    tenant, nadia = await _ledger_of_payments(1)
    with pytest.raises(InvalidInput) as reversed_period:
        await payments_page(
            nadia, PaymentFilter(start=date(2026, 11, 22), end=date(2026, 11, 1)), now=NOW
        )
    assert reversed_period.value.code == "period_reversed"
    with pytest.raises(NotFound):
        await resolve_operator(nadia, "Nobody")
    assert (await resolve_operator(nadia, "nadia")).id == nadia.id


async def test_the_csv_export_holds_every_filtered_payment_as_the_database_has_it(tmp_path):
    tenant, nadia = await _ledger_of_payments(25)

    export = await export_payments(
        nadia, PaymentFilter(method=PaymentMethod.BKASH), fmt="csv", folder=tmp_path, now=NOW
    )

    with export.path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    payments = (
        await Payment.filter(method="bkash")
        .order_by("-received_at")
        .prefetch_related("subscriber", "invoice")
    )
    assert export.rows == len(rows) == len(payments) == 12
    for row, payment in zip(rows, payments, strict=True):
        assert row["receipt"] == receipt_number(payment.id)
        assert row["username"] == payment.subscriber.username
        assert row["invoice"] == payment.invoice.number
        assert Decimal(row["amount"]) == Decimal(payment.amount_minor) / 100
        assert (row["method"], row["reference"], row["taken_by"]) == (
            "bkash",
            payment.reference,
            "Nadia",
        )
    # Local time (Dhaka is UTC+6): the newest bKash payment came at 04:00 UTC.
    assert (rows[0]["date"], rows[0]["time"]) == ("2026-11-22", "10:00:00")


async def test_the_xlsx_export_has_typed_dates_and_amounts(tmp_path):
    _, nadia = await _ledger_of_payments(5)

    export = await export_payments(nadia, PaymentFilter(), fmt="xlsx", folder=tmp_path, now=NOW)

    book = load_workbook(export.path, read_only=True)
    rows = list(book.active.iter_rows(values_only=True))
    book.close()  # read-only workbooks keep their file open until closed
    assert rows[0][:7] == ("receipt", "date", "time", "customer", "username", "invoice", "amount")
    assert len(rows) == 6
    assert rows[1][4] == "user00"
    assert Decimal(str(rows[1][6])) == Decimal("1000")  # a number cell, in taka
    assert isinstance(rows[1][1], datetime)  # a real date cell, not text


async def test_an_empty_selection_is_not_exported(tmp_path):
    _, nadia = await _ledger_of_payments(1)

    with pytest.raises(InvalidInput) as empty:
        await export_payments(
            nadia, PaymentFilter(search="nobody"), fmt="csv", folder=tmp_path / "exports", now=NOW
        )

    assert empty.value.code == "export_empty"
    assert not (tmp_path / "exports").exists()
