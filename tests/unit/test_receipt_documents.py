"""Receipt and invoice documents, rendered from facts and read back as a person's software
reads them: PDF text through pypdf, captions as WhatsApp shows them."""

from __future__ import annotations

import io
import re
import tomllib
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from pypdf import PdfReader

from core.documents.invoice import InvoiceDocumentFacts, PaymentLine, render_invoice_pdf
from core.documents.pdf import drawable
from core.documents.receipt import (
    ReceiptFacts,
    receipt_caption,
    receipt_number,
    receipt_template_params,
    render_receipt_pdf,
)
from core.documents.words import (
    CAPTION_LIMIT,
    LABELS_FILE,
    PDF_LANGUAGES,
    labels,
    whatsapp_languages,
)
from core.domain.status import InvoiceKind, InvoicePurpose, InvoiceStatus, PaymentMethod
from tests.unit.test_architecture import PURE_FORBIDDEN, _violations

PAID_AT = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)  # 10:00 in Dhaka

RECEIPT = ReceiptFacts(
    isp_name="Dhaka Fiber Net",
    receipt_number=receipt_number(42),
    invoice_number="INV-2026-0042",
    subscriber_name="Rahim Uddin",
    subscriber_username="rahim01",
    amount_paid_minor=150_000,
    currency="BDT",
    country="BD",
    method=PaymentMethod.CASH,
    remaining_minor=0,
    collector_name="Karim Hossain",
    collector_phone="+8801711000001",
    paid_at=PAID_AT,
    timezone="Asia/Dhaka",
    new_expiry=date(2026, 12, 24),
    language="en",
)
PARTIAL = replace(RECEIPT, amount_paid_minor=100_000, remaining_minor=50_000, new_expiry=None)

# "محمد العلي" as drawn, left to right on the page: each letter in the presentation form
# of its place in the word (initial, medial, final), and the words in right-to-left order.
# Unshaped text would hold the base letters (U+0621..U+064A); text that was not reordered
# would hold these forms in the order they are written (FEE3 first).
ARABIC_NAME = "محمد العلي"
ARABIC_NAME_AS_DRAWN = (
    "\ufef2\ufee0\ufecc\ufedf\ufe8d"  # ي ل ع ل ا: final yeh ... isolated alef (العلي)
    " "
    "\ufeaa\ufee4\ufea4\ufee3"  # د م ح م: final dal ... initial meem (محمد)
)
BASE_ARABIC_LETTERS = re.compile(r"[\u0621-\u064a]")


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _drawn(pdf: bytes) -> str:
    """The glyphs in the order they stand on the page, left to right (pypdf's layout mode
    does not reorder right-to-left runs back into reading order)."""
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text(extraction_mode="layout") for page in reader.pages)


def _words(pdf: bytes) -> str:
    """The text with table cells (one per line in pypdf's output) joined by single spaces."""
    return " ".join(_text(pdf).split())


def _pages(pdf: bytes) -> int:
    return len(PdfReader(io.BytesIO(pdf)).pages)


def test_a_receipt_pdf_holds_the_amount_the_invoice_the_new_expiry_and_who_collected():
    pdf = render_receipt_pdf(RECEIPT)
    text = _text(pdf)

    assert _pages(pdf) == 1
    for expected in (
        "Dhaka Fiber Net",
        "Payment receipt · R-00000042",
        "BDT1,500.00",
        "Paid on: 24 Nov 2026, 10:00",
        "Received from: Rahim Uddin",
        "Customer ID: rahim01",
        "Invoice: INV-2026-0042",
        "Method: Cash",
        "Still due on this invoice: Nothing, the invoice is paid in full",
        "Service renewed until: 24 Dec 2026",
        "Collected by: Karim Hossain · +8801711000001",
    ):
        assert expected in text, expected


def test_a_partial_payment_shows_what_is_still_due_and_no_new_expiry():
    text = _text(render_receipt_pdf(PARTIAL))

    assert "BDT1,000.00" in text
    assert "Still due on this invoice: BDT500.00" in text
    assert "renewed" not in text


def test_the_receipt_embeds_the_shipped_font_in_one_weight():
    # One weight on purpose: a bold face would embed a second font subset in every receipt
    # (bench/receipt.py). Embedded subsets are named "ABCDEF+Name"; the bare Helvetica
    # xhtml2pdf declares on every page draws nothing.
    reader = PdfReader(io.BytesIO(render_receipt_pdf(RECEIPT)))
    names = [
        str(f.get_object()["/BaseFont"]) for f in reader.pages[0]["/Resources"]["/Font"].values()
    ]
    assert {name.split("+", 1)[1] for name in names if "+" in name} == {"DejaVuSans"}


