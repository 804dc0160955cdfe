"""HTML templates to PDF bytes: jinja2 over `templates/documents/`, xhtml2pdf, one embedded font.

Owns the jinja2 Environment of the subscriber-facing documents, the embedded font and the
one call into xhtml2pdf. Everything here is synchronous and pure (no database, no clock,
no event loop): services call it through `asyncio.to_thread`.

Invariants:
- Text is drawn with DejaVu Sans, shipped in `templates/fonts/` (regular and bold, with its
  license), never with a system font, so a PDF looks the same on every machine. The font
  is registered with ReportLab once per process under the family `FONT_FAMILY`; a template
  names that family in its CSS.
- Arabic comes out joined and right to left: xhtml2pdf 0.2.28 reshapes Arabic letters into
  the presentation forms DejaVu Sans carries (`util.shape_frag_text`) and reorders each
  line with the bidirectional algorithm when it draws it. Bengali cannot be shaped by
  xhtml2pdf and DejaVu Sans has no Bengali glyphs: `drawable()` tells a caller which text
  would come out as empty boxes, so it can show something else.
- A document may read nothing but the font folder: no network, no other file. Templates
  are autoescaped and fed subscriber-typed names, so even a name that looks like markup
  fetches nothing.
- xhtml2pdf reporting an error raises `DocumentError`: a broken template is a bug, not
  bad input, and must not produce a half-empty PDF that is then sent to a subscriber.
"""

from __future__ import annotations

import io
import threading
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from xhtml2pdf import default as xhtml2pdf_default
from xhtml2pdf import pisa
from xhtml2pdf.config.resources import ResourceAccessPolicy

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
DOCUMENT_TEMPLATES = TEMPLATES / "documents"
FONTS = TEMPLATES / "fonts"

# The CSS font-family templates use, and the ReportLab names behind it.
FONT_FAMILY = "collectbot-sans"
_REGULAR = "CollectbotSans"
_BOLD = "CollectbotSans-Bold"
_FONT_FILES = {_REGULAR: FONTS / "DejaVuSans.ttf", _BOLD: FONTS / "DejaVuSans-Bold.ttf"}

# Local reads confined to the fonts (the only files a document uses) and no network at all.
_POLICY = ResourceAccessPolicy(allow_remote=False, base_dir=FONTS)
_font_lock = threading.Lock()


class DocumentError(RuntimeError):
    """xhtml2pdf could not render a document template (a bug in the template)."""


def render_pdf(template_name: str, context: dict[str, Any]) -> bytes:
    """The PDF of `templates/documents/<template_name>` rendered with `context`.

    Raises:
        DocumentError: xhtml2pdf reported errors.
        jinja2.UndefinedError: the template used a name `context` does not give.
    """
    register_fonts()
    html = _environment().get_template(template_name).render(context)
    out = io.BytesIO()
    status = pisa.CreatePDF(html, dest=out, encoding="utf-8", resource_policy=_POLICY)
    if status.err:
        raise DocumentError(f"xhtml2pdf could not render {template_name} ({status.err} errors)")
    return out.getvalue()


def drawable(text: str) -> bool:
    """Whether the embedded font has a glyph for every character of `text`.

    Bengali (and any script DejaVu Sans lacks) is not: it would print as empty boxes.
    """
    return _coverage().issuperset(ord(ch) for ch in text if not ch.isspace())


def register_fonts() -> None:
    """Make `FONT_FAMILY` known to ReportLab and xhtml2pdf; does the work once per process.

    Registering with ReportLab directly, rather than through an `@font-face` rule in each
    template, is what keeps the font's cost out of every render: xhtml2pdf's `@font-face`
    re-reads and hashes both font files (1.5 MB) for each document to see whether they
    changed. xhtml2pdf resolves a CSS family through its table of built-in names, which
    each document copies when it starts; the family is added there.
    """
    if FONT_FAMILY in xhtml2pdf_default.DEFAULT_FONT:
        return
    with _font_lock:
        if FONT_FAMILY in xhtml2pdf_default.DEFAULT_FONT:
            return
        for name, path in _FONT_FILES.items():
            pdfmetrics.registerFont(TTFont(name, str(path)))
        # <b> and font-weight: bold find the bold face through this family mapping; there
        # is no italic face, so italics stay upright rather than falling back to Helvetica.
        pdfmetrics.registerFontFamily(
            _REGULAR, normal=_REGULAR, bold=_BOLD, italic=_REGULAR, boldItalic=_BOLD
        )
        xhtml2pdf_default.DEFAULT_FONT[FONT_FAMILY] = _REGULAR


@cache
def _coverage() -> frozenset[int]:
    register_fonts()
    font = pdfmetrics.getFont(_REGULAR)
    return frozenset(font.face.charToGlyph)


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(DOCUMENT_TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
