"""Creating the things collection works on: tenants, plans, subscribers and invoices.

Issuing an invoice (anything but a draft) posts it to the ledger as a receivable, so a
subscriber's outstanding balance is the sum of their receivable legs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.numbers import is_currency
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.db.models import CustomerClass, Invoice, Plan, Reseller, Staff, Subscriber, Tenant
from core.domain import ledger
from core.domain.phones import normalise_phone
from core.domain.status import (
    BillingMode,
    InvoiceKind,
    InvoicePurpose,
    InvoiceStatus,
    SubscriberStatus,
)
from core.domain.terms import default_due_date, default_reminder_days
from core.errors import Conflict, InvalidAmount, InvalidInput, NotFound
from core.services.access import SYSTEM, Origin, in_reseller_scope, require_admin
from core.services.audit import write_audit
from core.services.ledger import post


async def create_tenant(
    *,
    name: str,
    currency: str = "BDT",
    country: str = "BD",
    timezone: str = "Asia/Dhaka",
    locale: str = "en",
    origin: Origin = SYSTEM,
) -> Tenant:
    """A new ISP. Validates the currency (ISO 4217) and the time zone up front."""
    if not is_currency(currency.upper()):
        raise InvalidInput(f"{currency!r} is not an ISO 4217 currency code, like BDT or USD.")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"{timezone!r} is not a time zone, e.g. Asia/Dhaka.") from exc
    async with in_transaction() as conn:
        tenant = await Tenant.create(
            name=name.strip(),
            currency=currency.upper(),
            country=country.upper(),
            timezone=timezone,
            locale=locale,
            using_db=conn,
        )
        await write_audit(
            tenant_id=tenant.id,
            actor=None,
            action="tenant.create",
            object_type="tenant",
            object_id=tenant.id,
            origin=origin,
            using_db=conn,
        )
    return tenant


async def create_reseller(actor: Staff, *, name: str, origin: Origin = SYSTEM) -> Reseller:
    require_admin(actor, "create resellers")
    async with in_transaction() as conn:
        reseller = await Reseller.create(
            tenant_id=actor.tenant_id, name=name.strip(), using_db=conn
        )
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action="reseller.create",
            object_type="reseller",
            object_id=reseller.id,
            origin=origin,
            using_db=conn,
        )
    return reseller


async def create_plan(
    actor: Staff,
    *,
    name: str,
    price_minor: int,
    period_months: int = 1,
    reminder_days: int = 3,
    origin: Origin = SYSTEM,
) -> Plan:
    require_admin(actor, "create plans")
    if price_minor <= 0:
        raise InvalidAmount("A plan's price must be more than zero.")
    if period_months <= 0:
        raise InvalidInput("A plan's period is at least one month.")
    async with in_transaction() as conn:
        plan = await Plan.create(
            tenant_id=actor.tenant_id,
            name=name.strip(),
            price_minor=price_minor,
            period_months=period_months,
            reminder_days=reminder_days,
            using_db=conn,
        )
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action="plan.create",
            object_type="plan",
            object_id=plan.id,
            origin=origin,
            using_db=conn,
        )
    return plan


@dataclass(frozen=True)
class SubscriberInput:
    """A subscriber as typed or imported; `create_subscriber` validates and normalises it."""

    username: str
    name: str
    phone: str | None = None
    address: str = ""
    area: str = ""
    street: str = ""
    latitude: float | None = None
    longitude: float | None = None
    expiry_date: date | None = None
    billing_mode: BillingMode = BillingMode.PREPAID
    reseller_id: int | None = None
    plan_id: int | None = None
    customer_class_id: int | None = None


def subscriber_fields(tenant: Tenant, data: SubscriberInput) -> dict[str, object]:
    """Validated column values for a new subscriber (shared with the CSV import)."""
    username = data.username.strip()
    if not username:
        raise InvalidInput("A subscriber needs a username.")
    if not data.name.strip():
        raise InvalidInput("A subscriber needs a name.")
    phone = normalise_phone(data.phone, tenant.country) if data.phone else None
    if (data.latitude is None) != (data.longitude is None):
        raise InvalidInput("Give both latitude and longitude, or neither.")
    return {
        "tenant_id": tenant.id,
        "username": username,
        "name": data.name.strip(),
        "phone": phone,
        "address": data.address.strip(),
        "area": data.area.strip(),
        "street": data.street.strip(),
        "latitude": data.latitude,
        "longitude": data.longitude,
        "expiry_date": data.expiry_date,
        "billing_mode": data.billing_mode,
        "reseller_id": data.reseller_id,
        "plan_id": data.plan_id,
        "customer_class_id": data.customer_class_id,
        "status": SubscriberStatus.ACTIVE,
    }


async def create_subscriber(
    actor: Staff, data: SubscriberInput, *, origin: Origin = SYSTEM
) -> Subscriber:
    require_admin(actor, "add subscribers")
    tenant = await Tenant.get(id=actor.tenant_id)
    values = subscriber_fields(tenant, data)
    for model, ref in (
        (Reseller, data.reseller_id),
        (Plan, data.plan_id),
        (CustomerClass, data.customer_class_id),
    ):
        if ref is not None and not await model.exists(id=ref, tenant_id=tenant.id):
            raise NotFound(f"There is no {model.__name__.lower()} {ref} in your company.")
    try:
        async with in_transaction() as conn:
            subscriber = await Subscriber.create(**values, using_db=conn)
            await write_audit(
                tenant_id=tenant.id,
                actor=actor,
                action="subscriber.create",
                object_type="subscriber",
                object_id=subscriber.id,
                origin=origin,
                using_db=conn,
            )
    except IntegrityError as exc:
        raise Conflict(f"A subscriber with username {values['username']!r} exists.") from exc
    return subscriber


async def next_invoice_number(tenant_id: int, issue_date: date) -> str:
    """`INV-<year>-<nnnn>`, one above the highest this tenant has used that year."""
    prefix = f"INV-{issue_date.year}-"
    last = (
        await Invoice.filter(tenant_id=tenant_id, number__startswith=prefix)
        .order_by("-number")
        .first()
        .values_list("number", flat=True)
    )
    seq = int(str(last)[len(prefix) :]) + 1 if last and str(last)[len(prefix) :].isdigit() else 1
    return f"{prefix}{seq:04d}"


async def create_invoice(
    actor: Staff,
    *,
    subscriber_id: int,
    amount_minor: int,
    issue_date: date,
    number: str | None = None,
    purpose: InvoicePurpose = InvoicePurpose.RENEWAL,
    kind: InvoiceKind = InvoiceKind.INVOICE,
    due_date: date | None = None,
    reminder_days: int | None = None,
    draft: bool = False,
    origin: Origin = SYSTEM,
) -> Invoice:
    """Issue an invoice (or a draft that counts only once approved) and post the receivable.

    The due date defaults to the issue date plus the customer class's terms (out-of-turn
    invoices use the shorter out-of-turn terms), or 30 days with no class.
    """
    require_admin(actor, "create invoices")
    if amount_minor <= 0:
        raise InvalidAmount("An invoice's amount must be more than zero.")
    subscriber = await Subscriber.get_or_none(id=subscriber_id, tenant_id=actor.tenant_id)
    if subscriber is None or not in_reseller_scope(actor, subscriber.reseller_id):
        raise NotFound("There is no such subscriber in your company.")
    if due_date is None:
        terms = None
        if subscriber.customer_class_id:
            cls = await CustomerClass.get(id=subscriber.customer_class_id)
            terms = (cls.net_days, cls.out_of_turn_net_days)
        due_date = default_due_date(issue_date, purpose, terms)
    if due_date < issue_date:
        raise InvalidInput("The due date cannot be before the issue date.")
    if reminder_days is None:
        plan = await Plan.get_or_none(id=subscriber.plan_id) if subscriber.plan_id else None
        reminder_days = default_reminder_days(kind, plan.reminder_days if plan else None)
    number = (number or "").strip() or await next_invoice_number(actor.tenant_id, issue_date)
    try:
        async with in_transaction() as conn:
            invoice = await Invoice.create(
                tenant_id=actor.tenant_id,
                subscriber_id=subscriber.id,
                number=number,
                kind=kind,
                purpose=purpose,
                amount_minor=amount_minor,
                status=InvoiceStatus.DRAFT if draft else InvoiceStatus.UNPAID,
                issue_date=issue_date,
                due_date=due_date,
                reminder_days=reminder_days,
                using_db=conn,
            )
            if not draft:
                await post(
                    conn,
                    tenant_id=actor.tenant_id,
                    kind="invoice_issued",
                    legs=ledger.invoice_issued(
                        subscriber_id=subscriber.id, amount_minor=amount_minor
                    ),
                    invoice_id=invoice.id,
                    created_by_id=actor.id,
                    memo=number,
                )
            await write_audit(
                tenant_id=actor.tenant_id,
                actor=actor,
                action="invoice.create",
                object_type="invoice",
                object_id=invoice.id,
                origin=origin,
                details={"number": number, "amount_minor": amount_minor},
                using_db=conn,
            )
    except IntegrityError as exc:
        raise Conflict(f"Invoice number {number} is already used.") from exc
    return invoice