def test_an_arabic_name_comes_out_joined_and_right_to_left():
    pdf = render_receipt_pdf(replace(RECEIPT, subscriber_name=ARABIC_NAME))

    drawn = _drawn(pdf)
    assert ARABIC_NAME_AS_DRAWN in drawn
    assert not BASE_ARABIC_LETTERS.search(drawn)


def test_an_arabic_reader_gets_arabic_headings_laid_out_right_to_left():
    facts = replace(
        RECEIPT,
        language="ar",
        subscriber_name=ARABIC_NAME,
        currency="SAR",
        country="SA",
        timezone="Asia/Riyadh",
    )
    drawn = _drawn(render_receipt_pdf(facts))

    assert "Payment receipt" not in drawn
    assert "SAR1,500.00" in drawn
    # A right-to-left line ends (on the left) with the value after its Arabic label.
    assert re.search(r"^\s*" + ARABIC_NAME_AS_DRAWN + " :", drawn, re.MULTILINE)
    assert not BASE_ARABIC_LETTERS.search(drawn)


def test_a_bengali_readers_pdf_keeps_english_headings_and_never_prints_boxes():
    facts = replace(RECEIPT, language="bn", subscriber_name="রহিম উদ্দিন")
    text = _text(render_receipt_pdf(facts))

    assert "Payment receipt" in text
    assert "Customer ID: rahim01" in text
    assert "Received from" not in text  # the name cannot be drawn; the customer ID stands in
    assert not re.search(r"[\u0980-\u09ff\x00]", text)


def test_a_name_that_looks_like_markup_is_printed_as_typed():
    facts = replace(RECEIPT, subscriber_name="<b>Rahim</b> & Sons")

    assert "Received from: <b>Rahim</b> & Sons" in _text(render_receipt_pdf(facts))
    assert receipt_caption(facts).startswith("Thank you, <b>Rahim</b> & Sons!")


def test_the_english_caption_has_the_amount_the_invoice_the_new_expiry_and_the_isp():
    assert receipt_caption(RECEIPT) == (
        "Thank you, Rahim Uddin! We received ৳1,500 (Cash) for invoice INV-2026-0042"
        " on 24 November 2026.\n"
        "The invoice is paid in full.\n"
        "Your service is renewed until 24 December 2026.\n"
        "Receipt R-00000042 is attached.\n"
        "\n"
        "Dhaka Fiber Net"
    )


def test_a_caption_without_new_expiry_says_what_is_still_due():
    caption = receipt_caption(PARTIAL)

    assert "We received ৳1,000 (Cash)" in caption
    assert "Still due on this invoice: ৳500." in caption
    assert "renewed" not in caption


def test_the_bengali_caption_carries_the_essentials_in_bengali():
    caption = receipt_caption(replace(PARTIAL, language="bn", new_expiry=date(2026, 12, 24)))

    assert caption.startswith("ধন্যবাদ, Rahim Uddin!")
    for expected in ("৳1,000 (ক্যাশ)", "INV-2026-0042", "বাকি: ৳500", "24 ডিসেম্বর 2026"):
        assert expected in caption, expected
    assert caption.endswith("Dhaka Fiber Net")


def test_the_arabic_caption_carries_the_essentials_in_arabic():
    facts = replace(RECEIPT, language="ar", currency="SAR", country="SA", remaining_minor=5_050)
    caption = receipt_caption(facts)

    assert caption.startswith("شكرا لك يا Rahim Uddin!")
    for expected in (
        "ر.س.\u200f1,500 (نقدا)",
        "INV-2026-0042",
        "ر.س.\u200f50.50",
        "24 ديسمبر 2026",
    ):
        assert expected in caption, expected


@pytest.mark.parametrize("language", ["en", "bn", "ar"])
def test_captions_stay_within_whatsapps_limit_with_the_longest_names(language):
    facts = replace(
        PARTIAL,
        language=language,
        isp_name="N" * 120,
        subscriber_name="S" * 160,
        invoice_number="I" * 40,
        new_expiry=date(2026, 12, 24),
    )
    assert len(receipt_caption(facts)) <= CAPTION_LIMIT


