"""Who is talking: every handler that acts for staff is wrapped in `staff_only`.

The Telegram user id is looked up on every update (never cached in a process), so a
collector deleted at the office is refused on their very next tap. Strangers get one
sentence and nothing else.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.ext import ContextTypes

from bot.replies import answer, locale_for
from bot.texts import Locale
from core.db.models import Staff
from core.domain.status import Role
from core.services.access import Origin
from core.services.staff import identify_staff

Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, Any]]
StaffHandler = Callable[[Update, ContextTypes.DEFAULT_TYPE, Staff], Awaitable[Any]]


def origin_of(update: Update) -> Origin:
    """The audit trail's view of this update: who, in which chat, which update."""
    return Origin(
        channel="telegram",
        telegram_user_id=update.effective_user.id if update.effective_user else None,
        telegram_chat_id=update.effective_chat.id if update.effective_chat else None,
        telegram_update_id=update.update_id,
    )


async def refuse_stranger(update: Update) -> None:
    await answer(update, Locale(language=_language_of(update)), "common.stranger", alert=True)


def _language_of(update: Update) -> str:
    code = (update.effective_user.language_code or "") if update.effective_user else ""
    return "bn" if code.startswith("bn") else "en"


def staff_only(*roles: Role) -> Callable[[StaffHandler], Handler]:
    """Run the handler with the caller's `Staff` row, if they are active staff of `roles`.

    No roles means any staff. A person of another role is told the command is not theirs.
    """

    def wrap(handler: StaffHandler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Any:
            user = update.effective_user
            staff = await identify_staff(user.id) if user else None
            if staff is None:
                await refuse_stranger(update)
                return None
            if roles and staff.role not in roles:
                loc = await locale_for(staff)
                await answer(update, loc, "common.not_for_your_role", alert=True)
                return None
            return await handler(update, context, staff)

        return wrapper

    return wrap
