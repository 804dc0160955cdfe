"""Admins and reseller staff: collectors, routes, reports, commission, invoice stories.

Each command parses its arguments, calls the service that owns the use case (which checks
the role, the reseller permissions and the scope again), and renders texts of
`templates/chat/<language>/office.toml`. Arguments that do not fit get one sentence with
the right form, and nothing changes.

Confirmation buttons carry short data only (Telegram allows 64 bytes), and none of it is
trusted: the services re-check everything when a button is pressed.
- `/pay`: `off:pay:<collector>:<amount>[:d]` (`:d`: deduct what the collector owes from
  it, the admin's choice on the button); the payout's idempotency key is the confirmation
  message (chat id + message id), so a double tap pays once.
- `/deletecollector`: `off:del:<collector>`.
- `/assign ... area=...`: `off:as:<token>`. The preview's invoice numbers stay in this
  person's `user_data` under the token (persisted, so any process can serve the press);
  the first press takes the token, so a second press assigns nothing.

Long answers (an invoice's story, a long route) are cut between lines into messages of at
most 4096 characters; catalog texts keep every HTML tag within one line, so a cut never
splits a tag.
"""

from __future__ import annotations

import asyncio
import functools
import html
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel.numbers import format_decimal
from markupsafe import Markup
from telegram import Update
from telegram.constants import ChatAction, ParseMode
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.auth import Handler, origin_of, staff_only
from bot.previews import peek_preview, remember_preview, take_preview
from bot.replies import answer, edit, locale_for, send
from bot.texts import Locale, catalog, render
from core.config import Settings
from core.db.models import Staff
from core.domain.ledger import debt_deducted
from core.domain.money import parse_amount, parse_rate
from core.domain.phones import normalise_phone
from core.domain.status import AssignmentStatus, InvoiceStatus, Role
from core.errors import InvalidAmount, InvalidInput, NotFound
from core.services.access import (
    COLLECTORS_ASSIGN,
    COLLECTORS_COMMISSION_PAY,
    COLLECTORS_DELETE,
    COLLECTORS_EDIT,
    COLLECTORS_VIEW,
)
from core.services.assignments import assign_invoices, preview_assignment, unassign
from core.services.collectors import (
    commission_due,
    list_collectors,
    open_assignments,
    resolve_collector,
    resolve_reseller,
    route_load,
)
from core.services.commission import pay_commission
from core.services.documents import collector_report_documents
from core.services.reports import MAX_PERIOD_DAYS, collector_report
from core.services.staff import create_invite, delete_staff, edit_staff, invite_link, reset_staff
from core.services.story import InvoiceStory, MessageEntry, PaymentEntry, invoice_story

OFFICE_ROLES = (Role.ADMIN, Role.RESELLER)
MAX_MESSAGE = 4096  # Telegram's limit for a message's text
PREVIEWS = "office_assign"  # user_data: token -> {"c": collector id, "n": [invoice numbers]}
OPEN_SHOWN_PER_ROUTE = 10  # /open: stops listed per collector (totals count them all)
OPEN_SHOWN_ONE_ROUTE = 300  # /open <collector>
REFUSALS_SHOWN = 10
NUMBERS_PER_LINE = 8
FILTER_KEYS = ("area", "status", "reseller", "limit")
STATUSES = ("unpaid", "partial", "overdue")
EDIT_KEYS = ("name", "phone", "commission", "cap")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_AMOUNT_LIKE = re.compile(r"[\d.,]+")

# What `assign_invoices` says about a refused invoice, to the catalog key that says it in
# the reader's language (an unknown reason is shown as the service wrote it).
_REFUSAL_KEYS = {
    "already paid": "paid",
    "cancelled": "cancelled",
    "a draft, not approved yet": "draft",
    "not found": "not_found",
    "already on the route": "on_this_route",
    "already on another route": "on_another_route",
}
_REFUSAL_PATTERNS = (
    (re.compile(r"already on (?P<name>.+)'s route"), "on_route_of"),
    (re.compile(r"outside (?P<name>.+)'s reseller"), "outside_reseller"),
)

