"""Invoicing in the chat: invoices and create-and-claim, drafts and their approval, requests,
postpaid billing cycles, the dashboard, and suspending subscribers flagged for failed visits.

Admins do all of it; reseller staff see `/dashboard` for their own subscribers (the
services refuse the rest with one sentence). Each command parses its arguments, calls one
service of `core/services/invoicing.py` and renders `templates/chat/<language>/billing.toml`.

Button data is short and never trusted: the services re-check the role, the tenant and
the state when a button is pressed.
- `/drafts`: `bil:ap:<invoice id>` approves one draft (a second press is refused: it is no
  longer a draft); `bil:apa` asks to confirm approving all, `bil:apy` approves them.
- `/suspendflagged`: `bil:sf:<token>`. The subscribers the preview showed stay in this
  person's `user_data` under the token (persisted, so any process can serve the press);
  the first press takes the token, so a second press suspends nobody.
- `bil:no[:<token>]` cancels (and forgets the preview).
- `/claim` posts once per message: its idempotency key is the chat and message id, so a
  Telegram update delivered twice records one payment.
"""

from __future__ import annotations

import re
from datetime import date

from markupsafe import Markup
from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.auth import origin_of
from bot.handlers.office import BadArgs, _args, office, parse_day, split_args
from bot.previews import remember_preview, take_preview
from bot.replies import answer, edit, send
from bot.texts import Locale, render
from core.db.models import Staff
from core.domain.money import parse_amount
from core.domain.status import InvoiceKind, InvoicePurpose, PaymentMethod, parse_method
from core.errors import InvalidInput
from core.services.invoicing import (
    approve_drafts,
    change_billing_cycle,
    create_and_claim,
    dashboard,
    execute_request,
    list_drafts,
    new_invoice,
    preview_flagged_suspension,
    start_billing_cycle,
    stop_billing_cycle,
    suspend_flagged,
)

DRAFTS_SHOWN = 20  # /drafts: cards with an Approve button (Approve all covers the rest)
FLAGGED_SHOWN = 20  # /suspendflagged: lines in the preview
FLAGGED_MAX = 2_000  # subscribers one preview can suspend; more: send it again
PREVIEWS = "billing_suspend"  # user_data: token -> [subscriber ids]

PURPOSE_WORDS = {
    "new": InvoicePurpose.NEW,
    "renewal": InvoicePurpose.RENEWAL,
    "manual": InvoicePurpose.MANUAL,
    "out-of-turn": InvoicePurpose.OUT_OF_TURN,
    "out_of_turn": InvoicePurpose.OUT_OF_TURN,
    "outofturn": InvoicePurpose.OUT_OF_TURN,
    "late-fee": InvoicePurpose.LATE_FEE,
    "late_fee": InvoicePurpose.LATE_FEE,
    "chargeback": InvoicePurpose.CHARGEBACK,
}
KIND_WORDS = {"debit": InvoiceKind.DEBIT_NOTE, "debit-note": InvoiceKind.DEBIT_NOTE}
# The words a refusal suggests (the others above are accepted spellings of the same).
INVOICE_WORDS_SHOWN = (
    "renewal",
    "new",
    "manual",
    "out-of-turn",
    "late-fee",
    "chargeback",
    "debit",
)
INVOICE_KEYS = ("due", "remind", "suspend", "delete")
CLAIM_KEYS = ("ref", "note")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# --- parsing -------------------------------------------------------------------------------


def _day(text: str) -> date:
    return parse_day(text, "billing.bad_date")


def _whole(text: str, what: str, loc: Locale) -> int:
    if not re.fullmatch(r"-?\d{1,6}", text):
        raise BadArgs("billing.bad_number", value=text, what=render(loc, f"billing.words.{what}"))
    return int(text)


def _amount(text: str, loc: Locale) -> int:
    return parse_amount(text, loc.currency)  # InvalidAmount is answered by the error handler


def _purpose_word(loc: Locale, purpose: InvoicePurpose) -> str:
    return render(loc, f"billing.purposes.{purpose.value}")


# --- invoices ------------------------------------------------------------------------------


