"""Sending what the catalogs say: replies, edits of the flow message, button answers.

All text goes out as HTML (the catalogs are autoescaped Jinja2). Every button press is
answered (`answerCallbackQuery`) exactly once, refused or not, so no spinner is left.
"""

from __future__ import annotations

import dataclasses
import html
import re
from typing import Any

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.texts import Locale, render
from core.db.models import Staff, Tenant

Buttons = list[list[tuple[str, str]]]  # rows of (label, callback data)


async def locale_for(staff: Staff, context: Any = None) -> Locale:
    """The reader's language with their company's money and time zone.

    Remembered in `user_data` so the error handler speaks the same language.
    """
    tenant = await Tenant.get(id=staff.tenant_id)
    loc = Locale(
        language=staff.language,
        currency=tenant.currency,
        country=tenant.country,
        timezone=tenant.timezone,
    )
    if context is not None and context.user_data is not None:
        context.user_data["loc"] = dataclasses.asdict(loc)
    return loc


def _button(label: str, data: str) -> InlineKeyboardButton:
    """A `https://` target is a link (a map), anything else is callback data."""
    if data.startswith("https://"):
        return InlineKeyboardButton(label, url=data)
    return InlineKeyboardButton(label, callback_data=data)


def inline(rows: Buttons) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[_button(label, data) for label, data in row] for row in rows])


async def send_text(
    update: Update,
    text: str,
    buttons: Buttons | None = None,
    *,
    menu: ReplyKeyboardMarkup | None = None,
) -> Message:
    """A new message (already rendered HTML) in the chat of this update."""
    assert update.effective_chat is not None
    markup = inline(buttons) if buttons else menu
    return await update.effective_chat.send_message(
        text, parse_mode=ParseMode.HTML, reply_markup=markup
    )


async def edit_text(update: Update, text: str, buttons: Buttons | None = None) -> None:
    """Replace the text (and buttons) of the message whose button was pressed.

    Editing keeps the chat short and retires the old buttons, so a stale one cannot be
    pressed into a second payment.
    """
    query = update.callback_query
    assert query is not None
    try:
        await query.edit_message_text(
            text, parse_mode=ParseMode.HTML, reply_markup=inline(buttons) if buttons else None
        )
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise


async def send(
    update: Update,
    loc: Locale,
    key: str,
    *,
    buttons: Buttons | None = None,
    menu: ReplyKeyboardMarkup | None = None,
    **context: Any,
) -> Message:
    """A new message saying catalog `key` in the chat of this update."""
    return await send_text(update, render(loc, key, **context), buttons, menu=menu)


async def edit(
    update: Update, loc: Locale, key: str, *, buttons: Buttons | None = None, **context: Any
) -> None:
    """Replace the pressed message with catalog `key` (see `edit_text`)."""
    await edit_text(update, render(loc, key, **context), buttons)


async def answer(
    update: Update, loc: Locale, key: str | None = None, *, alert: bool = False, **context: Any
) -> None:
    """Answer a button press (a toast, or an alert for refusals), or reply to a message."""
    text = render(loc, key, **context) if key else None
    if update.callback_query is not None:
        await update.callback_query.answer(text=plain(text), show_alert=alert and bool(text))
    elif text and update.effective_chat is not None:
        await update.effective_chat.send_message(text, parse_mode=ParseMode.HTML)


def plain(text: str | None) -> str | None:
    """Toasts are plain text (no HTML) and at most 200 characters."""
    if text is None:
        return None
    return html.unescape(re.sub(r"<[^>]+>", "", text))[:200]
