"""Getting in: invitations, strangers, help and language."""

from __future__ import annotations

from datetime import timedelta

from core.db.models import Staff
from core.domain.status import Role
from core.services.access import CLI
from core.services.staff import create_invite
from tests.factories import make_staff, make_tenant


async def test_an_invited_collector_opens_the_link_and_is_bound_with_a_menu(chat):
    tenant = await make_tenant(name="Dhaka Fiber Net")
    invite = await create_invite(
        None, tenant_id=tenant.id, role=Role.COLLECTOR, name="Karim", origin=CLI
    )
    karim = chat.tg.user(7001, "Karim")

    await chat.say(karim, f"/start {invite.token}")

    staff = await Staff.get(id=invite.staff.id)
    assert staff.telegram_user_id == 7001
    entry = chat.tg.chat_log(karim.id)[-1]
    assert "Welcome, Karim! You are now a collector at Dhaka Fiber Net." in entry.text
    assert "/route" in entry.text
    assert entry.keyboard == (("🗺 Today's route",), ("💰 Today", "🕘 History"))


async def test_a_stranger_gets_one_sentence_whatever_they_send(chat):
    stranger = chat.tg.user(666, "Mallory")
    for text in ("/start", "/route", "hello", "/start not-a-real-token"):
        await chat.say(stranger, text)
    replies = chat.texts(stranger)
    assert (
        replies[:3]
        == [
            "This bot is for the staff of an internet provider. Ask your office for an "
            "invitation link."
        ]
        * 3
    )
    assert "invitation link" in replies[3]
    assert len(replies) == 4


async def test_an_expired_or_used_invitation_is_refused_with_what_to_do(chat):
    from core.domain.dates import utcnow

    tenant = await make_tenant()
    old = await create_invite(
        None,
        tenant_id=tenant.id,
        role=Role.COLLECTOR,
        name="Late",
        origin=CLI,
        now=utcnow() - timedelta(days=4),
    )
    fresh = await create_invite(
        None, tenant_id=tenant.id, role=Role.COLLECTOR, name="Rafiq", origin=CLI
    )
    late, rafiq, other = (
        chat.tg.user(n, name) for n, name in ((7002, "Late"), (7003, "Rafiq"), (7004, "Other"))
    )

    await chat.say(late, f"/start {old.token}")
    await chat.say(rafiq, f"/start {fresh.token}")
    await chat.say(other, f"/start {fresh.token}")

    assert "expired" in chat.last_text(late)
    assert "Welcome, Rafiq" in chat.last_text(rafiq)
    assert "already used" in chat.last_text(other)


async def test_help_lists_the_commands_of_the_persons_role(chat):
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN, telegram_user_id=8001)
    nadia = chat.tg.user(admin.telegram_user_id, "Nadia")
    await chat.say(nadia, "/help")
    assert "/assign" in chat.last_text(nadia)
    assert "/route" not in chat.last_text(nadia)


async def test_a_collector_switches_to_bengali_and_the_bot_answers_in_bengali(chat):
    tenant = await make_tenant()
    collector = await make_staff(tenant, Role.COLLECTOR, telegram_user_id=8002)
    karim = chat.tg.user(collector.telegram_user_id, "Karim")

    await chat.say(karim, "/language")
    await chat.tap(karim, "বাংলা")

    assert (await Staff.get(id=collector.id)).language == "bn"
    assert "বাংলায়" in chat.texts(karim)[-2]
    assert "আপনার কমান্ড" in chat.last_text(karim)
    await chat.say(karim, "what?")
    assert chat.last_text(karim).startswith("বুঝতে পারিনি")


async def test_a_deleted_collector_is_treated_as_a_stranger(chat):
    from core.domain.dates import utcnow

    tenant = await make_tenant()
    collector = await make_staff(tenant, Role.COLLECTOR, telegram_user_id=8003)
    await Staff.filter(id=collector.id).update(deleted_at=utcnow())
    karim = chat.tg.user(8003, "Karim")
    await chat.say(karim, "/help")
    assert "Ask your office for an invitation link" in chat.last_text(karim)
