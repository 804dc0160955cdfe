"""Rows for tests, written straight to the database (fast, and independent of the services
under test). Every helper takes keyword overrides for the columns a test cares about."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from core.db.models import Invoice, Reseller, Staff, Subscriber, Tenant
from core.domain.status import InvoiceStatus, Role

_seq = itertools.count(1)


async def make_tenant(**overrides: Any) -> Tenant:
    values: dict[str, Any] = {
        "name": f"Test ISP {next(_seq)}",
        "currency": "BDT",
        "country": "BD",
        "timezone": "Asia/Dhaka",
    }
    return await Tenant.create(**(values | overrides))


async def make_reseller(tenant: Tenant, **overrides: Any) -> Reseller:
    return await Reseller.create(
        **({"tenant": tenant, "name": f"Reseller {next(_seq)}"} | overrides)
    )


async def make_staff(tenant: Tenant, role: Role = Role.ADMIN, **overrides: Any) -> Staff:
    n = next(_seq)
    values: dict[str, Any] = {
        "tenant": tenant,
        "role": role,
        "name": f"{role.value.title()} {n}",
        "phone": f"+88017110{n:05d}",
        "telegram_user_id": 5_000_000 + n,
    }
    return await Staff.create(**(values | overrides))


async def make_subscriber(tenant: Tenant, **overrides: Any) -> Subscriber:
    n = next(_seq)
    values: dict[str, Any] = {
        "tenant": tenant,
        "username": f"sub{n}",
        "name": f"Subscriber {n}",
        "phone": f"+88018110{n:05d}",
        "address": f"House {n}, Road 5",
        "area": "Dhanmondi",
        "street": "Road 5",
    }
    return await Subscriber.create(**(values | overrides))


async def make_invoice(
    subscriber: Subscriber, amount_minor: int = 150_000, **overrides: Any
) -> Invoice:
    n = next(_seq)
    values: dict[str, Any] = {
        "tenant_id": subscriber.tenant_id,
        "subscriber": subscriber,
        "number": f"INV-2026-{n:04d}",
        "amount_minor": amount_minor,
        "status": InvoiceStatus.UNPAID,
        "issue_date": date(2026, 11, 1),
        "due_date": date(2026, 11, 30),
    }
    return await Invoice.create(**(values | overrides))
