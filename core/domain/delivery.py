"""Delivering messages: one status vocabulary for every gateway, retry timing, and which
phone numbers can receive WhatsApp at all.

Invariants:
- A message's delivery status only moves forward: sent < delivered < read. Events arrive
  out of order (Meta may report `read` before `delivered`, or only `read`); a late
  `delivered` after `read` is logged but never moves the message back.
- `failed` can replace `sent` (the gateway accepted it, the phone never got it) but not
  `delivered` or `read`: a message that reached the phone has reached it.
- Retries wait `base * 2**(attempt-1)` seconds, capped, so a gateway that is down for an
  hour is asked a handful of times, not thousands.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

import phonenumbers
from phonenumbers import PhoneNumberType


class DeliveryStatus(StrEnum):
    """How far a message got on the gateway's side."""

    SENT = "sent"  # the gateway (or WhatsApp's server) has it
    DELIVERED = "delivered"  # on the subscriber's phone: the proof that matters
    READ = "read"  # opened (only when the subscriber shares read receipts)
    FAILED = "failed"  # the gateway gave up on it


# Forward order; FAILED ranks with SENT's successor so it replaces SENT and nothing later.
_RANK = {
    DeliveryStatus.SENT: 1,
    DeliveryStatus.FAILED: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.READ: 4,
}

# Ultramsg's `message_ack` values. `pending` means still on the gateway's queue: it says
# nothing new after our own "sent", so it maps to nothing. `device` is delivery; `played`
# (a voice note listened to) is as good as read.
ULTRAMSG_ACKS: dict[str, DeliveryStatus | None] = {
    "pending": None,
    "server": DeliveryStatus.SENT,
    "device": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "played": DeliveryStatus.READ,
}

# The Cloud API's `statuses[].status` values.
META_STATUSES: dict[str, DeliveryStatus | None] = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "failed": DeliveryStatus.FAILED,
    "deleted": None,
    "warning": None,
}


def rank(status: DeliveryStatus | str | None) -> int:
    """The order of a status (0 for none yet), for the forward-only update."""
    if status is None:
        return 0
    return _RANK[DeliveryStatus(status)]


def moves_forward(current: DeliveryStatus | str | None, new: DeliveryStatus | str) -> bool:
    """Whether `new` should become the message's status, given `current`."""
    return rank(new) > rank(current)


def retry_delay(attempt: int, *, base_seconds: int, cap_seconds: int) -> timedelta:
    """How long to wait after failed attempt number `attempt` (1 for the first)."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    seconds = base_seconds * 2 ** min(attempt - 1, 30)
    return timedelta(seconds=min(seconds, cap_seconds))


def whatsapp_refusal(phone: str | None) -> str | None:
    """Why `phone` cannot receive WhatsApp, or None if it can (as far as we can tell).

    WhatsApp numbers are mobile numbers. libphonenumber knows which ranges are fixed lines,
    so a landline is refused at queue time rather than failing at the gateway for days.
    Where a country's plan cannot tell mobile from fixed, the number gets the benefit of
    the doubt.
    """
    if not phone:
        return "the subscriber has no phone number"
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return f"{phone} is not a phone number in international form"
    if not phonenumbers.is_valid_number(number):
        return f"{phone} is not a valid phone number"
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.FIXED_LINE:
        return f"{phone} is a landline, which cannot receive WhatsApp"
    if kind in (
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.PREMIUM_RATE,
        PhoneNumberType.SHARED_COST,
        PhoneNumberType.PAGER,
        PhoneNumberType.UAN,
        PhoneNumberType.VOICEMAIL,
    ):
        return f"{phone} is a service number, which cannot receive WhatsApp"
    return None
