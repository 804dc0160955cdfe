"""The wording of subscriber-facing documents: languages, labels, money and dates.

Owns which language a subscriber reads (`caption_language`, `pdf_language`), the label
tables of the PDFs (`templates/documents/labels.toml`) and the jinja2 Environment of the
WhatsApp texts (`templates/whatsapp/<language>/<kind>.txt`).

Languages, decided once here:
- WhatsApp texts come in every language that has a template folder (en, bn, ar). The phone
  shapes Bengali and Arabic itself, so the caption is where a Bengali reader gets the
  receipt's essentials in their own language.
- PDFs are written in English or Arabic (`PDF_LANGUAGES`). xhtml2pdf cannot shape Bengali
  (conjuncts and vowel signs come apart, DESIGN.md section 10) and the embedded DejaVu
  Sans has no Bengali glyphs, so a Bengali reader's PDF keeps English headings, as the
  collector report does. Arabic is shaped and reordered by xhtml2pdf, so its headings are
  Arabic and the page runs right to left.
- Digits are Latin everywhere (babel's default numbering for en, bn and ar here).

Money: a PDF shows the exact amount with the currency as CLDR writes it in English
(`format_money(..., "en")`: `BDT1,500.00`), which the embedded font can always draw (the
taka sign is not in DejaVu Sans). WhatsApp texts use the short form people write in chat
(`display_money`: `৳1,500`), the same as the bot's.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date, datetime
from functools import cache
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from core.documents.pdf import TEMPLATES
from core.domain.money import display_money, format_money

DEFAULT_LANGUAGE = "en"
PDF_LANGUAGES = frozenset({"en", "ar"})
RTL_LANGUAGES = frozenset({"ar"})
WHATSAPP_TEMPLATES = TEMPLATES / "whatsapp"
LABELS_FILE = TEMPLATES / "documents" / "labels.toml"
# WhatsApp refuses a document caption longer than this (characters).
CAPTION_LIMIT = 1024

_DATE_PATTERN = "d MMM y"
_CAPTION_DATE_PATTERN = "d MMMM y"


def base_language(code: str | None) -> str:
    """`bn-BD`, `bn_BD`, ` BN ` -> `bn`; empty or None -> ``."""
    return re.split(r"[-_]", (code or "").strip().lower(), maxsplit=1)[0]


def caption_language(*preferences: str | None, kind: str = "receipt") -> str:
    """The first of `preferences` with a WhatsApp template of `kind`, else English.

    Called with the subscriber's language, then the tenant's locale.
    """
    available = whatsapp_languages(kind)
    for preference in preferences:
        language = base_language(preference)
        if language in available:
            return language
    return DEFAULT_LANGUAGE


def pdf_language(language: str) -> str:
    """The language a PDF for a `language` reader is written in (see the module docstring)."""
    return language if language in PDF_LANGUAGES else DEFAULT_LANGUAGE


@cache
def whatsapp_languages(kind: str) -> frozenset[str]:
    """Languages that have a WhatsApp text template of `kind`."""
    return frozenset(p.parent.name for p in WHATSAPP_TEMPLATES.glob(f"*/{kind}.txt"))


@cache
def labels(language: str) -> dict[str, str]:
    """The PDF labels of `language`, English where a key is missing (method words included,
    as `method_<value>`). Cached and shared: read it, never change it."""
    with LABELS_FILE.open("rb") as handle:
        table = tomllib.load(handle)

    def flat(lang: str) -> dict[str, str]:
        words = dict(table.get(lang, {}))
        methods = words.pop("methods", {})
        out = {str(k): str(v) for k, v in words.items()}
        out.update({f"method_{k}": str(v) for k, v in methods.items()})
        return out

    merged = flat(DEFAULT_LANGUAGE)
    if language != DEFAULT_LANGUAGE:
        merged |= flat(language)
    return merged


def pdf_money(amount_minor: int, currency: str) -> str:
    """An exact amount for a PDF: `BDT1,500.00`, `$12.50`, `KWD1.500`."""
    return format_money(amount_minor, currency, "en")


def chat_money(amount_minor: int, currency: str, *, language: str, country: str) -> str:
    """An amount for a WhatsApp text, as the bot writes it: `৳1,500`, `৳1,500.50`."""
    return display_money(amount_minor, currency, locale=language, country=country)


def day_text(day: date, language: str, *, long: bool = False) -> str:
    """`24 Dec 2026` (PDF) or `24 December 2026` (`long`, WhatsApp) in `language`."""
    return format_date(day, _CAPTION_DATE_PATTERN if long else _DATE_PATTERN, locale=language)


def moment_text(moment: datetime, timezone: str, language: str) -> str:
    """`24 Nov 2026, 10:00` in the tenant's time zone (an aware `moment` is required)."""
    if moment.tzinfo is None:
        raise ValueError("a moment to show must be timezone-aware")
    local = moment.astimezone(ZoneInfo(timezone))
    comma = "،" if language == "ar" else ","
    return (
        f"{day_text(local.date(), language)}{comma} {format_time(local, 'HH:mm', locale=language)}"
    )


@cache
def text_environment() -> Environment:
    """WhatsApp texts are plain text: no autoescaping (a name with `&` stays as typed)."""
    return Environment(
        loader=FileSystemLoader(WHATSAPP_TEMPLATES),
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render_text(kind: str, language: str, context: dict[str, object]) -> str:
    """`templates/whatsapp/<language>/<kind>.txt` rendered, at most `CAPTION_LIMIT` characters.

    Runs of blank lines become one, so a template may leave a paragraph break around an
    optional line without doubling it when the line is left out.
    """
    text = text_environment().get_template(f"{language}/{kind}.txt").render(context)
    text = re.sub(r"\n\s*\n+", "\n\n", "\n".join(line.rstrip() for line in text.splitlines()))
    text = text.strip()
    if len(text) > CAPTION_LIMIT:
        # Names are bounded by their columns, so this is a guard, not a path taken today.
        text = text[: CAPTION_LIMIT - 1] + "…"
    return text