@office
async def new_invoice_command(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if len(args) < 2:
        raise BadArgs("billing.usage.newinvoice")
    username, amount = args[0], _amount(args[1], loc)
    words, values = split_args(args[2:], INVOICE_KEYS, unknown_key="billing.unknown_key")
    purpose, kind = InvoicePurpose.RENEWAL, InvoiceKind.INVOICE
    for word in words:
        folded = word.lower()
        if folded in PURPOSE_WORDS:
            purpose = PURPOSE_WORDS[folded]
        elif folded in KIND_WORDS:
            kind = KIND_WORDS[folded]
        else:
            allowed = ", ".join([*INVOICE_WORDS_SHOWN, *(f"{k}=" for k in INVOICE_KEYS)])
            raise BadArgs("billing.unknown_word", word=word, allowed=allowed)
    issued = await new_invoice(
        staff,
        username=username,
        amount_minor=amount,
        purpose=purpose,
        kind=kind,
        due_date=_day(values["due"]) if values.get("due") else None,
        reminder_days=_whole(values["remind"], "days", loc) if values.get("remind") else None,
        suspension_on=_day(values["suspend"]) if values.get("suspend") else None,
        deletion_on=_day(values["delete"]) if values.get("delete") else None,
        origin=origin_of(update),
    )
    await send(
        update,
        loc,
        "billing.newinvoice.done",
        i=issued,
        purpose=_purpose_word(loc, issued.purpose),
    )


@office
async def claim(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if len(args) < 2:
        raise BadArgs("billing.usage.claim")
    username, amount = args[0], _amount(args[1], loc)
    words, values = split_args(args[2:], CLAIM_KEYS, unknown_key="billing.unknown_key")
    method, purpose = PaymentMethod.CASH, InvoicePurpose.RENEWAL
    for word in words:
        if word.lower() in PURPOSE_WORDS:
            purpose = PURPOSE_WORDS[word.lower()]
            continue
        try:
            method = parse_method(word)
        except InvalidInput as exc:
            allowed = ", ".join(
                [*(m.value for m in PaymentMethod), *(f"{k}=" for k in CLAIM_KEYS)]
            )
            raise BadArgs("billing.unknown_word", word=word, allowed=allowed) from exc
    message = update.effective_message
    assert message is not None
    result = await create_and_claim(
        staff,
        subscriber=username,
        amount_minor=amount,
        method=method,
        reference=values.get("ref", ""),
        note=values.get("note", ""),
        purpose=purpose,
        # One command message, one payment: a Telegram update delivered twice posts once.
        idempotency_key=f"claim:{message.chat_id}:{message.message_id}",
        origin=origin_of(update),
    )
    if result.replayed:
        await send(update, loc, "billing.claim.replayed")
    await send(
        update,
        loc,
        "billing.claim.done",
        r=result,
        method=render(loc, f"office.words.method.{result.method.value}"),
    )


@office
async def execute(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if len(args) != 1:
        raise BadArgs("billing.usage.execute")
    done = await execute_request(staff, number=args[0], origin=origin_of(update))
    await send(update, loc, "billing.execute.done", number=done.number, name=done.subscriber_name)


# --- drafts --------------------------------------------------------------------------------


@office
async def drafts(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    found = await list_drafts(staff, limit=DRAFTS_SHOWN)
    if not found.count:
        await send(update, loc, "billing.drafts.none")
        return
    await send(
        update,
        loc,
        "billing.drafts.header",
        buttons=[
            [(render(loc, "billing.drafts.approve_all_button", count=found.count), "bil:apa")]
        ],
        count=found.count,
        amount=found.amount_minor,
    )
    for line in found.shown:
        await send(
            update,
            loc,
            "billing.drafts.line",
            buttons=[
                [(render(loc, "billing.drafts.approve_button"), f"bil:ap:{line.invoice_id}")]
            ],
            d=line,
        )
    if found.count > len(found.shown):
        await send(update, loc, "billing.drafts.more", more=found.count - len(found.shown))


@office
async def approve_one_pressed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    invoice_id = int(_match(context)[1])
    done = await approve_drafts(staff, ids=[invoice_id], origin=origin_of(update))
    await answer(update, loc)
    await edit(
        update,
        loc,
        "billing.drafts.approved_one",
        number=done.numbers[0],
        amount=done.amount_minor,
    )


@office
async def approve_all_pressed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    found = await list_drafts(staff, limit=0)
    await answer(update, loc)
    if not found.count:
        await edit(update, loc, "billing.drafts.none")
        return
    await edit(
        update,
        loc,
        "billing.drafts.confirm_all",
        buttons=[
            [
                (
                    render(loc, "billing.drafts.confirm_all_button", count=found.count),
                    "bil:apy",
                ),
                (render(loc, "common.cancel"), "bil:no"),
            ]
        ],
        count=found.count,
        amount=found.amount_minor,
    )


@office
async def approve_all_confirmed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    done = await approve_drafts(staff, origin=origin_of(update))
    await answer(update, loc)
    if not done.numbers:
        await edit(update, loc, "billing.drafts.none")
        return
    await edit(
        update,
        loc,
        "billing.drafts.approved_all",
        count=len(done.numbers),
        amount=done.amount_minor,
        skipped=done.skipped,
    )


@office
async def approve(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if not args:
        raise BadArgs("billing.usage.approve")
    done = await approve_drafts(staff, numbers=args, origin=origin_of(update))
    await send(
        update,
        loc,
        "billing.drafts.approved_named",
        count=len(done.numbers),
        numbers=done.numbers,
        amount=done.amount_minor,
    )


# --- billing cycles ------------------------------------------------------------------------


@office
async def cycle(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    args = _args(context)
    if len(args) < 2:
        raise BadArgs("billing.usage.cycle")
    username, action, rest = args[0], args[1].lower(), args[2:]
    origin = origin_of(update)
    if action == "start" and len(rest) <= 2:
        first_on = _day(rest.pop()) if rest and _DATE.fullmatch(rest[-1]) else None
        if len(rest) > 1:
            raise BadArgs("billing.usage.cycle")
        months = _whole(rest[0], "months", loc) if rest else 1
        result = await start_billing_cycle(
            staff, username=username, months=months, first_on=first_on, origin=origin
        )
        await send(update, loc, "billing.cycle.started", c=result)
    elif action == "change" and len(rest) == 1:
        months = _whole(rest[0], "months", loc)
        result = await change_billing_cycle(staff, username=username, months=months, origin=origin)
        await send(update, loc, "billing.cycle.changed", c=result)
    elif action == "stop" and not rest:
        result = await stop_billing_cycle(staff, username=username, origin=origin)
        await send(update, loc, "billing.cycle.stopped", c=result)
    else:
        raise BadArgs("billing.usage.cycle")


# --- the dashboard -------------------------------------------------------------------------


@office
async def dashboard_command(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    await send(update, loc, "billing.dashboard.text", d=await dashboard(staff))


# --- bulk suspension of flagged subscribers ------------------------------------------------


@office
async def suspend_flagged_command(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    preview = await preview_flagged_suspension(staff, limit=FLAGGED_MAX)
    if not preview.count:
        await send(update, loc, "billing.flagged.none")
        return
    token = _remember(context, [s.subscriber_id for s in preview.shown])
    count = len(preview.shown)
    # Already rendered (escaped) lines: Markup keeps the outer template from escaping twice.
    lines = [
        Markup(render(loc, "billing.flagged.line", s=s)) for s in preview.shown[:FLAGGED_SHOWN]
    ]
    await send(
        update,
        loc,
        "billing.flagged.preview",
        buttons=[
            [
                (render(loc, "billing.flagged.button", count=count), f"bil:sf:{token}"),
                (render(loc, "common.cancel"), f"bil:no:{token}"),
            ]
        ],
        count=count,
        due=sum(s.due_minor for s in preview.shown),
        lines=lines,
        more=count - len(lines),
        left_out=preview.count - count,
    )


@office
async def suspend_confirmed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    ids = _take(context, _match(context)[1])  # a second press finds nothing
    if ids is None:
        raise BadArgs("billing.flagged.gone")
    done = await suspend_flagged(staff, subscriber_ids=ids, origin=origin_of(update))
    await answer(update, loc)
    if not done.usernames:
        await edit(update, loc, "billing.flagged.none_done", skipped=done.skipped)
        return
    await edit(
        update,
        loc,
        "billing.flagged.done",
        count=len(done.usernames),
        usernames=done.usernames,
        skipped=done.skipped,
    )


@office
async def cancelled(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    token = _match(context)[1]
    if token:
        _take(context, token)
    await answer(update, loc)
    await edit(update, loc, "common.cancelled")


def _remember(context: ContextTypes.DEFAULT_TYPE, ids: list[int]) -> str:
    return remember_preview(context, PREVIEWS, ids)


def _take(context: ContextTypes.DEFAULT_TYPE, token: str) -> list[int] | None:
    stored = take_preview(context, PREVIEWS, token)
    return [int(i) for i in stored] if isinstance(stored, list) else None


def _match(context: ContextTypes.DEFAULT_TYPE) -> re.Match[str]:
    match = context.match
    assert match is not None  # the handler's pattern matched
    return match


# --- wiring --------------------------------------------------------------------------------

COMMANDS = (
    ("newinvoice", new_invoice_command),
    ("claim", claim),
    ("drafts", drafts),
    ("approve", approve),
    ("execute", execute),
    ("cycle", cycle),
    ("dashboard", dashboard_command),
    ("suspendflagged", suspend_flagged_command),
)


def register(application: Application) -> None:
    """Invoicing commands and their buttons (all button data starts `bil:`)."""
    for name, handler in COMMANDS:
        application.add_handler(CommandHandler(name, handler))
    token = r"([A-Za-z0-9_-]{1,16})"
    application.add_handler(
        CallbackQueryHandler(approve_one_pressed, pattern=r"^bil:ap:(\d{1,12})$")
    )
    application.add_handler(CallbackQueryHandler(approve_all_pressed, pattern=r"^bil:apa$"))
    application.add_handler(CallbackQueryHandler(approve_all_confirmed, pattern=r"^bil:apy$"))
    application.add_handler(CallbackQueryHandler(suspend_confirmed, pattern=rf"^bil:sf:{token}$"))
    application.add_handler(CallbackQueryHandler(cancelled, pattern=rf"^bil:no(?::{token})?$"))
