"""The office and the money that came in: the payments log, recording a payment by hand,
and reversing one.

- `/payments [from=YYYY-MM-DD] [to=YYYY-MM-DD] [operator=Karim] [method=bkash] [words]`:
  a page of the log with Older / Newer buttons and CSV / XLSX export of the whole filtered
  set. Words that are not filters search customer names, usernames and references.
- `/recordpayment <username or INV-…> <amount> [method] [ref=…] [note=…]`: where the
  money would go (oldest invoice first), then a confirm button.
- `/reverse R-00000123 <reason>`: what reversing means for that payment, then a confirm.

Button data: `pl:o:<token>:<id>` / `pl:n:<token>:<id>` (older / newer than a payment shown),
`pl:x:<token>:csv|xlsx` (export), `pm:ok:<token>` (record), `pm:rv:<token>` (reverse),
`pm:no:<token>` (cancel). The filters or the plan stay in this person's `user_data` under
the token (persisted, so any process can serve the press). Nothing in button data is
trusted: the services check the role, the scope and the state again. Recording and
reversing carry the confirmation message as their idempotency key, and taking the token
makes a second press do nothing.
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

from markupsafe import Markup
from telegram import Update
from telegram.constants import ChatAction, ParseMode
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.auth import origin_of
from bot.handlers.office import (
    BadArgs,
    _args,
    _callback_match,
    _settings,
    _word,
    office,
    parse_day,
    split_args,
)
from bot.previews import peek_preview, remember_preview, take_preview
from bot.replies import Buttons, answer, edit, edit_text, send, send_text
from bot.texts import Locale, render
from core.db.models import Staff
from core.documents.exports import TELEGRAM_MAX_BYTES
from core.domain.money import parse_amount
from core.domain.status import PaymentMethod, parse_method
from core.services.payments import find_payment, plan_payment, record_payment
from core.services.payments import reverse_payment as reverse_payment_service
from core.services.payments_log import (
    PaymentFilter,
    PaymentsPage,
    check_search,
    export_payments,
    payments_page,
    resolve_operator,
)

LOG = "payments_log"  # user_data: token -> PaymentFilter.as_json()
PLANS = "payments_plan"  # user_data: token -> a payment to record or a reversal to make
LOG_KEYS = ("from", "to", "operator", "method", "search")
RECORD_KEYS = ("ref", "note")
TOKEN = r"([A-Za-z0-9_-]{1,16})"


# --- the log -------------------------------------------------------------------------------


def _log_args(tokens: list[str]) -> dict[str, str]:
    """`key=value` filters in any order; words before the first key are a search."""
    words, values = split_args(tokens, LOG_KEYS, unknown_key="payments.log.unknown_filter")
    search = " ".join([*words, values.get("search", "")]).strip()
    return values | ({"search": search} if search else {})


def _day(text: str) -> date:
    return parse_day(text, "payments.log.bad_date")


async def _filters(staff: Staff, values: dict[str, str]) -> PaymentFilter:
    start = _day(values["from"]) if values.get("from") else None
    end = _day(values["to"]) if values.get("to") else None
    if start and end and start > end:
        raise BadArgs("payments.log.reversed")
    operator = (
        await resolve_operator(staff, values["operator"]) if values.get("operator") else None
    )
    method = parse_method(values["method"]) if values.get("method") else None
    search = check_search(values["search"]) if values.get("search") else None
    return PaymentFilter(
        start=start,
        end=end,
        operator_id=operator.id if operator else None,
        method=method,
        search=search or None,
    )


def _described(loc: Locale, filters: PaymentFilter, operator: str | None) -> list[str]:
    parts = []
    if filters.method:
        parts.append(_word(loc, "method", filters.method.value))
    if operator:
        parts.append(operator)
    if filters.search:
        parts.append(f"“{filters.search}”")
    return parts


def _page_message(
    loc: Locale, token: str, page: PaymentsPage, operator: str | None
) -> tuple[str, Buttons]:
    lines = [
        render(
            loc,
            "payments.log.header",
            start=page.start,
            end=page.end,
            filters=_described(loc, page.filters, operator),
        )
    ]
    if page.count is not None:
        lines.append(
            render(
                loc,
                "payments.log.totals",
                count=page.count,
                total=page.total_minor,
                reversed=page.reversed_count,
            )
        )
    for p in page.rows:
        lines.append(
            render(loc, "payments.log.line", p=p, method=_word(loc, "method", p.method.value))
        )
    if not page.rows:
        lines.append(render(loc, "payments.log.empty"))
    buttons: Buttons = []
    paging = []
    if page.has_newer and page.rows:
        paging.append((render(loc, "payments.log.newer"), f"pl:n:{token}:{page.rows[0].id}"))
    if page.has_older and page.rows:
        paging.append((render(loc, "payments.log.older"), f"pl:o:{token}:{page.rows[-1].id}"))
    if paging:
        buttons.append(paging)
    if page.rows:
        buttons.append(
            [
                (render(loc, "payments.log.export_csv"), f"pl:x:{token}:csv"),
                (render(loc, "payments.log.export_xlsx"), f"pl:x:{token}:xlsx"),
            ]
        )
    return "\n".join(lines), buttons


def _stored_log(
    context: ContextTypes.DEFAULT_TYPE, token: str
) -> tuple[PaymentFilter, str | None]:
    stored = peek_preview(context, LOG, token)
    if not isinstance(stored, dict):
        raise BadArgs("payments.log.gone")
    return PaymentFilter.from_json(stored["f"]), stored.get("op")


@office
async def payments_log(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    values = _log_args(_args(context))
    filters = await _filters(staff, values)
    page = await payments_page(staff, filters)
    operator = values.get("operator") if filters.operator_id else None
    # The page's filters carry the period as resolved: the next pages keep it.
    token = remember_preview(context, LOG, {"f": page.filters.as_json(), "op": operator})
    text, buttons = _page_message(loc, token, page, operator)
    await send_text(update, text, buttons or None)


@office
async def log_page(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    match = _callback_match(context)
    direction, token, anchor = match[1], match[2], int(match[3])
    filters, operator = _stored_log(context, token)
    page = await payments_page(
        staff,
        filters,
        older_than=anchor if direction == "o" else None,
        newer_than=anchor if direction == "n" else None,
    )
    text, buttons = _page_message(loc, token, page, operator)
    await answer(update, loc)
    await edit_text(update, text, buttons or None)


@office
async def log_export(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    match = _callback_match(context)
    token, fmt = match[1], match[2]
    filters, _ = _stored_log(context, token)
    await answer(update, loc, "payments.export.started", fmt=fmt.upper())
    assert update.effective_chat is not None
    await update.effective_chat.send_action(ChatAction.UPLOAD_DOCUMENT)
    folder = Path(_settings(context).data_dir) / "exports"
    # The words worked out once: the writer asks for one per row.
    words = {m.value: _word(loc, "method", m.value) for m in PaymentMethod}
    export = await export_payments(
        staff, filters, fmt=fmt, folder=folder, method_word=words.__getitem__
    )
    try:
        if export.size_bytes > TELEGRAM_MAX_BYTES:
            await send(update, loc, "payments.export.too_large", rows=export.rows)
            return
        caption = render(
            loc, "payments.export.caption", rows=export.rows, zipped=export.zipped, fmt=fmt.upper()
        )
        await update.effective_chat.send_document(
            document=export.path,
            filename=export.filename,
            caption=caption,
            parse_mode=ParseMode.HTML,
        )
    finally:
        await asyncio.to_thread(export.path.unlink, True)


# --- recording a payment -------------------------------------------------------------------


def _record_args(tokens: list[str], loc: Locale) -> dict[str, Any]:
    """`<who> <amount> [method words] [ref=…] [note=…]`."""
    head, extra = split_args(tokens, RECORD_KEYS, unknown_key="payments.record.unknown_key")
    if len(head) < 2:
        raise BadArgs("payments.usage.record")
    return {
        "target": head[0],
        "amount": parse_amount(head[1], loc.currency),
        "method": " ".join(head[2:]) or "cash",
        "reference": extra.get("ref", ""),
        "note": extra.get("note", ""),
    }


@office
async def record(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _record_args(_args(context), loc)
    plan = await plan_payment(
        staff,
        target=args["target"],
        amount_minor=args["amount"],
        method=args["method"],
        reference=args["reference"],
        note=args["note"],
    )
    token = remember_preview(
        context,
        PLANS,
        {
            "do": "record",
            "t": args["target"],
            "a": plan.amount_minor,
            "m": plan.method.value,
            "r": plan.reference,
            "n": plan.note,
        },
    )
    await send(
        update,
        loc,
        "payments.record.preview",
        buttons=[
            [
                (
                    render(loc, "payments.record.button", amount=plan.amount_minor),
                    f"pm:ok:{token}",
                ),
                (render(loc, "common.cancel"), f"pm:no:{token}"),
            ]
        ],
        plan=plan,
        method=_word(loc, "method", plan.method.value),
    )


def _confirmation_key(update: Update, prefix: str) -> str:
    query = update.callback_query
    assert query is not None and query.message is not None
    return f"{prefix}:{query.message.chat.id}:{query.message.message_id}"


@office
async def record_confirmed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    stored = take_preview(context, PLANS, _callback_match(context)[1])
    if not isinstance(stored, dict) or stored.get("do") != "record":
        raise BadArgs("payments.confirm_gone")
    done = await record_payment(
        staff,
        target=stored["t"],
        amount_minor=int(stored["a"]),
        method=stored["m"],
        reference=stored["r"],
        note=stored["n"],
        idempotency_key=_confirmation_key(update, "pm"),
        origin=origin_of(update),
    )
    await answer(update, loc)
    lines = [
        Markup(render(loc, "payments.record.line", share=share, receipt=receipt))
        for share, receipt in zip(done.plan.allocations, done.receipt_numbers, strict=True)
    ]
    await edit(
        update,
        loc,
        "payments.record.done",
        plan=done.plan,
        method=_word(loc, "method", done.plan.method.value),
        lines=lines,
        receipts=done.receipts_queued,
        expiry=done.new_expiry,
    )


# --- reversing a payment -------------------------------------------------------------------


@office
async def reverse(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if len(args) < 2:
        raise BadArgs("payments.usage.reverse")
    facts = await find_payment(staff, args[0])
    if facts.reversed_at is not None:
        raise BadArgs(
            "payments.reverse.already", receipt=facts.receipt, reason=facts.reversal_reason
        )
    reason = " ".join(args[1:])
    token = remember_preview(context, PLANS, {"do": "reverse", "p": facts.receipt, "r": reason})
    await send(
        update,
        loc,
        "payments.reverse.preview",
        buttons=[
            [
                (render(loc, "payments.reverse.button"), f"pm:rv:{token}"),
                (render(loc, "common.cancel"), f"pm:no:{token}"),
            ]
        ],
        p=facts,
        method=_word(loc, "method", facts.method.value),
        reason=reason,
    )


@office
async def reverse_confirmed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    stored = take_preview(context, PLANS, _callback_match(context)[1])
    if not isinstance(stored, dict) or stored.get("do") != "reverse":
        raise BadArgs("payments.confirm_gone")
    done = await reverse_payment_service(
        staff, ref=stored["p"], reason=stored["r"], origin=origin_of(update)
    )
    await answer(update, loc)
    await edit(
        update,
        loc,
        "payments.reverse.done",
        r=done,
        status_word=_word(loc, "invoice_status", done.invoice_status.value),
        source=render(loc, f"payments.reverse.from.{done.refunded_from}"),
    )


@office
async def cancelled(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    take_preview(context, PLANS, _callback_match(context)[1])
    await answer(update, loc)
    await edit(update, loc, "common.cancelled")


def register(application: Application) -> None:
    """`/payments`, `/recordpayment`, `/reverse` and their buttons (`pl:`, `pm:`)."""
    application.add_handler(CommandHandler("payments", payments_log))
    application.add_handler(CommandHandler("recordpayment", record))
    application.add_handler(CommandHandler("reverse", reverse))
    application.add_handler(
        CallbackQueryHandler(log_page, pattern=rf"^pl:([on]):{TOKEN}:(\d{{1,12}})$")
    )
    application.add_handler(
        CallbackQueryHandler(log_export, pattern=rf"^pl:x:{TOKEN}:(csv|xlsx)$")
    )
    application.add_handler(CallbackQueryHandler(record_confirmed, pattern=rf"^pm:ok:{TOKEN}$"))
    application.add_handler(CallbackQueryHandler(reverse_confirmed, pattern=rf"^pm:rv:{TOKEN}$"))
    application.add_handler(CallbackQueryHandler(cancelled, pattern=rf"^pm:no:{TOKEN}$"))
