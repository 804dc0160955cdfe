"""A fake Telegram Bot API server on loopback, for the tests and `collectbot demo`.

This module owns the far side of the Telegram wire: an aiohttp server that the real
python-telegram-bot talks to through `base_url` / `base_file_url`. It keeps the state Telegram
keeps for one bot (private chats and their messages, uploaded files, the getUpdates queue, the
webhook settings, the command list), records every request the bot makes, and builds the update
JSON a user's actions would produce, for the getUpdates queue or for a test to POST to the app's
webhook.

Invariants:
- Every answer has Telegram's envelope and HTTP status (`{"ok": true, "result": ...}` or
  `{"ok": false, "error_code": ..., "description": ...}`), so PTB raises the same exception
  classes against the fake as against api.telegram.org.
- Message ids increase per chat and are shared by both sides, as in Telegram: a user's message
  takes the next id of the chat too. An edit keeps the id; a deletion removes the message.
- update_ids increase over the whole fake; getUpdates forgets every update below its offset.
- Results are copies: editing a message later never changes what an earlier call returned.

Not faked, on purpose: groups, channels and topics, inline mode, payments, media groups,
MarkdownV2 (that text is kept as sent; HTML is parsed into text and entities like Telegram
does), the trimming of surrounding whitespace, the real limits on webhook URLs (HTTPS, ports,
public addresses: tests serve webhooks on loopback), `allowed_updates` filtering, and the
delivery of updates to a webhook (tests POST the built update themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import itertools
import json
import mimetypes
import re
import struct
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http import HTTPStatus
from typing import Any, Self

from aiohttp import web

JSONDict = dict[str, Any]

__all__ = [
    "Call",
    "ChatEntry",
    "FakeTelegram",
    "FakeUser",
    "UploadedFile",
    "WebhookSettings",
]

# Telegram's documented limits; the fake enforces them so a bot that breaks one fails in tests.
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
# Bots may upload up to 50 MB; aiohttp refuses bodies over 1 MB unless told otherwise.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024

# PTB sends a string parameter as it is and JSON-encodes every other value (see
# telegram/request/_requestparameter.py), so a form field is decoded as JSON unless it is one of
# these free-text parameters, whose value "42" or "true" must stay a string.
_STRING_PARAMS = frozenset(
    {
        "action",
        "business_connection_id",
        "callback_query_id",
        "caption",
        "document",
        "file_id",
        "inline_message_id",
        "ip_address",
        "language_code",
        "message_effect_id",
        "parse_mode",
        "photo",
        "secret_token",
        "text",
        "url",
    }
)

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_LEADING_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{1,64})?(?=\s|$)")
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_INLINE_BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


@dataclass(frozen=True)
class UploadedFile:
    """One multipart attachment of a request, as the bot uploaded it."""

    filename: str | None
    mime: str | None
    data: bytes


@dataclass(frozen=True)
class Call:
    """One Bot API request the bot made (getUpdates excepted), in arrival order.

    `params` are decoded back to JSON values (a form field `reply_markup` is a dict again,
    `chat_id` an int); `files` are the multipart attachments by part name. `status` is the HTTP
    status the fake answered and `result` what it returned when that status was 200.
    """

    method: str
    params: JSONDict
    files: dict[str, UploadedFile] = field(default_factory=dict)
    status: int = 200
    result: Any = None

    @property
    def ok(self) -> bool:
        return self.status == HTTPStatus.OK

    @property
    def chat_id(self) -> Any:
        return self.params.get("chat_id")


@dataclass(frozen=True)
class FakeUser:
    """A Telegram user who talks to the bot in a private chat whose id is the user's id."""

    id: int
    first_name: str
    language_code: str = "en"
    last_name: str | None = None
    username: str | None = None

    def to_dict(self) -> JSONDict:
        """The user as a Telegram `User` object."""
        user: JSONDict = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            user["last_name"] = self.last_name
        if self.username:
            user["username"] = self.username
        user["language_code"] = self.language_code
        return user

    def chat(self) -> JSONDict:
        """The private chat with the bot as a Telegram `Chat` object."""
        chat: JSONDict = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            chat["last_name"] = self.last_name
        if self.username:
            chat["username"] = self.username
        return chat


