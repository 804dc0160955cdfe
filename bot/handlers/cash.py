"""The collectors' cash at the office: a handover counted, and the daily reconciliation.

- `/handover Karim 4500 [note]`: what Karim holds by the ledger, what was counted, and
  the difference (a shortage becomes his debt, an excess is recorded), with a confirm
  button. `/handover Karim` alone says what he holds.
- `/reconcile [collector] [YYYY-MM-DD]`: per collector for the day: held at the start,
  collected, handed in against what was expected, the difference, held now and debt.
  For one collector, also every stop behind it (time, invoice, amount, receipt photo) and
  a button that sends the photos.

Button data: `cs:ho:<collector>:<counted>:<expected>` (the balance the admin saw: if it
changed before the press, nothing is recorded), `cs:no`, `cs:ph:<collector>:<YYYYMMDD>`.
The handover's idempotency key is the confirmation message, so a double tap records once.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date

from telegram import InputMediaPhoto, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.auth import origin_of
from bot.handlers.office import (
    BadArgs,
    _args,
    _callback_match,
    _read_stored,
    _settings,
    _word,
    office,
    parse_day,
    send_long,
)
from bot.replies import answer, edit, send
from bot.texts import Locale, render
from core.db.models import Staff
from core.domain.money import parse_amount
from core.services.access import COLLECTORS_VIEW
from core.services.cash import (
    CashStop,
    preview_handover,
    reconcile_day,
    record_handover,
)
from core.services.collectors import resolve_collector

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
PHOTOS_SENT = 30  # at most, per press: three albums of ten
ALBUM = 10  # Telegram's limit for one media group


@office
async def handover(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if not args:
        raise BadArgs("cash.usage.handover")
    # The amount is the last word, when it has a digit; the collector's name comes before.
    at = len(args) - 1 if len(args) > 1 and any(ch.isdigit() for ch in args[-1]) else None
    ref = " ".join(args[:at] if at is not None else args)
    collector = await resolve_collector(staff, ref, permission=COLLECTORS_VIEW)
    if at is None:
        held = await preview_handover(staff, collector_id=collector.id, counted_minor=0)
        await send(update, loc, "cash.handover.holds", h=held)
        return
    counted = parse_amount(args[at], loc.currency)
    preview = await preview_handover(staff, collector_id=collector.id, counted_minor=counted)
    data = f"cs:ho:{preview.collector_id}:{counted}:{preview.expected_minor}"
    await send(
        update,
        loc,
        "cash.handover.preview",
        buttons=[
            [
                (render(loc, "cash.handover.button", amount=counted), data),
                (render(loc, "common.cancel"), "cs:no"),
            ]
        ],
        h=preview,
    )


@office
async def handover_confirmed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    match = _callback_match(context)
    query = update.callback_query
    assert query is not None and query.message is not None
    done = await record_handover(
        staff,
        collector_id=int(match[1]),
        counted_minor=int(match[2]),
        expected_minor=int(match[3]),
        idempotency_key=f"handover:{query.message.chat.id}:{query.message.message_id}",
        origin=origin_of(update),
    )
    await answer(update, loc, "cash.handover.already" if done.replayed else None)
    await edit(update, loc, "cash.handover.done", h=done)


@office
async def cancelled(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    await answer(update, loc)
    await edit(update, loc, "common.cancelled")


def _stop_line(loc: Locale, stop: CashStop) -> str:
    return render(
        loc, "cash.reconcile.stop", s=stop, method=_word(loc, "method", stop.method.value)
    )


@office
async def reconcile(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    day = None
    if args and _DATE.fullmatch(args[-1]):
        day, args = parse_day(args[-1], "cash.reconcile.bad_date"), args[:-1]
    collector = (
        await resolve_collector(staff, " ".join(args), permission=COLLECTORS_VIEW)
        if args
        else None
    )
    result = await reconcile_day(staff, day=day, collector_id=collector.id if collector else None)
    lines = [render(loc, "cash.reconcile.header", day=result.day)]
    lines += [render(loc, "cash.reconcile.row", r=row) for row in result.rows]
    if not result.rows:
        lines.append(render(loc, "cash.reconcile.empty"))
    elif len(result.rows) > 1:
        lines.append(
            render(
                loc,
                "cash.reconcile.totals",
                collected=result.total("collected_minor"),
                expected=result.total("expected_minor"),
                handed_in=result.total("handed_in_minor"),
                difference=result.total("difference_minor"),
                held=result.total("closing_minor"),
                debt=result.total("debt_minor"),
            )
        )
    if collector is not None:
        lines.append(render(loc, "cash.reconcile.stops_title", count=len(result.stops)))
        lines += [_stop_line(loc, stop) for stop in result.stops]
        lines += [render(loc, "cash.reconcile.handover", h=h) for h in result.handovers]
    await send_long(update, lines)
    photos = sum(1 for s in result.stops if s.photo_path or s.photo_file_id)
    if collector is not None and photos:
        await send(
            update,
            loc,
            "cash.reconcile.photos_offer",
            buttons=[
                [
                    (
                        render(loc, "cash.reconcile.photos_button", count=photos),
                        f"cs:ph:{collector.id}:{result.day:%Y%m%d}",
                    )
                ]
            ],
            count=photos,
        )


@office
async def photos(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    match = _callback_match(context)
    collector_id, raw_day = int(match[1]), match[2]
    try:
        day = date(int(raw_day[:4]), int(raw_day[4:6]), int(raw_day[6:]))
    except ValueError as exc:
        raise BadArgs("cash.reconcile.bad_date", value=raw_day) from exc
    result = await reconcile_day(staff, day=day, collector_id=collector_id)
    stops = [s for s in result.stops if s.photo_path or s.photo_file_id][:PHOTOS_SENT]
    await answer(update, loc)
    assert update.effective_chat is not None
    data_dir = _settings(context).data_dir
    media = []
    for stop in stops:
        photo: str | bytes | None = stop.photo_file_id
        if not photo and stop.photo_path:
            photo = await asyncio.to_thread(_read_stored(data_dir, stop.photo_path))
        if photo:
            media.append(
                InputMediaPhoto(photo, caption=render(loc, "cash.reconcile.photo_caption", s=stop))
            )
    for start in range(0, len(media), ALBUM):
        album = media[start : start + ALBUM]
        if len(album) == 1:  # an album needs two at least
            await update.effective_chat.send_photo(album[0].media, caption=album[0].caption)
        else:
            await update.effective_chat.send_media_group(album)


def register(application: Application) -> None:
    """`/handover`, `/reconcile` and their buttons (all button data starts `cs:`)."""
    application.add_handler(CommandHandler("handover", handover))
    application.add_handler(CommandHandler("reconcile", reconcile))
    application.add_handler(
        CallbackQueryHandler(
            handover_confirmed, pattern=r"^cs:ho:(\d{1,12}):(\d{1,15}):(-?\d{1,15})$"
        )
    )
    application.add_handler(CallbackQueryHandler(cancelled, pattern=r"^cs:no$"))
    application.add_handler(CallbackQueryHandler(photos, pattern=r"^cs:ph:(\d{1,12}):(\d{8})$"))
