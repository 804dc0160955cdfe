"""Imports from the chat: an admin sends a CSV of subscribers or invoices as a document.

The file is checked by `core.services.importing`, the same rules as `collectbot import`:
a dry run validates every row, and the admin gets either the problems (the first
`ERRORS_SHOWN` in the chat; when there are more, all of them in an attached
`row,field,message` CSV) or a summary with [Import N …] [Cancel]. Nothing is written before
the press, and the press runs the real import, which checks every row again in its one
transaction: a row made invalid meanwhile (a username taken since) is reported, and
nothing is written.

- The kind comes from the caption ("subscribers" / "invoices", or the Bengali words),
  else from the header row (`importing.header_kind`); if neither tells, the admin is asked
  to send the file again with a caption.
- Telegram's reported size is checked before downloading: a file over
  `importing.MAX_BYTES` is refused without being fetched.
- The uploaded bytes wait for the press at `DATA_DIR/imports/<telegram user>-<sha256>.csv`,
  so any process can serve the press, also after a restart; {kind, sha256, name} wait in
  the admin's `user_data` under a short token (bot/previews.py). The file name carries the
  user so that one admin's cancel cannot remove another's pending file of the same bytes
  (the same admin sending the same file twice shares one: the second button then answers
  "send it again"). A used, cancelled or failed preview's file is removed; files left
  behind (a preview pushed out by newer ones, a crash) are swept after `KEEP_FILES`.
- Button data: `imp:go:<token>` imports, `imp:no:<token>` cancels. Taking the token retires
  it, so a second press imports nothing and is told so. Every press is answered once.

Documents of every kind reach this handler first (it is registered before the collector's
area, see bot/app.py): a collector's file that is not a CSV is handed on to the receipt
step (`collector.receipt_file`), so a receipt sent as a file still works; a CSV from anyone
but an admin gets the "not one of your commands" sentence.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import hashlib
import io
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePath
from typing import Any

from telegram import Document, Update
from telegram.constants import ChatAction
from telegram.error import BadRequest
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.auth import Handler, origin_of, staff_only
from bot.errors import domain_error_text
from bot.handlers import collector
from bot.handlers.office import send_long
from bot.previews import remember_preview, take_preview
from bot.replies import answer, edit, edit_text, locale_for, send
from bot.texts import Locale, render
from core.config import Settings
from core.db.models import Staff
from core.domain.status import Role
from core.errors import DomainError, ImportRejected
from core.services.importing import (
    MAX_BYTES,
    ImportReport,
    header_kind,
    import_invoices,
    import_subscribers,
)

PREVIEWS = "imports"  # user_data: token -> {"k": kind, "h": sha256, "n": file name}
ERRORS_SHOWN = 15  # row errors listed in the chat; all of them go in the attached report
MESSAGE_SHOWN = 300  # characters of one error's message in the chat (a cell can be huge)
LIMIT_MB = MAX_BYTES // 1024 // 1024
KEEP_FILES = 24 * 60 * 60  # seconds an unconfirmed upload stays on disk
CSV_TYPES = frozenset({"text/csv", "text/comma-separated-values", "application/csv", "text/x-csv"})
# Caption words naming the kind; a caption naming both (or neither) leaves it to the header.
CAPTION_WORDS = {
    "subscriber": "subscribers",
    "subscribers": "subscribers",
    "গ্রাহক": "subscribers",
    "গ্রাহকরা": "subscribers",
    "গ্রাহকদের": "subscribers",
    "invoice": "invoices",
    "invoices": "invoices",
    "ইনভয়েস": "invoices",
    "চালান": "invoices",
}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TOKEN = r"([A-Za-z0-9_-]{1,16})"

Import = Callable[..., Awaitable[ImportReport]]
RUN: dict[str, Import] = {"subscribers": import_subscribers, "invoices": import_invoices}

AdminHandler = Callable[[Update, ContextTypes.DEFAULT_TYPE, Staff, Locale], Awaitable[None]]


def admin_only(handler: AdminHandler) -> Handler:
    """Admins only (others get the usual refusal), with the reader's locale."""

    @staff_only(Role.ADMIN)
    @functools.wraps(handler)
    async def run(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
        await handler(update, context, staff, await locale_for(staff, context))

    return run


# --- the uploaded document ---------------------------------------------------------------


@staff_only()
async def document_received(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff
) -> None:
    """Any document from staff: an admin's import, a collector's receipt, or a refusal."""
    message = update.effective_message
    assert message is not None and message.document is not None
    document = message.document
    if staff.role == Role.COLLECTOR and not is_csv(document):
        await collector.receipt_file(update, context)
        return
    loc = await locale_for(staff, context)
    if staff.role != Role.ADMIN:
        await answer(update, loc, "common.not_for_your_role", alert=True)
        return
    name = PurePath(document.file_name or "file.csv").name
    if not is_csv(document):
        await send(update, loc, "imports.not_csv", name=name)
        return
    if (document.file_size or 0) > MAX_BYTES:
        await send(
            update,
            loc,
            "imports.too_large",
            name=name,
            size=_mb(document.file_size),
            limit=LIMIT_MB,
        )
        return
    assert update.effective_chat is not None
    await update.effective_chat.send_action(ChatAction.TYPING)
    data = await _download(document)
    if data is None:
        await send(update, loc, "imports.too_large", name=name, size=None, limit=LIMIT_MB)
        return
    try:
        kind = caption_kind(message.caption) or header_kind(data)
        if kind is None:
            await send(update, loc, "imports.which_kind", name=name)
            return
        report = await RUN[kind](staff, data, dry_run=True, origin=origin_of(update))
    except ImportRejected as exc:
        await _tell_rejected(update, loc, exc, name)
        return
    sha256 = hashlib.sha256(data).hexdigest()
    await asyncio.to_thread(_store, _path(context, staff, sha256), data)
    token = remember_preview(context, PREVIEWS, {"k": kind, "h": sha256, "n": name})
    buttons = [
        [
            (render(loc, f"imports.button.{kind}", count=report.rows), f"imp:go:{token}"),
            (render(loc, "common.cancel"), f"imp:no:{token}"),
        ]
    ]
    await send(
        update,
        loc,
        f"imports.ready.{kind}",
        buttons=buttons,
        count=report.rows,
        name=name,
    )


def is_csv(document: Document) -> bool:
    """A `.csv` name (whatever type the client says: Windows says "vnd.ms-excel") or a
    CSV type. The bytes are checked by the import: an `.xlsx` renamed is still refused."""
    name = (document.file_name or "").lower()
    return name.endswith(".csv") or (document.mime_type or "").lower() in CSV_TYPES


def caption_kind(caption: str | None) -> str | None:
    """The kind the caption names, if it names exactly one."""
    words = (word.strip(".,;:!?\"'“”()") for word in (caption or "").casefold().split())
    kinds = {CAPTION_WORDS[word] for word in words if word in CAPTION_WORDS}
    return kinds.pop() if len(kinds) == 1 else None


async def _download(document: Document) -> bytes | None:
    """The file's bytes, or None if Telegram will not hand over a file that large."""
    try:
        return bytes(await (await document.get_file()).download_as_bytearray())
    except BadRequest as exc:
        if "too big" not in str(exc).lower():
            raise
        return None


def _mb(size: int | None) -> str | None:
    return f"{size / 1024 / 1024:.1f}" if size else None


# --- the confirm and cancel buttons --------------------------------------------------------


@admin_only
async def import_confirmed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    stored = _take(context)
    if stored is None:
        await answer(update, loc, "imports.gone", alert=True)
        return
    kind, sha256, name = stored["k"], stored["h"], stored["n"]
    # Answered now: a big file takes a while, and the buttons go at once.
    await answer(update, loc)
    await edit(update, loc, "imports.working", name=name)
    path = _path(context, staff, sha256)
    try:
        data = await asyncio.to_thread(_read, path)
        if data is None or hashlib.sha256(data).hexdigest() != sha256:
            await edit(update, loc, "imports.gone")
            return
        try:
            report = await RUN[kind](staff, data, origin=origin_of(update))
        except ImportRejected as exc:
            await _tell_rejected(update, loc, exc, name, since_check=True)
            return
        except DomainError as exc:  # e.g. removed meanwhile; the press is already answered
            await edit_text(update, domain_error_text(loc, exc))
            return
        await edit(update, loc, f"imports.done.{kind}", count=report.created, name=name)
    finally:
        await asyncio.to_thread(_remove, path)


@admin_only
async def import_cancelled(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    stored = _take(context)
    if stored is None:
        await answer(update, loc, "imports.gone", alert=True)
        return
    await asyncio.to_thread(_remove, _path(context, staff, stored["h"]))
    await answer(update, loc)
    await edit(update, loc, "common.cancelled")


def _take(context: ContextTypes.DEFAULT_TYPE) -> dict[str, Any] | None:
    """The pressed button's preview, removed (so it works once), if it is well formed."""
    token = context.matches[0][1] if context.matches else ""
    stored = take_preview(context, PREVIEWS, token)
    if (
        isinstance(stored, dict)
        and stored.get("k") in RUN
        and isinstance(stored.get("h"), str)
        and _SHA256.fullmatch(stored["h"])
        and isinstance(stored.get("n"), str)
    ):
        return stored
    return None


# --- the error report ----------------------------------------------------------------------


async def _tell_rejected(
    update: Update, loc: Locale, exc: ImportRejected, name: str, *, since_check: bool = False
) -> None:
    """The file's problems: a whole-file sentence, or the count, the first row errors and,
    when there are more, every one of them as a CSV document. A pressed message is edited
    to the first line; the rest follows as new messages."""
    if not exc.errors:
        text = render(loc, "imports.refused", name=name, reason=str(exc))
        lines = []
    else:
        errors = exc.errors
        text = render(
            loc,
            "imports.rejected",
            name=name,
            count=len(errors),
            rows=len({row for row, _, _ in errors}),
            since_check=since_check,
        )
        lines = [
            render(
                loc,
                "imports.error_line",
                row=row,
                field=field,
                message=_clip(message, MESSAGE_SHOWN),
            )
            for row, field, message in errors[:ERRORS_SHOWN]
        ]
        if len(errors) > ERRORS_SHOWN:
            lines.append(render(loc, "imports.more_errors", more=len(errors) - ERRORS_SHOWN))
    if update.callback_query is not None:
        await edit_text(update, text)
        if lines:
            await send_long(update, lines)
    else:
        await send_long(update, [text, *lines])
    if len(exc.errors) > ERRORS_SHOWN:
        assert update.effective_chat is not None
        await update.effective_chat.send_document(
            document=error_report(exc.errors),
            filename=f"import-errors-{_csv_name(name)}",
            caption=render(loc, "imports.report_caption", name=name, count=len(exc.errors)),
        )


def error_report(errors: list[tuple[int, str, str]]) -> bytes:
    """Every row error as a `row,field,message` CSV that a spreadsheet opens (UTF-8, BOM)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("row", "field", "message"))
    for row, field, message in errors:
        writer.writerow((row, _inert(field), _inert(message)))
    return out.getvalue().encode("utf-8-sig")


def _inert(cell: str) -> str:
    # The texts quote the uploaded cells: one starting "=", "+", "-" or "@" would be run
    # as a formula by the spreadsheet that opens the report (CSV injection).
    return f"'{cell}" if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _csv_name(name: str) -> str:
    return name if name.lower().endswith(".csv") else f"{name}.csv"


# --- the uploads waiting on disk -----------------------------------------------------------


def _path(context: ContextTypes.DEFAULT_TYPE, staff: Staff, sha256: str) -> Path:
    settings: Settings = context.application.bot_data["settings"]
    return Path(settings.data_dir) / "imports" / f"{staff.telegram_user_id}-{sha256}.csv"


def _store(path: Path, data: bytes) -> None:
    """Write atomically (a temporary file renamed into place), sweeping stale uploads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep(path.parent)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _sweep(folder: Path) -> None:
    cutoff = time.time() - KEEP_FILES
    for old in folder.iterdir():
        try:
            if old.is_file() and old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)
        except OSError:  # another process swept it first
            continue


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


# --- wiring --------------------------------------------------------------------------------


def register(application: Application) -> None:
    """Before the collector's area (bot/app.py): it takes every document first."""
    application.add_handler(MessageHandler(filters.Document.ALL, document_received))
    application.add_handler(CallbackQueryHandler(import_confirmed, pattern=rf"^imp:go:{_TOKEN}$"))
    application.add_handler(CallbackQueryHandler(import_cancelled, pattern=rf"^imp:no:{_TOKEN}$"))
