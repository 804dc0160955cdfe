"""The collector report as files: a PDF (jinja2 + xhtml2pdf) and an XLSX (openpyxl).

The two renderers are pure functions of a `CollectorReport`: no database, no clock, no
event loop, so they run in a worker thread (`collector_report_documents` does that) and
are tested on their own. Amounts are shown in major units of the report's currency; the
XLSX holds numbers (not text) with a number format, and a totals row.

Headings come from the `office.report_document` table of the chat catalogs
(`templates/chat/<language>/office.toml`), so wording lives with the rest of the office's
texts and is translated in one place.

Languages: xhtml2pdf does not shape complex scripts (Bengali conjuncts break apart, see
DESIGN.md section 10), so a PDF asked for in Bengali is written with the English headings
and Latin digits. The XLSX is shaped by the spreadsheet program, so it uses the reader's
language. The PDF is drawn with the embedded DejaVu Sans (`core.documents.pdf`), so names
in Latin, Cyrillic, Greek or Arabic script (shaped, right to left) print correctly; names
typed in Bengali script still do not (DejaVu Sans has no Bengali glyphs), which a future
renderer with a shaping engine and a Bengali font fixes.
"""

from __future__ import annotations

import asyncio
import io
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from babel.numbers import format_decimal
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from xhtml2pdf import pisa

from core.db.models import Staff, Tenant
from core.documents.pdf import register_fonts
from core.domain.money import BASIS_POINTS, minor_digits, to_decimal
from core.services.reports import CollectorFigures, CollectorReport

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
DEFAULT_LANGUAGE = "en"
# Languages xhtml2pdf can set correctly with its built-in fonts (no shaping needed).
PDF_LANGUAGES = frozenset({"en"})
_MONEY_FIELDS = ("cash_collected_minor", "commission_earned_minor", "paid_out_minor")
# Now, whatever the period: what the office owes the collector, and what the collector has.
_NOW_FIELDS = ("balance_minor", "cash_on_hand_minor", "debt_minor")


@dataclass(frozen=True)
class ReportDocuments:
    pdf: bytes
    xlsx: bytes
    pdf_name: str
    xlsx_name: str


@cache
def report_labels(language: str) -> dict[str, str]:
    """The headings of the report files in `language` (English where a key is missing)."""
    labels = _labels_of(DEFAULT_LANGUAGE)
    if language != DEFAULT_LANGUAGE:
        labels = labels | _labels_of(language)
    return labels


def _labels_of(language: str) -> dict[str, str]:
    path = TEMPLATES / "chat" / language / "office.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        table = tomllib.load(handle).get("office", {}).get("report_document", {})
    return {str(k): str(v) for k, v in table.items()}


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES / "reports"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _amount(amount_minor: int, currency: str) -> str:
    digits = minor_digits(currency)
    pattern = "#,##0." + "0" * digits if digits else "#,##0"
    return format_decimal(to_decimal(amount_minor, currency), format=pattern, locale="en")


