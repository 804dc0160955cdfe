"""/audit in the chat: a collector's, a subscriber's or an invoice's trail, page by page.

The real Application runs over the fake Bot API against the real database; the history is
made with the core services. Audit rows are stamped by the database clock, so each test
moves its rows to fixed minutes of 24 Nov 2026 (10:42 onwards in Dhaka) to read exact text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.db.models import AuditLog, Staff
from core.domain.status import FailureReason, Role
from core.services.access import CLI, COLLECTORS_VIEW, Origin
from core.services.assignments import assign_invoices
from core.services.collection import mark_collected, mark_failed
from core.services.staff import create_invite, edit_staff, redeem_invite
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant

NADIA, KARIM = 9001, 9101
PERIOD = "from=2026-11-01 to=2026-11-30"
FIRST_MINUTE = datetime(2026, 11, 24, 4, 42, tzinfo=UTC)  # 10:42 in Dhaka


def _telegram(user_id: int) -> Origin:
    return Origin(channel="telegram", telegram_user_id=user_id, telegram_chat_id=user_id)


async def _pin_times(tenant) -> None:
    """Every audit row of the tenant one minute after the previous, from 10:42 in Dhaka."""
    ids = await AuditLog.filter(tenant_id=tenant.id).order_by("id").values_list("id", flat=True)
    for n, row_id in enumerate(ids):
        await AuditLog.filter(id=row_id).update(at=FIRST_MINUTE + timedelta(minutes=n))


async def _office(chat, *, admin_name="Nadia"):
    """Nadia raises Karim's commission to 5 % and puts Rahim's two invoices on his route;
    Karim collects the first and finds nobody home for the second."""
    tenant = await make_tenant(name="Dhaka Fiber Net")
    admin = await make_staff(tenant, Role.ADMIN, name=admin_name, telegram_user_id=NADIA)
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim", telegram_user_id=KARIM)
    await edit_staff(admin, staff_id=karim.id, commission_bp=500, origin=_telegram(NADIA))
    rahim = await make_subscriber(tenant, name="Rahim Uddin", username="rahim01")
    first, second = await make_invoice(rahim, 150_000), await make_invoice(rahim, 80_000)
    stops = [
        (await assign_invoices(admin, collector_id=karim.id, numbers=[i.number]))
        .outcomes[0]
        .assignment_id
        for i in (first, second)
    ]
    await mark_collected(
        karim, assignment_id=stops[0], idempotency_key="tg:1", origin=_telegram(KARIM)
    )
    await mark_failed(
        karim, assignment_id=stops[1], reason=FailureReason.NOT_HOME, origin=_telegram(KARIM)
    )
    await _pin_times(tenant)
    return tenant, admin, karim, first, second, chat.tg.user(NADIA, "Nadia")


async def _assigned_at_once(chat, count: int):
    """Nadia puts `count` invoices of Rahim on Karim's route in one go: `count` audit rows."""
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN, name="Nadia", telegram_user_id=NADIA)
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim", telegram_user_id=KARIM)
    rahim = await make_subscriber(tenant, name="Rahim Uddin", username="rahim01")
    invoices = [await make_invoice(rahim, 1_000) for _ in range(count)]
    await assign_invoices(admin, collector_id=karim.id, numbers=[i.number for i in invoices])
    await _pin_times(tenant)
    return tenant, chat.tg.user(NADIA, "Nadia"), invoices


def _buttons_data(chat, user) -> list[str]:
    message = chat.tg.chat_log(user.id)[-1].message
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [button["callback_data"] for row in rows for button in row]


def _answers(chat) -> list[tuple[str, str | None]]:
    """Every answerCallbackQuery: (query id, text)."""
    return [
        (c.params["callback_query_id"], c.params.get("text"))
        for c in chat.tg.sent(method="answerCallbackQuery")
    ]