@dataclass(frozen=True)
class ChatEntry:
    """One message as the chat shows it now (after edits), for assertions and transcripts.

    `buttons` are the labels of the inline keyboard, row by row; `keyboard` the labels of a
    reply keyboard sent with the message (Telegram does not echo those back in the message).
    `message` is the message JSON itself, e.g. for `FakeTelegram.callback`.
    """

    message_id: int
    from_bot: bool
    text: str
    buttons: tuple[tuple[str, ...], ...] = ()
    keyboard: tuple[tuple[str, ...], ...] = ()
    document: str | None = None
    photo: bool = False
    location: tuple[float, float] | None = None
    message: JSONDict = field(default_factory=dict, compare=False, repr=False)

    def render(self, speaker: str) -> str:
        """The entry as transcript lines: `speaker: text`, attachments and buttons indented."""
        lines = []
        if self.document is not None:
            lines.append(f"[document: {self.document}]")
        if self.photo:
            lines.append("[photo]")
        if self.location is not None:
            lines.append(f"[location: {self.location[0]}, {self.location[1]}]")
        lines.extend(self.text.splitlines())
        lines.extend(" ".join(f"[{label}]" for label in row) for row in self.buttons)
        lines.extend("keyboard: " + " | ".join(row) for row in self.keyboard)
        lines = lines or [""]
        pad = " " * (len(speaker) + 2)
        return "\n".join([f"{speaker}: {lines[0]}", *(pad + line for line in lines[1:])])


@dataclass
class WebhookSettings:
    """What the bot last told setWebhook; an empty `url` means polling."""

    url: str = ""
    secret_token: str | None = None
    allowed_updates: list[str] | None = None
    max_connections: int = 40


class _ApiError(Exception):
    """An error answer of the Bot API: raised by a method, turned into the JSON envelope."""

    def __init__(self, status: int, description: str, parameters: JSONDict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> JSONDict:
        body: JSONDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad_request(detail: str) -> _ApiError:
    return _ApiError(HTTPStatus.BAD_REQUEST, f"Bad Request: {detail}")


def _not_found() -> _ApiError:
    return _ApiError(HTTPStatus.NOT_FOUND, "Not Found")


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    mime: str | None = None
    filename: str | None = None


@dataclass
class _Chat:
    user: FakeUser
    messages: dict[int, JSONDict] = field(default_factory=dict)
    keyboards: dict[int, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    last_message_id: int = 0
    blocked: bool = False


def _utf16_length(text: str) -> int:
    # Telegram measures entity offsets and lengths in UTF-16 code units.
    return len(text.encode("utf-16-le")) // 2


def _unique_id(file_id: str) -> str:
    return "AQAD" + hashlib.sha256(file_id.encode()).hexdigest()[:16]


def _decode_params(raw: JSONDict) -> JSONDict:
    params: JSONDict = {}
    for name, value in raw.items():
        if isinstance(value, str) and name not in _STRING_PARAMS:
            # "@channel" as chat_id and other plain strings stay strings.
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        params[name] = value
    return params


async def _read_request(request: web.Request) -> tuple[JSONDict, dict[str, UploadedFile]]:
    raw: JSONDict = dict(request.query)
    files: dict[str, UploadedFile] = {}
    if request.content_type == "application/json":
        body = await request.read()
        if body:
            try:
                payload = json.loads(body)
            except ValueError:
                raise _bad_request("can't parse JSON object") from None
            if not isinstance(payload, dict):
                raise _bad_request("can't parse JSON object")
            raw.update(payload)
    elif request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.post()
        for name, value in form.items():
            if isinstance(value, web.FileField):
                files[name] = UploadedFile(value.filename, value.content_type, value.file.read())
            else:
                raw[name] = value
    return _decode_params(raw), files


# The tags Telegram's HTML parse mode knows, and the entity each one makes.
_HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}


class _TelegramHtml(HTMLParser):
    """Telegram's HTML parse mode: the text the chat shows plus its entities, or the error."""

    def __init__(self, source: str):
        super().__init__(convert_charrefs=True)
        self._source = source
        # HTMLParser counts lines by "\n" only; so must the offsets.
        self._line_starts = [0] + [i + 1 for i, char in enumerate(source) if char == "\n"]
        self._parts: list[str] = []
        self._length = 0
        self._open: list[tuple[str, dict[str, str | None], int]] = []
        self.entities: list[JSONDict] = []

    @classmethod
    def parse(cls, source: str) -> tuple[str, list[JSONDict]]:
        parser = cls(source)
        parser.feed(source)
        parser.close()
        if parser._open:
            tag = parser._open[-1][0]
            raise _bad_request(
                f"can't parse entities: Can't find end tag corresponding to start tag \"{tag}\""
            )
        entities = sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))
        return "".join(parser._parts), entities

    def _byte_offset(self) -> int:
        line, column = self.getpos()
        return len(self._source[: self._line_starts[line - 1] + column].encode())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        supported = tag in _HTML_ENTITY_TYPES
        if tag == "span" and attributes.get("class") != "tg-spoiler":
            supported = False
        if not supported:
            raise _bad_request(
                f'can\'t parse entities: Unsupported start tag "{tag}" '
                f"at byte offset {self._byte_offset()}"
            )
        self._open.append((tag, attributes, self._length))

    def handle_endtag(self, tag: str) -> None:
        if not self._open:
            raise _bad_request(
                f"can't parse entities: Unexpected end tag at byte offset {self._byte_offset()}"
            )
        opened, attributes, offset = self._open.pop()
        if opened != tag:
            raise _bad_request(
                f"can't parse entities: Unmatched end tag at byte offset {self._byte_offset()}, "
                f'expected "</{opened}>", found "</{tag}>"'
            )
        length = self._length - offset
        if tag == "code" and self._open and self._open[-1][0] == "pre":
            # <pre><code class="language-x"> is one pre entity with a language, not two.
            language = (attributes.get("class") or "").removeprefix("language-")
            if language:
                self._open[-1][1]["language"] = language
            return
        if length == 0:
            return
        entity: JSONDict = {"offset": offset, "length": length, "type": _HTML_ENTITY_TYPES[tag]}
        if tag == "a":
            entity["url"] = attributes.get("href") or ""
        elif tag == "pre" and attributes.get("language"):
            entity["language"] = attributes["language"]
        elif tag == "blockquote" and "expandable" in attributes:
            entity["type"] = "expandable_blockquote"
        elif tag == "tg-emoji":
            entity["custom_emoji_id"] = attributes.get("emoji-id") or ""
        self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        self._parts.append(data)
        self._length += _utf16_length(data)


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG or JPEG, (0, 0) for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data.startswith(b"\xff\xd8"):
        index = 2
        while index + 9 < len(data):
            if data[index] != 0xFF:
                index += 1
                continue
            marker = data[index + 1]
            if marker == 0xFF:  # fill byte before a marker
                index += 1
                continue
            (segment_length,) = struct.unpack(">H", data[index + 2 : index + 4])
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[index + 5 : index + 9])
                return width, height
            index += 2 + segment_length
    return 0, 0


