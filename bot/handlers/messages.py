"""The office and the messages sent to subscribers: what did not get through, a retry, the
wording the subscribers read, and an invoice as a PDF.

- `/undelivered`: the newest WhatsApp messages that failed, were refused (a landline) or
  bounced after sending, each with a Retry button (`off:rt:<message id>`).
- `/templates`: the texts subscribers receive, as the files in `templates/whatsapp/` hold
  them, so the office knows exactly what a receipt says.
- `/invoicepdf INV-…`: the invoice regenerated as a PDF with its payments.

Button data is not trusted: `retry_message` re-checks the tenant and reseller scope.
"""

from __future__ import annotations

import html
import re

from telegram import Update
from telegram.constants import ChatAction
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.auth import origin_of
from bot.handlers.office import MAX_MESSAGE, BadArgs, _args, _units, office
from bot.replies import answer, send, send_text
from bot.texts import Locale, render
from core.db.models import Staff
from core.services.outbox import list_undelivered_messages, retry_message
from core.services.receipts import build_invoice_document, message_template_sources

RETRY_PATTERN = r"^off:rt:(\d{1,12})$"


@office
async def undelivered(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    messages = await list_undelivered_messages(staff)
    if not messages:
        await send(update, loc, "office.undelivered.none")
        return
    await send(update, loc, "office.undelivered.title", count=len(messages))
    for m in messages:
        await send(
            update,
            loc,
            "office.undelivered.item",
            buttons=[[(render(loc, "office.undelivered.retry"), f"off:rt:{m.message_id}")]],
            m=m,
            kind=render(loc, f"office.words.message_kind.{m.kind}")
            if m.kind in ("receipt", "reminder")
            else m.kind,
        )


@office
async def retry_pressed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    match = context.matches[0] if context.matches else None
    if match is None:
        raise BadArgs("office.undelivered.gone")
    retried = await retry_message(staff, message_id=int(match[1]), origin=origin_of(update))
    await answer(update, loc, None)
    await send(update, loc, "office.undelivered.retried", r=retried)


@office
async def templates(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    entries = [render(loc, "office.templates.title")]
    for t in message_template_sources():
        item = render(loc, "office.templates.item", t=t)
        entries.append(f"{item}\n<pre>{html.escape(t.text.strip())}</pre>")
    # A <pre> block spans lines, so whole entries are packed into messages (send_long cuts
    # between lines and could split one); each template is far below Telegram's limit.
    message = ""
    for entry in entries:
        if message and _units(message) + 1 + _units(entry) > MAX_MESSAGE:
            await send_text(update, message)
            message = ""
        message = f"{message}\n{entry}" if message else entry
    await send_text(update, message)


@office
async def invoice_pdf(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if len(args) != 1 or not re.fullmatch(r"[A-Za-z0-9/_-]{1,40}", args[0]):
        raise BadArgs("office.usage.invoicepdf")
    chat = update.effective_chat
    assert chat is not None
    await chat.send_action(ChatAction.UPLOAD_DOCUMENT)
    document = await build_invoice_document(staff, number=args[0])
    await chat.send_document(document=document.pdf, filename=document.filename)


def register(application: Application) -> None:
    application.add_handler(CommandHandler("undelivered", undelivered))
    application.add_handler(CommandHandler("templates", templates))
    application.add_handler(CommandHandler("invoicepdf", invoice_pdf))
    application.add_handler(CallbackQueryHandler(retry_pressed, pattern=RETRY_PATTERN))
