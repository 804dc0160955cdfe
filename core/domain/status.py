"""Statuses with their transition tables, and the one `transition()` that enforces them.

An illegal move raises `Conflict` with a sentence for the person who tried it, so a stale
button ("this stop was already collected") fails loudly instead of silently rewriting
history.
"""

from __future__ import annotations

from enum import StrEnum

from core.errors import Conflict, InvalidInput


class Role(StrEnum):
    ADMIN = "admin"
    RESELLER = "reseller"
    COLLECTOR = "collector"


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    UNPAID = "unpaid"
    PARTIAL = "partial"
    PAID = "paid"
    CANCELLED = "cancelled"


class InvoiceKind(StrEnum):
    INVOICE = "invoice"
    DEBIT_NOTE = "debit_note"


class InvoicePurpose(StrEnum):
    NEW = "new"
    RENEWAL = "renewal"
    OUT_OF_TURN = "out_of_turn"
    MANUAL = "manual"
    LATE_FEE = "late_fee"
    CHARGEBACK = "chargeback"


class RequestStatus(StrEnum):
    """The service request an invoice pays for (a renewal waiting to be carried out)."""

    PENDING = "pending"
    EXECUTED = "executed"
    CANCELLED = "cancelled"


class AssignmentStatus(StrEnum):
    ASSIGNED = "assigned"
    COLLECTED = "collected"
    FAILED = "failed"
    REMOVED = "removed"


class SubscriberStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


class BillingMode(StrEnum):
    PREPAID = "prepaid"
    POSTPAID = "postpaid"


class PaymentMethod(StrEnum):
    CASH = "cash"
    BKASH = "bkash"
    NAGAD = "nagad"
    SSLCOMMERZ = "sslcommerz"
    RECHARGE_CARD = "recharge_card"
    CARD = "card"
    BANK = "bank"
    OTHER = "other"


def parse_method(text: str | PaymentMethod) -> PaymentMethod:
    """A method as typed: `cash`, `bKash`, `recharge card`, `recharge-card`, `recharge_card`."""
    if isinstance(text, PaymentMethod):
        return text
    wanted = text.strip().lower().replace(" ", "_").replace("-", "_")
    try:
        return PaymentMethod(wanted)
    except ValueError as exc:
        raise InvalidInput(
            f"{text!r} is not a payment method; use one of"
            f" {', '.join(m.value for m in PaymentMethod)}.",
            code="method_unknown",
            method=text,
        ) from exc


class FailureReason(StrEnum):
    NOT_HOME = "not_home"
    REFUSED = "refused"
    WRONG_ADDRESS = "wrong_address"
    DISCONNECTED = "disconnected"
    OTHER = "other"


INVOICE_TRANSITIONS: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.UNPAID, InvoiceStatus.CANCELLED}),
    InvoiceStatus.UNPAID: frozenset(
        {InvoiceStatus.PARTIAL, InvoiceStatus.PAID, InvoiceStatus.CANCELLED}
    ),
    InvoiceStatus.PARTIAL: frozenset({InvoiceStatus.PARTIAL, InvoiceStatus.PAID}),
    InvoiceStatus.PAID: frozenset(),
    InvoiceStatus.CANCELLED: frozenset(),
}

ASSIGNMENT_TRANSITIONS: dict[AssignmentStatus, frozenset[AssignmentStatus]] = {
    AssignmentStatus.ASSIGNED: frozenset(
        {AssignmentStatus.COLLECTED, AssignmentStatus.FAILED, AssignmentStatus.REMOVED}
    ),
    AssignmentStatus.COLLECTED: frozenset(),
    AssignmentStatus.FAILED: frozenset(),
    AssignmentStatus.REMOVED: frozenset(),
}

_CLOSED_ASSIGNMENT_SENTENCE = {
    AssignmentStatus.COLLECTED: ("This stop was already collected.", "stop_collected"),
    AssignmentStatus.FAILED: ("This stop was already marked failed.", "stop_failed"),
    AssignmentStatus.REMOVED: ("This stop was taken off the route by the office.", "stop_removed"),
}

COLLECTIBLE = frozenset({InvoiceStatus.UNPAID, InvoiceStatus.PARTIAL})


def transition_invoice(current: InvoiceStatus, new: InvoiceStatus) -> InvoiceStatus:
    """Return `new` if an invoice may move there from `current`, else raise `Conflict`."""
    if new not in INVOICE_TRANSITIONS[current]:
        raise Conflict(f"An invoice that is {current.value} cannot become {new.value}.")
    return new


def transition_assignment(current: AssignmentStatus, new: AssignmentStatus) -> AssignmentStatus:
    """Return `new` if a route stop may move there from `current`, else raise `Conflict`."""
    if new not in ASSIGNMENT_TRANSITIONS[current]:
        sentence, code = _CLOSED_ASSIGNMENT_SENTENCE.get(
            current, ("This stop was already closed.", "stop_closed")
        )
        raise Conflict(sentence, code=code)
    return new


def status_after_payment(amount_minor: int, paid_minor: int) -> InvoiceStatus:
    """What an invoice's status is once `paid_minor` of `amount_minor` has been paid."""
    if paid_minor >= amount_minor:
        return InvoiceStatus.PAID
    return InvoiceStatus.PARTIAL if paid_minor > 0 else InvoiceStatus.UNPAID
