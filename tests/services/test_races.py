"""Races, on PostgreSQL where requests really run at once on separate connections.

The database is the referee: unique indexes and conditional updates decide, and every
ledger posting sums to zero afterwards.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from core.db.models import Assignment, Invoice, LedgerPosting, Payment
from core.domain.status import AssignmentStatus, InvoiceStatus, Role
from core.errors import DomainError, InsufficientBalance
from core.services.assignments import assign_invoices
from core.services.collection import mark_collected
from core.services.commission import commission_balance, pay_commission
from tests.factories import make_invoice, make_staff, make_subscriber, make_tenant
from tests.ledger_checks import unbalanced_postings

pytestmark = [pytest.mark.usefixtures("db"), pytest.mark.postgres_only]

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
N = 20


async def test_twenty_admins_assigning_one_invoice_to_different_collectors_leave_one_open():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    collectors = [await make_staff(tenant, Role.COLLECTOR) for _ in range(N)]
    invoice = await make_invoice(await make_subscriber(tenant))

    results = await asyncio.gather(
        *(
            assign_invoices(admin, collector_id=c.id, numbers=[invoice.number], now=NOW)
            for c in collectors
        )
    )

    winners = [r for r in results if r.assigned]
    assert len(winners) == 1
    assert all(r.refused[0].refused for r in results if not r.assigned)
    assert await Assignment.filter(status=AssignmentStatus.ASSIGNED).count() == 1


async def test_twenty_mark_collected_calls_on_one_stop_post_one_payment():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    collector = await make_staff(tenant, Role.COLLECTOR, commission_bp=250)
    invoice = await make_invoice(await make_subscriber(tenant), 150_000)
    stop = (
        await assign_invoices(admin, collector_id=collector.id, numbers=[invoice.number], now=NOW)
    ).assigned[0]

    # Half replay one key (a duplicated update), half press with keys of their own.
    keys = ["same"] * (N // 2) + [f"key-{i}" for i in range(N // 2)]
    results = await asyncio.gather(
        *(
            mark_collected(collector, assignment_id=stop.assignment_id, idempotency_key=k, now=NOW)
            for k in keys
        ),
        return_exceptions=True,
    )

    unexpected = [
        r for r in results if isinstance(r, Exception) and not isinstance(r, DomainError)
    ]
    assert unexpected == []
    assert await Payment.all().count() == 1
    after = await Invoice.get(id=invoice.id)
    assert (after.paid_minor, after.status) == (150_000, InvoiceStatus.PAID)
    assert await LedgerPosting.filter(kind="collection").count() == 1
    assert await unbalanced_postings() == []


async def test_concurrent_payouts_never_pay_more_than_the_balance():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    collector = await make_staff(tenant, Role.COLLECTOR, commission_bp=1000)
    invoices = [await make_invoice(await make_subscriber(tenant), 100_000) for _ in range(3)]
    result = await assign_invoices(
        admin, collector_id=collector.id, numbers=[i.number for i in invoices], now=NOW
    )
    for n, outcome in enumerate(result.outcomes):
        await mark_collected(
            collector, assignment_id=outcome.assignment_id, idempotency_key=f"c{n}", now=NOW
        )
    assert await commission_balance(tenant.id, collector.id) == 30_000

    results = await asyncio.gather(
        *(pay_commission(admin, collector_id=collector.id, amount_minor=7_000) for _ in range(N)),
        return_exceptions=True,
    )

    paid = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, InsufficientBalance)]
    assert (len(paid), len(refused)) == (4, N - 4)
    assert await commission_balance(tenant.id, collector.id) == 2_000
    assert await unbalanced_postings() == []
