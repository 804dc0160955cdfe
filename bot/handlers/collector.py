"""The collector's day: the route, a stop collected or failed, today's figures, history.

A stop's card is one message that the flow edits as it goes on, so the chat stays short
and an old button cannot be pressed into a second payment:

  card [Collected] -> amount step [Full · cash] [Other amount] [Other method] [Back]
       -> confirm step: a receipt photo, or [Post without photo] -> result [Next stop]
  card [Failed]    -> reason step (Other: one typed line) -> result [Next stop]

Callback data (at most 64 bytes). The ids and amounts in it are never trusted: every
press re-reads the stop from the collector's route for today, and the services check
everything again when they write.

  c:card:<stop>                     the card again (Back)
  c:col:<stop>[:<method>]           the amount step (cash unless another method was chosen)
  c:meth:<stop>                     the method step
  c:amt:<stop>:<method>             ask for a typed amount
  c:cf:<stop>:<amount>:<method>     the confirm step
  c:post:<stop>:<amount>:<method>   post without a photo
  c:fail:<stop>                     the reason step
  c:why:<stop>:<reason>             a reason chosen (other: ask for one typed line)
  c:next:<stop>                     the card of the next open stop

Steps that outlive one message live in `user_data` (persisted after every update and
refreshed before every handler, so a restart or another process resumes them):
`awaiting` for typed input (bot/flows.py) and `receipt` for the confirm step a photo
belongs to. Any press of a collector button leaves both: the button is the new step.

A payment's idempotency key is `tg:<chat>:<message>:<stop>` of the confirm message: a
double tap, an update delivered twice, or a photo and a tap on the same step post once.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup
from telegram import Update
from telegram.error import BadRequest
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import flows
from bot.auth import origin_of, staff_only
from bot.errors import domain_error_text, tell
from bot.replies import Buttons, answer, edit, edit_text, locale_for, send, send_text
from bot.texts import LANGUAGES, Locale, render
from core.config import Settings
from core.db.models import Staff
from core.domain.money import parse_amount
from core.domain.status import (
    AssignmentStatus,
    FailureReason,
    InvoiceStatus,
    PaymentMethod,
    Role,
    transition_assignment,
)
from core.errors import DomainError, InvalidAmount, InvalidInput, NotFound
from core.services.cash import cash_cap, collector_debt, require_cash_room
from core.services.collection import (
    CollectionResult,
    FailureResult,
    load_stop,
    mark_collected,
    mark_failed,
)
from core.services.files import MAX_FILE_BYTES, image_type, store_file
from core.services.history import HistoryEntry, collector_history
from core.services.route import Route, Stop, get_route

AREA = "collector"
RECEIPT = "receipt"  # user_data key of the confirm step a receipt photo belongs to

# What a collector can be paid with at a door (gateways post their own payments).
METHODS = (
    PaymentMethod.CASH,
    PaymentMethod.BKASH,
    PaymentMethod.NAGAD,
    PaymentMethod.CARD,
    PaymentMethod.BANK,
    PaymentMethod.OTHER,
)

_ID = r"(\d{1,10})"
_AMOUNT = r"(\d{1,15})"
_METHOD = "(" + "|".join(m.value for m in METHODS) + ")"
_REASON = "(" + "|".join(r.value for r in FailureReason) + ")"


# --------------------------------------------------------------------------- route


@staff_only(Role.COLLECTOR)
async def show_route(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
    """`/route`: today's totals, then one card per open stop in route order."""
    loc = await locale_for(staff, context)
    route = await get_route(staff)
    await send(
        update,
        loc,
        "collector.route.header",
        day=route.day,
        stops=len(route.stops),
        to_collect=route.to_collect_minor,
        collected=route.collected_today_minor,
        commission=route.commission_today_minor,
    )
    if not route.stops:
        done = route.collected_today_stops > 0
        await send(update, loc, "collector.route.all_done" if done else "collector.route.empty")
        return
    for stop in route.stops:
        await send_text(update, _card_text(loc, route, stop), _card_buttons(loc, stop))


