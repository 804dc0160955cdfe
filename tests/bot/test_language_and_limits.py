"""Refusals in the reader's language, and Telegram's rate limits absorbed by the bot."""

from __future__ import annotations

from core.domain.status import Role
from tests.factories import make_reseller, make_staff, make_tenant


async def test_a_refusal_from_the_rules_is_said_in_bengali_to_a_bengali_reader(chat):
    tenant = await make_tenant()
    reseller = await make_reseller(tenant)
    clerk = await make_staff(
        tenant,
        Role.RESELLER,
        reseller=reseller,
        permissions=[],
        language="bn",
        telegram_user_id=9301,
    )
    rafiq = chat.tg.user(clerk.telegram_user_id, "Rafiq", language_code="bn")

    await chat.say(rafiq, "/report")

    assert chat.last_text(rafiq) == "আপনার কালেক্টরদের দেখার অনুমতি নেই। একজন অ্যাডমিনকে বলুন।"


async def test_a_429_from_telegram_is_retried_and_the_reply_still_arrives(chat):
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN, telegram_user_id=9302)
    nadia = chat.tg.user(admin.telegram_user_id, "Nadia")
    chat.tg.fail_next("sendMessage", status=429, retry_after=1)

    await chat.say(nadia, "/help")

    attempts = [c for c in chat.tg.calls if c.method == "sendMessage" and c.chat_id == nadia.id]
    assert [c.status for c in attempts] == [429, 200]
    assert "/assign" in chat.last_text(nadia)
