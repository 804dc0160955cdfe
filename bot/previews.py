"""Previews waiting for their confirm button (assign by filter, bulk reminders, bulk
suspension): what the person was shown, kept under a short random token.

They live in the person's `user_data`, which is persisted, so any process can serve the
press. Button data carries only the token (Telegram allows 64 bytes). Taking a preview
removes it, so a second press finds nothing; each area keeps its last few, and the
buttons of older ones answer "expired".
"""

from __future__ import annotations

import secrets
from typing import Any

from telegram.ext import ContextTypes

MAX_PREVIEWS = 3


def _area(context: ContextTypes.DEFAULT_TYPE, area: str) -> dict[str, Any]:
    assert context.user_data is not None
    stored = context.user_data.get(area)
    if not isinstance(stored, dict):
        stored = context.user_data[area] = {}
    return stored


def remember_preview(context: ContextTypes.DEFAULT_TYPE, area: str, value: Any) -> str:
    """Keep `value` (JSON-able) for a confirm button; returns the token for its data."""
    previews = _area(context, area)
    token = secrets.token_urlsafe(6)
    previews[token] = value
    for old in list(previews)[:-MAX_PREVIEWS]:
        del previews[old]
    return token


def peek_preview(context: ContextTypes.DEFAULT_TYPE, area: str, token: str) -> Any | None:
    """The value behind `token`, left in place (e.g. to show the list it stands for)."""
    return _area(context, area).get(token)


def take_preview(context: ContextTypes.DEFAULT_TYPE, area: str, token: str) -> Any | None:
    """The value behind `token`, removed so that its button works once."""
    return _area(context, area).pop(token, None)
