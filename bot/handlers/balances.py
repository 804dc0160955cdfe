"""What subscribers owe, for admins and reseller staff: `/subscriber` and `/balances`.

- `/subscriber <username>`: the subscriber's story: who and where they are, their service,
  what they owe (and how much of it is overdue), their open invoices and last payments.
- `/balances [area=…] [reseller=…] [overdue] [limit=N]`: the subscribers who owe most,
  largest first, with totals over everyone the filter matches (not only the lines shown).

Each command parses its arguments, calls one service of `core/services/balances.py` (which
checks the role and the reseller scope again) and renders
`templates/chat/<language>/balances.toml`. Arguments that do not fit get one sentence with
the right form, and nothing is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import Update
from telegram.ext import Application, CommandHandler, ContextTypes

from bot.auth import Handler
from bot.handlers.office import BadArgs, _args, _key_values, office, send_long
from bot.handlers.office import _word as office_word
from bot.replies import send
from bot.texts import Locale, catalog, render
from core.db.models import Staff
from core.services.balances import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    LargestBalances,
    SubscriberFacts,
    SubscriberStory,
    largest_balances,
    subscriber_story,
)

FILTER_KEYS = ("area", "reseller", "limit")
OVERDUE = "overdue"
USAGE = "balances.usage.balances"


def _word(loc: Locale, key: str) -> str:
    """The catalog's word for an enum value (`balances.words.billing_mode.prepaid`)."""
    return render(loc, key) if key in catalog("en") else key.rsplit(".", 1)[-1]


# --- /subscriber ---------------------------------------------------------------------------


def _place(s: SubscriberFacts) -> str:
    """Address, street and area, each left out if an earlier part already says it."""
    kept: list[str] = []
    for part in (s.address, s.street, s.area):
        part = part.strip()
        if part and not any(part.casefold() in k.casefold() for k in kept):
            kept.append(part)
    return ", ".join(kept)


def story_lines(loc: Locale, story: SubscriberStory) -> list[str]:
    """The story as lines, each one balanced HTML (so a long story can be cut between them)."""
    s, b = story.subscriber, story.balance
    lines = [
        render(loc, "balances.story.header", s=s),
        render(loc, "balances.story.contact", s=s, place=_place(s)),
        render(
            loc,
            "balances.story.status",
            s=s,
            expired=story.expired,
            status_word=_word(loc, f"balances.words.subscriber_status.{s.status.value}"),
            mode_word=_word(loc, f"balances.words.billing_mode.{s.billing_mode.value}"),
        ),
    ]
    if not b.open_invoices:
        lines.append(render(loc, "balances.story.owes_nothing"))
    else:
        lines.append(render(loc, "balances.story.owes", b=b))
        lines.append(render(loc, "balances.story.open_title"))
        lines.extend(
            render(
                loc,
                "balances.story.invoice",
                i=i,
                purpose=office_word(loc, "purpose", i.purpose.value),
            )
            for i in story.open_invoices
        )
        if story.open_not_shown:
            lines.append(render(loc, "balances.story.open_more", more=story.open_not_shown))
    lines.append(render(loc, "balances.story.payments_title", count=len(story.payments)))
    lines.extend(
        render(
            loc,
            "balances.story.payment",
            p=p,
            method=office_word(loc, "method", p.method.value),
        )
        for p in story.payments
    )
    return lines


@office
async def subscriber(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if len(args) != 1:
        raise BadArgs("balances.usage.subscriber")
    story = await subscriber_story(staff, username=args[0])
    await send_long(update, story_lines(loc, story))


# --- /balances -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Filters:
    area: str | None = None
    reseller: str | None = None
    overdue_only: bool = False
    limit: int = DEFAULT_LIMIT


def parse_filters(tokens: list[str]) -> _Filters:
    """`area=… reseller=… limit=N overdue` in any order; `overdue` is a word of its own and
    a value may have spaces (`area=Old Town`)."""
    overdue = any(t.lower() == OVERDUE for t in tokens)
    rest = [t for t in tokens if t.lower() != OVERDUE]
    values = _key_values(rest, FILTER_KEYS, USAGE, unknown_key="balances.bad_filter")
    if any(not value for value in values.values()):
        raise BadArgs(USAGE)
    limit = DEFAULT_LIMIT
    if "limit" in values:
        text = values["limit"]
        if not text.isdecimal() or not 1 <= int(text) <= MAX_LIMIT:
            raise BadArgs("balances.bad_limit", value=text, max=MAX_LIMIT)
        limit = int(text)
    return _Filters(values.get("area"), values.get("reseller"), overdue, limit)


def _described(loc: Locale, found: LargestBalances) -> list[str]:
    parts = [p for p in (found.area, found.reseller_name) if p]
    if found.overdue_only:
        parts.append(render(loc, "balances.list.overdue_word"))
    return parts or [render(loc, "balances.list.everyone")]


def balance_lines(loc: Locale, found: LargestBalances) -> list[str]:
    filters = _described(loc, found)
    lines = [render(loc, "balances.list.header", filters=filters)]
    lines.extend(
        render(loc, "balances.list.line", n=n, r=row) for n, row in enumerate(found.rows, 1)
    )
    lines.append(render(loc, "balances.list.totals", l=found, shown=len(found.rows)))
    return lines


@office
async def balances(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    filters = parse_filters(_args(context))
    found = await largest_balances(
        staff,
        area=filters.area,
        reseller=filters.reseller,
        overdue_only=filters.overdue_only,
        limit=filters.limit,
    )
    if not found.rows:
        await send(update, loc, "balances.list.empty", filters=_described(loc, found))
        return
    await send_long(update, balance_lines(loc, found))


# --- wiring --------------------------------------------------------------------------------

COMMANDS: tuple[tuple[str, Handler], ...] = (
    ("subscriber", subscriber),
    ("balances", balances),
)


def register(application: Application) -> None:
    """`/subscriber` and `/balances` (no buttons)."""
    for name, handler in COMMANDS:
        application.add_handler(CommandHandler(name, handler))
