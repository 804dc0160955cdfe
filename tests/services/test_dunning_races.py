"""Several scheduler instances against one PostgreSQL database: each runs the day's dunning
at the same moment, on its own pooled connection. One claims the day; every reminder,
warning, fee and suspension happens once."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest

from core.db.models import AuditLog, CustomerClass, Invoice, JobRun, OutboxMessage
from core.domain.status import InvoiceKind
from core.services.dunning import run_dunning_day
from tests.factories import make_invoice, make_subscriber, make_tenant
from tests.ledger_checks import unbalanced_postings

pytestmark = [pytest.mark.usefixtures("db"), pytest.mark.postgres_only]

DAY = date(2026, 12, 8)
NOW = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
INSTANCES = 8


async def _tenant_with_due_invoices(count: int) -> int:
    tenant = await make_tenant()
    cls = await CustomerClass.create(tenant=tenant, name="Home", late_fee_flat_minor=5_000)
    for _ in range(count):
        subscriber = await make_subscriber(tenant, customer_class=cls)
        await make_invoice(
            subscriber,
            due_date=date(2026, 12, 1),
            reminder_days=7,
            next_reminder_on=DAY,
            suspension_on=DAY,
        )
    return tenant.id


async def test_scheduler_instances_running_one_day_at_once_send_each_reminder_once():
    tenant_id = await _tenant_with_due_invoices(30)

    results = await asyncio.gather(
        *(
            run_dunning_day(tenant_id=tenant_id, day=DAY, worker=f"scheduler-{n}", now=NOW)
            for n in range(INSTANCES)
        )
    )

    ran = [r for r in results if r is not None]
    assert len(ran) == 1
    assert await JobRun.filter(tenant_id=tenant_id, day=DAY).count() == 1
    assert await OutboxMessage.filter(kind="reminder").count() == 30
    assert await Invoice.filter(kind=InvoiceKind.DEBIT_NOTE).count() == 30
    assert await AuditLog.filter(action="subscriber.suspend").count() == 30
    assert await unbalanced_postings() == []


async def test_a_run_taken_over_while_the_first_is_still_going_sends_nothing_twice():
    """The worst case of a takeover: two runs of one day carried out at once (the first
    instance was only slow, not dead). The database still lets each action happen once."""
    tenant_id = await _tenant_with_due_invoices(30)

    async def forced(worker: str) -> object:
        # No claim to meet: each acts as if it had taken the day over.
        await JobRun.filter(tenant_id=tenant_id, day=DAY).delete()
        return await run_dunning_day(tenant_id=tenant_id, day=DAY, worker=worker, now=NOW)

    await asyncio.gather(*(forced(f"scheduler-{n}") for n in range(4)))

    assert await OutboxMessage.filter(kind="reminder").count() == 30
    assert await Invoice.filter(kind=InvoiceKind.DEBIT_NOTE).count() == 30
    assert await AuditLog.filter(action="subscriber.suspend").count() == 30
    assert await AuditLog.filter(action="invoice.late_fee").count() == 30
    assert await unbalanced_postings() == []
