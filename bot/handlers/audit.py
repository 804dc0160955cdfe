"""/audit: who did what, when and through which channel, for one collector, subscriber or
invoice over a period (admins, and reseller staff within their scope).

    /audit collector=Karim [from=2026-11-01] [to=2026-11-22]
    /audit subscriber=rahim01 [from=…] [to=…]
    /audit invoice=INV-2026-0042 [from=…] [to=…]
    /audit INV-2026-0042 · /audit Karim        (short forms: an invoice number, a collector)

Without dates the period is the last 30 days. Pages are newest first. When older entries
exist, the page's last message carries [Older] with `aud:o:<token>:<before id>`: the token
stands for the query (subject and period), kept in this person's `user_data` by
`bot/previews.py` and only peeked, so the button of every page works; the service checks
the permission and the scope again on every press. Every press is answered exactly once.
Texts: `templates/chat/<language>/audit.toml`.
"""

from __future__ import annotations

import contextlib
import re
from datetime import date

from telegram import Update
from telegram.error import BadRequest
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.handlers.office import (
    BadArgs,
    _args,
    _callback_match,
    office,
    parse_day,
    split_args,
    split_message,
)
from bot.previews import peek_preview, remember_preview
from bot.replies import Buttons, answer, send_text
from bot.texts import Locale, catalog, render
from core.db.models import Staff
from core.services.audit_trail import (
    AuditTrail,
    TrailEntry,
    TrailSubject,
    audit_trail,
    summarise_details,
)
from core.services.reports import MAX_PERIOD_DAYS

QUERIES = "audit_trail"  # user_data: token -> {"k": subject kind, "r": ref, "s"/"e": ISO days}
SUBJECT_KEYS = tuple(kind.value for kind in TrailSubject)
KEYS = (*SUBJECT_KEYS, "from", "to")
# What the short form takes for an invoice number (anything else names a collector).
_INVOICE_NUMBER = re.compile(r"(?:INV|LF)-[A-Z0-9-]+", re.IGNORECASE)
_OLDER = re.compile(r"^aud:o:([A-Za-z0-9_-]{1,16}):(\d{1,10})$")
# Details said with the catalog's words (`office.words.<group>.<value>`), not as `key: value`.
_WORDED_DETAILS = {"method": "method", "reason": "reason"}


def parse_query(tokens: list[str]) -> tuple[TrailSubject, str, date | None, date | None]:
    """(subject kind, what names it, from, to) of the command's words.

    Raises:
        BadArgs: an unknown key, no subject or two, a date that is not YYYY-MM-DD, or a
            period that is reversed or longer than a year; each said with the usage.
    """
    lead, values = split_args(tokens, KEYS, unknown_key="audit.unknown_key")
    subjects = [(key, value) for key, value in values.items() if key in SUBJECT_KEYS]
    if lead:
        text = " ".join(lead)
        short = "invoice" if len(lead) == 1 and _INVOICE_NUMBER.fullmatch(text) else "collector"
        subjects.append((short, text))
    if len(subjects) != 1 or not subjects[0][1]:
        raise BadArgs("audit.usage")
    start, end = _day(values.get("from")), _day(values.get("to"))
    if start and end:
        if start > end:
            raise BadArgs("audit.reversed")
        if (end - start).days >= MAX_PERIOD_DAYS:
            raise BadArgs("audit.too_long")
    kind, ref = subjects[0]
    return TrailSubject(kind), ref, start, end


def _day(text: str | None) -> date | None:
    return parse_day(text, "audit.bad_date") if text is not None else None


# --- rendering -----------------------------------------------------------------------------


def _said(loc: Locale, keys: tuple[str, ...], default: str) -> str:
    """The first of `keys` the catalogs have, in the reader's language; else `default`."""
    texts = catalog("en")
    for key in keys:
        if key in texts:
            return render(loc, key)
    return default


