"""The one hierarchy of errors the services raise.

Each class is a situation a person can act on; its message is one sentence written for the
person who caused it (a collector at a door, an admin at a desk). Transports translate them
in one place: the bot replies with the sentence, the web layer maps them to an HTTP status,
the CLI prints them. Anything that is not a `DomainError` is a bug and is logged with its
traceback.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class: a request the rules refuse. `str(error)` is the user-facing sentence.

    `code` (optional) names the sentence in the chat catalogs (`errors.<code>`), with
    `params` to fill it in, so the bot can say it in the reader's language; without a
    code, or without a translation, the English sentence is shown.
    """

    def __init__(self, message: str, *, code: str = "", **params: object) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


class NotFound(DomainError):
    """The object does not exist, or exists in another tenant (we never say which)."""


class PermissionDenied(DomainError):
    """The actor's role, permissions or reseller scope do not allow this action."""


class InactiveStaff(PermissionDenied):
    """The actor (or the collector acted upon) was deleted or has not bound Telegram yet."""


class InvalidInput(DomainError):
    """A value the user typed or uploaded is not acceptable (amount, phone, date, CSV...)."""


class InvalidAmount(InvalidInput):
    """An amount is not money: not a number, zero, negative, or finer than the currency."""


class AmountAboveBalance(InvalidInput):
    """An amount is larger than what is still due on the invoice."""


class InviteInvalid(DomainError):
    """An invite token is unknown, already used, revoked or expired."""


class Conflict(DomainError):
    """The object changed under the request: already collected, removed, reassigned, paid."""


class InsufficientBalance(Conflict):
    """A payout asks for more commission than the collector has earned and not been paid."""


class ImportRejected(InvalidInput):
    """A CSV import found errors; nothing was written. `.errors` lists (row, field, message)."""

    def __init__(self, message: str, errors: list[tuple[int, str, str]]) -> None:
        super().__init__(message, code="import_rejected")
        self.errors = errors