def _rate(collected: int, visits: int) -> str:
    if not visits:
        return "–"
    share = Decimal(collected * BASIS_POINTS // visits) / 100
    return format_decimal(share, format="0.0", locale="en") + "%"


def _pdf_row(figures: dict[str, Any], currency: str) -> dict[str, Any]:
    return {
        "name": figures["name"],
        "deleted": figures["deleted"],
        "visits": figures["visits"],
        "collected": figures["collected"],
        "failed": figures["failed"],
        "success_rate": _rate(figures["collected"], figures["visits"]),
        "cash_collected": _amount(figures["cash_collected_minor"], currency),
        "commission_earned": _amount(figures["commission_earned_minor"], currency),
        "paid_out": _amount(figures["paid_out_minor"], currency),
        "balance": _amount(figures["balance_minor"], currency),
        "cash_on_hand": _amount(figures["cash_on_hand_minor"], currency),
        "debt": _amount(figures["debt_minor"], currency),
    }


def _as_dict(r: CollectorFigures) -> dict[str, Any]:
    return {
        "name": r.name,
        "deleted": r.deleted,
        "visits": r.visits,
        "collected": r.collected,
        "failed": r.failed,
        "cash_collected_minor": r.cash_collected_minor,
        "commission_earned_minor": r.commission_earned_minor,
        "paid_out_minor": r.paid_out_minor,
        "balance_minor": r.balance_minor,
        "cash_on_hand_minor": r.cash_on_hand_minor,
        "debt_minor": r.debt_minor,
    }


def _totals(report: CollectorReport) -> dict[str, Any]:
    fields = ("visits", "collected", "failed", *_MONEY_FIELDS, *_NOW_FIELDS)
    return {"name": "", "deleted": False} | {f: report.total(f) for f in fields}


def render_collector_report_pdf(report: CollectorReport, *, company: str, language: str) -> bytes:
    """The report as a one-table PDF (A4 landscape, headings repeated on each page).

    Raises:
        RuntimeError: xhtml2pdf reported errors (a broken template is a bug, not input).
    """
    pdf_language = language if language in PDF_LANGUAGES else DEFAULT_LANGUAGE
    register_fonts()  # the template names the embedded font's family
    html = (
        _environment()
        .get_template("collector_report.html")
        .render(
            company=company,
            report=report,
            rows=[_pdf_row(_as_dict(r), report.currency) for r in report.rows],
            totals=_pdf_row(_totals(report), report.currency),
            labels=report_labels(pdf_language),
            currency=report.currency,
        )
    )
    out = io.BytesIO()
    status = pisa.CreatePDF(html, dest=out, encoding="utf-8")
    if status.err:
        raise RuntimeError(f"xhtml2pdf could not render the collector report ({status.err})")
    return out.getvalue()


def render_collector_report_xlsx(
    report: CollectorReport, *, company: str, language: str = DEFAULT_LANGUAGE
) -> bytes:
    """The report as a spreadsheet: a title, the period, one row per collector, totals.

    Streams rows (write-only mode), so memory stays flat for any number of collectors.
    Amounts are numeric cells in major units; the success rate is a fraction shown as %.
    """
    labels = report_labels(language)
    money_format = "#,##0." + "0" * minor_digits(report.currency)
    if money_format.endswith("."):
        money_format = "#,##0"
    book = Workbook(write_only=True)
    sheet = book.create_sheet(_sheet_title(labels["title"]))
    widths = (26, 18, 9, 11, 9, 11, 16, 16, 16, 16, 16, 16)
    for column, width in zip("ABCDEFGHIJKL", widths, strict=True):
        sheet.column_dimensions[column].width = width
    bold = Font(bold=True)

    def cell(value: Any, *, number_format: str | None = None, strong: bool = False) -> Any:
        c = WriteOnlyCell(sheet, value=value)
        if number_format:
            c.number_format = number_format
        if strong:
            c.font = bold
        return c

    def money(amount_minor: int, *, strong: bool = False) -> Any:
        return cell(
            to_decimal(amount_minor, report.currency), number_format=money_format, strong=strong
        )

    def rate(collected: int, visits: int, *, strong: bool = False) -> Any:
        value = Decimal(collected) / Decimal(visits) if visits else None
        return cell(value, number_format="0.0%", strong=strong)

    sheet.append([cell(labels["title"], strong=True), cell(company)])
    sheet.append(
        [
            cell(labels["period"]),
            cell(report.start, number_format="yyyy-mm-dd"),
            cell(report.end, number_format="yyyy-mm-dd"),
        ]
    )
    sheet.append([])
    currency = f" ({report.currency})"
    headings = [
        labels["collector"],
        labels["phone"],
        labels["visits"],
        labels["collected"],
        labels["failed"],
        labels["success_rate"],
        labels["cash_collected"] + currency,
        labels["commission_earned"] + currency,
        labels["paid_out"] + currency,
        labels["balance"] + currency,
        labels["cash_on_hand"] + currency,
        labels["debt"] + currency,
    ]
    sheet.append([cell(h, strong=True) for h in headings])
    for r in report.rows:
        name = f"{r.name} ({labels['removed']})" if r.deleted else r.name
        sheet.append(
            [
                cell(name),
                cell(r.phone or ""),
                cell(r.visits),
                cell(r.collected),
                cell(r.failed),
                rate(r.collected, r.visits),
                money(r.cash_collected_minor),
                money(r.commission_earned_minor),
                money(r.paid_out_minor),
                money(r.balance_minor),
                money(r.cash_on_hand_minor),
                money(r.debt_minor),
            ]
        )
    total = _totals(report)
    sheet.append(
        [
            cell(labels["total"], strong=True),
            cell(None),
            cell(total["visits"], strong=True),
            cell(total["collected"], strong=True),
            cell(total["failed"], strong=True),
            rate(total["collected"], total["visits"], strong=True),
            *(money(total[f], strong=True) for f in (*_MONEY_FIELDS, *_NOW_FIELDS)),
        ]
    )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _sheet_title(title: str) -> str:
    # Excel: at most 31 characters, none of []:*?/\
    return "".join(" " if ch in "[]:*?/\\" else ch for ch in title).strip()[:31]


async def collector_report_documents(
    actor: Staff, report: CollectorReport, *, language: str
) -> ReportDocuments:
    """Both files for `report`, rendered in worker threads (the event loop keeps serving).

    `report` comes from `collector_report(actor, ...)`, which checked what the actor may see;
    this only adds the company's name.
    """
    tenant = await Tenant.get(id=actor.tenant_id)
    pdf = await asyncio.to_thread(
        render_collector_report_pdf, report, company=tenant.name, language=language
    )
    xlsx = await asyncio.to_thread(
        render_collector_report_xlsx, report, company=tenant.name, language=language
    )
    stem = f"collector-report-{report.start.isoformat()}-{report.end.isoformat()}"
    return ReportDocuments(pdf=pdf, xlsx=xlsx, pdf_name=f"{stem}.pdf", xlsx_name=f"{stem}.xlsx")