def test_template_parameters_are_name_amount_invoice_and_new_expiry():
    assert receipt_template_params(RECEIPT) == [
        "Rahim Uddin",
        "৳1,500",
        "INV-2026-0042",
        "24 December 2026",
    ]


def test_template_parameters_say_a_dash_for_no_new_expiry_and_are_never_empty():
    facts = replace(PARTIAL, subscriber_name="  ")
    assert receipt_template_params(facts) == ["rahim01", "৳1,000", "INV-2026-0042", "-"]


def test_receipt_numbers_are_the_payment_id_zero_padded():
    assert (receipt_number(42), receipt_number(123_456_789)) == ("R-00000042", "R-123456789")
    assert RECEIPT.filename == "receipt-R-00000042.pdf"


def test_receipt_facts_refuse_a_time_without_a_time_zone():
    with pytest.raises(ValueError, match="timezone-aware"):
        replace(RECEIPT, paid_at=datetime(2026, 11, 24, 10, 0))


def test_the_embedded_font_draws_latin_and_arabic_but_not_bengali():
    assert drawable("Rahim Uddin · BDT1,500.00 €")
    assert drawable(ARABIC_NAME)
    assert not drawable("রহিম")


INVOICE = InvoiceDocumentFacts(
    isp_name="Dhaka Fiber Net",
    number="INV-2026-0042",
    kind=InvoiceKind.INVOICE,
    purpose=InvoicePurpose.RENEWAL,
    status=InvoiceStatus.PARTIAL,
    overdue=False,
    issue_date=date(2026, 11, 1),
    due_date=date(2026, 11, 30),
    amount_minor=150_000,
    subscriber_name="Rahim Uddin",
    subscriber_username="rahim01",
    address="House 4, Road 5",
    payments=(
        PaymentLine(
            "R-00000041", datetime(2026, 11, 10, 5, 0, tzinfo=UTC), PaymentMethod.CASH, 50_000
        ),
        PaymentLine("R-00000042", PAID_AT, PaymentMethod.BKASH, 40_000),
    ),
    currency="BDT",
    timezone="Asia/Dhaka",
    language="en",
)


def test_an_invoice_pdf_lists_its_payments_what_was_paid_and_the_balance():
    pdf = render_invoice_pdf(INVOICE)
    text = _words(pdf)

    assert _pages(pdf) == 1
    for expected in (
        "Invoice INV-2026-0042",
        "Bill to: Rahim Uddin (rahim01)",
        "Issued: 1 Nov 2026 · Due: 30 Nov 2026",
        "Status: Partly paid",
        "Service renewal BDT1,500.00",
        "Paid BDT900.00",
        "Balance due BDT600.00",
        "10 Nov 2026, 11:00 R-00000041 Cash BDT500.00",
        "24 Nov 2026, 10:00 R-00000042 bKash BDT400.00",
    ):
        assert expected in text, expected
    assert INVOICE.filename == "invoice-INV-2026-0042.pdf"


def test_an_invoice_without_payments_says_so_and_an_overdue_one_says_overdue():
    facts = replace(INVOICE, payments=(), status=InvoiceStatus.UNPAID, overdue=True)
    text = _words(render_invoice_pdf(facts))

    assert "No payment has been received on this invoice yet." in text
    assert "Status: Overdue" in text
    assert "Balance due BDT1,500.00" in text


def test_invoice_facts_refuse_payments_above_the_amount():
    with pytest.raises(ValueError, match="exceed"):
        replace(INVOICE, amount_minor=80_000)


def test_every_pdf_language_translates_every_english_label():
    with LABELS_FILE.open("rb") as handle:
        table = tomllib.load(handle)
    english = set(table["en"])
    for language in PDF_LANGUAGES - {"en"}:
        assert set(table[language]) == english, language
        assert set(table[language]["methods"]) == set(table["en"]["methods"]), language


def test_every_caption_language_names_every_payment_method_in_its_own_words():
    with LABELS_FILE.open("rb") as handle:
        table = tomllib.load(handle)
    assert whatsapp_languages("receipt") == {"en", "bn", "ar"}
    for language in whatsapp_languages("receipt"):
        assert set(table[language]["methods"]) == {m.value for m in PaymentMethod}, language
        assert labels(language)["method_cash"] == table[language]["methods"]["cash"]


def test_the_documents_package_is_pure():
    assert _violations("core/documents", PURE_FORBIDDEN) == []
