"""Phone numbers: everything stored is E.164, normalised by `phonenumbers` (libphonenumber)."""

from __future__ import annotations

import phonenumbers

from core.errors import InvalidInput


def normalise_phone(raw: str, default_region: str) -> str:
    """ "01711-000001" in Bangladesh -> "+8801711000001", or a sentence saying it is not one.

    Args:
        raw: what was typed or imported; a leading + makes the region irrelevant.
        default_region: ISO 3166 country of the tenant, for numbers written nationally.
    """
    try:
        number = phonenumbers.parse((raw or "").strip(), default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"{raw!r} is not a phone number.") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(f"{raw!r} is not a valid phone number for {default_region}.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
