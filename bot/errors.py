"""The one place errors become chat text.

A `DomainError` is a sentence for the user (refusals, stale buttons, bad amounts): it is
said in the reader's language when the catalogs know its `code`, else in English. Anything
else is a bug: its traceback is logged first, then the person gets one short sentence,
and the bot keeps serving.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot.replies import plain
from bot.texts import Locale, catalog, render
from core.errors import DomainError

log = logging.getLogger("collectbot.bot")


def domain_error_text(loc: Locale, error: DomainError) -> str:
    key = f"errors.{error.code}"
    if error.code and key in catalog("en"):
        return render(loc, key, **error.params)
    return str(error)


async def tell(update: Update, text: str) -> None:
    """A refusal: an alert on a button press (answering it), a message otherwise."""
    if update.callback_query is not None:
        await update.callback_query.answer(plain(text), show_alert=True)
    elif update.effective_chat is not None:
        await update.effective_chat.send_message(text, parse_mode=ParseMode.HTML)


def reader_locale(context: ContextTypes.DEFAULT_TYPE) -> Locale:
    """The locale the last handler stored for this person (language, currency, zone)."""
    stored = (context.user_data or {}).get("loc") if context.user_data is not None else None
    return Locale(**stored) if isinstance(stored, dict) else Locale()


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    error = context.error
    if not isinstance(update, Update):
        log.error("Error outside an update", exc_info=error)
        return
    loc = reader_locale(context)
    if isinstance(error, DomainError):
        await tell(update, domain_error_text(loc, error))
        return
    log.error("Unhandled error while handling update %s", update.update_id, exc_info=error)
    try:
        await tell(update, render(loc, "common.unexpected_error"))
    except Exception:  # Telegram itself may be what failed
        log.exception("Could not tell the user about the error")
