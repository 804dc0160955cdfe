"""The fake Telegram Bot API, driven by the real python-telegram-bot over loopback.

If PTB can talk to the fake and reads back what Telegram would answer, the bot tests and
`collectbot demo` that stand on it test the bot rather than the fake.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes

from collectbot.fakes.telegram import FakeTelegram, FakeUser, UploadedFile

TOKEN = "123:ABC"
ALICE_ID = 5551002


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN, bot_username="dhaka_fiber_bot") as fake:
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(TOKEN, base_url=tg.base_url, base_file_url=tg.base_file_url) as bot:
        yield bot


@pytest.fixture
def alice(tg: FakeTelegram) -> FakeUser:
    return tg.user(ALICE_ID, "Alice")


def stop_buttons(stop: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Collected", callback_data=f"col:{stop}"),
                InlineKeyboardButton("Failed", callback_data=f"fail:{stop}"),
            ]
        ]
    )


async def test_get_me_describes_the_configured_bot(bot: telegram.Bot):
    me = await bot.get_me()

    assert (me.id, me.is_bot, me.username, me.can_join_groups) == (
        123,
        True,
        "dhaka_fiber_bot",
        True,
    )


async def test_a_sent_message_shows_its_inline_keyboard_in_the_chat_log(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    sent = await bot.send_message(alice.id, "Stop 1: Rahim", reply_markup=stop_buttons(1))

    [entry] = tg.chat_log(alice.id)
    assert (entry.message_id, entry.from_bot, entry.text, entry.buttons) == (
        sent.message_id,
        True,
        "Stop 1: Rahim",
        (("Collected", "Failed"),),
    )
    assert sent.reply_markup == stop_buttons(1)
    [call] = tg.sent(chat_id=alice.id, method="sendMessage")
    assert call.params["reply_markup"] == stop_buttons(1).to_dict()


async def test_message_ids_increase_per_chat_and_count_the_users_messages_too(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    bob = tg.user(5551003, "Bob")

    first = await bot.send_message(alice.id, "one")
    tg.message(alice, "two")
    third = await bot.send_message(alice.id, "three")
    bobs_first = await bot.send_message(bob.id, "hello")

    assert (first.message_id, third.message_id, bobs_first.message_id) == (1, 3, 1)


async def test_a_reply_keyboard_is_logged_but_not_echoed_in_the_message(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    sent = await bot.send_message(
        alice.id, "Menu", reply_markup=ReplyKeyboardMarkup([["/route", "/today"]])
    )

    assert sent.reply_markup is None
    assert tg.chat_log(alice.id)[0].keyboard == (("/route", "/today"),)


async def test_html_text_is_shown_as_plain_text_with_entities(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    sent = await bot.send_message(
        alice.id, "<b>Due</b> 1,500 &amp; <i>late</i>", parse_mode="HTML"
    )

    assert sent.text == "Due 1,500 & late"
    assert sent.text_html == "<b>Due</b> 1,500 &amp; <i>late</i>"
    assert tg.chat_log(alice.id)[0].text == "Due 1,500 & late"


async def test_html_with_an_unescaped_name_in_angle_brackets_is_a_bad_request(
    bot: telegram.Bot, alice: FakeUser
):
    with pytest.raises(BadRequest) as raised:
        await bot.send_message(alice.id, "Subscriber <Rahim>", parse_mode="HTML")

    assert str(raised.value) == (
        'Can\'t parse entities: unsupported start tag "rahim" at byte offset 11'
    )


async def test_editing_a_message_replaces_its_text_and_keyboard_in_the_chat_log(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    sent = await bot.send_message(alice.id, "Stop 1: Rahim", reply_markup=stop_buttons(1))

    edited = await bot.edit_message_text(
        "Stop 1: Rahim - collected", chat_id=alice.id, message_id=sent.message_id
    )

    assert edited.message_id == sent.message_id
    assert edited.edit_date is not None
    [entry] = tg.chat_log(alice.id)
    assert (entry.message_id, entry.text, entry.buttons) == (
        sent.message_id,
        "Stop 1: Rahim - collected",
        (),
    )


async def test_an_edit_that_changes_nothing_is_rejected_as_not_modified(
    bot: telegram.Bot, alice: FakeUser
):
    sent = await bot.send_message(alice.id, "Stop 1", reply_markup=stop_buttons(1))

    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text(
            "Stop 1", chat_id=alice.id, message_id=sent.message_id, reply_markup=stop_buttons(1)
        )


async def test_editing_the_keyboard_keeps_the_text(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    sent = await bot.send_message(alice.id, "Stop 1", reply_markup=stop_buttons(1))

    await bot.edit_message_reply_markup(
        chat_id=alice.id, message_id=sent.message_id, reply_markup=stop_buttons(2)
    )

    [entry] = tg.chat_log(alice.id)
    assert (entry.text, entry.message["reply_markup"]) == ("Stop 1", stop_buttons(2).to_dict())


async def test_editing_a_message_that_does_not_exist_is_a_bad_request(
    bot: telegram.Bot, alice: FakeUser
):
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", chat_id=alice.id, message_id=99)


async def test_a_deleted_message_leaves_the_chat_log(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    first = await bot.send_message(alice.id, "Working...")
    await bot.send_message(alice.id, "Done")

    assert await bot.delete_message(alice.id, first.message_id) is True

    assert [entry.text for entry in tg.chat_log(alice.id)] == ["Done"]


async def test_answering_a_callback_query_is_recorded(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    sent = await bot.send_message(alice.id, "Stop 1", reply_markup=stop_buttons(1))
    update = tg.callback(alice, "col:1", sent.message_id)

    answered = await bot.answer_callback_query(update["callback_query"]["id"], text="Saved")

    assert answered is True
    [call] = tg.sent(method="answerCallbackQuery")
    assert call.params == {"callback_query_id": update["callback_query"]["id"], "text": "Saved"}


async def test_answering_an_unknown_callback_query_is_a_bad_request(bot: telegram.Bot):
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query("1234")


async def test_callback_data_longer_than_64_bytes_is_a_bad_request(
    bot: telegram.Bot, alice: FakeUser
):
    # 22 Bengali letters are 22 characters but 66 bytes in UTF-8.
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Pay", callback_data="ক" * 22)]])

    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(alice.id, "Pay?", reply_markup=markup)


async def test_a_sent_document_arrives_with_its_filename_mime_type_and_bytes(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    pdf = b"%PDF-1.4\n receipt 0042 \x00\xff"

    sent = await bot.send_document(alice.id, pdf, filename="receipt-0042.pdf", caption="Receipt")

    [call] = tg.sent(chat_id=alice.id, method="sendDocument")
    assert call.files == {
        "document": UploadedFile(filename="receipt-0042.pdf", mime="application/pdf", data=pdf)
    }
    assert (sent.document.file_name, sent.document.mime_type, sent.document.file_size) == (
        "receipt-0042.pdf",
        "application/pdf",
        len(pdf),
    )
    [entry] = tg.chat_log(alice.id)
    assert (entry.document, entry.text) == ("receipt-0042.pdf", "Receipt")


async def test_a_sent_photo_reports_the_size_of_the_uploaded_image(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    png_header = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x02\x80\x00\x00\x01\xe0"

    sent = await bot.send_photo(alice.id, png_header + b"\x00" * 16)

    [size] = sent.photo
    assert (size.width, size.height) == (640, 480)
    assert tg.chat_log(alice.id)[0].photo is True


async def test_a_registered_file_downloads_through_get_file(tg: FakeTelegram, bot: telegram.Bot):
    photo = b"\xff\xd8\xff\xe0 a receipt photo"
    tg.add_file("AgACAgIAAxkBAAIBZ", photo)

    file = await bot.get_file("AgACAgIAAxkBAAIBZ")

    assert (file.file_id, file.file_size, file.file_path) == (
        "AgACAgIAAxkBAAIBZ",
        len(photo),
        f"{tg.base_file_url}{TOKEN}/photos/file_1.jpg",
    )
    assert await file.download_as_bytearray() == bytearray(photo)


async def test_get_file_with_an_unknown_id_is_a_bad_request(bot: telegram.Bot):
    with pytest.raises(BadRequest, match="Invalid file_id"):
        await bot.get_file("nope")


async def test_get_file_refuses_files_over_twenty_megabytes(tg: FakeTelegram, bot: telegram.Bot):
    tg.add_file("big", b"\x00" * (20 * 1024 * 1024 + 1))

    with pytest.raises(BadRequest, match="File is too big"):
        await bot.get_file("big")


async def test_get_updates_parses_pushed_updates_into_ptb_objects(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    card = await bot.send_message(alice.id, "Stop 1", reply_markup=stop_buttons(1))
    tg.add_file("AgACAgIAAxkBAAIBZ", b"jpeg bytes")
    tg.push(tg.message(alice, "/start inv_Zx81"))
    tg.push(tg.press(alice, "Failed"))
    tg.push(tg.photo(alice, "AgACAgIAAxkBAAIBZ", width=1280, height=960))
    tg.push(tg.document(alice, "BQACAgIAAxkBAAIBa", "invoices.csv", "text/csv", 120))
    tg.push(tg.location(alice, 23.7808, 90.4093))

    command, press, photo, document, location = await bot.get_updates(timeout=0)

    assert command.message.text == "/start inv_Zx81"
    assert command.message.parse_entities() == {command.message.entities[0]: "/start"}
    assert command.message.entities[0].type == "bot_command"
    assert (press.callback_query.data, press.callback_query.message.message_id) == (
        "fail:1",
        card.message_id,
    )
    assert press.callback_query.from_user.id == alice.id
    assert [(size.width, size.height) for size in photo.message.photo] == [(90, 68), (1280, 960)]
    assert (photo.message.photo[-1].file_id, photo.message.photo[-1].file_size) == (
        "AgACAgIAAxkBAAIBZ",
        len(b"jpeg bytes"),
    )
    assert (document.message.document.file_name, document.message.document.mime_type) == (
        "invoices.csv",
        "text/csv",
    )
    assert (location.message.location.latitude, location.message.location.longitude) == (
        23.7808,
        90.4093,
    )
    assert all(isinstance(update, Update) for update in (command, press, photo, document))


async def test_get_updates_forgets_updates_below_the_offset(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    for text in ("one", "two", "three"):
        tg.push(tg.message(alice, text))
    first, second, third = await bot.get_updates(timeout=0)

    remaining = await bot.get_updates(offset=second.update_id, timeout=0)

    assert [update.message.text for update in remaining] == ["two", "three"]
    assert [update["message"]["text"] for update in tg.pending_updates] == ["two", "three"]
    assert await bot.get_updates(offset=third.update_id + 1, timeout=0) == ()
    assert tg.pending_updates == []


async def test_get_updates_waits_for_an_update_pushed_during_the_long_poll(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)  # let the poll reach the fake and start waiting
    assert not poll.done()

    tg.push(tg.message(alice, "/route"))

    [update] = await asyncio.wait_for(poll, timeout=2)
    assert update.message.text == "/route"


async def test_get_updates_answers_empty_when_the_long_poll_times_out(bot: telegram.Bot):
    assert await bot.get_updates(timeout=0.1) == ()


async def test_a_second_bot_polling_with_the_same_token_ends_the_first_poll_with_a_conflict(
    tg: FakeTelegram, bot: telegram.Bot
):
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)  # let the first poll reach the fake and start waiting

    async with telegram.Bot(TOKEN, base_url=tg.base_url) as second_instance:
        second = await second_instance.get_updates(timeout=0)

    assert second == ()
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await first


async def test_a_wrong_token_raises_invalid_token(tg: FakeTelegram):
    wrong = telegram.Bot("123:WRONG", base_url=tg.base_url)

    # Entering the bot calls getMe; PTB rewords the 401 and shuts the bot down again.
    with pytest.raises(InvalidToken) as raised:
        async with wrong:
            pass

    assert str(raised.value) == "The token `123:WRONG` was rejected by the server."
    assert str(raised.value.__cause__) == "Unauthorized"


async def test_an_injected_429_surfaces_as_retry_after_and_the_next_call_succeeds(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser, monkeypatch: pytest.MonkeyPatch
):
    # PTB 22.8 warns inside RetryAfter() unless the timedelta behaviour is opted into, and
    # with warnings as errors that warning would replace the exception.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    tg.fail_next("sendMessage", status=429, retry_after=3)

    with pytest.raises(RetryAfter) as raised:
        await bot.send_message(alice.id, "first try")
    await bot.send_message(alice.id, "second try")

    assert raised.value.retry_after.total_seconds() == 3
    sends = [call for call in tg.calls if call.method == "sendMessage"]
    assert [(call.params["text"], call.status) for call in sends] == [
        ("first try", 429),
        ("second try", 200),
    ]
    assert [entry.text for entry in tg.chat_log(alice.id)] == ["second try"]


async def test_an_injected_500_surfaces_as_network_error(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    tg.fail_next("sendDocument", status=500)

    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_document(alice.id, b"x", filename="a.pdf")


async def test_an_unknown_method_is_not_found(bot: telegram.Bot):
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendTelepathy")


async def test_sending_to_a_chat_that_never_opened_the_bot_is_a_bad_request(bot: telegram.Bot):
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(999, "hello")


async def test_sending_to_a_user_who_blocked_the_bot_is_forbidden(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    tg.block(alice)

    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(alice.id, "Your receipt")


async def test_a_json_request_is_accepted_like_a_form(tg: FakeTelegram, alice: FakeUser):
    body = {"chat_id": alice.id, "text": "42", "reply_markup": stop_buttons(1).to_json()}

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{tg.base_url}{TOKEN}/sendmessage", json=body) as response,
    ):
        answer = await response.json()

    assert (response.status, answer["ok"], answer["result"]["text"]) == (200, True, "42")
    assert tg.sent()[0].params == {
        "chat_id": alice.id,
        "text": "42",
        "reply_markup": stop_buttons(1).to_dict(),
    }


async def test_a_download_with_a_wrong_token_is_unauthorized(tg: FakeTelegram):
    path = tg.add_file("f1", b"data")

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{tg.base_file_url}999:NOPE/{path}") as response,
    ):
        answer = await response.json()

    assert (response.status, answer) == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )


async def test_webhook_settings_are_remembered_and_get_updates_conflicts_while_set(
    tg: FakeTelegram, bot: telegram.Bot
):
    await bot.set_webhook(
        "http://127.0.0.1:8080/telegram/webhook",
        secret_token="s3cret-Token_1",
        allowed_updates=["message", "callback_query"],
    )

    info = await bot.get_webhook_info()
    assert (info.url, info.allowed_updates) == (
        "http://127.0.0.1:8080/telegram/webhook",
        ("message", "callback_query"),
    )
    assert tg.webhook.secret_token == "s3cret-Token_1"
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates(timeout=0)

    await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""


async def test_commands_set_are_read_back_per_language(bot: telegram.Bot):
    await bot.set_my_commands([("route", "Today's stops"), ("today", "Totals")])
    await bot.set_my_commands([("route", "আজকের রুট")], language_code="bn")

    english = await bot.get_my_commands()
    bengali = await bot.get_my_commands(language_code="bn")

    assert [(c.command, c.description) for c in english] == [
        ("route", "Today's stops"),
        ("today", "Totals"),
    ]
    assert [(c.command, c.description) for c in bengali] == [("route", "আজকের রুট")]


async def test_a_command_name_telegram_would_refuse_is_a_bad_request(bot: telegram.Bot):
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([("Route", "capital letters are not allowed")])


async def test_a_location_and_a_chat_action_are_sent(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    await bot.send_chat_action(alice.id, "typing")
    sent = await bot.send_location(alice.id, latitude=23.7808, longitude=90.4093)

    assert (sent.location.latitude, sent.location.longitude) == (23.7808, 90.4093)
    assert [call.method for call in tg.sent(chat_id=alice.id)] == [
        "sendChatAction",
        "sendLocation",
    ]
    assert tg.chat_log(alice.id)[0].location == (23.7808, 90.4093)


async def test_wait_for_returns_once_the_call_arrives(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    async def send_later() -> None:
        await asyncio.sleep(0.05)
        await bot.send_message(alice.id, "late")

    task = asyncio.create_task(send_later())
    [call] = await tg.wait_for("sendMessage", timeout=2)
    await task

    assert call.params["text"] == "late"


async def test_wait_for_times_out_naming_the_calls_seen_so_far(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    await bot.send_chat_action(alice.id, "typing")

    with pytest.raises(TimeoutError) as raised:
        await tg.wait_for("sendDocument", timeout=0.05)

    assert str(raised.value) == (
        "waited 0.05s for 1 sendDocument call(s), got 0; "
        "calls so far: [('getMe', 200), ('sendChatAction', 200)]"
    )


async def test_the_transcript_reads_like_the_chat(
    tg: FakeTelegram, bot: telegram.Bot, alice: FakeUser
):
    tg.message(alice, "/route")
    await bot.send_message(alice.id, "Stop 1: Rahim\nDue 1,500", reply_markup=stop_buttons(1))
    await bot.send_document(alice.id, b"%PDF", filename="receipt.pdf", caption="Receipt")

    assert tg.transcript(alice.id) == (
        "Alice: /route\n"
        "Collectbot: Stop 1: Rahim\n"
        "            Due 1,500\n"
        "            [Collected] [Failed]\n"
        "Collectbot: [document: receipt.pdf]\n"
        "            Receipt"
    )


async def test_an_application_polling_the_fake_answers_a_deep_link_start(
    tg: FakeTelegram, alice: FakeUser
):
    seen_args: list[list[str]] = []

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen_args.append(list(context.args or []))
        assert update.message is not None
        await update.message.reply_text(f"Welcome, {update.message.from_user.first_name}")

    application = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(tg.base_url)
        .base_file_url(tg.base_file_url)
        .build()
    )
    application.add_handler(CommandHandler("start", start))
    assert application.updater is not None

    async with application:
        await application.start()
        await application.updater.start_polling(poll_interval=0, timeout=1)
        try:
            tg.push(tg.message(alice, "/start inv_Zx81"))
            await tg.wait_for("sendMessage", chat_id=alice.id)
        finally:
            await application.updater.stop()
            await application.stop()

    assert seen_args == [["inv_Zx81"]]
    assert [(entry.from_bot, entry.text) for entry in tg.chat_log(alice.id)] == [
        (False, "/start inv_Zx81"),
        (True, "Welcome, Alice"),
    ]
    # Stopping the updater confirmed the update with a last offset.
    assert tg.pending_updates == []


async def test_closing_the_fake_answers_a_pending_long_poll_at_once():
    fake = await FakeTelegram(token=TOKEN).start()
    async with telegram.Bot(TOKEN, base_url=fake.base_url) as bot:
        poll = asyncio.create_task(bot.get_updates(timeout=30))
        await asyncio.sleep(0.05)  # let the poll reach the fake and start waiting

        await asyncio.wait_for(fake.close(), timeout=2)

        assert await asyncio.wait_for(poll, timeout=2) == ()
