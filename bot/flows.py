"""Steps that wait for typed text (an amount, a reason, a name), across areas.

A person has at most one pending step, kept in `user_data["awaiting"]` (persisted in the
database, refreshed per update, so it survives restarts and any process can serve it).
Each area registers the function that takes its typed input; one text handler routes to
it. Menu buttons and commands are matched before this router, so they always work, and
the pending step stays waiting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot.auth import staff_only
from bot.replies import answer, locale_for
from core.db.models import Staff

TextInput = Callable[[Update, ContextTypes.DEFAULT_TYPE, Staff, dict[str, Any]], Awaitable[None]]

_INPUTS: dict[str, TextInput] = {}


def register_text_input(area: str, handler: TextInput) -> None:
    _INPUTS[area] = handler


def expect_text(context: ContextTypes.DEFAULT_TYPE, area: str, step: str, **state: Any) -> None:
    """Remember that this person's next typed text answers `step` of `area`."""
    assert context.user_data is not None
    context.user_data["awaiting"] = {"area": area, "step": step, **state}


def awaiting(context: ContextTypes.DEFAULT_TYPE) -> dict[str, Any] | None:
    pending = (context.user_data or {}).get("awaiting")
    return pending if isinstance(pending, dict) else None


def stop_waiting(context: ContextTypes.DEFAULT_TYPE) -> None:
    if context.user_data is not None:
        context.user_data.pop("awaiting", None)


@staff_only()
async def route_text(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
    pending = awaiting(context)
    handler = _INPUTS.get(pending["area"]) if pending else None
    if pending is None or handler is None:
        await answer(update, await locale_for(staff, context), "common.unknown_input")
        return
    await handler(update, context, staff, pending)


def register(application: Application) -> None:
    """After the areas' commands and menu buttons, before the catch-all (bot/app.py)."""
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, route_text))
