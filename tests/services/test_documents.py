"""The collector report as a PDF and an XLSX, read back the way a person's software reads them."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from core.domain.status import Role
from core.services.assignments import assign_invoices
from core.services.collection import mark_collected, mark_failed
from core.services.documents import (
    collector_report_documents,
    render_collector_report_pdf,
    render_collector_report_xlsx,
)
from core.services.reports import CollectorFigures, CollectorReport, collector_report
from tests.factories import make_invoice, make_staff, make_subscriber, make_tenant

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


def _figures(collector_id: int, name: str, **values: int | bool | str | None) -> CollectorFigures:
    base: dict = {
        "collector_id": collector_id,
        "name": name,
        "phone": "+8801811000002",
        "deleted": False,
        "visits": 0,
        "collected": 0,
        "failed": 0,
        "success_rate_bp": 0,
        "cash_collected_minor": 0,
        "commission_earned_minor": 0,
        "paid_out_minor": 0,
        "balance_minor": 0,
    }
    return CollectorFigures(**(base | values))


REPORT = CollectorReport(
    start=date(2026, 11, 1),
    end=date(2026, 11, 24),
    currency="BDT",
    locale="en",
    rows=(
        _figures(
            1,
            "Karim Hossain",
            visits=3,
            collected=2,
            failed=1,
            success_rate_bp=6666,
            cash_collected_minor=250_000,
            commission_earned_minor=12_500,
            paid_out_minor=6_000,
            balance_minor=10_500,
            cash_on_hand_minor=70_000,
            debt_minor=1_250,
        ),
        _figures(
            2,
            "Jamal",
            deleted=True,
            visits=1,
            collected=1,
            success_rate_bp=10_000,
            cash_collected_minor=80_050,
            commission_earned_minor=4_003,
            balance_minor=4_003,
        ),
    ),
)


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _rows(data: bytes) -> list[tuple]:
    sheet = load_workbook(io.BytesIO(data)).worksheets[0]
    return [tuple(row) for row in sheet.iter_rows(values_only=True)]


def test_the_pdf_names_the_company_the_period_each_collector_and_their_figures():
    text = _pdf_text(render_collector_report_pdf(REPORT, company="Dhaka Fiber Net", language="en"))

    for expected in (
        "Collector report",
        "Dhaka Fiber Net",
        "2026-11-01 – 2026-11-24",
        "Karim Hossain",
        "66.7%",
        "2,500.00",
        "125.00",
        "60.00",
        "105.00",
        "Jamal (removed)",
        "800.50",
        "40.03",
        "Total",
        "3,300.50",
        "145.03",
        "700.00",
        "12.50",
        "Debt",
        "Amounts in BDT",
    ):
        assert expected in text, expected


def test_a_pdf_asked_for_in_bengali_keeps_english_headings_because_xhtml2pdf_cannot_shape_it():
    text = _pdf_text(render_collector_report_pdf(REPORT, company="Dhaka Fiber Net", language="bn"))
    assert "Collector report" in text
    assert "Debt" in text


def test_the_xlsx_holds_numbers_in_major_units_and_a_totals_row():
    rows = _rows(render_collector_report_xlsx(REPORT, company="Dhaka Fiber Net"))

    assert rows[0][:2] == ("Collector report", "Dhaka Fiber Net")
    assert rows[1][:3] == ("Period", datetime(2026, 11, 1), datetime(2026, 11, 24))
    assert rows[3] == (
        "Collector",
        "Phone",
        "Visits",
        "Collected",
        "Failed",
        "Success",
        "Cash collected (BDT)",
        "Commission (BDT)",
        "Paid out (BDT)",
        "Balance (BDT)",
        "Cash in hand (BDT)",
        "Debt (BDT)",
    )
    assert rows[4:] == [
        (
            *("Karim Hossain", "+8801811000002", 3, 2, 1, pytest.approx(2 / 3)),
            *(2500, 125, 60, 105, 700, 12.5),
        ),
        ("Jamal (removed)", "+8801811000002", 1, 1, 0, 1, 800.5, 40.03, 0, 40.03, 0, 0),
        ("Total", None, 4, 3, 1, 0.75, 3300.5, 165.03, 60, 145.03, 700, 12.5),
    ]


def test_the_xlsx_cells_are_numeric_with_money_and_percent_formats():
    sheet = load_workbook(
        io.BytesIO(render_collector_report_xlsx(REPORT, company="Dhaka Fiber Net"))
    ).worksheets[0]
    karim = sheet[5]
    assert [cell.data_type for cell in karim[2:]] == ["n"] * 10
    assert (karim[5].number_format, karim[6].number_format) == ("0.0%", "#,##0.00")


def test_the_xlsx_speaks_the_readers_language():
    rows = _rows(render_collector_report_xlsx(REPORT, company="Dhaka Fiber Net", language="bn"))
    assert rows[0][0] == "কালেক্টর রিপোর্ট"
    assert rows[3][6] == "নগদ আদায় (BDT)"
    assert rows[-1][0] == "মোট"


def test_an_empty_report_still_renders_with_zero_totals():
    empty = CollectorReport(date(2026, 11, 1), date(2026, 11, 24), "BDT", "en", ())
    assert "Total" in _pdf_text(render_collector_report_pdf(empty, company="X", language="en"))
    assert _rows(render_collector_report_xlsx(empty, company="X"))[-1] == (
        "Total",
        None,
        0,
        0,
        0,
        None,
        0,
        0,
        0,
        0,
        0,
        0,
    )


def test_a_currency_without_decimals_is_shown_as_whole_numbers():
    yen = CollectorReport(
        date(2026, 11, 1),
        date(2026, 11, 24),
        "JPY",
        "en",
        (_figures(1, "Aiko", visits=1, collected=1, cash_collected_minor=1500),),
    )
    text = _pdf_text(render_collector_report_pdf(yen, company="X", language="en"))
    assert "1,500" in text and "1,500.00" not in text
    sheet = load_workbook(io.BytesIO(render_collector_report_xlsx(yen, company="X"))).worksheets[0]
    assert (sheet["G5"].value, sheet["G5"].number_format) == (1500, "#,##0")


@pytest.mark.usefixtures("db")
async def test_the_documents_of_a_real_report_carry_the_company_and_the_period_in_their_names():
    tenant = await make_tenant(name="Dhaka Fiber Net")
    admin = await make_staff(tenant, Role.ADMIN)
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim", commission_bp=500)
    invoices = [await make_invoice(await make_subscriber(tenant), a) for a in (150_000, 90_000)]
    result = await assign_invoices(
        admin, collector_id=karim.id, numbers=[i.number for i in invoices], now=NOW
    )
    stops = [o.assignment_id for o in result.outcomes]
    await mark_collected(karim, assignment_id=stops[0], idempotency_key="a", now=NOW)
    await mark_failed(karim, assignment_id=stops[1], reason="not_home", now=NOW)
    report = await collector_report(admin, now=NOW)

    files = await collector_report_documents(admin, report, language="en")

    assert (files.pdf_name, files.xlsx_name) == (
        "collector-report-2026-11-01-2026-11-24.pdf",
        "collector-report-2026-11-01-2026-11-24.xlsx",
    )
    text = _pdf_text(files.pdf)
    assert "Dhaka Fiber Net" in text and "Karim" in text and "1,500.00" in text
    assert _rows(files.xlsx)[4][:7] == ("Karim", karim.phone, 2, 1, 1, 0.5, 1500)
