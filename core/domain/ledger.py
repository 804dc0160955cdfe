"""Double-entry rules: the accounts, and the legs of each kind of money movement.

Legs are signed minor units, debit positive. Every posting's legs sum to zero (checked by
`balanced` before anything is written). Per-party accounts carry the party (a collector's
cash, a subscriber's receivable), so a balance is one SUM over legs with an index.

    invoice issued      receivable(subscriber) +A   revenue -A
    cash collected      collector_cash(collector) +X   receivable(subscriber) -X
                        commission_expense +C   commission_payable(collector) -C
    commission paid     commission_payable(collector) +P   office_cash -P
    paid at the office  office_cash +X   receivable(subscriber) -X
"""

from __future__ import annotations

from dataclasses import dataclass

RECEIVABLE = "receivable"
REVENUE = "revenue"
COLLECTOR_CASH = "collector_cash"
OFFICE_CASH = "office_cash"
COMMISSION_EXPENSE = "commission_expense"
COMMISSION_PAYABLE = "commission_payable"


@dataclass(frozen=True)
class Leg:
    account: str
    amount_minor: int
    staff_id: int | None = None
    subscriber_id: int | None = None


class UnbalancedPosting(AssertionError):
    """A programming error: a posting whose legs do not sum to zero was about to be written."""


def balanced(legs: list[Leg]) -> list[Leg]:
    if len(legs) < 2 or sum(leg.amount_minor for leg in legs) != 0:
        raise UnbalancedPosting(f"legs must be two or more and sum to zero: {legs}")
    return legs


def invoice_issued(*, subscriber_id: int, amount_minor: int) -> list[Leg]:
    return balanced(
        [
            Leg(RECEIVABLE, amount_minor, subscriber_id=subscriber_id),
            Leg(REVENUE, -amount_minor),
        ]
    )


def cash_collected(
    *, subscriber_id: int, collector_id: int, amount_minor: int, commission_minor: int
) -> list[Leg]:
    legs = [
        Leg(COLLECTOR_CASH, amount_minor, staff_id=collector_id),
        Leg(RECEIVABLE, -amount_minor, subscriber_id=subscriber_id),
    ]
    if commission_minor:
        legs += [
            Leg(COMMISSION_EXPENSE, commission_minor),
            Leg(COMMISSION_PAYABLE, -commission_minor, staff_id=collector_id),
        ]
    return balanced(legs)


def commission_paid(*, collector_id: int, amount_minor: int) -> list[Leg]:
    return balanced(
        [
            Leg(COMMISSION_PAYABLE, amount_minor, staff_id=collector_id),
            Leg(OFFICE_CASH, -amount_minor),
        ]
    )


def office_payment(*, subscriber_id: int, amount_minor: int) -> list[Leg]:
    """Money taken by the office itself (create and claim): no collector holds it."""
    return balanced(
        [
            Leg(OFFICE_CASH, amount_minor),
            Leg(RECEIVABLE, -amount_minor, subscriber_id=subscriber_id),
        ]
    )