@staff_only(Role.COLLECTOR)
async def back_to_card(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
    stop_id = _int(context, 1)
    loc = await locale_for(staff, context)
    _leave_steps(context)
    route, stop = await _open_stop(staff, stop_id)
    await answer(update, loc)
    await edit_text(update, _card_text(loc, route, stop), _card_buttons(loc, stop))


@staff_only(Role.COLLECTOR)
async def next_stop(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
    """The suggested next stop if it is still open, else the first open one."""
    wanted = _int(context, 1)
    loc = await locale_for(staff, context)
    _leave_steps(context)
    route = await get_route(staff)
    stop = next(
        (s for s in route.stops if s.assignment_id == wanted),
        route.stops[0] if route.stops else None,
    )
    await answer(update, loc)
    assert update.effective_chat is not None and update.callback_query is not None
    if update.callback_query.message is not None:
        await _retire_buttons(
            context, update.effective_chat.id, update.callback_query.message.message_id
        )
    if stop is None:
        await send(update, loc, "collector.route.all_done")
        return
    await send_text(update, _card_text(loc, route, stop), _card_buttons(loc, stop))


# --------------------------------------------------------------------------- collect


@staff_only(Role.COLLECTOR)
async def amount_step(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
    """[Collected]: the full balance as one button, or another amount or method."""
    stop_id, method = _int(context, 1), PaymentMethod(_text(context, 2) or PaymentMethod.CASH)
    loc = await locale_for(staff, context)
    _leave_steps(context)
    _, stop = await _open_stop(staff, stop_id)
    if method == PaymentMethod.CASH:
        # Above their cash cap a collector hands in first; said here, before any typing.
        await require_cash_room(staff.tenant_id, staff.id, staff.cash_cap_minor)
    await answer(update, loc)
    due = stop.due_minor
    full = render(loc, "collector.buttons.full", due=due, method=_method_word(loc, method))
    await edit(
        update,
        loc,
        "collector.collect.amount_step",
        buttons=[
            [(full, f"c:cf:{stop_id}:{due}:{method.value}")],
            [
                (render(loc, "collector.buttons.other_amount"), f"c:amt:{stop_id}:{method.value}"),
                (render(loc, "collector.buttons.other_method"), f"c:meth:{stop_id}"),
            ],
            [(render(loc, "common.back"), f"c:card:{stop_id}")],
        ],
        number=stop.invoice_number,
        name=stop.subscriber_name,
        due=due,
    )


@staff_only(Role.COLLECTOR)
async def method_step(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
    stop_id = _int(context, 1)
    loc = await locale_for(staff, context)
    _leave_steps(context)
    _, stop = await _open_stop(staff, stop_id)
    await answer(update, loc)
    choices = [(_method_word(loc, m), f"c:col:{stop_id}:{m.value}") for m in METHODS]
    await edit(
        update,
        loc,
        "collector.collect.method_step",
        buttons=[choices[:3], choices[3:], [(render(loc, "common.back"), f"c:col:{stop_id}")]],
        number=stop.invoice_number,
        name=stop.subscriber_name,
        due=stop.due_minor,
    )


@staff_only(Role.COLLECTOR)
async def ask_amount(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
    """[Other amount]: the next typed text is the amount (see `typed_input`)."""
    stop_id, method = _int(context, 1), PaymentMethod(_text(context, 2))
    loc = await locale_for(staff, context)
    _leave_steps(context)
    _, stop = await _open_stop(staff, stop_id)
    message_id = _pressed_message_id(update)
    flows.expect_text(context, AREA, "amount", stop=stop_id, msg=message_id, method=method.value)
    await answer(update, loc)
    await edit(
        update,
        loc,
        "collector.collect.ask_amount",
        buttons=[[(render(loc, "common.back"), f"c:col:{stop_id}:{method.value}")]],
        due=stop.due_minor,
    )


@staff_only(Role.COLLECTOR)
async def confirm_step(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
    """The last step: a receipt photo posts the payment with it, or [Post without photo]."""
    stop_id, amount, method = _int(context, 1), _int(context, 2), PaymentMethod(_text(context, 3))
    loc = await locale_for(staff, context)
    _leave_steps(context)
    _, stop = await _open_stop(staff, stop_id)
    problem = _amount_problem(loc, stop, amount)
    if problem:
        await tell(update, problem)
        return
    await answer(update, loc)
    message_id = _pressed_message_id(update)
    _remember_receipt_step(context, stop_id, message_id, amount, method)
    await edit_text(update, *_confirm(loc, stop, amount, method))


@staff_only(Role.COLLECTOR)
async def post_without_photo(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff
) -> None:
    stop_id, amount, method = _int(context, 1), _int(context, 2), PaymentMethod(_text(context, 3))
    loc = await locale_for(staff, context)
    _leave_steps(context)
    # Posted before the press is answered: a refusal must be the answer (an alert).
    text, buttons = await _post(
        update,
        staff,
        loc,
        stop_id=stop_id,
        amount=amount,
        method=method,
        flow_message_id=_pressed_message_id(update),
        receipt_file_id=None,
    )
    await answer(update, loc)
    await edit_text(update, text, buttons)


@staff_only()
async def receipt_file(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
    """A photo (or an image sent as a file) at the confirm step: stored, then posted."""
    loc = await locale_for(staff, context)
    if staff.role != Role.COLLECTOR:
        await answer(update, loc, "common.unknown_input")
        return
    step = (context.user_data or {}).get(RECEIPT)
    message = update.effective_message
    assert message is not None and update.effective_chat is not None
    if not isinstance(step, dict):
        await answer(update, loc, "collector.receipt.no_step")
        return
    media = message.photo[-1] if message.photo else message.document
    # Telegram re-encodes photos as JPEG; a file says what it claims to be (checked below).
    declared = message.document.mime_type if message.document else "image/jpeg"
    if media is None or (declared and not declared.startswith("image/")):
        await answer(update, loc, "collector.receipt.not_an_image")
        return
    if (media.file_size or 0) > MAX_FILE_BYTES:
        await answer(update, loc, "collector.receipt.too_big")
        return
    try:
        data = bytes(await (await media.get_file()).download_as_bytearray())
    except BadRequest as exc:
        if "too big" not in str(exc).lower():
            raise
        await answer(update, loc, "collector.receipt.too_big")
        return
    if len(data) > MAX_FILE_BYTES:
        await answer(update, loc, "collector.receipt.too_big")
        return
    kind = image_type(data)  # what the bytes are, whatever the client said
    if kind is None:
        await answer(update, loc, "collector.receipt.not_an_image")
        return
    settings: Settings = context.application.bot_data["settings"]
    stored = await store_file(
        staff, data, content_type=kind, telegram_file_id=media.file_id, data_dir=settings.data_dir
    )
    try:
        text, buttons = await _post(
            update,
            staff,
            loc,
            stop_id=int(step["stop"]),
            amount=int(step["amount"]),
            method=PaymentMethod(step["method"]),
            flow_message_id=int(step["msg"]),
            receipt_file_id=stored.id,
        )
    except DomainError:
        _leave_steps(context)  # refused (stale stop, balance changed): this step is over
        raise
    # Only now: after a glitch (no answer at all) the step waits for the photo again.
    _leave_steps(context)
    await _retire_buttons(context, update.effective_chat.id, int(step["msg"]))
    await send_text(update, text, buttons)


# --------------------------------------------------------------------------- fail


@staff_only(Role.COLLECTOR)
async def reason_step(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
    """[Failed]: what happened at the door."""
    stop_id = _int(context, 1)
    loc = await locale_for(staff, context)
    _leave_steps(context)
    _, stop = await _open_stop(staff, stop_id)
    await answer(update, loc)
    reasons = [
        (render(loc, f"collector.reasons.{r.value}"), f"c:why:{stop_id}:{r.value}")
        for r in FailureReason
    ]
    await edit(
        update,
        loc,
        "collector.fail.ask",
        buttons=[
            reasons[:2],
            reasons[2:4],
            [*reasons[4:], (render(loc, "common.back"), f"c:card:{stop_id}")],
        ],
        name=stop.subscriber_name,
    )


@staff_only(Role.COLLECTOR)
async def reason_chosen(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
    stop_id, reason = _int(context, 1), FailureReason(_text(context, 2))
    loc = await locale_for(staff, context)
    _leave_steps(context)
    if reason is FailureReason.OTHER:
        await _open_stop(staff, stop_id)
        flows.expect_text(context, AREA, "note", stop=stop_id, msg=_pressed_message_id(update))
        await answer(update, loc)
        await edit(
            update,
            loc,
            "collector.fail.ask_note",
            buttons=[[(render(loc, "common.back"), f"c:fail:{stop_id}")]],
        )
        return
    text, buttons = await _fail(update, staff, loc, stop_id=stop_id, reason=reason)
    await answer(update, loc)
    await edit_text(update, text, buttons)


# --------------------------------------------------------------------------- typed input


async def typed_input(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, pending: dict[str, Any]
) -> None:
    """Text typed while a collector step waits for it (bot/flows.py routes it here)."""
    loc = await locale_for(staff, context)
    message = update.effective_message
    assert message is not None and update.effective_chat is not None
    text = (message.text or "").strip()
    stop_id, flow_message_id = int(pending["stop"]), int(pending["msg"])
    if pending.get("step") == "amount":
        method = PaymentMethod(pending.get("method") or PaymentMethod.CASH)
        stop = await _still_open(context, staff, stop_id)
        question = render(loc, "collector.collect.ask_amount", due=stop.due_minor)
        try:
            amount = parse_amount(text, loc.currency)
        except InvalidAmount as exc:
            await send_text(update, "\n".join([domain_error_text(loc, exc), question]))
            return
        problem = _amount_problem(loc, stop, amount)
        if problem:
            await send_text(update, "\n".join([problem, question]))
            return
        flows.stop_waiting(context)
        await _retire_buttons(context, update.effective_chat.id, flow_message_id)
        sent = await send_text(update, *_confirm(loc, stop, amount, method))
        _remember_receipt_step(context, stop_id, sent.message_id, amount, method)
        return
    if pending.get("step") == "note":
        try:
            reply, buttons = await _fail(
                update, staff, loc, stop_id=stop_id, reason=FailureReason.OTHER, note=text
            )
        except InvalidInput as exc:
            # A note that is empty or too long: say what is accepted, ask again.
            if exc.code not in ("failure_note_required", "note_too_long"):
                flows.stop_waiting(context)
                raise
            question = render(loc, "collector.fail.ask_note")
            await send_text(update, "\n".join([domain_error_text(loc, exc), question]))
            return
        except DomainError:
            flows.stop_waiting(context)
            raise
        flows.stop_waiting(context)
        await _retire_buttons(context, update.effective_chat.id, flow_message_id)
        await send_text(update, reply, buttons)
        return
    flows.stop_waiting(context)
    await answer(update, loc, "common.unknown_input")


# --------------------------------------------------------------------------- today, history


@staff_only(Role.COLLECTOR)
async def show_today(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
    loc = await locale_for(staff, context)
    route = await get_route(staff)
    cash = await cash_cap(staff)
    await send(
        update,
        loc,
        "collector.today.summary",
        day=route.day,
        collected=route.collected_today_minor,
        stops=route.collected_today_stops,
        commission=route.commission_today_minor,
        open=len(route.stops),
        to_collect=route.to_collect_minor,
        cash=cash,
        debt=await collector_debt(staff.tenant_id, staff.id),
    )


@staff_only(Role.COLLECTOR)
async def show_history(update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff) -> None:
    loc = await locale_for(staff, context)
    entries = await collector_history(staff, limit=10)
    if not entries:
        await send(update, loc, "collector.history.empty")
        return
    lines = [render(loc, "collector.history.title", count=len(entries))]
    lines.extend(_history_line(loc, entry) for entry in entries)
    await send_text(update, "\n".join(lines))


# --------------------------------------------------------------------------- the services


async def _post(
    update: Update,
    staff: Staff,
    loc: Locale,
    *,
    stop_id: int,
    amount: int,
    method: PaymentMethod,
    flow_message_id: int,
    receipt_file_id: int | None,
) -> tuple[str, Buttons]:
    """Post the payment (once per confirm message) and say what happened."""
    assert update.effective_chat is not None
    before = await get_route(staff)
    result = await mark_collected(
        staff,
        assignment_id=stop_id,
        idempotency_key=f"tg:{update.effective_chat.id}:{flow_message_id}:{stop_id}",
        amount_minor=amount,
        method=method,
        receipt_file_id=receipt_file_id,
        origin=origin_of(update),
    )
    after = await get_route(staff)
    following = _following(before, after, stop_id)
    return _collected_text(loc, result, after, last=following is None), _next_buttons(
        loc, following
    )


async def _fail(
    update: Update,
    staff: Staff,
    loc: Locale,
    *,
    stop_id: int,
    reason: FailureReason,
    note: str | None = None,
) -> tuple[str, Buttons]:
    before = await get_route(staff)
    result = await mark_failed(
        staff, assignment_id=stop_id, reason=reason, note=note, origin=origin_of(update)
    )
    after = await get_route(staff)
    following = _following(before, after, stop_id)
    return _failed_text(loc, result, note, last=following is None), _next_buttons(loc, following)


async def _open_stop(staff: Staff, stop_id: int) -> tuple[Route, Stop]:
    """The stop as today's route shows it, or the reason it cannot be acted on.

    Raises:
        NotFound, PermissionDenied: no such stop, or another collector's (a forged button).
        Conflict: the stop was collected, failed or taken off the route (a stale button).
    """
    route = await get_route(staff)
    for stop in route.stops:
        if stop.assignment_id == stop_id:
            return route, stop
    # Not open today: let the service rules say why, in the catalog's words.
    row = await load_stop(staff, stop_id)
    transition_assignment(AssignmentStatus(row.status), AssignmentStatus.COLLECTED)
    raise NotFound("This stop is not on today's route.", code="stop_not_today")


async def _still_open(context: ContextTypes.DEFAULT_TYPE, staff: Staff, stop_id: int) -> Stop:
    """For typed input: a stop that closed meanwhile ends the waiting step too."""
    try:
        return (await _open_stop(staff, stop_id))[1]
    except DomainError:
        flows.stop_waiting(context)
        raise


# --------------------------------------------------------------------------- rendering


def _card_text(loc: Locale, route: Route, stop: Stop) -> str:
    return render(
        loc,
        "collector.route.card",
        n=route.stops.index(stop) + 1,
        total=len(route.stops),
        name=stop.subscriber_name,
        phone=stop.phone or "",
        address=stop.address,
        area=stop.area,
        due=stop.due_minor,
        number=stop.invoice_number,
        purpose=render(loc, f"collector.purposes.{stop.purpose}"),
    )


def _card_buttons(loc: Locale, stop: Stop) -> Buttons:
    row = [
        (render(loc, "collector.buttons.collected"), f"c:col:{stop.assignment_id}"),
        (render(loc, "collector.buttons.failed"), f"c:fail:{stop.assignment_id}"),
    ]
    if stop.latitude is not None and stop.longitude is not None:
        maps = f"https://maps.google.com/?q={stop.latitude},{stop.longitude}"
        row.append((render(loc, "collector.buttons.map"), maps))
    return [row]


def _confirm(loc: Locale, stop: Stop, amount: int, method: PaymentMethod) -> tuple[str, Buttons]:
    text = render(
        loc,
        "collector.collect.confirm",
        amount=amount,
        method=_method_word(loc, method),
        number=stop.invoice_number,
    )
    sid = stop.assignment_id
    buttons: Buttons = [
        [
            (render(loc, "collector.buttons.post"), f"c:post:{sid}:{amount}:{method.value}"),
            (render(loc, "common.back"), f"c:col:{sid}:{method.value}"),
        ]
    ]
    return text, buttons


def _collected_text(loc: Locale, result: CollectionResult, route: Route, *, last: bool) -> str:
    if result.invoice_status != InvoiceStatus.PAID:
        outcome = render(loc, "collector.collect.partial", remaining=result.remaining_minor)
    elif result.new_expiry is not None:
        outcome = render(
            loc,
            "collector.collect.paid_until",
            name=result.subscriber_name,
            expiry=result.new_expiry,
        )
    else:
        outcome = render(loc, "collector.collect.paid")
    if result.receipt_queued:
        receipt = render(loc, "collector.collect.receipt_queued")
    elif result.receipt_refusal:
        receipt = render(loc, "collector.collect.receipt_refused", reason=result.receipt_refusal)
    else:
        receipt = render(loc, "collector.collect.no_receipt", name=result.subscriber_name)
    today = render(
        loc,
        "collector.collect.today",
        collected=route.collected_today_minor,
        commission=route.commission_today_minor,
    )
    lines = [
        render(
            loc,
            "collector.collect.posted",
            amount=result.amount_minor,
            number=result.invoice_number,
            outcome=Markup(outcome),
        ),
        f"{receipt} {today}",
    ]
    if last:
        lines.append(render(loc, "collector.route.all_done"))
    return "\n".join(lines)


def _failed_text(loc: Locale, result: FailureResult, note: str | None, *, last: bool) -> str:
    if result.reason is FailureReason.OTHER and note:
        reason = note.strip()
    else:
        reason = render(loc, f"collector.reason_words.{result.reason.value}")
    sentences = [render(loc, "collector.fail.noted", reason=reason)]
    if result.flagged:
        sentences.append(
            render(
                loc,
                "collector.fail.flagged",
                visits=result.failed_visits,
                number=result.invoice_number,
            )
        )
    elif result.return_on is not None:
        sentences.append(render(loc, "collector.fail.comes_back", day=result.return_on))
    lines = [" ".join(sentences)]
    if last:
        lines.append(render(loc, "collector.route.all_done"))
    return "\n".join(lines)


def _next_buttons(loc: Locale, following: Stop | None) -> Buttons:
    if following is None:
        return []
    return [[(render(loc, "collector.buttons.next"), f"c:next:{following.assignment_id}")]]


def _history_line(loc: Locale, entry: HistoryEntry) -> str:
    common = {"day": entry.day, "name": entry.subscriber_name, "number": entry.invoice_number}
    if entry.outcome is AssignmentStatus.COLLECTED:
        method = _method_word(loc, entry.method) if entry.method else ""
        return render(
            loc, "collector.history.collected", amount=entry.amount_minor, method=method, **common
        )
    if entry.outcome is AssignmentStatus.FAILED:
        if entry.failure_reason is FailureReason.OTHER and entry.failure_note:
            reason = entry.failure_note
        else:
            reason = render(loc, f"collector.reason_words.{entry.failure_reason or 'other'}")
        return render(loc, "collector.history.failed", reason=reason, **common)
    return render(loc, "collector.history.removed", **common)


def _method_word(loc: Locale, method: PaymentMethod) -> str:
    return render(loc, f"collector.methods.{method.value}")


def _amount_problem(loc: Locale, stop: Stop, amount: int) -> str | None:
    """The sentence that refuses `amount` for this stop, or None if it may be posted."""
    if amount <= 0:
        return render(loc, "errors.amount_not_positive")
    if amount > stop.due_minor:
        return render(
            loc,
            "errors.amount_above_balance",
            balance_minor=stop.due_minor,
            number=stop.invoice_number,
        )
    return None


def _following(before: Route, after: Route, current: int) -> Stop | None:
    """The open stop after `current` in route order, wrapping round to skipped ones."""
    order = [s.assignment_id for s in before.stops]
    if current in order:
        later = set(order[order.index(current) + 1 :])
        for stop in after.stops:
            if stop.assignment_id in later:
                return stop
    return after.stops[0] if after.stops else None


# --------------------------------------------------------------------------- plumbing


async def _retire_buttons(
    context: ContextTypes.DEFAULT_TYPE, chat_id: int, message_id: int
) -> None:
    """Take the buttons off an earlier flow message (it may be bare or deleted already)."""
    try:
        await context.bot.edit_message_reply_markup(
            chat_id=chat_id, message_id=message_id, reply_markup=None
        )
    except BadRequest as exc:
        if not any(s in str(exc).lower() for s in ("not modified", "not found")):
            raise


def _leave_steps(context: ContextTypes.DEFAULT_TYPE) -> None:
    pending = flows.awaiting(context)
    if pending is not None and pending.get("area") == AREA:
        flows.stop_waiting(context)
    if context.user_data is not None:
        context.user_data.pop(RECEIPT, None)


def _remember_receipt_step(
    context: ContextTypes.DEFAULT_TYPE,
    stop_id: int,
    message_id: int,
    amount: int,
    method: PaymentMethod,
) -> None:
    assert context.user_data is not None
    context.user_data[RECEIPT] = {
        "stop": stop_id,
        "msg": message_id,
        "amount": amount,
        "method": method.value,
    }


def _pressed_message_id(update: Update) -> int:
    assert update.callback_query is not None and update.callback_query.message is not None
    return update.callback_query.message.message_id


def _text(context: ContextTypes.DEFAULT_TYPE, group: int) -> str:
    assert context.match is not None
    return context.match.group(group) or ""


def _int(context: ContextTypes.DEFAULT_TYPE, group: int) -> int:
    return int(_text(context, group))


def _menu_label(key: str) -> filters.MessageFilter:
    """A reply-keyboard button, in whichever language the collector reads."""
    labels = sorted({render(Locale(language=code), key) for code in LANGUAGES})
    return filters.Regex("^(?:" + "|".join(re.escape(label) for label in labels) + ")$")


# (pattern, handler) of every collector button; see the module docstring for the scheme.
_BUTTONS = (
    (rf"^c:card:{_ID}$", back_to_card),
    (rf"^c:col:{_ID}(?::{_METHOD})?$", amount_step),
    (rf"^c:meth:{_ID}$", method_step),
    (rf"^c:amt:{_ID}:{_METHOD}$", ask_amount),
    (rf"^c:cf:{_ID}:{_AMOUNT}:{_METHOD}$", confirm_step),
    (rf"^c:post:{_ID}:{_AMOUNT}:{_METHOD}$", post_without_photo),
    (rf"^c:fail:{_ID}$", reason_step),
    (rf"^c:why:{_ID}:{_REASON}$", reason_chosen),
    (rf"^c:next:{_ID}$", next_stop),
)


def register(application: Application) -> None:
    """Commands, menu buttons, stop buttons and receipt photos of collectors.

    Runs after /start and before the office area and the typed-input router (bot/app.py):
    a menu label must be taken as the menu button, not as the answer to a pending step.
    Photos and files are all taken here: a collector's go to the confirm step, anyone
    else's get the same answer the catch-all would give.
    """
    application.add_handler(CommandHandler("route", show_route))
    application.add_handler(CommandHandler("today", show_today))
    application.add_handler(CommandHandler("history", show_history))
    application.add_handler(MessageHandler(_menu_label("menu.route"), show_route))
    application.add_handler(MessageHandler(_menu_label("menu.today"), show_today))
    application.add_handler(MessageHandler(_menu_label("menu.history"), show_history))
    for pattern, callback in _BUTTONS:
        application.add_handler(CallbackQueryHandler(callback, pattern=pattern))
    application.add_handler(MessageHandler(filters.PHOTO | filters.Document.ALL, receipt_file))
    flows.register_text_input(AREA, typed_input)
