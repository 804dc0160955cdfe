"""The dunning texts subscribers read on WhatsApp, rendered without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from core.documents.notices import NOTICE_KINDS, NoticeFacts, notice_text
from core.documents.words import CAPTION_LIMIT, whatsapp_languages

FACTS = NoticeFacts(
    isp_name="Dhaka Fiber Net",
    subscriber_name="Rahim Uddin",
    invoice_number="INV-2026-0042",
    due_minor=150_050,
    currency="BDT",
    country="BD",
    due_date=date(2026, 12, 1),
    today=date(2026, 11, 28),
    language="en",
    suspension_on=date(2026, 12, 10),
    deletion_on=date(2027, 1, 10),
)


def test_every_dunning_text_exists_in_every_language_a_receipt_does():
    for kind in NOTICE_KINDS:
        assert whatsapp_languages(kind) == whatsapp_languages("receipt") == {"en", "bn", "ar"}


@pytest.mark.parametrize("language", ["en", "bn", "ar"])
@pytest.mark.parametrize("kind", NOTICE_KINDS)
def test_each_text_names_the_invoice_and_stays_within_whatsapps_limit(kind, language):
    long_name = "Muhammad Abdur Rahman Chowdhury " * 5  # the column's 160 characters

    text = notice_text(kind, replace(FACTS, language=language, subscriber_name=long_name))

    assert "INV-2026-0042" in text and "Dhaka Fiber Net" in text
    assert "1,500.50" in text
    assert len(text) < CAPTION_LIMIT


def test_the_warnings_name_their_date_and_the_pre_due_notice_the_due_date():
    assert "10 December 2026" in notice_text("suspension_warning", FACTS)
    assert "10 January 2027" in notice_text("deletion_warning", FACTS)
    assert "1 December 2026" in notice_text("pre_due_notice", FACTS)


def test_a_reminder_without_dates_ahead_names_none():
    text = notice_text("reminder", replace(FACTS, suspension_on=None, deletion_on=None))

    assert text == (
        "Dear Rahim Uddin, ৳1,500.50 is still due on invoice INV-2026-0042, due on"
        " 1 December 2026.\nAlready paid? Please ignore this message.\n\nDhaka Fiber Net"
    )


def test_an_arabic_reminder_reads_in_arabic():
    text = notice_text("reminder", replace(FACTS, language="ar", deletion_on=None))

    assert text.startswith("عزيزي Rahim Uddin، لا يزال مبلغ")
    assert "ديسمبر" in text


def test_only_dunning_kinds_are_rendered_here():
    with pytest.raises(ValueError):
        notice_text("receipt", FACTS)
