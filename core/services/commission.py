"""Paying collectors the commission they earned.

Invariant: commission paid out never exceeds commission earned. A collector who owes the
company (a shortage at a cash handover) may have the debt deducted from a payout when the
admin confirms it: the payout settles the commission in full, part of it in cash and part
by lowering the debt, never more than the debt. The balance is read from
the ledger inside the payout's transaction after locking the collector's row (PostgreSQL
`SELECT ... FOR UPDATE`; SQLite serialises writers), so concurrent payouts cannot both
spend the same balance. A payout with an idempotency key posts once.
"""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.db.models import LedgerLeg, LedgerPosting, Staff, Tenant
from core.domain import ledger
from core.domain.money import format_money
from core.errors import InsufficientBalance, InvalidAmount
from core.services.access import (
    COLLECTORS_COMMISSION_PAY,
    SYSTEM,
    Origin,
    find_collector,
    require_permission,
)
from core.services.audit import write_audit
from core.services.ledger import account_balance, post


@dataclass(frozen=True)
class PayoutResult:
    collector_id: int
    collector_name: str
    paid_minor: int
    balance_after_minor: int
    posting_id: int
    replayed: bool = False
    debt_deducted_minor: int = 0
    debt_after_minor: int = 0

    @property
    def cash_paid_minor(self) -> int:
        return self.paid_minor - self.debt_deducted_minor


async def commission_balance(tenant_id: int, collector_id: int, conn=None) -> int:
    """Earned and not yet paid: the credit balance of the collector's commission account."""
    return -await account_balance(
        tenant_id=tenant_id, account=ledger.COMMISSION_PAYABLE, staff_id=collector_id, conn=conn
    )


async def pay_commission(
    actor: Staff,
    *,
    collector_id: int,
    amount_minor: int | None = None,
    idempotency_key: str | None = None,
    deduct_debt: bool = False,
    origin: Origin = SYSTEM,
) -> PayoutResult:
    """Pay a collector all (`amount_minor=None`) or part of their commission balance;
    with `deduct_debt`, what they owe is taken from it first (up to the payout)."""
    require_permission(actor, COLLECTORS_COMMISSION_PAY)
    collector = await find_collector(actor, collector_id)
    tenant = await Tenant.get(id=actor.tenant_id)
    if amount_minor is not None and amount_minor <= 0:
        raise InvalidAmount("The payout must be more than zero.", code="amount_not_positive")
    if idempotency_key:
        done = await LedgerPosting.get_or_none(
            tenant_id=actor.tenant_id, idempotency_key=idempotency_key
        )
        if done is not None:
            return await _replayed(done, collector)
    try:
        async with in_transaction() as conn:
            # The row lock makes concurrent payouts for one collector take turns.
            await Staff.filter(id=collector.id).select_for_update().using_db(conn).get()
            balance = await commission_balance(actor.tenant_id, collector.id, conn)
            amount = balance if amount_minor is None else amount_minor
            if amount <= 0:
                raise InsufficientBalance(
                    f"{collector.name} has no commission to pay.",
                    code="no_commission",
                    name=collector.name,
                )
            if amount > balance:
                raise InsufficientBalance(
                    f"{collector.name} has only "
                    f"{format_money(balance, tenant.currency, tenant.locale)} to pay.",
                    code="commission_short",
                    name=collector.name,
                    balance_minor=balance,
                )
            debt = await account_balance(
                tenant_id=actor.tenant_id,
                account=ledger.COLLECTOR_DEBT,
                staff_id=collector.id,
                conn=conn,
            )
            deducted = ledger.debt_deducted(debt, amount) if deduct_debt else 0
            posting = await post(
                conn,
                tenant_id=actor.tenant_id,
                kind="commission_payout",
                legs=ledger.commission_paid(
                    collector_id=collector.id, amount_minor=amount, debt_deducted_minor=deducted
                ),
                created_by_id=actor.id,
                memo=f"commission {collector.name}",
                idempotency_key=idempotency_key,
            )
            await write_audit(
                tenant_id=actor.tenant_id,
                actor=actor,
                action="commission.pay",
                object_type="staff",
                object_id=collector.id,
                origin=origin,
                details={
                    "amount_minor": amount,
                    "debt_deducted_minor": deducted,
                    "posting_id": posting.id,
                },
                using_db=conn,
            )
    except IntegrityError:
        if not idempotency_key:
            raise
        # The same key won in another request a moment ago: answer as it did.
        done = await LedgerPosting.get(tenant_id=actor.tenant_id, idempotency_key=idempotency_key)
        return await _replayed(done, collector)
    return PayoutResult(
        collector.id,
        collector.name,
        amount,
        balance - amount,
        posting.id,
        debt_deducted_minor=deducted,
        debt_after_minor=debt - deducted,
    )


async def _replayed(posting: LedgerPosting, collector: Staff) -> PayoutResult:
    legs = await LedgerLeg.filter(posting_id=posting.id)
    paid = sum(leg.amount_minor for leg in legs if leg.account == ledger.COMMISSION_PAYABLE)
    deducted = -sum(leg.amount_minor for leg in legs if leg.account == ledger.COLLECTOR_DEBT)
    balance = await commission_balance(posting.tenant_id, collector.id)
    debt = await account_balance(
        tenant_id=posting.tenant_id, account=ledger.COLLECTOR_DEBT, staff_id=collector.id
    )
    return PayoutResult(
        collector.id,
        collector.name,
        paid,
        balance,
        posting.id,
        replayed=True,
        debt_deducted_minor=deducted,
        debt_after_minor=debt,
    )
