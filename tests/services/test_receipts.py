"""Receipts and invoice documents built from what the database holds after real collections."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from pypdf import PdfReader

from core.domain.status import InvoicePurpose, PaymentMethod, Role
from core.errors import NotFound, PermissionDenied
from core.services.access import COLLECTORS_VIEW
from core.services.assignments import assign_invoices
from core.services.collection import mark_collected
from core.services.receipts import (
    build_invoice_document,
    build_receipt,
    load_receipt_facts,
    message_template_sources,
)
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant

pytestmark = pytest.mark.usefixtures("db")

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)  # 10:00 in Dhaka
LATER = datetime(2026, 11, 26, 5, 30, tzinfo=UTC)  # 11:30 in Dhaka


def _text(pdf: bytes) -> str:
    return " ".join(
        " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).split()
    )


async def _office(**tenant_values):
    tenant = await make_tenant(name="Dhaka Fiber Net", **tenant_values)
    admin = await make_staff(tenant, Role.ADMIN, name="Nadia")
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim", phone="+8801711000001")
    return tenant, admin, karim


async def _collect(admin, collector, invoice, *, key: str, amount_minor=None, now=NOW, **kw):
    route = await assign_invoices(
        admin, collector_id=collector.id, numbers=[invoice.number], now=now
    )
    return await mark_collected(
        collector,
        assignment_id=route.outcomes[0].assignment_id,
        idempotency_key=key,
        amount_minor=amount_minor,
        now=now,
        **kw,
    )


async def test_a_renewal_paid_in_full_gets_a_receipt_with_the_new_expiry():
    tenant, admin, karim = await _office()
    rahim = await make_subscriber(
        tenant, name="Rahim Uddin", username="rahim01", expiry_date=date(2026, 11, 30)
    )
    invoice = await make_invoice(rahim, 150_000, purpose=InvoicePurpose.RENEWAL)
    collected = await _collect(admin, karim, invoice, key="k1", method=PaymentMethod.BKASH)

    receipt = await build_receipt(tenant_id=tenant.id, payment_id=collected.payment_id)

    assert collected.new_expiry == date(2026, 12, 30)
    assert receipt.filename == f"receipt-R-{collected.payment_id:08d}.pdf"
    assert receipt.language == "en"
    text = _text(receipt.pdf)
    for expected in (
        "Dhaka Fiber Net",
        f"R-{collected.payment_id:08d}",
        "BDT1,500.00",
        "Paid on: 24 Nov 2026, 10:00",
        "Received from: Rahim Uddin",
        f"Invoice: {invoice.number}",
        "Method: bKash",
        "Nothing, the invoice is paid in full",
        "Service renewed until: 30 Dec 2026",
        "Collected by: Karim · +8801711000001",
    ):
        assert expected in text, expected
    assert "৳1,500 (bKash)" in receipt.caption
    assert "renewed until 30 December 2026" in receipt.caption
    assert receipt.template_params == ("Rahim Uddin", "৳1,500", invoice.number, "30 December 2026")


async def test_a_partial_payment_shows_the_balance_left_and_no_expiry():
    tenant, admin, karim = await _office()
    rahim = await make_subscriber(tenant, expiry_date=date(2026, 11, 30))
    invoice = await make_invoice(rahim, 150_000, purpose=InvoicePurpose.RENEWAL)
    collected = await _collect(admin, karim, invoice, key="k1", amount_minor=100_000)

    facts = await load_receipt_facts(tenant_id=tenant.id, payment_id=collected.payment_id)
    receipt = await build_receipt(tenant_id=tenant.id, payment_id=collected.payment_id)

    assert (facts.amount_paid_minor, facts.remaining_minor, facts.new_expiry) == (
        100_000,
        50_000,
        None,
    )
    text = _text(receipt.pdf)
    assert "Still due on this invoice: BDT500.00" in text
    assert "renewed" not in text
    assert "Still due on this invoice: ৳500." in receipt.caption
    assert receipt.template_params[-1] == "-"


async def test_a_receipt_rebuilt_after_a_later_payment_still_describes_its_own_payment():
    tenant, admin, karim = await _office()
    rahim = await make_subscriber(tenant, expiry_date=date(2026, 11, 30))
    invoice = await make_invoice(rahim, 150_000, purpose=InvoicePurpose.RENEWAL)
    first = await _collect(admin, karim, invoice, key="k1", amount_minor=100_000)
    second = await _collect(admin, karim, invoice, key="k2", now=LATER)

    early = await load_receipt_facts(tenant_id=tenant.id, payment_id=first.payment_id)
    late = await load_receipt_facts(tenant_id=tenant.id, payment_id=second.payment_id)

    assert (early.remaining_minor, early.new_expiry) == (50_000, None)
    assert (late.amount_paid_minor, late.remaining_minor) == (50_000, 0)
    assert late.new_expiry == second.new_expiry == date(2026, 12, 30)


async def test_a_non_renewal_invoice_paid_in_full_shows_no_new_expiry():
    tenant, admin, karim = await _office()
    rahim = await make_subscriber(tenant, expiry_date=date(2026, 11, 30))
    invoice = await make_invoice(rahim, 20_000, purpose=InvoicePurpose.LATE_FEE)
    collected = await _collect(admin, karim, invoice, key="k1")

    facts = await load_receipt_facts(tenant_id=tenant.id, payment_id=collected.payment_id)

    assert (facts.remaining_minor, facts.new_expiry) == (0, None)


async def test_another_tenants_payment_is_not_found():
    tenant, admin, karim = await _office()
    invoice = await make_invoice(await make_subscriber(tenant), 150_000)
    collected = await _collect(admin, karim, invoice, key="k1")
    other = await make_tenant()

    with pytest.raises(NotFound) as caught:
        await build_receipt(tenant_id=other.id, payment_id=collected.payment_id)
    assert caught.value.code == "payment_not_found"
    with pytest.raises(NotFound):
        await build_receipt(tenant_id=tenant.id, payment_id=collected.payment_id + 1000)


@pytest.mark.parametrize(
    ("subscriber_language", "tenant_locale", "expected"),
    [
        ("bn", "en", "bn"),
        (None, "ar", "ar"),
        ("bn-BD", "en", "bn"),
        ("fr", "bn_BD", "bn"),
        ("fr", "de", "en"),
    ],
)
async def test_the_subscribers_language_picks_the_caption_and_the_tenants_locale_backs_it_up(
    subscriber_language, tenant_locale, expected
):
    tenant, admin, karim = await _office(locale=tenant_locale)
    rahim = await make_subscriber(tenant, language=subscriber_language)
    collected = await _collect(admin, karim, await make_invoice(rahim, 150_000), key="k1")

    receipt = await build_receipt(tenant_id=tenant.id, payment_id=collected.payment_id)

    assert receipt.language == expected
    starts = {"en": "Thank you", "bn": "ধন্যবাদ", "ar": "شكرا"}
    assert receipt.caption.startswith(starts[expected])


async def test_an_arabic_subscriber_gets_an_arabic_pdf_with_the_same_facts():
    tenant, admin, karim = await _office(currency="SAR", country="SA", timezone="Asia/Riyadh")
    rahim = await make_subscriber(tenant, name="محمد العلي", language="ar")
    collected = await _collect(admin, karim, await make_invoice(rahim, 150_050), key="k1")

    receipt = await build_receipt(tenant_id=tenant.id, payment_id=collected.payment_id)

    text = _text(receipt.pdf)
    assert "SAR1,500.50" in text and "Payment receipt" not in text
    assert "ر.س.\u200f1,500.50" in receipt.caption


async def test_the_invoice_document_lists_the_payments_posted_on_it_and_the_balance():
    tenant, admin, karim = await _office()
    rahim = await make_subscriber(tenant, name="Rahim Uddin", username="rahim01")
    invoice = await make_invoice(rahim, 150_000)
    first = await _collect(admin, karim, invoice, key="k1", amount_minor=100_000)

    document = await build_invoice_document(admin, number=invoice.number.lower(), now=LATER)

    assert document.filename == f"invoice-{invoice.number}.pdf"
    text = _text(document.pdf)
    for expected in (
        f"Invoice {invoice.number}",
        "Bill to: Rahim Uddin (rahim01)",
        "Status: Partly paid",
        "Paid BDT1,000.00",
        "Balance due BDT500.00",
        f"24 Nov 2026, 10:00 R-{first.payment_id:08d} Cash BDT1,000.00",
    ):
        assert expected in text, expected


async def test_an_unpaid_invoice_past_its_due_date_is_shown_overdue():
    tenant, admin, _ = await _office()
    invoice = await make_invoice(
        await make_subscriber(tenant), 150_000, due_date=date(2026, 11, 20)
    )

    document = await build_invoice_document(admin, number=invoice.number, now=NOW)

    assert "Status: Overdue" in _text(document.pdf)


async def test_reseller_staff_get_documents_of_their_own_subscribers_only():
    tenant, admin, _ = await _office()
    north, south = await make_reseller(tenant), await make_reseller(tenant)
    viewer = await make_staff(tenant, Role.RESELLER, reseller=north, permissions=[COLLECTORS_VIEW])
    ours = await make_invoice(await make_subscriber(tenant, reseller=north), 150_000)
    theirs = await make_invoice(await make_subscriber(tenant, reseller=south), 150_000)

    assert (await build_invoice_document(viewer, number=ours.number)).pdf.startswith(b"%PDF")
    with pytest.raises(NotFound) as caught:
        await build_invoice_document(viewer, number=theirs.number)
    assert caught.value.code == "invoice_not_found"
    assert str(caught.value) == f"There is no invoice {theirs.number} in your company."


async def test_reseller_staff_without_the_view_permission_and_collectors_are_refused():
    tenant, admin, karim = await _office()
    north = await make_reseller(tenant)
    blind = await make_staff(tenant, Role.RESELLER, reseller=north, permissions=[])
    invoice = await make_invoice(await make_subscriber(tenant, reseller=north), 150_000)

    for actor in (blind, karim):
        with pytest.raises(PermissionDenied):
            await build_invoice_document(actor, number=invoice.number)


async def test_another_tenants_invoice_is_not_found():
    tenant, admin, _ = await _office()
    invoice = await make_invoice(await make_subscriber(tenant), 150_000)
    _, stranger, _ = await _office()

    with pytest.raises(NotFound) as caught:
        await build_invoice_document(stranger, number=invoice.number)
    assert caught.value.code == "invoice_not_found"


async def test_the_office_can_read_every_receipt_caption_template():
    sources = [t for t in message_template_sources() if t.kind == "receipt"]

    assert [(t.kind, t.language) for t in sources] == [
        ("receipt", "ar"),
        ("receipt", "bn"),
        ("receipt", "en"),
    ]
    english = sources[-1]
    assert english.path == "templates/whatsapp/en/receipt.txt"
    assert english.text.startswith("Thank you, {{ name }}!")
    assert "{#" not in english.text
