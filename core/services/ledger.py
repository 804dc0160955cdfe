"""Writing postings and reading balances. Called only inside a service's transaction."""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.functions import Sum

from core.db.models import LedgerLeg, LedgerPosting
from core.domain.ledger import Leg, balanced


async def post(
    conn: BaseDBAsyncClient,
    *,
    tenant_id: int,
    kind: str,
    legs: list[Leg],
    memo: str = "",
    payment_id: int | None = None,
    invoice_id: int | None = None,
    created_by_id: int | None = None,
    idempotency_key: str | None = None,
) -> LedgerPosting:
    """Write one balanced posting and its legs (one INSERT for all legs)."""
    balanced(legs)
    posting = await LedgerPosting.create(
        tenant_id=tenant_id,
        kind=kind,
        memo=memo,
        payment_id=payment_id,
        invoice_id=invoice_id,
        created_by_id=created_by_id,
        idempotency_key=idempotency_key,
        using_db=conn,
    )
    await LedgerLeg.bulk_create(
        [
            LedgerLeg(
                tenant_id=tenant_id,
                posting_id=posting.id,
                account=leg.account,
                staff_id=leg.staff_id,
                subscriber_id=leg.subscriber_id,
                amount_minor=leg.amount_minor,
            )
            for leg in legs
        ],
        using_db=conn,
    )
    return posting


async def account_balance(
    *,
    tenant_id: int,
    account: str,
    staff_id: int | None = None,
    subscriber_id: int | None = None,
    conn: BaseDBAsyncClient | None = None,
) -> int:
    """Sum of the legs on one account (optionally one party's), debit positive."""
    query = LedgerLeg.filter(tenant_id=tenant_id, account=account)
    if staff_id is not None:
        query = query.filter(staff_id=staff_id)
    if subscriber_id is not None:
        query = query.filter(subscriber_id=subscriber_id)
    if conn is not None:
        query = query.using_db(conn)
    rows = await query.annotate(total=Sum("amount_minor")).values("total")
    return int(rows[0]["total"] or 0) if rows else 0