async def test_a_collectors_audit_says_when_who_did_what_and_through_which_telegram_account(chat):
    tenant, admin, karim, first, second, nadia = await _office(chat)

    await chat.say(nadia, f"/audit collector=karim {PERIOD}")

    assert chat.last_text(nadia) == (
        f"Audit · collector Karim (#{karim.id}) · 1 Nov – 30 Nov 2026 · 3 entries\n"
        f"24 Nov 10:46 · Karim · marked failed {second.number} · not home"
        f" · Telegram {KARIM}\n"
        f"24 Nov 10:45 · Karim · collected {first.number} · ৳1,500 · cash"
        f" · Telegram {KARIM}\n"
        f"24 Nov 10:42 · Nadia · changed the details of Karim · commission_bp: 0 → 500"
        f" · Telegram {NADIA}"
    )
    assert chat.tg.chat_log(NADIA)[-1].buttons == ()


async def test_a_subscribers_audit_covers_the_rows_of_each_of_their_invoices(chat):
    tenant, admin, karim, first, second, nadia = await _office(chat)

    await chat.say(nadia, f"/audit subscriber=rahim01 {PERIOD}")

    assert chat.last_text(nadia).splitlines() == [
        "Audit · subscriber Rahim Uddin (rahim01) · 1 Nov – 30 Nov 2026 · 4 entries",
        f"24 Nov 10:46 · Karim · marked failed {second.number} · not home · Telegram {KARIM}",
        f"24 Nov 10:45 · Karim · collected {first.number} · ৳1,500 · cash · Telegram {KARIM}",
        f"24 Nov 10:44 · Nadia · assigned {second.number}",
        f"24 Nov 10:43 · Nadia · assigned {first.number}",
    ]


async def test_the_short_forms_take_an_invoice_number_or_a_collectors_name(chat):
    tenant, admin, karim, first, second, nadia = await _office(chat)

    await chat.say(nadia, f"/audit {first.number.lower()} {PERIOD}")
    await chat.say(nadia, f"/audit Karim {PERIOD}")

    by_invoice, by_name = chat.texts(nadia)
    assert by_invoice.splitlines() == [
        f"Audit · {first.number} (Rahim Uddin) · 1 Nov – 30 Nov 2026 · 2 entries",
        f"24 Nov 10:45 · Karim · collected {first.number} · ৳1,500 · cash · Telegram {KARIM}",
        f"24 Nov 10:43 · Nadia · assigned {first.number}",
    ]
    assert by_name.startswith(f"Audit · collector Karim (#{karim.id}) · 1 Nov – 30 Nov 2026")


async def test_what_no_person_did_is_shown_by_its_channel_and_a_note_in_short(chat):
    tenant = await make_tenant()
    await make_staff(tenant, Role.ADMIN, name="Nadia", telegram_user_id=NADIA)
    invite = await create_invite(
        None, role=Role.COLLECTOR, name="Karim", tenant_id=tenant.id, origin=CLI
    )
    karim = await redeem_invite(token=invite.token, telegram_user_id=KARIM)
    admin = await Staff.get(telegram_user_id=NADIA)
    invoice = await make_invoice(await make_subscriber(tenant))
    result = await assign_invoices(admin, collector_id=karim.id, numbers=[invoice.number])
    await mark_failed(
        karim,
        assignment_id=result.outcomes[0].assignment_id,
        reason=FailureReason.OTHER,
        note="gate locked, dog",
    )
    await _pin_times(tenant)
    nadia = chat.tg.user(NADIA, "Nadia")

    await chat.say(nadia, f"/audit collector={karim.id} {PERIOD}")

    failed, joined, invited = chat.last_text(nadia).splitlines()[1:]
    assert failed == (
        f"24 Nov 10:45 · Karim · marked failed {invoice.number} · other · note: gate locked, dog"
    )
    assert joined == f"24 Nov 10:43 · Karim · opened the invitation link · Telegram {KARIM}"
    assert invited.startswith(
        "24 Nov 10:42 · the command line · invited Karim · commission_bp: 0, expires_at: "
    )
    assert len(invited.split(" · ")[-1]) <= 80


async def test_a_period_without_entries_says_nothing_was_recorded(chat):
    tenant, admin, karim, first, second, nadia = await _office(chat)

    await chat.say(nadia, "/audit collector=Karim from=2026-10-01 to=2026-10-31")

    assert chat.last_text(nadia) == (
        f"Audit · collector Karim (#{karim.id}) · 1 Oct – 31 Oct 2026: nothing recorded."
    )


