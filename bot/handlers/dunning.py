"""The office and the dunning clock: `/remind`, a bulk WhatsApp reminder with a preview.

`/remind [status=unpaid|partial] [area=…] [overdue]` shows how many subscribers the
reminder reaches, what they owe and who is left out (a request still pending, no phone
number, already reminded today), with a confirm button. Texts are in
`templates/chat/<language>/dunning.toml`.

Button data: `dun:rm:<token>` (send) and `dun:no:<token>` (cancel). The filters stay in this
person's `user_data` under the token (persisted, so any process can serve the press); the
first press takes the token, so a second press sends nothing. The service checks the role
and the reseller scope again, and the outbox's dedupe keys hold even a race: one reminder
per invoice and day.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.auth import origin_of
from bot.handlers.office import BadArgs, _args, _callback_match, _key_values, office
from bot.previews import remember_preview, take_preview
from bot.replies import answer, edit, send
from bot.texts import Locale, render
from core.db.models import Staff
from core.services.reminders import (
    BULK_STATUSES,
    BulkFilter,
    BulkReminderPreview,
    preview_bulk_reminder,
    send_bulk_reminder,
)

PREVIEWS = "dunning_remind"  # user_data: token -> {"s": status, "a": area, "o": overdue}
FILTER_KEYS = ("status", "area")
OVERDUE = "overdue"
TOKEN = r"([A-Za-z0-9_-]{1,16})"


def _parse(tokens: list[str]) -> BulkFilter:
    """`status=… area=… overdue` in any order; `overdue` is a word of its own."""
    overdue = any(t.lower() == OVERDUE for t in tokens)
    rest = [t for t in tokens if t.lower() != OVERDUE]
    values = _key_values(rest, FILTER_KEYS, "dunning.usage.remind")
    if any(not value for value in values.values()):
        raise BadArgs("dunning.usage.remind")
    status = values.get("status", "").lower() or None
    if status is not None and status not in BULK_STATUSES:
        raise BadArgs("dunning.remind.bad_status", value=values["status"])
    return BulkFilter(status=status, area=values.get("area"), overdue_only=overdue)


def _described(loc: Locale, filters: BulkFilter) -> list[str]:
    parts = []
    if filters.status:
        parts.append(render(loc, f"dunning.remind.status_words.{filters.status}"))
    if filters.area:
        parts.append(filters.area)
    if filters.overdue_only:
        parts.append(render(loc, "dunning.remind.overdue_word"))
    return parts or [render(loc, "dunning.remind.everyone")]


def _left_out(loc: Locale, preview: BulkReminderPreview) -> str:
    counts = (
        ("pending_request", preview.pending_request),
        ("no_phone", preview.no_phone),
        ("reminded_today", preview.reminded_today),
    )
    parts = [render(loc, f"dunning.remind.{key}", count=n) for key, n in counts if n]
    return render(loc, "dunning.remind.left_out", parts=parts) if parts else ""


def _remember(context: ContextTypes.DEFAULT_TYPE, filters: BulkFilter) -> str:
    stored = {"s": filters.status, "a": filters.area, "o": filters.overdue_only}
    return remember_preview(context, PREVIEWS, stored)


def _take(context: ContextTypes.DEFAULT_TYPE, token: str) -> BulkFilter | None:
    """The filters behind `token`, removed so that the button works once."""
    stored = take_preview(context, PREVIEWS, token)
    if not isinstance(stored, dict):
        return None
    return BulkFilter(status=stored["s"], area=stored["a"], overdue_only=bool(stored["o"]))


@office
async def remind(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    filters = _parse(_args(context))
    preview = await preview_bulk_reminder(
        staff, status=filters.status, area=filters.area, overdue_only=filters.overdue_only
    )
    described = _described(loc, filters)
    left_out = _left_out(loc, preview)
    if not preview.count:
        await send(
            update, loc, "dunning.remind.preview_empty", filters=described, left_out=left_out
        )
        return
    token = _remember(context, filters)
    buttons = [
        [
            (render(loc, "dunning.remind.confirm_button", count=preview.count), f"dun:rm:{token}"),
            (render(loc, "common.cancel"), f"dun:no:{token}"),
        ]
    ]
    await send(
        update,
        loc,
        "dunning.remind.preview",
        buttons=buttons,
        filters=described,
        count=preview.count,
        due=preview.due_minor,
        left_out=left_out,
    )


@office
async def remind_confirmed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    filters = _take(context, _callback_match(context)[1])  # a second press finds nothing
    if filters is None:
        raise BadArgs("dunning.remind.preview_gone")
    result = await send_bulk_reminder(
        staff,
        status=filters.status,
        area=filters.area,
        overdue_only=filters.overdue_only,
        origin=origin_of(update),
    )
    await answer(update, loc)
    await edit(
        update,
        loc,
        "dunning.remind.done" if result.queued else "dunning.remind.none_sent",
        queued=result.queued,
        refused=result.refused,
        skipped=result.skipped,
    )


@office
async def remind_cancelled(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    _take(context, _callback_match(context)[1])
    await answer(update, loc)
    await edit(update, loc, "common.cancelled")


def register(application: Application) -> None:
    """`/remind` and its buttons (all button data starts `dun:`)."""
    application.add_handler(CommandHandler("remind", remind))
    application.add_handler(CallbackQueryHandler(remind_confirmed, pattern=rf"^dun:rm:{TOKEN}$"))
    application.add_handler(CallbackQueryHandler(remind_cancelled, pattern=rf"^dun:no:{TOKEN}$"))
