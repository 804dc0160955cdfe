"""Creating the things collection works on: tenants, plans, customer classes, subscribers
and invoices.

Issuing an invoice (anything but a draft) posts it to the ledger as a receivable, so a
subscriber's outstanding balance is the sum of their receivable legs. Every invoice,
however it comes to exist (typed, claimed, scheduled), takes its values from
`invoice_values`, so its due date, reminders and dunning dates follow one set of rules.

Invariants: every check runs before the first write, so a refused request changes
nothing; a customer class or plan with days below 1, a deletion before the suspension or
a late fee outside 0-100 % is never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.numbers import is_currency
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.db.models import CustomerClass, Invoice, Plan, Reseller, Staff, Subscriber, Tenant
from core.db.sql import fetch
from core.domain import ledger
from core.domain.dunning import check_dates, check_days
from core.domain.phones import normalise_phone
from core.domain.status import (
    BillingMode,
    InvoiceKind,
    InvoicePurpose,
    InvoiceStatus,
    RequestStatus,
    SubscriberStatus,
)
from core.domain.terms import (
    CLASS_DAY_FIELDS,
    PlanOffsets,
    check_class_policy,
    default_due_date,
    default_dunning_dates,
    default_reminder_days,
)
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
    request_cancellation_days: int | None = None,
    suspension_days: int | None = None,
    deletion_days: int | None = None,
    origin: Origin = SYSTEM,
) -> Plan:
    """A service plan with its invoices' dunning defaults (each optional, whole days).

    Raises:
        InvalidInput: a price or period that is not positive, days below 1
            (`days_not_positive`), deletion before suspension (`termination_before_suspension`).
    """
    require_admin(actor, "create plans")
    if price_minor <= 0:
        raise InvalidAmount("A plan's price must be more than zero.")
    if period_months <= 0:
        raise InvalidInput("A plan's period is at least one month.")
    check_days(reminder_days, "Reminder days")
    check_days(request_cancellation_days, "Request cancellation")
    check_days(suspension_days, "Suspension")
    check_days(deletion_days, "Deletion")
    if (
        suspension_days is not None
        and deletion_days is not None
        and deletion_days < suspension_days
    ):
        raise InvalidInput(
            f"Deletion {deletion_days} days after the due date comes before suspension"
            f" {suspension_days} days after it; delete after suspending.",
            code="termination_before_suspension",
            terminate=deletion_days,
            suspend=suspension_days,
        )
    async with in_transaction() as conn:
        plan = await Plan.create(
            tenant_id=actor.tenant_id,
            name=name.strip(),
            price_minor=price_minor,
            period_months=period_months,
            reminder_days=reminder_days,
            request_cancellation_days=request_cancellation_days,
            suspension_days=suspension_days,
            deletion_days=deletion_days,
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


# --- customer classes ---------------------------------------------------------------------

# Columns that always hold a value; the others may be cleared (None: not used).
_CLASS_REQUIRED = frozenset(
    {
        "net_days",
        "out_of_turn_net_days",
        "late_fee_flat_minor",
        "late_fee_bp",
        "collection_threshold_minor",
        "warning_days",
    }
)
_SETTING_WORDS = CLASS_DAY_FIELDS | {
    "late_fee_flat_minor": "The flat late fee",
    "late_fee_bp": "The late fee percentage",
    "collection_threshold_minor": "The collection threshold",
}
CLASS_SETTINGS = (
    "net_days",
    "out_of_turn_net_days",
    "pre_due_notice_days",
    "reminder_days",
    "late_fee_flat_minor",
    "late_fee_bp",
    "collection_threshold_minor",
    "suspend_after_days",
    "terminate_after_days",
    "warning_days",
)


async def create_customer_class(
    actor: Staff,
    *,
    name: str,
    net_days: int = 30,
    out_of_turn_net_days: int = 6,
    pre_due_notice_days: int | None = None,
    reminder_days: int | None = None,
    late_fee_flat_minor: int = 0,
    late_fee_bp: int = 0,
    collection_threshold_minor: int = 0,
    suspend_after_days: int | None = None,
    terminate_after_days: int | None = None,
    warning_days: int = 3,
    origin: Origin = SYSTEM,
) -> CustomerClass:
    """A class of customers sharing payment terms and an overdue policy.

    Raises:
        InvalidInput: see `core.domain.terms.check_class_policy`; nothing is written.
        Conflict: the tenant already has a class of that name.
    """
    require_admin(actor, "set up customer classes")
    values: dict[str, int | None] = {
        "net_days": net_days,
        "out_of_turn_net_days": out_of_turn_net_days,
        "pre_due_notice_days": pre_due_notice_days,
        "reminder_days": reminder_days,
        "late_fee_flat_minor": late_fee_flat_minor,
        "late_fee_bp": late_fee_bp,
        "collection_threshold_minor": collection_threshold_minor,
        "suspend_after_days": suspend_after_days,
        "terminate_after_days": terminate_after_days,
        "warning_days": warning_days,
    }
    _check_class_values(values)
    cleaned = _class_name(name)
    try:
        async with in_transaction() as conn:
            cls = await CustomerClass.create(
                tenant_id=actor.tenant_id, name=cleaned, **values, using_db=conn
            )
            await write_audit(
                tenant_id=actor.tenant_id,
                actor=actor,
                action="customer_class.create",
                object_type="customer_class",
                object_id=cls.id,
                origin=origin,
                details={"name": cleaned, **values},
                using_db=conn,
            )
    except IntegrityError as exc:
        raise Conflict(
            f"A customer class named {cleaned!r} exists.", code="class_exists", name=cleaned
        ) from exc
    return cls


async def update_customer_class(
    actor: Staff,
    *,
    class_id: int,
    name: str | None = None,
    origin: Origin = SYSTEM,
    **changes: int | None,
) -> CustomerClass:
    """Change some settings of a customer class (keyword per setting; None clears an optional one).

    The class as it would be after the change is checked as a whole (termination after
    suspension), and nothing is written unless every setting is acceptable.

    Raises:
        NotFound: no such class in the actor's tenant.
        InvalidInput: an unknown setting, a required one cleared, or a value the policy refuses.
    """
    require_admin(actor, "change customer classes")
    unknown = sorted(set(changes) - set(CLASS_SETTINGS))
    if unknown:
        raise InvalidInput(
            f"A customer class has no setting {unknown[0]!r}; use {', '.join(CLASS_SETTINGS)}.",
            code="class_setting_unknown",
            setting=unknown[0],
        )
    cls = await CustomerClass.get_or_none(id=class_id, tenant_id=actor.tenant_id)
    if cls is None:
        raise NotFound("There is no such customer class in your company.", code="class_not_found")
    after = {key: getattr(cls, key) for key in CLASS_SETTINGS} | changes
    _check_class_values(after)
    updates: dict[str, object] = dict(changes)
    if name is not None:
        updates["name"] = _class_name(name)
    before = {key: getattr(cls, key) for key in updates}
    try:
        async with in_transaction() as conn:
            if updates:
                await CustomerClass.filter(id=cls.id).using_db(conn).update(**updates)
            await write_audit(
                tenant_id=actor.tenant_id,
                actor=actor,
                action="customer_class.update",
                object_type="customer_class",
                object_id=cls.id,
                origin=origin,
                details={"before": before, "after": updates},
                using_db=conn,
            )
    except IntegrityError as exc:
        raise Conflict(
            f"A customer class named {updates.get('name')!r} exists.",
            code="class_exists",
            name=updates.get("name"),
        ) from exc
    return await CustomerClass.get(id=cls.id)


def _class_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise InvalidInput("A customer class needs a name.", code="class_name_required")
    return cleaned


def _check_class_values(values: dict[str, int | None]) -> None:
    for key in _CLASS_REQUIRED:
        if key in values and values[key] is None:
            raise InvalidInput(
                f"{_SETTING_WORDS.get(key, key)} cannot be left empty.",
                code="class_setting_required",
                setting=key,
            )
    check_class_policy(values)


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


# The highest `INV-<year>-<digits>` number: ordered by length first, so INV-2026-10000
# follows INV-2026-9999 (text order alone would put it first and hand out 10000 twice), and
# only all-digit tails count (a late fee's INV-2026-0042-LF is not a sequence number).
_DIGITS_ONLY = {
    "postgres": "substr(number, ?) ~ '^[0-9]+$'",
    "sqlite": "substr(number, ?) <> '' AND substr(number, ?) NOT GLOB '*[^0-9]*'",
}
_LAST_NUMBER_SQL = """
SELECT number FROM invoice
WHERE tenant_id = ? AND number LIKE ? AND {digits_only}
ORDER BY LENGTH(number) DESC, number DESC
LIMIT 1
"""


async def next_invoice_number(
    tenant_id: int, issue_date: date, conn: BaseDBAsyncClient | None = None
) -> str:
    """`INV-<year>-<nnnn>`, one above the highest this tenant has used that year."""
    prefix = f"INV-{issue_date.year}-"
    conn = conn or connections.get("default")
    dialect = "postgres" if conn.capabilities.dialect == "postgres" else "sqlite"
    tail_at = len(prefix) + 1  # SQL strings count from 1
    sql = _LAST_NUMBER_SQL.format(digits_only=_DIGITS_ONLY[dialect])
    params: list[object] = [tenant_id, f"{prefix}%", tail_at]
    if dialect == "sqlite":
        params.append(tail_at)
    rows = await fetch(sql, params, conn)
    seq = int(str(rows[0]["number"])[len(prefix) :]) if rows else 0
    return f"{prefix}{seq + 1:04d}"


@dataclass(frozen=True)
class BillingContext:
    """What a subscriber's invoices take their defaults from: class terms and plan."""

    terms: tuple[int, int] | None
    plan: Plan | None

    @property
    def offsets(self) -> PlanOffsets | None:
        if self.plan is None:
            return None
        return PlanOffsets(
            request_cancellation_days=self.plan.request_cancellation_days,
            suspension_days=self.plan.suspension_days,
            deletion_days=self.plan.deletion_days,
        )


