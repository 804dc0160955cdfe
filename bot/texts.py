"""Every sentence the bot says, from the catalogs in `templates/chat/<language>/*.toml`.

A catalog maps a key (`route.header`) to a Jinja2 template. Templates are rendered with
HTML autoescaping, because messages go out with `parse_mode=HTML`: a subscriber named
`<Rahim>` is shown, never parsed. Money, dates and times go through filters that know the
tenant's currency, country and time zone and the reader's language:

    {{ amount | money }}   ৳1,500
    {{ day | day }}        Tuesday 24 Nov
    {{ moment | time }}    10:42 (tenant's time zone)

English is complete by definition; a test holds every other catalog to the same keys.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from jinja2 import Environment, StrictUndefined, Template, pass_context

from core.domain.money import display_money

CATALOG_DIR = Path(__file__).resolve().parents[1] / "templates" / "chat"
DEFAULT_LANGUAGE = "en"
LANGUAGES = {"en": "English", "bn": "বাংলা"}


@dataclass(frozen=True)
class Locale:
    """Who reads the message and whose money it is about."""

    language: str = DEFAULT_LANGUAGE
    currency: str = "BDT"
    country: str = "BD"
    timezone: str = "Asia/Dhaka"


@pass_context
def _money(ctx: Any, amount_minor: int) -> str:
    loc: Locale = ctx["loc"]
    return display_money(amount_minor, loc.currency, locale=loc.language, country=loc.country)


@pass_context
def _day(ctx: Any, value: date | datetime, pattern: str = "EEEE d MMM") -> str:
    loc: Locale = ctx["loc"]
    if isinstance(value, datetime):
        value = value.astimezone(ZoneInfo(loc.timezone)).date()
    return format_date(value, pattern, locale=loc.language)


@pass_context
def _time(ctx: Any, value: datetime, pattern: str = "HH:mm") -> str:
    loc: Locale = ctx["loc"]
    return format_datetime(value, pattern, tzinfo=ZoneInfo(loc.timezone), locale=loc.language)


@pass_context
def _moment(ctx: Any, value: datetime) -> str:
    return f"{_day(ctx, value, 'd MMM')} {_time(ctx, value)}"


def _environment() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True)
    env.filters.update(money=_money, day=_day, time=_time, moment=_moment)
    return env


_ENV = _environment()


def _flatten(prefix: str, table: dict[str, Any], into: dict[str, str]) -> None:
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            _flatten(name, value, into)
        else:
            into[name] = str(value)


@cache
def catalog(language: str) -> dict[str, str]:
    """All keys of one language (every `*.toml` in its folder), flattened to dotted names."""
    merged: dict[str, str] = {}
    folder = CATALOG_DIR / language
    for path in sorted(folder.glob("*.toml")):
        with path.open("rb") as handle:
            _flatten("", tomllib.load(handle), merged)
    return merged


@cache
def _template(language: str, key: str) -> Template:
    texts = catalog(language)
    source = texts.get(key)
    if source is None:
        source = catalog(DEFAULT_LANGUAGE)[key]  # KeyError: a key missing from English is a bug
    return _ENV.from_string(source.strip("\n"))


def render(loc: Locale, key: str, **context: Any) -> str:
    """The text of `key` in the reader's language, filled in with `context`."""
    language = loc.language if loc.language in LANGUAGES else DEFAULT_LANGUAGE
    return _template(language, key).render(loc=loc, **context).strip()
