"""Identity and orientation: `/start <invite>`, `/help`, `/language`, strangers."""

from __future__ import annotations

from markupsafe import Markup
from telegram import KeyboardButton, ReplyKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.auth import origin_of, refuse_stranger, staff_only
from bot.errors import domain_error_text
from bot.replies import answer, edit, locale_for, send, send_text
from bot.texts import LANGUAGES, Locale, catalog, render
from core.db.models import Staff, Tenant
from core.domain.status import Role
from core.errors import InviteInvalid
from core.services.staff import identify_staff, redeem_invite, set_language


def menu_for(staff: Staff, loc: Locale) -> ReplyKeyboardMarkup | None:
    """Collectors get their three everyday buttons under the text box."""
    if staff.role != Role.COLLECTOR:
        return None
    labels = [render(loc, "menu.route")], [render(loc, "menu.today"), render(loc, "menu.history")]
    return ReplyKeyboardMarkup(
        [[KeyboardButton(label) for label in row] for row in labels], resize_keyboard=True
    )


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/start <token>` binds an invited person; `/start` alone greets staff or refuses."""
    user = update.effective_user
    assert user is not None
    token = context.args[0] if context.args else None
    if token:
        try:
            staff = await redeem_invite(
                token=token, telegram_user_id=user.id, origin=origin_of(update)
            )
        except InviteInvalid as exc:
            await update.effective_chat.send_message(  # type: ignore[union-attr]
                domain_error_text(Locale(), exc)
            )
            return
        await _greet(update, context, staff, "common.welcome")
        return
    known = await identify_staff(user.id)
    if known is None:
        await refuse_stranger(update)
        return
    await _greet(update, context, known, "common.welcome_back")


async def _greet(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, key: str
) -> None:
    loc = await locale_for(staff, context)
    tenant = await Tenant.get(id=staff.tenant_id)
    await send(
        update,
        loc,
        key,
        menu=menu_for(staff, loc),
        name=staff.name,
        company=tenant.name,
        role_name=render(loc, f"common.roles.{staff.role.value}"),
        help=help_text(loc, staff.role),
    )


# Areas whose catalogs carry their own `<area>.help` lines, added to the admins' list.
ADMIN_HELP_AREAS = ("payments", "cash", "balances", "audit", "imports")


def help_text(loc: Locale, role: Role) -> Markup:
    """The commands of `role`; the admins' list gathers each area's lines, before /language."""
    lines = render(loc, f"help.{role.value}").split("\n")
    if role == Role.ADMIN:
        last = lines.pop() if lines[-1].startswith("/language") else None
        lines += [
            render(loc, f"{area}.help")
            for area in ADMIN_HELP_AREAS
            if f"{area}.help" in catalog("en")
        ]
        lines += [last] if last else []
    # Already rendered (escaped) HTML: Markup keeps the welcome template from escaping it.
    return Markup("\n".join(lines))


@staff_only()
async def show_help(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
    loc = await locale_for(staff, context)
    await send_text(update, help_text(loc, staff.role), menu=menu_for(staff, loc))


@staff_only()
async def choose_language(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff
) -> None:
    loc = await locale_for(staff, context)
    buttons = [[(name, f"lang:{code}") for code, name in LANGUAGES.items()]]
    await send(update, loc, "common.language_choose", buttons=buttons)


@staff_only()
async def language_chosen(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff
) -> None:
    assert update.callback_query is not None and update.callback_query.data
    code = update.callback_query.data.split(":", 1)[1]
    staff = await set_language(staff, language=code, origin=origin_of(update))
    loc = await locale_for(staff, context)
    await answer(update, loc)
    await edit(update, loc, "common.language_set")
    await send_text(update, help_text(loc, staff.role), menu=menu_for(staff, loc))


async def fallback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Anything no other handler took: staff get a pointer to /help, strangers one sentence."""
    user = update.effective_user
    staff = await identify_staff(user.id) if user else None
    if staff is None:
        await refuse_stranger(update)
        return
    await answer(update, await locale_for(staff, context), "common.unknown_input")


def register_fallback(application: Application) -> None:
    """Registered last in group 0 (see bot/app.py)."""
    application.add_handler(MessageHandler(filters.ALL, fallback))
    application.add_handler(CallbackQueryHandler(fallback))


def register(application: Application) -> None:
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CommandHandler("help", show_help))
    application.add_handler(CommandHandler("language", choose_language))
    application.add_handler(CallbackQueryHandler(language_chosen, pattern=r"^lang:[a-z]{2}$"))