async def billing_context(
    subscriber: Subscriber, conn: BaseDBAsyncClient | None = None
) -> BillingContext:
    terms = None
    if subscriber.customer_class_id:
        cls = await CustomerClass.get(id=subscriber.customer_class_id, using_db=conn)
        terms = (cls.net_days, cls.out_of_turn_net_days)
    plan = (
        await Plan.get_or_none(id=subscriber.plan_id, using_db=conn)
        if subscriber.plan_id
        else None
    )
    return BillingContext(terms=terms, plan=plan)


def invoice_values(
    ctx: BillingContext,
    *,
    subscriber_id: int,
    number: str,
    amount_minor: int,
    issue_date: date,
    purpose: InvoicePurpose = InvoicePurpose.RENEWAL,
    kind: InvoiceKind = InvoiceKind.INVOICE,
    due_date: date | None = None,
    reminder_days: int | None = None,
    draft: bool = False,
    suspension_on: date | None = None,
    deletion_on: date | None = None,
    request_cancellation_on: date | None = None,
    system_generated: bool = False,
    request_status: RequestStatus | str | None = None,
) -> dict[str, Any]:
    """The checked column values of a new invoice, with every default filled in.

    No I/O: everything it reads is in `ctx`, so the scheduler can use it for a batch.

    Raises:
        InvalidInput: a zero amount, days below 1, a date before the issue date, a due date
            before the issue date, a deletion date before the suspension date.
    """
    if amount_minor <= 0:
        raise InvalidAmount(
            "An invoice's amount must be more than zero.", code="amount_not_positive"
        )
    check_days(reminder_days, "Reminder days")
    try:
        request = RequestStatus(request_status) if request_status is not None else None
    except ValueError as exc:
        raise InvalidInput(
            f"{request_status!r} is not a request status; use pending, executed or cancelled."
        ) from exc
    due_date = due_date or default_due_date(issue_date, purpose, ctx.terms)
    if due_date < issue_date:
        raise InvalidInput(
            "The due date cannot be before the issue date.", code="due_before_issue"
        )
    if reminder_days is None:
        reminder_days = default_reminder_days(kind, ctx.plan.reminder_days if ctx.plan else None)
    for given in (suspension_on, deletion_on, request_cancellation_on):
        if given is not None and given < issue_date:
            raise InvalidInput(
                f"{given.isoformat()} is before the issue date {issue_date.isoformat()}.",
                code="date_before_issue",
                day=given.isoformat(),
                issue=issue_date.isoformat(),
            )
    defaults = default_dunning_dates(
        issue_date=issue_date,
        due_date=due_date,
        reminder_days=reminder_days,
        offsets=ctx.offsets,
        request_pending=request == RequestStatus.PENDING,
        system_generated=system_generated,
    )
    suspension_on = suspension_on or defaults.suspension_on
    deletion_on = deletion_on or defaults.deletion_on
    check_dates(suspension_on, deletion_on)
    return {
        "subscriber_id": subscriber_id,
        "number": number,
        "kind": kind,
        "purpose": purpose,
        "amount_minor": amount_minor,
        "status": InvoiceStatus.DRAFT if draft else InvoiceStatus.UNPAID,
        "issue_date": issue_date,
        "due_date": due_date,
        "reminder_days": reminder_days,
        # A draft is reminded of nothing: its first reminder is set when it is approved.
        "next_reminder_on": None if draft else defaults.next_reminder_on,
        "request_cancellation_on": request_cancellation_on or defaults.request_cancellation_on,
        "suspension_on": suspension_on,
        "deletion_on": deletion_on,
        "system_generated": system_generated,
        "request_status": request,
    }