def entry_line(loc: Locale, e: TrailEntry) -> str:
    """One entry: "24 Nov 10:42 · Karim · collected INV-2026-0042 · ৳1,500 · Telegram 5551234"."""
    name = e.action.replace(".", "_")
    action = _said(loc, (f"office.words.action.{name}", f"audit.action.{name}"), e.action)
    actor = e.actor_name or _said(loc, (f"office.words.actor.{e.actor_kind}",), e.actor_kind)
    # A person acting on themselves (joining, choosing a language) is not named twice.
    self_action = e.object_type == "staff" and e.object_label == e.actor_name
    words = [
        _said(loc, (f"office.words.{group}.{value}",), value)
        for key, group in _WORDED_DETAILS.items()
        if isinstance(value := e.details.get(key), str)
    ]
    rest = {k: v for k, v in e.details.items() if k not in _WORDED_DETAILS}
    return render(
        loc,
        "audit.entry",
        e=e,
        actor=actor,
        action=action,
        label="" if self_action else e.object_label,
        words=words,
        summary=summarise_details(rest),
    )


def page_lines(loc: Locale, trail: AuditTrail, *, older: bool) -> list[str]:
    """The page as lines (each one balanced HTML): a header, then one line per entry."""
    subject = render(
        loc, f"audit.subject.{trail.subject.value}", ref=trail.subject_ref, name=trail.subject_name
    )
    if not trail.entries:
        return [render(loc, "audit.none", subject=subject, start=trail.start, end=trail.end)]
    header = render(
        loc,
        "audit.header",
        subject=subject,
        start=trail.start,
        end=trail.end,
        count=len(trail.entries),
        more=trail.more,
        older=older,
    )
    return [header, *(entry_line(loc, e) for e in trail.entries)]


async def _send_page(
    update: Update, loc: Locale, trail: AuditTrail, token: str | None, *, older: bool
) -> None:
    """The page in as few messages as Telegram allows; [Older] under the last one."""
    buttons: Buttons | None = None
    if token is not None and trail.next_before_id is not None:
        buttons = [[(render(loc, "audit.older"), f"aud:o:{token}:{trail.next_before_id}")]]
    chunks = split_message("\n".join(page_lines(loc, trail, older=older)))
    for n, chunk in enumerate(chunks, start=1):
        await send_text(update, chunk, buttons if n == len(chunks) else None)


# --- handlers ------------------------------------------------------------------------------


async def _read(
    staff: Staff,
    kind: TrailSubject,
    ref: str,
    *,
    start: date | None,
    end: date | None,
    before_id: int | None = None,
) -> AuditTrail:
    return await audit_trail(
        staff,
        collector=ref if kind == TrailSubject.COLLECTOR else None,
        subscriber=ref if kind == TrailSubject.SUBSCRIBER else None,
        invoice=ref if kind == TrailSubject.INVOICE else None,
        start=start,
        end=end,
        before_id=before_id,
    )


@office
async def audit_command(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    kind, ref, start, end = parse_query(_args(context))
    trail = await _read(staff, kind, ref, start=start, end=end)
    token = None
    if trail.more:
        # The resolved subject and period: every page reads the same trail.
        token = remember_preview(
            context,
            QUERIES,
            {
                "k": trail.subject.value,
                "r": trail.subject_ref,
                "s": trail.start.isoformat(),
                "e": trail.end.isoformat(),
            },
        )
    await _send_page(update, loc, trail, token, older=False)


@office
async def older_entries(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: Staff, loc: Locale
) -> None:
    match = _callback_match(context)
    token, before_id = match[1], int(match[2])
    stored = peek_preview(context, QUERIES, token)  # peeked: each page's button works
    if not isinstance(stored, dict) or stored.get("k") not in SUBJECT_KEYS:
        raise BadArgs("audit.gone")
    trail = await _read(
        staff,
        TrailSubject(stored["k"]),
        str(stored["r"]),
        start=date.fromisoformat(str(stored["s"])),
        end=date.fromisoformat(str(stored["e"])),
        before_id=before_id,
    )
    await answer(update, loc)
    query = update.callback_query
    assert query is not None
    with contextlib.suppress(BadRequest):  # the page stays readable; only its button goes
        await query.edit_message_reply_markup(reply_markup=None)
    await _send_page(update, loc, trail, token, older=True)


def register(application: Application) -> None:
    """/audit and its [Older] button (button data starts `aud:`)."""
    application.add_handler(CommandHandler("audit", audit_command))
    application.add_handler(CallbackQueryHandler(older_entries, pattern=_OLDER))
