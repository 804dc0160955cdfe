"""render_receipt_pdf: milliseconds per receipt PDF, against a one-line PDF of the same library.

Ours: `render_receipt_pdf` for a realistic receipt (a renewal paid in full in Dhaka: ISP,
receipt number, amount, time, subscriber, customer ID, invoice, method, balance, new expiry,
collector and phone), i.e. the jinja2 template, xhtml2pdf and the embedded DejaVu Sans
subset, exactly as the WhatsApp sender gets it.

Ceiling: xhtml2pdf rendering `<p>Paid</p>` in its built-in Helvetica, in the same process:
the least a PDF from this library costs (parsing its default CSS, building and writing a
page). Goal: ours takes at most 3x the ceiling (ceiling/ours >= 0.33).

Diagnostics, same run: the one-line PDF drawn with the embedded font (what embedding and
subsetting a TrueType font costs on its own, whatever the page says), and the receipt in
Arabic (shaping and bidi reordering). Every contender is warmed up, then run in turn,
alternating the order each round; medians are reported. The receipt is read back once
with pypdf to check it says what it should.

    .venv/bin/python -m bench.receipt [--runs 200]
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime

import reportlab
import xhtml2pdf
from pypdf import PdfReader
from reportlab.lib import rl_accel
from xhtml2pdf import pisa

from bench.common import Comparison, clock, print_table, say
from core.documents.pdf import FONT_FAMILY, register_fonts
from core.documents.receipt import ReceiptFacts, receipt_number, render_receipt_pdf
from core.domain.status import PaymentMethod

GOAL = 1 / 3  # the one-line PDF's time as a fraction of ours: ours at most 3x
WARMUPS = 20

RECEIPT = ReceiptFacts(
    isp_name="Dhaka Fiber Net",
    receipt_number=receipt_number(1_234_567),
    invoice_number="INV-2026-0042",
    subscriber_name="Rahim Uddin Chowdhury",
    subscriber_username="rahim.dhanmondi",
    amount_paid_minor=150_000,
    currency="BDT",
    country="BD",
    method=PaymentMethod.CASH,
    remaining_minor=0,
    collector_name="Karim Hossain",
    collector_phone="+8801711000001",
    paid_at=datetime(2026, 11, 24, 4, 42, tzinfo=UTC),
    timezone="Asia/Dhaka",
    new_expiry=date(2026, 12, 24),
    language="en",
)
ARABIC = replace(
    RECEIPT,
    isp_name="شبكة الرياض",
    subscriber_name="محمد العلي",
    currency="SAR",
    country="SA",
    timezone="Asia/Riyadh",
    language="ar",
)

ONE_LINE = "<p>Paid</p>"
ONE_LINE_FONT = f'<p style="font-family: {FONT_FAMILY}">Paid</p>'
FONT_LINE = "one line, embedded font"


def one_line(html: str) -> Callable[[], bytes]:
    def render() -> bytes:
        out = io.BytesIO()
        if pisa.CreatePDF(html, dest=out).err:
            raise SystemExit("xhtml2pdf failed on the one-line PDF")
        return out.getvalue()

    return render


def check_receipt(pdf: bytes) -> None:
    text = " ".join(PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())
    for expected in ("BDT1,500.00", "INV-2026-0042", "24 Dec 2026", "R-01234567"):
        if expected not in text:
            raise SystemExit(f"the receipt PDF does not say {expected!r}")


def run_alternating(named: dict[str, Callable[[], bytes]], runs: int) -> dict[str, list[float]]:
    """Seconds per render for each contender: warmed up, then in turn, alternating order."""
    times: dict[str, list[float]] = {name: [] for name in named}
    for fn in named.values():
        for _ in range(WARMUPS):
            fn()
    for n in range(runs):
        order = list(named.items())
        for name, fn in order if n % 2 == 0 else reversed(order):
            began = clock()
            fn()
            times[name].append(clock() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="renders of each (default 200)")
    args = parser.parse_args()
    register_fonts()
    accelerated = "with" if rl_accel._c_funcs else "without"
    say(
        f"machine: {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, xhtml2pdf {xhtml2pdf.__version__}, ReportLab "
        f"{reportlab.Version} {accelerated} its C accelerator (rl_accel)"
    )
    check_receipt(render_receipt_pdf(RECEIPT))
    contenders = {
        "receipt": lambda: render_receipt_pdf(RECEIPT),
        "one line": one_line(ONE_LINE),
        FONT_LINE: one_line(ONE_LINE_FONT),
        "receipt in Arabic": lambda: render_receipt_pdf(ARABIC),
    }
    times = run_alternating(contenders, args.runs)
    ms = {name: statistics.median(t) * 1000 for name, t in times.items()}
    size = len(render_receipt_pdf(RECEIPT))
    for name, value in ms.items():
        say(f"{name:<24} {value:6.2f} ms (median of {args.runs})  {value / ms['one line']:.2f}x")
    say(
        f"receipt / one line with the embedded font: {ms['receipt'] / ms[FONT_LINE]:.2f}x;"
        f" the font alone costs {ms[FONT_LINE] - ms['one line']:.2f} ms;"
        f" receipt PDF {size / 1024:.0f} KiB"
    )
    print_table(
        "render_receipt_pdf vs a one-line xhtml2pdf PDF (ms per PDF, median)",
        [
            Comparison(
                "xhtml2pdf",
                "ms per PDF (median)",
                ms["receipt"],
                ms["one line"],
                ms["one line"] / ms["receipt"],
                GOAL,
                f"receipt {ms['receipt'] / ms['one line']:.2f}x the one-line PDF (goal <= 3x)",
            )
        ],
        "line/receipt",
    )


if __name__ == "__main__":
    main()
