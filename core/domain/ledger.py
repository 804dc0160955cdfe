"""Double-entry rules: the accounts, and the legs of each kind of money movement.

Legs are signed minor units, debit positive. Every posting's legs sum to zero (checked by
`balanced` before anything is written). Per-party accounts carry the party (a collector's
cash, a subscriber's receivable), so a balance is one SUM over legs with an index.

    invoice issued      receivable(subscriber) +A   revenue -A
    collected at door   collector_cash(collector) +X   receivable(subscriber) -X
                        commission_expense +C   commission_payable(collector) -C
                        (bKash, card, bank... at the door: office_accounts +X instead of
                        collector_cash: the money never passed through the collector's hands)
    commission paid     commission_payable(collector) +P   office_cash -(P-D)
                        collector_debt(collector) -D   (D: a shortage deducted, if agreed)
    paid at the office  office_cash (cash) or office_accounts (other) +X
                        receivable(subscriber) -X
    cash handed in      office_cash +counted   collector_cash(collector) -expected
                        shortage: collector_debt(collector) +(expected - counted)
                        excess:   cash_over -(counted - expected)
    payment reversed    the payment's legs negated, the money taken back from where it
                        is now (see `payment_reversed`)
"""

from __future__ import annotations

from dataclasses import dataclass

RECEIVABLE = "receivable"
REVENUE = "revenue"
COLLECTOR_CASH = "collector_cash"
OFFICE_CASH = "office_cash"
COMMISSION_EXPENSE = "commission_expense"
COMMISSION_PAYABLE = "commission_payable"
# The company's bank and mobile-wallet accounts (bKash, Nagad, card, SSLCommerz...).
OFFICE_ACCOUNTS = "office_accounts"
# What a collector owes the company: shortages found at handover, until deducted or repaid.
COLLECTOR_DEBT = "collector_debt"
# Cash handed in above what the ledger expected: recorded, never silently kept.
CASH_OVER = "cash_over"

CASH_METHOD = "cash"


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
    *,
    subscriber_id: int,
    collector_id: int,
    amount_minor: int,
    commission_minor: int,
    method: str = CASH_METHOD,
) -> list[Leg]:
    """A payment taken at the door. Only cash stays with the collector until handover."""
    held_by = (
        Leg(COLLECTOR_CASH, amount_minor, staff_id=collector_id)
        if method == CASH_METHOD
        else Leg(OFFICE_ACCOUNTS, amount_minor)
    )
    legs = [held_by, Leg(RECEIVABLE, -amount_minor, subscriber_id=subscriber_id)]
    if commission_minor:
        legs += [
            Leg(COMMISSION_EXPENSE, commission_minor),
            Leg(COMMISSION_PAYABLE, -commission_minor, staff_id=collector_id),
        ]
    return balanced(legs)


def commission_paid(
    *, collector_id: int, amount_minor: int, debt_deducted_minor: int = 0
) -> list[Leg]:
    """Commission settled: in cash, less the part of the collector's debt deducted from it."""
    if not 0 <= debt_deducted_minor <= amount_minor:
        raise UnbalancedPosting("a deduction is between zero and the commission paid")
    legs = [Leg(COMMISSION_PAYABLE, amount_minor, staff_id=collector_id)]
    if debt_deducted_minor:
        legs.append(Leg(COLLECTOR_DEBT, -debt_deducted_minor, staff_id=collector_id))
    if amount_minor - debt_deducted_minor:
        legs.append(Leg(OFFICE_CASH, -(amount_minor - debt_deducted_minor)))
    return balanced(legs)


def debt_deducted(debt_minor: int, payout_minor: int) -> int:
    """How much of a collector's debt a payout settles when the admin chooses to deduct it:
    all of it, at most the payout."""
    return min(max(debt_minor, 0), payout_minor)


def received_into(method: str) -> str:
    """The account money paid at the office goes into: the drawer for cash, else the bank."""
    return OFFICE_CASH if method == CASH_METHOD else OFFICE_ACCOUNTS


def office_payment(
    *, subscriber_id: int, amount_minor: int, method: str = CASH_METHOD
) -> list[Leg]:
    """Money taken by the office itself (create and claim, a manual payment)."""
    return balanced(
        [
            Leg(received_into(method), amount_minor),
            Leg(RECEIVABLE, -amount_minor, subscriber_id=subscriber_id),
        ]
    )


def cash_handed_in(*, collector_id: int, expected_minor: int, counted_minor: int) -> list[Leg]:
    """A collector hands in the cash they hold: the office counts it; the ledger expected
    `expected_minor`. A shortage becomes the collector's debt, an excess is recorded."""
    legs = [Leg(COLLECTOR_CASH, -expected_minor, staff_id=collector_id)]
    if counted_minor:
        legs.append(Leg(OFFICE_CASH, counted_minor))
    difference = counted_minor - expected_minor
    if difference < 0:
        legs.append(Leg(COLLECTOR_DEBT, -difference, staff_id=collector_id))
    elif difference > 0:
        legs.append(Leg(CASH_OVER, -difference))
    return balanced([leg for leg in legs if leg.amount_minor])


def payment_reversed(original: list[Leg], *, money_now_in: Leg | None = None) -> list[Leg]:
    """The mirror of a payment's posting: every leg negated, so the payment nets to zero.

    The money goes back out of wherever it is now. Cash a collector already handed in is
    in the office drawer, not in their pocket: `money_now_in` names that account, and the
    leg that received the money (collector cash) is replaced by it.
    """
    legs = [
        Leg(leg.account, -leg.amount_minor, leg.staff_id, leg.subscriber_id) for leg in original
    ]
    if money_now_in is not None:
        legs = [
            Leg(money_now_in.account, leg.amount_minor, money_now_in.staff_id, None)
            if leg.account == COLLECTOR_CASH
            else leg
            for leg in legs
        ]
    return balanced(legs)