async def test_names_are_shown_as_typed_and_never_parsed_as_html(chat):
    tenant, admin, karim, first, second, nadia = await _office(chat, admin_name="<b>Nadia</b>")

    await chat.say(nadia, f"/audit invoice={first.number} {PERIOD}")

    assert chat.last_text(nadia).splitlines()[-1] == (
        f"24 Nov 10:43 · <b>Nadia</b> · assigned {first.number}"
    )


USAGE = (
    "Name one collector, subscriber or invoice, like this: /audit collector=Karim "
    "from=2026-11-01 to=2026-11-22, /audit subscriber=rahim01 or /audit INV-2026-0042"
)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/audit", USAGE),
        ("/audit from=2026-11-01", USAGE),
        ("/audit collector=", USAGE),
        ("/audit collector=Karim subscriber=rahim01", USAGE),
        ("/audit Karim invoice=INV-2026-0001", USAGE),
        (
            "/audit collector=Karim since=2026-11-01",
            "I do not know “since=”. Send it like this: /audit collector=Karim "
            "from=2026-11-01 to=2026-11-22 (or subscriber=… or invoice=… instead of "
            "collector=…)",
        ),
        (
            "/audit collector=Karim from=2026-11-31",
            "2026-11-31 is not a date. Write dates as YYYY-MM-DD, like /audit "
            "collector=Karim from=2026-11-01 to=2026-11-22",
        ),
        (
            "/audit collector=Karim from=2026-11-22 to=2026-11-01",
            "The from= date is after the to= date. Put the earlier date first, like /audit "
            "collector=Karim from=2026-11-01 to=2026-11-22",
        ),
        (
            "/audit collector=Karim from=2025-01-01 to=2026-11-01",
            "Ask for at most a year at a time, like /audit collector=Karim from=2026-01-01 "
            "to=2026-12-31",
        ),
    ],
)
async def test_audit_with_bad_arguments_gets_one_sentence_with_the_usage(chat, command, expected):
    tenant, admin, karim, first, second, nadia = await _office(chat)

    await chat.say(nadia, command)

    assert chat.texts(nadia) == [expected]


async def test_older_entries_come_with_the_older_button_each_press_answered_once(chat):
    tenant, nadia, invoices = await _assigned_at_once(chat, 65)

    await chat.say(nadia, f"/audit subscriber=rahim01 {PERIOD}")
    first_page = chat.tg.chat_log(NADIA)[-1]
    [data] = _buttons_data(chat, nadia)
    await chat.tap(nadia, "Older »")
    second_page = chat.tg.chat_log(NADIA)[-1]
    await chat.tap(nadia, "Older »")
    third_page = chat.tg.chat_log(NADIA)[-1]

    assert data.startswith("aud:o:") and len(data.encode()) <= 64
    pages = [first_page.text.splitlines(), second_page.text.splitlines()]
    pages.append(third_page.text.splitlines())
    assert [p[0] for p in pages] == [
        "Audit · subscriber Rahim Uddin (rahim01) · 1 Nov – 30 Nov 2026 · newest 30",
        "Audit · subscriber Rahim Uddin (rahim01) · 1 Nov – 30 Nov 2026 · 30 older entries",
        "Audit · subscriber Rahim Uddin (rahim01) · 1 Nov – 30 Nov 2026 · 5 older entries",
    ]
    shown = [line.split(" · ")[-1] for page in pages for line in page[1:]]
    assert shown == [f"assigned {i.number}" for i in reversed(invoices)]
    # Each pressed page keeps its text and loses its button; the last page has none.
    log = chat.tg.chat_log(NADIA)
    assert [e.buttons for e in log if e.from_bot] == [(), (), ()]
    answers = _answers(chat)
    assert len(answers) == 2 and len({query_id for query_id, _ in answers}) == 2


async def test_the_older_button_of_any_page_still_works_after_later_pages(chat):
    tenant, nadia, invoices = await _assigned_at_once(chat, 35)
    await chat.say(nadia, f"/audit subscriber=rahim01 {PERIOD}")
    first_page = chat.tg.chat_log(NADIA)[-1].message_id
    [data] = _buttons_data(chat, nadia)

    await chat.tap(nadia, "Older »")
    await chat.feed(chat.tg.callback(nadia, data, first_page))  # e.g. a second tap

    older = [e.text.splitlines()[0] for e in chat.tg.chat_log(NADIA)[-2:]]
    assert (
        older
        == ["Audit · subscriber Rahim Uddin (rahim01) · 1 Nov – 30 Nov 2026 · 5 older entries"] * 2
    )