OfficeHandler = Callable[[Update, ContextTypes.DEFAULT_TYPE, Staff, Locale], Awaitable[None]]


class BadArgs(Exception):
    """What was typed (or pressed) does not fit: answered with one catalog sentence."""

    def __init__(self, text_key: str, /, **params: Any) -> None:
        super().__init__(text_key)
        self.key = text_key
        self.params = params


def office(handler: OfficeHandler) -> Handler:
    """Admins and reseller staff only; the reader's locale; bad arguments answered."""

    @staff_only(*OFFICE_ROLES)
    @functools.wraps(handler)
    async def run(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
        loc = await locale_for(staff, context)
        try:
            await handler(update, context, staff, loc)
        except BadArgs as bad:
            await answer(update, loc, bad.key, alert=True, **bad.params)

    return run


# --- long messages -------------------------------------------------------------------------


def _units(text: str) -> int:
    # Telegram counts UTF-16 code units; counting the HTML source over-estimates, never under.
    return len(text.encode("utf-16-le")) // 2


def split_message(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Cut `text` into messages of at most `limit`, only between lines.

    Every line must be balanced HTML on its own (the catalogs are written so). A single
    line longer than `limit` is sent as plain text in pieces, so no tag is ever cut.
    """
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.split("\n"):
        for piece in _fit(line, limit):
            extra = _units(piece) + (1 if current else 0)
            if current and size + extra > limit:
                chunks.append("\n".join(current))
                current, size, extra = [], 0, _units(piece)
            current.append(piece)
            size += extra
    if current:
        chunks.append("\n".join(current))
    return [c for c in chunks if c.strip()]


def _fit(line: str, limit: int) -> Iterator[str]:
    if _units(line) <= limit:
        yield line
        return
    plain = html.unescape(re.sub(r"<[^>]+>", "", line))
    piece, size = "", 0
    for char in plain:
        escaped = html.escape(char, quote=False)
        if size + _units(escaped) > limit:
            yield piece
            piece, size = "", 0
        piece += escaped
        size += _units(escaped)
    if piece:
        yield piece


async def send_long(update: Update, lines: Iterable[str]) -> None:
    """Send lines as few messages as Telegram allows."""
    assert update.effective_chat is not None
    for chunk in split_message("\n".join(lines)):
        await update.effective_chat.send_message(chunk, parse_mode=ParseMode.HTML)


# --- parsing helpers -----------------------------------------------------------------------


def _args(context: ContextTypes.DEFAULT_TYPE) -> list[str]:
    return [a for a in (context.args or []) if a.strip()]


def _settings(context: ContextTypes.DEFAULT_TYPE) -> Settings:
    return context.application.bot_data["settings"]


def split_args(
    tokens: list[str], keys: tuple[str, ...], *, unknown_key: str = "office.unknown_key"
) -> tuple[list[str], dict[str, str]]:
    """Words, then `key=value` pairs, as every office command takes them: a word after a
    pair continues its value (`area=Old Town`, `note=paid at the desk`). A key not in
    `keys` is answered with the catalog sentence `unknown_key` (field, allowed)."""
    words: list[str] = []
    values: dict[str, str] = {}
    current: str | None = None
    for token in tokens:
        key, sep, value = token.partition("=")
        if sep:
            key = key.strip().lower()
            if key not in keys:
                raise BadArgs(unknown_key, field=key, allowed=", ".join(keys))
            values[key] = value.strip()
            current = key
        elif current is not None:
            values[current] = f"{values[current]} {token}".strip()
        else:
            words.append(token)
    return words, values


def _key_values(
    tokens: list[str],
    allowed: tuple[str, ...],
    usage: str,
    *,
    unknown_key: str = "office.unknown_key",
) -> dict[str, str]:
    """Only `key=value` pairs (see `split_args`); a word before the first is answered with
    the command's `usage`."""
    words, values = split_args(tokens, allowed, unknown_key=unknown_key)
    if words:
        raise BadArgs(usage)
    return values


def parse_day(text: str, bad_date: str) -> date:
    """A YYYY-MM-DD day, or the catalog sentence `bad_date` (value)."""
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise BadArgs(bad_date, value=text) from exc


def _phone(text: str, loc: Locale) -> str:
    try:
        return normalise_phone(text, loc.country)
    except InvalidInput as exc:
        raise BadArgs("office.bad_phone", phone=text) from exc


def _rate_bp(text: str) -> int:
    try:
        return parse_rate(text)
    except InvalidAmount as exc:
        raise BadArgs("office.bad_commission", value=text) from exc


def _percent(value: Decimal, loc: Locale) -> str:
    return format_decimal(value, format="#,##0.##", locale=loc.language)


def _rate_text(bp: int, loc: Locale) -> str:
    return _percent(Decimal(bp) / 100, loc)


def _success_text(collected: int, visits: int, loc: Locale) -> str | None:
    """The success rate as a number to put before a % sign; None without visits."""
    if not visits:
        return None
    return format_decimal(Decimal(collected * 100) / visits, format="0.#", locale=loc.language)


# --- collectors ----------------------------------------------------------------------------


@office
async def collectors_list(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    lines = await list_collectors(staff)
    if not lines:
        await send(update, loc, "office.collectors.none")
        return
    out = [render(loc, "office.collectors.header", count=len(lines))]
    for c in lines:
        out.append(
            render(
                loc,
                "office.collectors.line",
                c=c,
                rate=_rate_text(c.commission_bp, loc),
            )
        )
    await send_long(update, out)


@office
async def new_collector(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if len(args) < 3:
        raise BadArgs("office.usage.newcollector")
    *name_words, phone_text, rate_text = args
    phone = _phone(phone_text, loc)
    rate = _rate_bp(rate_text)
    settings = _settings(context)
    invite = await create_invite(
        staff,
        role=Role.COLLECTOR,
        name=" ".join(name_words),
        phone=phone,
        commission_bp=rate,
        ttl=timedelta(hours=settings.invite_ttl_hours),
        origin=origin_of(update),
    )
    await send(
        update,
        loc,
        "office.newcollector.done",
        name=invite.staff.name,
        id=invite.staff.id,
        phone=invite.staff.phone,
        rate=_rate_text(rate, loc),
        link=invite_link(settings.bot_username, invite.token),
        expires=invite.expires_at,
    )


@office
async def edit_collector(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if len(args) < 2:
        raise BadArgs("office.usage.editcollector")
    fields = _key_values(args[1:], EDIT_KEYS, "office.usage.editcollector")
    changes: dict[str, Any] = {}
    if "name" in fields:
        if not fields["name"]:
            raise BadArgs("office.usage.editcollector")
        changes["name"] = fields["name"]
    if "phone" in fields:
        changes["phone"] = _phone(fields["phone"], loc) if fields["phone"] else ""
    if "commission" in fields:
        changes["commission_bp"] = _rate_bp(fields["commission"])
    if "cap" in fields:
        # `cap=none` (or 0) removes the cap.
        cap = fields["cap"].lower()
        changes["cash_cap_minor"] = (
            0 if cap in ("", "none", "no", "0") else parse_amount(fields["cap"], loc.currency)
        )
    collector = await resolve_collector(staff, args[0], permission=COLLECTORS_EDIT)
    saved = await edit_staff(staff, staff_id=collector.id, origin=origin_of(update), **changes)
    await send(
        update,
        loc,
        "office.editcollector.done",
        name=saved.name,
        id=saved.id,
        phone=saved.phone,
        rate=_rate_text(saved.commission_bp, loc),
        cap=saved.cash_cap_minor,
    )


@office
async def reset_collector(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if not args:
        raise BadArgs("office.usage.resetcollector")
    collector = await resolve_collector(staff, " ".join(args), permission=COLLECTORS_EDIT)
    settings = _settings(context)
    invite = await reset_staff(
        staff,
        staff_id=collector.id,
        ttl=timedelta(hours=settings.invite_ttl_hours),
        origin=origin_of(update),
    )
    await send(
        update,
        loc,
        "office.resetcollector.done",
        name=invite.staff.name,
        link=invite_link(settings.bot_username, invite.token),
        expires=invite.expires_at,
    )


@office
async def delete_collector(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if not args:
        raise BadArgs("office.usage.deletecollector")
    collector = await resolve_collector(staff, " ".join(args), permission=COLLECTORS_DELETE)
    if collector.deleted_at is not None:
        raise BadArgs("office.deletecollector.already", name=collector.name)
    buttons = [
        [
            (
                render(loc, "office.deletecollector.button", name=collector.name),
                f"off:del:{collector.id}",
            ),
            (render(loc, "common.cancel"), "off:no"),
        ]
    ]
    await send(
        update,
        loc,
        "office.deletecollector.confirm",
        buttons=buttons,
        name=collector.name,
        id=collector.id,
    )


@office
async def delete_confirmed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    match = _callback_match(context)
    removed = await delete_staff(staff, staff_id=int(match[1]), origin=origin_of(update))
    await answer(update, loc)
    await edit(update, loc, "office.deletecollector.done", name=removed.name)


# --- routes --------------------------------------------------------------------------------


def _refusal_text(loc: Locale, reason: str | None) -> str:
    text = reason or ""
    key = _REFUSAL_KEYS.get(text)
    if key:
        return render(loc, f"office.assign.reasons.{key}")
    for pattern, name in _REFUSAL_PATTERNS:
        found = pattern.fullmatch(text)
        if found:
            return render(loc, f"office.assign.reasons.{name}", name=found["name"])
    return text


@office
async def assign(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if len(args) < 2:
        raise BadArgs("office.usage.assign")
    ref, rest = args[0], args[1:]
    if "=" in rest[0]:
        await _assign_by_filter(update, context, staff, loc, ref, rest)
        return
    if any("=" in token for token in rest):
        raise BadArgs("office.usage.assign")
    collector = await resolve_collector(staff, ref, permission=COLLECTORS_ASSIGN)
    result = await assign_invoices(
        staff, collector_id=collector.id, numbers=rest, origin=origin_of(update)
    )
    stops, due = await route_load(staff, collector_id=collector.id)
    lines = [
        render(loc, "office.assign.line_assigned", number=o.number)
        if o.assignment_id is not None
        else render(
            loc,
            "office.assign.line_refused",
            number=o.number,
            reason=_refusal_text(loc, o.refused),
        )
        for o in result.outcomes
    ]
    lines.append(
        render(loc, "office.assign.route_now", name=result.collector_name, stops=stops, due=due)
    )
    await send_long(update, lines)


async def _assign_by_filter(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    staff: Staff,
    loc: Locale,
    ref: str,
    tokens: list[str],
) -> None:
    filters = _key_values(tokens, FILTER_KEYS, "office.usage.assign")
    if any(not value for value in filters.values()):
        raise BadArgs("office.usage.assign")
    status = filters.get("status", "").lower() or None
    if status is not None and status not in STATUSES:
        raise BadArgs("office.assign.bad_status", value=filters["status"])
    limit = None
    if "limit" in filters:
        if not filters["limit"].isdecimal() or int(filters["limit"]) <= 0:
            raise BadArgs("office.assign.bad_limit", value=filters["limit"])
        limit = int(filters["limit"])
    collector = await resolve_collector(staff, ref, permission=COLLECTORS_ASSIGN)
    reseller = (
        await resolve_reseller(staff, filters["reseller"]) if "reseller" in filters else None
    )
    preview = await preview_assignment(
        staff,
        collector_id=collector.id,
        area=filters.get("area"),
        reseller_id=reseller.id if reseller else None,
        status=status,
        limit=limit,
    )
    described = [preview.collector_name]
    if "area" in filters:
        described.append(filters["area"])
    if status:
        described.append(render(loc, f"office.assign.status_words.{status}"))
    if reseller:
        described.append(reseller.name)
    if limit:
        described.append(render(loc, "office.assign.limit_words", limit=limit))
    left_out: dict[str, Any] = {
        "on_other": preview.on_other_routes,
        "outside": preview.outside_collector_reseller,
        "name": preview.collector_name,
    }
    if not preview.numbers:
        await send(update, loc, "office.assign.preview_empty", filters=described, **left_out)
        return
    token = _remember_preview(update, context, preview.collector_id, preview.numbers)
    count = len(preview.numbers)
    buttons = [
        [
            (
                render(
                    loc, "office.assign.confirm_button", count=count, name=preview.collector_name
                ),
                f"off:as:{token}",
            )
        ],
        [
            (render(loc, "office.assign.list_button"), f"off:al:{token}"),
            (render(loc, "common.cancel"), f"off:no:{token}"),
        ],
    ]
    await send(
        update,
        loc,
        "office.assign.preview",
        buttons=buttons,
        filters=described,
        count=count,
        due=preview.total_due_minor,
        **left_out,
    )


def _remember_preview(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    collector_id: int,
    numbers: tuple[str, ...],
) -> str:
    return remember_preview(context, PREVIEWS, {"c": collector_id, "n": list(numbers)})


def _take_preview(
    update: Update, context: ContextTypes.DEFAULT_TYPE, token: str
) -> dict[str, Any] | None:
    """The preview behind `token`, removed so that it works once."""
    stored = take_preview(context, PREVIEWS, token)
    return stored if isinstance(stored, dict) else None


def _callback_match(context: ContextTypes.DEFAULT_TYPE) -> re.Match[str]:
    match = context.match
    assert match is not None  # the handler's pattern matched
    return match


@office
async def assign_confirmed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    token = _callback_match(context)[1]
    stored = _take_preview(update, context, token)  # a second press finds nothing
    if stored is None:
        raise BadArgs("office.assign.preview_gone")
    result = await assign_invoices(
        staff, collector_id=int(stored["c"]), numbers=stored["n"], origin=origin_of(update)
    )
    stops, due = await route_load(staff, collector_id=result.collector_id)
    # Already rendered (escaped) lines: Markup keeps the outer template from escaping twice.
    refused = [
        Markup(
            render(
                loc,
                "office.assign.line_refused",
                number=o.number,
                reason=_refusal_text(loc, o.refused),
            )
        )
        for o in result.refused[:REFUSALS_SHOWN]
    ]
    await answer(update, loc)
    await edit(
        update,
        loc,
        "office.assign.added" if result.assigned else "office.assign.none_added",
        added=len(result.assigned),
        refused_count=len(result.refused),
        refused=refused,
        name=result.collector_name,
        stops=stops,
        due=due,
    )


@office
async def assign_list(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    stored = peek_preview(context, PREVIEWS, _callback_match(context)[1])
    if not isinstance(stored, dict):
        raise BadArgs("office.assign.preview_gone")
    numbers = [str(n) for n in stored["n"]]
    await answer(update, loc)
    await send_long(
        update,
        [
            " · ".join(html.escape(n) for n in numbers[i : i + NUMBERS_PER_LINE])
            for i in range(0, len(numbers), NUMBERS_PER_LINE)
        ],
    )


@office
async def cancelled(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    token = _callback_match(context)[1]
    if token:
        _take_preview(update, context, token)
    await answer(update, loc)
    await edit(update, loc, "common.cancelled")


@office
async def unassign_invoices(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if not args:
        raise BadArgs("office.usage.unassign")
    lines = []
    for number in dict.fromkeys(a.upper() for a in args):
        try:
            done = await unassign(staff, invoice_number=number, origin=origin_of(update))
        except NotFound:
            lines.append(render(loc, "office.unassign.not_on_route", number=number))
            continue
        lines.append(
            render(
                loc, "office.unassign.done", number=done.invoice_number, name=done.collector_name
            )
        )
    await send_long(update, lines)


@office
async def open_stops(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    collector = (
        await resolve_collector(staff, " ".join(args), permission=COLLECTORS_VIEW)
        if args
        else None
    )
    found = await open_assignments(
        staff,
        collector_id=collector.id if collector else None,
        shown_per_route=OPEN_SHOWN_ONE_ROUTE if collector else OPEN_SHOWN_PER_ROUTE,
    )
    if not found.routes:
        await send(update, loc, "office.open.none", name=collector.name if collector else None)
        return
    lines = [render(loc, "office.open.header", stops=found.stop_count, due=found.due_minor)]
    for route in found.routes:
        lines.append(render(loc, "office.open.route", route=route))
        lines.extend(render(loc, "office.open.stop", stop=stop) for stop in route.stops)
        if route.not_shown:
            lines.append(
                render(
                    loc,
                    "office.open.more",
                    more=route.not_shown,
                    ref=route.collector_id,
                )
            )
    await send_long(update, lines)


# --- report and commission -----------------------------------------------------------------


@office
async def report(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    start = end = None
    if len(args) >= 2 and _DATE.fullmatch(args[-2]) and _DATE.fullmatch(args[-1]):
        start, end = (parse_day(a, "office.report.bad_date") for a in args[-2:])
        args = args[:-2]
        if start > end:
            raise BadArgs("office.report.reversed")
        if (end - start).days >= MAX_PERIOD_DAYS:
            raise BadArgs("office.report.too_long")
    if any(_DATE.fullmatch(a) for a in args):
        raise BadArgs("office.usage.report")
    collector = (
        await resolve_collector(staff, " ".join(args), permission=COLLECTORS_VIEW)
        if args
        else None
    )
    result = await collector_report(
        staff, start=start, end=end, collector_id=collector.id if collector else None
    )
    lines = [render(loc, "office.report.header", start=result.start, end=result.end)]
    for row in result.rows:
        lines.append(
            render(
                loc,
                "office.report.block",
                r=row,
                success=_success_text(row.collected, row.visits, loc),
            )
        )
    if not result.rows:
        lines.append(render(loc, "office.report.empty"))
    elif len(result.rows) > 1:
        lines.append(
            render(
                loc,
                "office.report.totals",
                visits=result.total("visits"),
                collected=result.total("collected"),
                failed=result.total("failed"),
                success=_success_text(result.total("collected"), result.total("visits"), loc),
                cash=result.total("cash_collected_minor"),
                commission=result.total("commission_earned_minor"),
                paid_out=result.total("paid_out_minor"),
                balance=result.total("balance_minor"),
            )
        )
    await send_long(update, lines)
    if not result.rows:
        return
    assert update.effective_chat is not None
    await update.effective_chat.send_action(ChatAction.UPLOAD_DOCUMENT)
    files = await collector_report_documents(staff, result, language=loc.language)
    caption = render(loc, "office.report.caption", start=result.start, end=result.end)
    for data, name in ((files.pdf, files.pdf_name), (files.xlsx, files.xlsx_name)):
        await update.effective_chat.send_document(
            document=data, filename=name, caption=caption, parse_mode=ParseMode.HTML
        )


@office
async def pay(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if not args:
        raise BadArgs("office.usage.pay")
    amount_text = args[-1] if len(args) >= 2 and _AMOUNT_LIKE.fullmatch(args[-1]) else None
    ref = " ".join(args[:-1] if amount_text else args)
    collector = await resolve_collector(staff, ref, permission=COLLECTORS_COMMISSION_PAY)
    due = await commission_due(staff, collector_id=collector.id)
    if due.balance_minor <= 0:
        raise BadArgs("office.pay.nothing", name=due.name)
    amount = parse_amount(amount_text, loc.currency) if amount_text else due.balance_minor
    if amount > due.balance_minor:
        raise BadArgs("office.pay.above_balance", name=due.name, balance=due.balance_minor)
    deducted = debt_deducted(due.debt_minor, amount)
    data = f"off:pay:{due.collector_id}:{amount}"
    buttons = [[(render(loc, "office.pay.button", amount=amount), data)]]
    if deducted:
        # A shortage at handover is deducted only when the admin chooses it here.
        buttons = [
            [
                (
                    render(loc, "office.pay.deduct_button", cash=amount - deducted, debt=deducted),
                    f"{data}:d",
                )
            ],
            [(render(loc, "office.pay.keep_debt_button", amount=amount), data)],
        ]
    buttons.append([(render(loc, "common.cancel"), "off:no")])
    await send(
        update,
        loc,
        "office.pay.confirm",
        buttons=buttons,
        name=due.name,
        amount=amount,
        balance=due.balance_minor,
        debt=max(due.debt_minor, 0),
    )


@office
async def pay_confirmed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    match = _callback_match(context)
    query = update.callback_query
    assert query is not None and query.message is not None
    # One confirmation message, one payout: a double tap replays the first.
    key = f"pay:{query.message.chat.id}:{query.message.message_id}"
    result = await pay_commission(
        staff,
        collector_id=int(match[1]),
        amount_minor=int(match[2]),
        idempotency_key=key,
        deduct_debt=match[3] == "d",
        origin=origin_of(update),
    )
    await answer(update, loc, "office.pay.already_paid" if result.replayed else None)
    await edit(
        update,
        loc,
        "office.pay.done",
        name=result.collector_name,
        paid=result.paid_minor,
        cash=result.cash_paid_minor,
        deducted=result.debt_deducted_minor,
        debt=result.debt_after_minor,
        balance=result.balance_after_minor,
    )


# --- an invoice's story --------------------------------------------------------------------


def _word(loc: Locale, group: str, value: str) -> str:
    """The catalog's word for an enum value (`office.words.method.cash`), else the value."""
    key = f"office.words.{group}.{value}"
    return render(loc, key) if key in catalog("en") else value


def _delivery_events(loc: Locale, m: MessageEntry) -> list[tuple[str, datetime, str | None]]:
    """The message's journey: our send (if the gateway's own "sent" never came), then its
    delivery events, as (word, when, error)."""
    events = [(_word(loc, "delivery", e.status), e.occurred_at, e.error) for e in m.events]
    if events and m.sent_at is not None and all(e.status != "sent" for e in m.events):
        events.insert(0, (_word(loc, "delivery", "sent"), m.sent_at, None))
    return events


def story_lines(loc: Locale, story: InvoiceStory) -> list[str]:
    """The story as lines (each one balanced HTML), in the order CHAT.md shows it."""
    inv = story.invoice
    paid_at = story.payments[-1].received_at if story.payments else None
    status = "overdue" if inv.overdue else inv.status.value
    lines = [
        render(
            loc,
            "office.story.header",
            inv=inv,
            purpose=_word(loc, "purpose", inv.purpose.value),
            status=status,
            status_word=_word(loc, "invoice_status", status),
            paid_at=paid_at if inv.status == InvoiceStatus.PAID else None,
        ),
        render(loc, "office.story.subscriber", inv=inv),
    ]
    if story.balance is not None:
        lines.append(render(loc, "office.story.balance", b=story.balance, inv=inv))
    if inv.flagged_at is not None:
        lines.append(render(loc, "office.story.flagged", failed=inv.failed_visits))

    lines.append(render(loc, "office.story.payments_title", count=len(story.payments)))
    for p in story.payments:
        lines.append(
            render(loc, "office.story.payment", p=p, method=_word(loc, "method", p.method.value))
        )

    lines.append(render(loc, "office.story.visits_title", count=len(story.visits)))
    for v in story.visits:
        lines.append(
            render(
                loc,
                "office.story.visit",
                v=v,
                outcome=_word(loc, "visit", v.status.value),
                reason=_word(loc, "reason", v.failure_reason.value) if v.failure_reason else "",
                is_open=v.status == AssignmentStatus.ASSIGNED,
                collected=v.status == AssignmentStatus.COLLECTED,
            )
        )

    if story.messages:
        lines.append(render(loc, "office.story.messages_title"))
        for m in story.messages:
            lines.append(
                render(
                    loc,
                    "office.story.message",
                    m=m,
                    channel=_word(loc, "channel", m.channel),
                    kind=_word(loc, "message_kind", m.kind),
                    status_word=_word(loc, "delivery", m.status),
                    events=_delivery_events(loc, m),
                )
            )

    lines.append(render(loc, "office.story.audit_title", count=len(story.audit)))
    for a in story.audit:
        lines.append(
            render(
                loc,
                "office.story.audit",
                a=a,
                actor=a.actor_name or _word(loc, "actor", a.actor_kind),
                action=_word(loc, "action", a.action.replace(".", "_")),
            )
        )
    return lines


@office
async def invoice(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if len(args) != 1:
        raise BadArgs("office.usage.invoice")
    story = await invoice_story(staff, number=args[0])
    await send_long(update, story_lines(loc, story))
    for payment in story.payments:
        if payment.receipt is not None:
            await _send_receipt(update, context, loc, story, payment)


async def _send_receipt(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    loc: Locale,
    story: InvoiceStory,
    payment: PaymentEntry,
) -> None:
    receipt = payment.receipt
    assert receipt is not None and update.effective_chat is not None
    caption = render(loc, "office.story.receipt_caption", number=story.invoice.number, p=payment)
    photo: str | bytes | None = receipt.telegram_file_id
    if not photo:
        photo = await asyncio.to_thread(_read_stored(_settings(context).data_dir, receipt.path))
    if photo is None:
        await send(update, loc, "office.story.receipt_missing", p=payment)
        return
    await update.effective_chat.send_photo(photo=photo, caption=caption, parse_mode=ParseMode.HTML)


def _read_stored(data_dir: Path, relative: str) -> Callable[[], bytes | None]:
    """A reader of a stored file's bytes (None if gone), for a worker thread."""

    def read() -> bytes | None:
        root = Path(data_dir).resolve()
        path = (root / relative).resolve()
        # The path comes from our own database; still, never read outside the data folder.
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path.read_bytes()

    return read


# --- wiring --------------------------------------------------------------------------------

COMMANDS: tuple[tuple[str, Handler], ...] = (
    ("collectors", collectors_list),
    ("newcollector", new_collector),
    ("editcollector", edit_collector),
    ("resetcollector", reset_collector),
    ("deletecollector", delete_collector),
    ("assign", assign),
    ("unassign", unassign_invoices),
    ("open", open_stops),
    ("report", report),
    ("pay", pay),
    ("invoice", invoice),
)


def register(application: Application) -> None:
    """Office commands and their confirmation buttons (all button data starts `off:`)."""
    for name, handler in COMMANDS:
        application.add_handler(CommandHandler(name, handler))
    token = r"([A-Za-z0-9_-]{1,16})"
    application.add_handler(CallbackQueryHandler(assign_confirmed, pattern=rf"^off:as:{token}$"))
    application.add_handler(CallbackQueryHandler(assign_list, pattern=rf"^off:al:{token}$"))
    application.add_handler(
        CallbackQueryHandler(pay_confirmed, pattern=r"^off:pay:(\d{1,12}):(\d{1,15})(?::(d))?$")
    )
    application.add_handler(
        CallbackQueryHandler(delete_confirmed, pattern=r"^off:del:(\d{1,12})$")
    )
    application.add_handler(CallbackQueryHandler(cancelled, pattern=rf"^off:no(?::{token})?$"))