async def write_invoice(
    conn: BaseDBAsyncClient,
    *,
    tenant_id: int,
    values: dict[str, Any],
    actor: Staff | None,
    origin: Origin,
    action: str = "invoice.create",
    details: dict[str, Any] | None = None,
) -> Invoice:
    """Insert an invoice, post its receivable unless it is a draft, and audit it.

    Inside the caller's transaction; a used number raises `IntegrityError` for the caller.
    """
    invoice = await Invoice.create(tenant_id=tenant_id, **values, using_db=conn)
    if invoice.status != InvoiceStatus.DRAFT:
        await post(
            conn,
            tenant_id=tenant_id,
            kind="invoice_issued",
            legs=ledger.invoice_issued(
                subscriber_id=invoice.subscriber_id, amount_minor=invoice.amount_minor
            ),
            invoice_id=invoice.id,
            created_by_id=actor.id if actor else None,
            memo=invoice.number,
        )
    await write_audit(
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        object_type="invoice",
        object_id=invoice.id,
        origin=origin,
        details={"number": invoice.number, "amount_minor": invoice.amount_minor} | (details or {}),
        using_db=conn,
    )
    return invoice


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
    suspension_on: date | None = None,
    deletion_on: date | None = None,
    request_cancellation_on: date | None = None,
    system_generated: bool = False,
    request_status: RequestStatus | str | None = None,
    origin: Origin = SYSTEM,
) -> Invoice:
    """Issue an invoice (or a draft that counts only once approved) and post the receivable.

    Defaults, each only when not given:
    - the due date: the issue date plus the customer class's terms (out-of-turn invoices
      use the shorter out-of-turn terms), or 30 days with no class;
    - reminder days: the plan's (5 for a debit note), and the first reminder one interval
      after the issue date (a draft gets its first reminder when approved);
    - suspension and deletion dates: the plan's offsets after the due date, or none;
    - the request cancellation date, for a system-generated invoice with a pending
      request: the plan's offset after the issue date.

    Raises:
        InvalidInput: see `invoice_values`; nothing is written.
        Conflict: the number is already used.
    """
    require_admin(actor, "create invoices")
    subscriber = await Subscriber.get_or_none(id=subscriber_id, tenant_id=actor.tenant_id)
    if subscriber is None or not in_reseller_scope(actor, subscriber.reseller_id):
        raise NotFound("There is no such subscriber in your company.")
    ctx = await billing_context(subscriber)
    values = invoice_values(
        ctx,
        subscriber_id=subscriber.id,
        number="",
        amount_minor=amount_minor,
        issue_date=issue_date,
        purpose=purpose,
        kind=kind,
        due_date=due_date,
        reminder_days=reminder_days,
        draft=draft,
        suspension_on=suspension_on,
        deletion_on=deletion_on,
        request_cancellation_on=request_cancellation_on,
        system_generated=system_generated,
        request_status=request_status,
    )
    number = (number or "").strip() or await next_invoice_number(actor.tenant_id, issue_date)
    values["number"] = number
    try:
        async with in_transaction() as conn:
            invoice = await write_invoice(
                conn, tenant_id=actor.tenant_id, values=values, actor=actor, origin=origin
            )
    except IntegrityError as exc:
        raise Conflict(
            f"Invoice number {number} is already used.", code="number_taken", number=number
        ) from exc
    return invoice
