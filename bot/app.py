"""The Telegram application: `build_application(settings)` wires everything once.

Handler order matters (PTB runs the first matching handler of each group):
  group -1  nothing yet (identity is checked per handler by `staff_only`)
  group 0   /start, /help, /language, then each area's commands and buttons
            (collector, then office), then typed input for a pending step, then the
            catch-all that answers anything else
  group 99  flush persistence: every update's state changes are written before the next
"""

from __future__ import annotations

import os

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ContextTypes,
    Defaults,
    TypeHandler,
)

from bot import flows
from bot.errors import on_error
from bot.handlers import (
    audit,
    balances,
    billing,
    cash,
    collector,
    dunning,
    imports,
    messages,
    office,
    payments,
    start,
)
from bot.persistence import OrmPersistence
from bot.processor import PerPersonUpdateProcessor
from core.config import Settings

FLUSH_GROUP = 99

# PTB 22 warns on every RetryAfter until code opts in to timedelta values (v23 behaviour).
os.environ.setdefault("PTB_TIMEDELTA", "1")


async def flush_persistence(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Write what this update changed now, not at PTB's next minute tick."""
    # PTB marks the update's user and chat for persistence only after every group ran,
    # i.e. after this handler; without this a person's first update is never written.
    if isinstance(update, Update):
        context.application.mark_data_for_update_persistence(
            chat_ids=update.effective_chat.id if update.effective_chat else None,
            user_ids=update.effective_user.id if update.effective_user else None,
        )
    await context.application.update_persistence()


def build_application(settings: Settings) -> Application:
    if not settings.bot_token:
        raise ValueError("BOT_TOKEN is not set: the bot needs the token @BotFather gave you.")
    builder = (
        ApplicationBuilder()
        .token(settings.bot_token)
        .base_url(settings.telegram_api_url)
        .base_file_url(settings.telegram_file_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML))
        # Telegram allows ~30 messages/s overall and ~1/s per chat; 429s are retried.
        .rate_limiter(AIORateLimiter(max_retries=3))
        .persistence(OrmPersistence())
        .concurrent_updates(PerPersonUpdateProcessor())
    )
    if settings.telegram_mode == "webhook":
        builder = builder.updater(None)  # the aiohttp server feeds the update queue
    application = builder.build()
    # Handlers read configuration (data dir, bot username) from here; never persisted.
    application.bot_data["settings"] = settings
    register_handlers(application)
    application.add_error_handler(on_error)
    return application


def register_handlers(application: Application) -> None:
    start.register(application)
    imports.register(application)  # before collector: it takes every document, see there
    collector.register(application)
    office.register(application)
    messages.register(application)
    billing.register(application)
    dunning.register(application)
    balances.register(application)
    payments.register(application)
    cash.register(application)
    audit.register(application)
    flows.register(application)
    start.register_fallback(application)
    application.add_handler(TypeHandler(Update, flush_persistence), group=FLUSH_GROUP)