async def test_a_forged_or_someone_elses_older_button_is_refused_in_one_answer(chat):
    tenant, nadia, invoices = await _assigned_at_once(chat, 35)
    await make_staff(tenant, Role.ADMIN, name="Other", telegram_user_id=9002)
    other = chat.tg.user(9002, "Other")
    await chat.say(nadia, f"/audit subscriber=rahim01 {PERIOD}")
    [data] = _buttons_data(chat, nadia)
    await chat.say(other, "/help")
    page = chat.tg.chat_log(NADIA)[-1].message_id

    await chat.feed(chat.tg.callback(nadia, "aud:o:forged:999999", page))
    # Another admin cannot use Nadia's button: the query behind it is in her data only.
    await chat.feed(chat.tg.callback(other, data, chat.tg.chat_log(9002)[-1].message_id))

    gone = "That button is out of date. Send /audit again."
    answers = _answers(chat)
    assert [text for _, text in answers] == [gone, gone]
    assert len({query_id for query_id, _ in answers}) == 2
    assert len(chat.texts(nadia)) == 1 and len(chat.texts(other)) == 1


async def test_reseller_staff_audit_only_their_own_subscribers(chat):
    tenant = await make_tenant()
    ours, theirs = await make_reseller(tenant), await make_reseller(tenant)
    await make_staff(
        tenant,
        Role.RESELLER,
        reseller=ours,
        permissions=[COLLECTORS_VIEW],
        telegram_user_id=9201,
    )
    await make_subscriber(tenant, reseller=ours, username="own01", name="Own One")
    await make_subscriber(tenant, reseller=theirs, username="other01")
    clerk = chat.tg.user(9201, "Clerk")

    await chat.say(clerk, f"/audit subscriber=own01 {PERIOD}")
    await chat.say(clerk, f"/audit subscriber=other01 {PERIOD}")

    assert chat.texts(clerk) == [
        "Audit · subscriber Own One (own01) · 1 Nov – 30 Nov 2026: nothing recorded.",
        "There is no subscriber “other01” in your company.",
    ]


async def test_an_invoice_of_another_company_is_not_found(chat):
    tenant, admin, karim, first, second, nadia = await _office(chat)
    elsewhere = await make_tenant()
    await make_staff(elsewhere, Role.ADMIN, telegram_user_id=9003)
    stranger_admin = chat.tg.user(9003, "Farid")

    await chat.say(stranger_admin, f"/audit invoice={first.number}")

    assert chat.texts(stranger_admin) == [f"There is no invoice {first.number} in your company."]


async def test_a_collector_is_told_audit_is_not_their_command(chat):
    tenant, admin, karim, first, second, nadia = await _office(chat)
    karims_chat = chat.tg.user(KARIM, "Karim")

    await chat.say(karims_chat, "/audit collector=Karim")

    assert chat.texts(karims_chat) == [
        "That is not one of your commands. Send /help to see yours."
    ]


async def test_a_bengali_reader_gets_the_trail_in_bengali(chat):
    tenant, admin, karim, first, second, nadia = await _office(chat)
    await Staff.filter(id=admin.id).update(language="bn")

    await chat.say(nadia, f"/audit invoice={first.number} {PERIOD}")
    await chat.say(nadia, "/audit")

    page, usage = chat.texts(nadia)
    assert page.splitlines()[0].startswith(f"অডিট · {first.number} (Rahim Uddin) · ")
    assert page.splitlines()[-1].endswith(f"Nadia · {first.number}: রুটে দেওয়া হয়েছে")
    assert usage.startswith("একজন কালেক্টর, একজন গ্রাহক বা একটি ইনভয়েসের নাম দিন")


async def test_the_admins_help_lists_audit(chat):
    tenant, admin, karim, first, second, nadia = await _office(chat)

    await chat.say(nadia, "/help")

    assert (
        "/audit collector=…|subscriber=…|invoice=… [from=… to=…] — who did what, when"
        in chat.last_text(nadia).splitlines()
    )


def test_the_longest_older_button_data_fits_telegrams_64_bytes():
    assert len(f"aud:o:{'x' * 16}:{10**10 - 1}".encode()) <= 64