class FakeTelegram:
    """The Telegram Bot API for one bot, served on 127.0.0.1 at an ephemeral port.

    Use it as `async with FakeTelegram(token=..., bot_username=...) as tg:` and point PTB at
    `tg.base_url` and `tg.base_file_url`.
    """

    def __init__(
        self,
        token: str = "123:ABC",
        *,
        bot_username: str = "collectbot_bot",
        bot_first_name: str = "Collectbot",
    ):
        self.token = token
        bot_id, _, _ = token.partition(":")
        self.bot_user: JSONDict = {
            "id": int(bot_id) if bot_id.isdigit() else 1,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        self.calls: list[Call] = []
        self.webhook = WebhookSettings()
        self._chats: dict[int, _Chat] = {}
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._file_numbers = itertools.count(1)
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._callback_ids: set[str] = set()
        self._callback_numbers = itertools.count(1)
        self._update_ids = itertools.count(1)
        self._updates: list[JSONDict] = []
        self._poll_generation = 0
        self._failures: dict[str, list[_ApiError]] = {}
        # Waiters hold the current event; a change sets it and puts a fresh one in its place.
        self._calls_changed = asyncio.Event()
        self._updates_changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._methods = {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendDocument": self._send_document,
            "sendPhoto": self._send_photo,
            "sendMediaGroup": self._send_media_group,
            "sendLocation": self._send_location,
            "sendChatAction": self._send_chat_action,
            "getFile": self._get_file,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
        }
        # Telegram matches method names case-insensitively.
        self._method_names = {name.lower(): name for name in [*self._methods, "getUpdates"]}

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Self:
        """Start serving; `async with` calls this."""
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # Long polls are woken by close(), so a short grace period is enough.
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        """Answer pending long polls and stop serving."""
        self._closing = True
        self._notify_updates()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeTelegram is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """For `Bot(base_url=...)`: PTB appends the token."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """For `Bot(base_file_url=...)`: PTB appends the token."""
        return f"http://127.0.0.1:{self.port}/file/bot"

    # -- users, files, updates ---------------------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str,
        language_code: str = "en",
        *,
        last_name: str | None = None,
        username: str | None = None,
    ) -> FakeUser:
        """A user who has opened a private chat with the bot (so the bot may write to it)."""
        user = FakeUser(user_id, first_name, language_code, last_name, username)
        chat = self._chats.get(user_id)
        if chat is None:
            self._chats[user_id] = _Chat(user)
        else:
            chat.user = user
        return user

    def block(self, user: FakeUser | int) -> None:
        """The user blocks the bot: every call into the chat answers 403 from now on."""
        self._chat(user).blocked = True

    def unblock(self, user: FakeUser | int) -> None:
        self._chat(user).blocked = False

    def add_file(self, file_id: str, data: bytes, file_path: str | None = None) -> str:
        """Make `data` downloadable through getFile(file_id); returns its file_path.

        The path defaults to `photos/file_<n>.jpg`, numbered like Telegram numbers them.
        """
        path = file_path or f"photos/file_{next(self._file_numbers)}.jpg"
        stored = _StoredFile(file_id, _unique_id(file_id), path, bytes(data))
        self._files[file_id] = stored
        self._files_by_path[path] = stored
        return path

    def push(self, update: JSONDict) -> None:
        """Queue an update for getUpdates (polling mode)."""
        if not isinstance(update.get("update_id"), int):
            raise ValueError("an update needs an integer update_id")
        self._updates.append(update)
        self._notify_updates()

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    def message(self, user: FakeUser, text: str) -> JSONDict:
        """The update for `user` sending `text`; a leading /command gets its entity.

        The message enters the chat log at once, as if the user had just sent it.
        """
        content: JSONDict = {"text": text}
        command = _LEADING_COMMAND.match(text)
        if command:
            length = _utf16_length(command.group())
            content["entities"] = [{"offset": 0, "length": length, "type": "bot_command"}]
        return self._incoming(user, content)

    def callback(self, user: FakeUser, data: str, message: JSONDict | int) -> JSONDict:
        """The update for `user` pressing a button with `data` under a message the bot sent.

        `message` is the message dict (e.g. a Call's result) or its id in the user's chat; the
        query carries the message as it is now. Telegram clients can send any data, so `data`
        is not checked against the keyboard.
        """
        chat = self._chat(user)
        message_id = message if isinstance(message, int) else message["message_id"]
        current = chat.messages.get(message_id)
        if current is None:
            raise LookupError(f"no message {message_id} in the chat with {user.first_name}")
        query_id = str(4_000_000_000_000_000 + next(self._callback_numbers))
        self._callback_ids.add(query_id)
        chat_instance = str(int(hashlib.sha256(str(user.id).encode()).hexdigest()[:15], 16))
        query = {
            "id": query_id,
            "from": user.to_dict(),
            "message": copy.deepcopy(current),
            "chat_instance": chat_instance,
            "data": data,
        }
        return {"update_id": next(self._update_ids), "callback_query": query}

    def press(self, user: FakeUser, label: str) -> JSONDict:
        """The callback update for `user` pressing the newest inline button labelled `label`."""
        chat = self._chat(user)
        for message in reversed(chat.messages.values()):
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if button.get("text") == label and "callback_data" in button:
                        return self.callback(user, button["callback_data"], message)
        shown = [entry.buttons for entry in self.chat_log(user.id) if entry.buttons]
        raise LookupError(f"no button {label!r} in the chat with {user.first_name}: {shown}")

    def photo(
        self,
        user: FakeUser,
        file_id: str,
        file_size: int | None = None,
        width: int = 1280,
        height: int = 960,
        *,
        caption: str | None = None,
    ) -> JSONDict:
        """The update for `user` sending a photo; the largest size (last) has `file_id`.

        Like Telegram, a small thumbnail size comes first; its file id is not downloadable.
        """
        size = self._size_of(file_id, file_size)
        scale = 90 / max(width, height, 1)
        thumbnail = {
            "file_id": f"{file_id}-thumb",
            "file_unique_id": _unique_id(f"{file_id}-thumb"),
            "width": max(1, round(width * scale)),
            "height": max(1, round(height * scale)),
        }
        full: JSONDict = {
            "file_id": file_id,
            "file_unique_id": _unique_id(file_id),
            "width": width,
            "height": height,
        }
        if size is not None:
            full["file_size"] = size
        content: JSONDict = {"photo": [thumbnail, full]}
        if caption:
            content["caption"] = caption
        return self._incoming(user, content)

    def document(
        self,
        user: FakeUser,
        file_id: str,
        file_name: str,
        mime_type: str = "application/octet-stream",
        file_size: int | None = None,
        *,
        caption: str | None = None,
    ) -> JSONDict:
        """The update for `user` sending a file."""
        document: JSONDict = {
            "file_id": file_id,
            "file_unique_id": _unique_id(file_id),
            "file_name": file_name,
            "mime_type": mime_type,
        }
        size = self._size_of(file_id, file_size)
        if size is not None:
            document["file_size"] = size
        content: JSONDict = {"document": document}
        if caption:
            content["caption"] = caption
        return self._incoming(user, content)

    def location(self, user: FakeUser, lat: float, lon: float) -> JSONDict:
        """The update for `user` sharing a location."""
        return self._incoming(user, {"location": {"latitude": lat, "longitude": lon}})

    # -- failure injection -------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int = HTTPStatus.TOO_MANY_REQUESTS,
        retry_after: int = 1,
        description: str | None = None,
    ) -> None:
        """Make the next call of `method` fail with `status` (queued: call twice, fail twice).

        429 answers Telegram's flood-control error with `retry_after`; other statuses answer
        `description` or the status phrase (500: "Internal Server Error").
        """
        name = self._method_names.get(method.lower(), method)
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            error = _ApiError(
                status,
                description or f"Too Many Requests: retry after {retry_after}",
                {"retry_after": retry_after},
            )
        else:
            error = _ApiError(status, description or HTTPStatus(status).phrase)
        self._failures.setdefault(name, []).append(error)

    # -- reading what happened ---------------------------------------------------------------

    def sent(self, chat_id: int | None = None, method: str | None = None) -> list[Call]:
        """Calls Telegram accepted, in order, optionally for one chat and one method."""
        return [
            call
            for call in self.calls
            if call.ok
            and (chat_id is None or call.chat_id == chat_id)
            and (method is None or call.method.lower() == method.lower())
        ]

    # A timeout argument (ASYNC109) is the point: tests say how long a reply may take.
    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        chat_id: int | None = None,
    ) -> list[Call]:
        """Wait until at least `count` accepted calls of `method` are recorded; returns them all.

        Raises:
            TimeoutError: if they do not all arrive within `timeout` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = self.sent(chat_id=chat_id, method=method)
                    if len(found) >= count:
                        return found
                    await self._calls_changed.wait()
        except TimeoutError:
            seen = [(call.method, call.status) for call in self.calls]
            raise TimeoutError(
                f"waited {timeout}s for {count} {method} call(s), got {len(found)}; "
                f"calls so far: {seen}"
            ) from None

    def chat_log(self, chat_id: int) -> list[ChatEntry]:
        """The chat as it shows now: both sides' messages in order, with edits applied."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return []
        return [self._entry(chat, message) for message in chat.messages.values()]

    def transcript(self, chat_id: int) -> str:
        """The chat log as readable text, one speaker line per message."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return ""
        bot_name = self.bot_user["first_name"]
        return "\n".join(
            entry.render(bot_name if entry.from_bot else chat.user.first_name)
            for entry in self.chat_log(chat_id)
        )

    # -- plumbing ----------------------------------------------------------------------------

    def _notify_calls(self) -> None:
        self._calls_changed.set()
        self._calls_changed = asyncio.Event()

    def _notify_updates(self) -> None:
        self._updates_changed.set()
        self._updates_changed = asyncio.Event()

    def _chat(self, user: FakeUser | int) -> _Chat:
        user_id = user if isinstance(user, int) else user.id
        chat = self._chats.get(user_id)
        if chat is None:
            if isinstance(user, int):
                raise LookupError(f"no chat {user_id}: create the user with tg.user() first")
            chat = self._chats[user_id] = _Chat(user)
        return chat

    def _size_of(self, file_id: str, file_size: int | None) -> int | None:
        if file_size is not None:
            return file_size
        stored = self._files.get(file_id)
        return len(stored.data) if stored else None

    def _incoming(self, user: FakeUser, content: JSONDict) -> JSONDict:
        chat = self._chat(user)
        message = self._add_message(chat, user.to_dict(), content)
        return {"update_id": next(self._update_ids), "message": copy.deepcopy(message)}

    def _add_message(self, chat: _Chat, sender: JSONDict, content: JSONDict) -> JSONDict:
        chat.last_message_id += 1
        message: JSONDict = {
            "message_id": chat.last_message_id,
            "from": dict(sender),
            "chat": chat.user.chat(),
            "date": int(time.time()),
            **content,
        }
        chat.messages[chat.last_message_id] = message
        return message

    def _entry(self, chat: _Chat, message: JSONDict) -> ChatEntry:
        markup = message.get("reply_markup") or {}
        buttons = tuple(
            tuple(button.get("text", "") for button in row)
            for row in markup.get("inline_keyboard", [])
        )
        location = message.get("location")
        return ChatEntry(
            message_id=message["message_id"],
            from_bot=message["from"].get("is_bot", False),
            text=message.get("text") or message.get("caption") or "",
            buttons=buttons,
            keyboard=chat.keyboards.get(message["message_id"], ()),
            document=(message["document"].get("file_name") or "")
            if "document" in message
            else None,
            photo="photo" in message,
            location=(location["latitude"], location["longitude"]) if location else None,
            message=copy.deepcopy(message),
        )

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/file/bot"):
            token, _, file_path = path.removeprefix("/file/bot").partition("/")
            if token != self.token:
                return self._error_response(_ApiError(HTTPStatus.UNAUTHORIZED, "Unauthorized"))
            return self._download(file_path)
        if not path.startswith("/bot"):
            return self._error_response(_not_found())
        token, _, method = path.removeprefix("/bot").partition("/")
        if token != self.token:
            return self._error_response(_ApiError(HTTPStatus.UNAUTHORIZED, "Unauthorized"))
        name = self._method_names.get(method.lower(), method)
        try:
            params, files = await _read_request(request)
        except _ApiError as error:
            return self._error_response(error)

        failures = self._failures.get(name)
        if name == "getUpdates" and not failures:
            # Polling is the transport, not the bot's behaviour, and would flood the record.
            try:
                return self._ok_response(await self._get_updates(params))
            except _ApiError as error:
                return self._error_response(error)

        result: Any = None
        try:
            if failures:
                raise failures.pop(0)
            handler = self._methods.get(name)
            if handler is None:
                raise _not_found()
            result = await handler(params, files)
        except _ApiError as error:
            self._record(Call(name, params, files, int(error.status)))
            return self._error_response(error)
        self._record(Call(name, params, files, 200, copy.deepcopy(result)))
        return self._ok_response(result)

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self._notify_calls()

    @staticmethod
    def _ok_response(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error_response(error: _ApiError) -> web.Response:
        return web.json_response(error.body(), status=error.status)

    def _download(self, file_path: str) -> web.Response:
        stored = self._files_by_path.get(file_path)
        if stored is None:
            return self._error_response(_not_found())
        return web.Response(
            body=stored.data, content_type=stored.mime or "application/octet-stream"
        )

    # -- parameters --------------------------------------------------------------------------

    def _chat_for(self, params: JSONDict) -> _Chat:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise _bad_request("chat_id is empty")
        chat = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            raise _bad_request("chat not found")
        if chat.blocked:
            raise _ApiError(HTTPStatus.FORBIDDEN, "Forbidden: bot was blocked by the user")
        return chat

    @staticmethod
    def _message_in(chat: _Chat, params: JSONDict, missing: str) -> JSONDict:
        message_id = params.get("message_id")
        message = chat.messages.get(message_id) if isinstance(message_id, int) else None
        if message is None:
            raise _bad_request(missing)
        return message

    @staticmethod
    def _formatted(
        params: JSONDict, key: str, entities_key: str
    ) -> tuple[str | None, list[JSONDict]]:
        text = params.get(key)
        if text is None:
            return None, []
        text = str(text)
        parse_mode = str(params.get("parse_mode") or "").lower()
        if parse_mode == "html":
            return _TelegramHtml.parse(text)
        return text, list(params.get(entities_key) or [])

    def _text(self, params: JSONDict) -> tuple[str, list[JSONDict]]:
        text, entities = self._formatted(params, "text", "entities")
        if not text or not text.strip():
            raise _bad_request("message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise _bad_request("message is too long")
        return text, entities

    def _caption(self, params: JSONDict) -> JSONDict:
        caption, entities = self._formatted(params, "caption", "caption_entities")
        if not caption:
            return {}
        if len(caption) > MAX_CAPTION_LENGTH:
            raise _bad_request("message caption is too long")
        content: JSONDict = {"caption": caption}
        if entities:
            content["caption_entities"] = entities
        return content

    @staticmethod
    def _inline_markup(params: JSONDict) -> JSONDict | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return None
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad_request("can't parse inline keyboard button: InlineKeyboardButton rows")
        for row in rows:
            for button in row:
                if not any(action in button for action in _INLINE_BUTTON_ACTIONS):
                    raise _bad_request("text buttons are unallowed in the inline keyboard")
                data = button.get("callback_data")
                if data is not None and not (
                    1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES
                ):
                    raise _bad_request("BUTTON_DATA_INVALID")
                url = button.get("url")
                if url is not None and not str(url).startswith(("http://", "https://", "tg://")):
                    raise _bad_request("BUTTON_URL_INVALID")
        return {"inline_keyboard": rows}

    @staticmethod
    def _reply_keyboard(params: JSONDict) -> tuple[tuple[str, ...], ...]:
        markup = params.get("reply_markup")
        if not isinstance(markup, dict) or "keyboard" not in markup:
            return ()
        return tuple(
            tuple(button if isinstance(button, str) else button.get("text", "") for button in row)
            for row in markup["keyboard"]
        )

    def _send(self, params: JSONDict, content: JSONDict) -> JSONDict:
        chat = self._chat_for(params)
        markup = self._inline_markup(params)
        if markup:
            # Telegram echoes an inline keyboard in the message, never a reply keyboard.
            content["reply_markup"] = markup
        reply = params.get("reply_parameters") or {}
        replied_id = reply.get("message_id") or params.get("reply_to_message_id")
        replied = chat.messages.get(replied_id) if isinstance(replied_id, int) else None
        if replied is not None:
            content["reply_to_message"] = copy.deepcopy(replied)
        message = self._add_message(chat, self.bot_user, content)
        keyboard = self._reply_keyboard(params)
        if keyboard:
            chat.keyboards[message["message_id"]] = keyboard
        return copy.deepcopy(message)

    def _input_file(
        self, params: JSONDict, files: dict[str, UploadedFile], key: str
    ) -> UploadedFile | _StoredFile:
        value = params.get(key)
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
        else:
            upload = files.get(key)
        if upload is not None:
            if not upload.data:
                raise _bad_request("file must be non-empty")
            return upload
        stored = self._files.get(value) if isinstance(value, str) else None
        if stored is None:
            raise _bad_request("wrong file identifier/HTTP URL specified")
        return stored

    def _store_upload(self, upload: UploadedFile, folder: str, extension: str) -> _StoredFile:
        number = next(self._file_numbers)
        file_id = f"BQACAgIAAxkDAAI{number:06d}"
        mime = upload.mime
        if (not mime or mime == "application/octet-stream") and upload.filename:
            mime = mimetypes.guess_type(upload.filename)[0] or mime
        path = f"{folder}/file_{number}{extension}"
        stored = _StoredFile(
            file_id, _unique_id(file_id), path, upload.data, mime, upload.filename
        )
        self._files[file_id] = stored
        self._files_by_path[path] = stored
        return stored

    # -- Bot API methods ---------------------------------------------------------------------

    async def _true(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        return True

    async def _get_me(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _send_message(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        self._chat_for(params)  # chat errors come before text errors, as in Telegram
        text, entities = self._text(params)
        content: JSONDict = {"text": text}
        if entities:
            content["entities"] = entities
        return self._send(params, content)

    async def _send_document(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        self._chat_for(params)
        source = self._input_file(params, files, "document")
        stored = (
            self._store_upload(source, "documents", "")
            if isinstance(source, UploadedFile)
            else source
        )
        document: JSONDict = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        if stored.filename:
            document["file_name"] = stored.filename
        if stored.mime:
            document["mime_type"] = stored.mime
        document["file_size"] = len(stored.data)
        return self._send(params, {"document": document, **self._caption(params)})

    async def _send_photo(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        self._chat_for(params)
        source = self._input_file(params, files, "photo")
        stored = (
            self._store_upload(source, "photos", ".jpg")
            if isinstance(source, UploadedFile)
            else source
        )
        width, height = _image_size(stored.data)
        size = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "width": width,
            "height": height,
        }
        return self._send(params, {"photo": [size], **self._caption(params)})

    async def _send_media_group(
        self, params: JSONDict, files: dict[str, UploadedFile]
    ) -> list[JSONDict]:
        """An album: 2-10 photos, each its own message sharing a `media_group_id`."""
        self._chat_for(params)
        media = params.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise _bad_request("wrong number of media items: 2-10 are allowed")
        group = f"album{next(self._file_numbers)}"
        sent = []
        for item in media:
            if not isinstance(item, dict) or item.get("type") != "photo":
                raise _bad_request("only photos are supported in albums here")
            one = {"chat_id": params["chat_id"], "photo": item.get("media"), **item}
            message = await self._send_photo(one, files)
            message["media_group_id"] = group
            sent.append(message)
        return sent

    async def _send_location(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        self._chat_for(params)
        try:
            latitude = float(params["latitude"])
            longitude = float(params["longitude"])
        except (KeyError, TypeError, ValueError):
            raise _bad_request("wrong latitude or longitude") from None
        return self._send(params, {"location": {"latitude": latitude, "longitude": longitude}})

    async def _send_chat_action(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        self._chat_for(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True

    async def _edit(self, params: JSONDict, change: JSONDict) -> JSONDict | bool:
        """Apply `change` (None values remove a field) to a bot message, unless it is a no-op."""
        if params.get("inline_message_id"):
            return True  # inline messages are not tracked; Telegram answers True for them
        chat = self._chat_for(params)
        message = self._message_in(chat, params, "message to edit not found")
        if not message["from"].get("is_bot"):
            raise _bad_request("message can't be edited")
        if all(message.get(key) == value for key, value in change.items()):
            raise _ApiError(HTTPStatus.BAD_REQUEST, _NOT_MODIFIED)
        for key, value in change.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    async def _edit_message_text(
        self, params: JSONDict, files: dict[str, UploadedFile]
    ) -> JSONDict | bool:
        if not params.get("inline_message_id"):
            message = self._message_in(self._chat_for(params), params, "message to edit not found")
            if "text" not in message:
                raise _bad_request("there is no text in the message to edit")
        text, entities = self._text(params)
        # Leaving reply_markup out removes the keyboard, as in Telegram.
        change = {
            "text": text,
            "entities": entities or None,
            "reply_markup": self._inline_markup(params),
        }
        return await self._edit(params, change)

    async def _edit_message_caption(
        self, params: JSONDict, files: dict[str, UploadedFile]
    ) -> JSONDict | bool:
        caption = self._caption(params)
        change = {
            "caption": caption.get("caption"),
            "caption_entities": caption.get("caption_entities"),
            "reply_markup": self._inline_markup(params),
        }
        return await self._edit(params, change)

    async def _edit_message_reply_markup(
        self, params: JSONDict, files: dict[str, UploadedFile]
    ) -> JSONDict | bool:
        return await self._edit(params, {"reply_markup": self._inline_markup(params)})

    async def _delete_message(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        chat = self._chat_for(params)
        message = self._message_in(chat, params, "message to delete not found")
        del chat.messages[message["message_id"]]
        chat.keyboards.pop(message["message_id"], None)
        return True

    async def _answer_callback_query(
        self, params: JSONDict, files: dict[str, UploadedFile]
    ) -> bool:
        if params.get("callback_query_id") not in self._callback_ids:
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        return True

    async def _get_file(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        stored = self._files.get(str(params.get("file_id")))
        if stored is None:
            raise _bad_request("invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD_BYTES:
            raise _bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    async def _set_webhook(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(secret):
            raise _bad_request("secret token contains unallowed characters")
        self.webhook = WebhookSettings(
            url=str(params.get("url") or ""),
            secret_token=secret,
            allowed_updates=params.get("allowed_updates"),
            max_connections=int(params.get("max_connections") or 40),
        )
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _delete_webhook(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        self.webhook = WebhookSettings()
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(
        self, params: JSONDict, files: dict[str, UploadedFile]
    ) -> JSONDict:
        info: JSONDict = {
            "url": self.webhook.url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook.url:
            # Telegram never reveals the secret token.
            info["max_connections"] = self.webhook.max_connections
            if self.webhook.allowed_updates is not None:
                info["allowed_updates"] = self.webhook.allowed_updates
        return info

    @staticmethod
    def _commands_key(params: JSONDict) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _set_my_commands(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        for command in commands:
            if not _COMMAND_NAME.fullmatch(str(command.get("command", ""))):
                raise _bad_request("BOT_COMMAND_INVALID")
        self._commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c.get("description", "")} for c in commands
        ]
        return True

    async def _get_my_commands(
        self, params: JSONDict, files: dict[str, UploadedFile]
    ) -> list[JSONDict]:
        return copy.deepcopy(self._commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        self._commands.pop(self._commands_key(params), None)
        return True

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self.webhook.url:
            raise _ApiError(
                HTTPStatus.CONFLICT,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        if offset > 0:
            # Asking from `offset` confirms every earlier update: Telegram forgets them.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        # A newer poll ends an older one with 409, which is how Telegram reports two bots
        # polling with one token.
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify_updates()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if generation != self._poll_generation:
                raise _ApiError(
                    HTTPStatus.CONFLICT,
                    "Conflict: terminated by other getUpdates request; make sure that only one "
                    "bot instance is running",
                )
            ready = [u for u in self._updates if u["update_id"] >= offset]
            if ready:
                return copy.deepcopy(ready[:limit])
            if self._closing:
                return []
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return []
            changed = self._updates_changed
            try:
                async with asyncio.timeout(remaining):
                    await changed.wait()
            except TimeoutError:
                pass
