"""Tortoise models: thin records for DESIGN.md section 3. Rules live in `core/domain`.

Invariants the database holds (not just the code):
- One open route stop per invoice: `Assignment.open_invoice_id` is set to the invoice id
  while the stop is `assigned` and NULL otherwise, under a UNIQUE index (NULLs do not
  collide), so two admins racing cannot both put one invoice on a route.
- A payment posts once: `Payment(tenant, idempotency_key)` is UNIQUE.
- An invoice's `paid_minor` stays within 0..`amount_minor` (CHECK constraints on
  PostgreSQL, triggers on SQLite; see `core/db/constraints.py`), and services only raise
  it with a conditional UPDATE.
- Money columns are integers of the tenant currency's minor unit, named `*_minor`; rates
  are basis points, named `*_bp`.
- Ledger legs are append-only; a balance is a sum of legs, never a stored number.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from core.domain.status import (
    AssignmentStatus,
    BillingMode,
    FailureReason,
    InvoiceKind,
    InvoicePurpose,
    InvoiceStatus,
    PaymentMethod,
    Role,
    SubscriberStatus,
)


class Tenant(Model):
    """One ISP. Every business row belongs to exactly one."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=120)
    currency = fields.CharField(max_length=3, default="BDT")
    country = fields.CharField(max_length=2, default="BD")
    timezone = fields.CharField(max_length=64, default="Asia/Dhaka")
    locale = fields.CharField(max_length=16, default="en")
    reschedule_days = fields.IntField(default=2)
    failed_visits_before_flag = fields.IntField(default=3)
    # The dunning clock: the local hour the daily run starts, and how many days before
    # expiry a prepaid subscriber's renewal invoice is issued.
    dunning_hour = fields.IntField(default=9)
    renewal_lead_days = fields.IntField(default=5)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "tenant"


class Reseller(Model):
    """A sub-ISP inside a tenant: owns subscribers and may hold its own collectors."""

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="resellers"
    )
    tenant_id: int
    name = fields.CharField(max_length=120)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "reseller"
        unique_together = (("tenant", "name"),)


class Staff(Model):
    """A person who uses the bot: admin, reseller staff or collector."""

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="staff"
    )
    tenant_id: int
    role = fields.CharEnumField(Role, max_length=16)
    name = fields.CharField(max_length=120)
    phone = fields.CharField(max_length=20, null=True)
    telegram_user_id = fields.BigIntField(null=True, unique=True)
    # Reseller staff only: which of collectors.view/create/edit/assign/delete/commission_pay.
    permissions: fields.JSONField[list[str]] = fields.JSONField(default=list)
    commission_bp = fields.IntField(default=0)
    # Collectors: the most cash they may carry; at or above it they hand in before taking
    # more cash at the door. None: no cap.
    cash_cap_minor = fields.BigIntField(null=True)
    # The language this person reads the bot in (a catalog in templates/chat/).
    language = fields.CharField(max_length=8, default="en")
    reseller: fields.ForeignKeyNullableRelation[Reseller] = fields.ForeignKeyField(
        "models.Reseller", related_name="staff", null=True
    )
    reseller_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "staff"
        indexes = (("tenant", "role"),)


class Invite(Model):
    """A one-time deep-link token binding a Telegram account to a staff row (hash at rest)."""

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    staff: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="invites"
    )
    staff_id: int
    token_sha256 = fields.CharField(max_length=64, unique=True)
    created_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="invites_created", null=True
    )
    created_by_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "invite"


class Plan(Model):
    """A service plan: price, billing period and the dunning defaults of its invoices."""

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    name = fields.CharField(max_length=120)
    price_minor = fields.BigIntField()
    period_months = fields.IntField(default=1)
    reminder_days = fields.IntField(default=3)
    request_cancellation_days = fields.IntField(null=True)
    suspension_days = fields.IntField(null=True)
    deletion_days = fields.IntField(null=True)

    class Meta:
        table = "plan"
        unique_together = (("tenant", "name"),)


class CustomerClass(Model):
    """Payment terms and overdue policy shared by a class of customers."""

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    name = fields.CharField(max_length=120)
    net_days = fields.IntField(default=30)
    out_of_turn_net_days = fields.IntField(default=6)
    pre_due_notice_days = fields.IntField(null=True)
    reminder_days = fields.IntField(null=True)
    late_fee_flat_minor = fields.BigIntField(default=0)
    late_fee_bp = fields.IntField(default=0)
    collection_threshold_minor = fields.BigIntField(default=0)
    suspend_after_days = fields.IntField(null=True)
    terminate_after_days = fields.IntField(null=True)
    # Days before a suspension or deletion date that the subscriber is warned.
    warning_days = fields.IntField(default=3)

    class Meta:
        table = "customer_class"
        unique_together = (("tenant", "name"),)


class Subscriber(Model):
    """A customer of the ISP: who pays, where they live, and the state of their service."""

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    reseller: fields.ForeignKeyNullableRelation[Reseller] = fields.ForeignKeyField(
        "models.Reseller", null=True
    )
    reseller_id: int | None
    username = fields.CharField(max_length=64)
    name = fields.CharField(max_length=160)
    phone = fields.CharField(max_length=20, null=True)
    address = fields.CharField(max_length=255, default="")
    area = fields.CharField(max_length=80, default="")
    street = fields.CharField(max_length=120, default="")
    latitude = fields.FloatField(null=True)
    longitude = fields.FloatField(null=True)
    status = fields.CharEnumField(SubscriberStatus, max_length=16, default=SubscriberStatus.ACTIVE)
    expiry_date = fields.DateField(null=True)
    billing_mode = fields.CharEnumField(BillingMode, max_length=16, default=BillingMode.PREPAID)
    customer_class: fields.ForeignKeyNullableRelation[CustomerClass] = fields.ForeignKeyField(
        "models.CustomerClass", null=True
    )
    customer_class_id: int | None
    plan: fields.ForeignKeyNullableRelation[Plan] = fields.ForeignKeyField(
        "models.Plan", null=True
    )
    plan_id: int | None
    usage_bytes = fields.BigIntField(default=0)
    # The language of the subscriber's WhatsApp texts ("en", "bn", "ar"); None: the tenant's.
    language = fields.CharField(max_length=8, null=True)
    # The subscriber's last message to us on WhatsApp: free-form messages (our PDF receipt
    # with a caption) are allowed for 24 hours after it; otherwise an approved template.
    whatsapp_inbound_at = fields.DatetimeField(null=True)
    # Postpaid billing cycle: a draft invoice is made on `next_billing_on`, which then moves
    # on by `billing_cycle_months`. None: the cycle is stopped.
    billing_cycle_months = fields.IntField(default=1)
    next_billing_on = fields.DateField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "subscriber"
        unique_together = (("tenant", "username"),)
        # (phone): WhatsApp webhooks and the sender find subscribers by number.
        indexes = (("tenant", "area", "street"), ("phone",))


class Invoice(Model):
    """A bill (or debit note). `paid_minor` only grows, and only by a conditional UPDATE."""

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    subscriber: fields.ForeignKeyRelation[Subscriber] = fields.ForeignKeyField(
        "models.Subscriber", related_name="invoices"
    )
    subscriber_id: int
    number = fields.CharField(max_length=40)
    kind = fields.CharEnumField(InvoiceKind, max_length=16, default=InvoiceKind.INVOICE)
    purpose = fields.CharEnumField(InvoicePurpose, max_length=16, default=InvoicePurpose.RENEWAL)
    amount_minor = fields.BigIntField()
    paid_minor = fields.BigIntField(default=0)
    status = fields.CharEnumField(InvoiceStatus, max_length=16, default=InvoiceStatus.UNPAID)
    issue_date = fields.DateField()
    due_date = fields.DateField()
    reminder_days = fields.IntField(null=True)
    next_reminder_on = fields.DateField(null=True)
    request_cancellation_on = fields.DateField(null=True)
    suspension_on = fields.DateField(null=True)
    deletion_on = fields.DateField(null=True)
    failed_visits = fields.IntField(default=0)
    flagged_at = fields.DatetimeField(null=True)
    # Issued by the scheduler (renewals, recurring drafts) rather than typed by staff.
    system_generated = fields.BooleanField(default=False)
    # The service request the invoice pays for: pending / executed / cancelled; None: none.
    request_status = fields.CharField(max_length=16, null=True)
    # A late-fee debit note names the invoice it was charged on; UNIQUE: one fee per invoice.
    late_fee_for: fields.OneToOneNullableRelation[Invoice] = fields.OneToOneField(
        "models.Invoice", null=True, related_name="late_fee"
    )
    late_fee_for_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "invoice"
        unique_together = (("tenant", "number"),)
        # (tenant, status, subscriber): the dunning walk and the largest balances;
        # (tenant, subscriber): one subscriber's balance, story and audit trail.
        indexes = (("tenant", "status", "subscriber"), ("tenant", "subscriber"))


class StoredFile(Model):
    """A receipt photo or a generated document, kept under DATA_DIR by content hash."""

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    sha256 = fields.CharField(max_length=64)
    path = fields.CharField(max_length=500)
    content_type = fields.CharField(max_length=100)
    size_bytes = fields.BigIntField()
    telegram_file_id = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "stored_file"
        unique_together = (("tenant", "sha256"),)


class Payment(Model):
    """Money received against an invoice. Posted once per idempotency key."""

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    invoice: fields.ForeignKeyRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", related_name="payments"
    )
    invoice_id: int
    subscriber: fields.ForeignKeyRelation[Subscriber] = fields.ForeignKeyField(
        "models.Subscriber", related_name="payments"
    )
    subscriber_id: int
    amount_minor = fields.BigIntField()
    method = fields.CharEnumField(PaymentMethod, max_length=16, default=PaymentMethod.CASH)
    received_at = fields.DatetimeField()
    operator: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="payments_operated", null=True
    )
    operator_id: int | None
    collector: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="payments_collected", null=True
    )
    collector_id: int | None
    reference = fields.CharField(max_length=120, default="")
    note = fields.CharField(max_length=500, default="")
    receipt_file: fields.ForeignKeyNullableRelation[StoredFile] = fields.ForeignKeyField(
        "models.StoredFile", null=True
    )
    receipt_file_id: int | None
    idempotency_key = fields.CharField(max_length=80)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "payment"
        unique_together = (("tenant", "idempotency_key"),)
        # (tenant, received_at): the payments log's pages, and with collector or operator
        # first, one person's payments; (subscriber, received_at): a subscriber's last ones.
        indexes = (
            ("tenant", "received_at"),
            ("tenant", "collector", "received_at"),
            ("tenant", "operator", "received_at"),
            ("subscriber", "received_at"),
        )


class PaymentReversal(Model):
    """A payment taken back (a chargeback, a payment recorded by mistake). Nothing is deleted:
    the payment stays, this row says it no longer counts, and its posting mirrors the
    payment's. UNIQUE (payment): a payment is reversed at most once, whoever presses first.
    """

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    payment: fields.OneToOneRelation[Payment] = fields.OneToOneField(
        "models.Payment", related_name="reversal"
    )
    payment_id: int
    reason = fields.CharField(max_length=500)
    reversed_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="reversals_made", null=True
    )
    reversed_by_id: int | None
    reversed_at = fields.DatetimeField()
    commission_reversed_minor = fields.BigIntField(default=0)
    # Where the money went back out from: collector_cash, office_cash or office_accounts.
    refunded_from = fields.CharField(max_length=32)
    posting: fields.ForeignKeyRelation[LedgerPosting] = fields.ForeignKeyField(
        "models.LedgerPosting", related_name="reversals"
    )
    posting_id: int

    class Meta:
        table = "payment_reversal"


class CashHandover(Model):
    """A collector handing in the cash they hold, counted at the office.

    `expected_minor` is the collector's cash on hand in the ledger at that moment, read under
    a lock on the collector's row; `counted_minor` is what the office counted. The
    difference (counted - expected) is booked by the same posting: a shortage as the
    collector's debt, an excess as cash over.
    """

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    collector: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="handovers"
    )
    collector_id: int
    expected_minor = fields.BigIntField()
    counted_minor = fields.BigIntField()
    difference_minor = fields.BigIntField()
    recorded_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="handovers_recorded", null=True
    )
    recorded_by_id: int | None
    recorded_at = fields.DatetimeField()
    # The tenant-local day of the handover: the daily reconciliation filters on it.
    day = fields.DateField()
    note = fields.CharField(max_length=500, default="")
    posting: fields.ForeignKeyRelation[LedgerPosting] = fields.ForeignKeyField(
        "models.LedgerPosting", related_name="handovers"
    )
    posting_id: int
    # The confirmation message: a second press of its button records nothing.
    idempotency_key = fields.CharField(max_length=80)

    class Meta:
        table = "cash_handover"
        unique_together = (("tenant", "idempotency_key"),)
        indexes = (("tenant", "day"), ("collector", "recorded_at"))


class Assignment(Model):
    """One visit: an invoice on a collector's route for a day, and how it ended."""

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    invoice: fields.ForeignKeyRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", related_name="assignments"
    )
    invoice_id: int
    collector: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="assignments"
    )
    collector_id: int
    status = fields.CharEnumField(
        AssignmentStatus, max_length=16, default=AssignmentStatus.ASSIGNED
    )
    # = invoice_id while status is `assigned`, NULL once closed: the UNIQUE index on it is
    # what keeps an invoice on one open route, on SQLite and PostgreSQL alike.
    open_invoice_id = fields.IntField(null=True, unique=True)
    scheduled_on = fields.DateField()
    assigned_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="assignments_made", null=True
    )
    assigned_by_id: int | None
    assigned_at = fields.DatetimeField(auto_now_add=True)
    notes = fields.CharField(max_length=500, default="")
    closed_at = fields.DatetimeField(null=True)
    # The tenant-local calendar day the visit ended: reports and "today" filter on it.
    closed_on = fields.DateField(null=True)
    collected_minor = fields.BigIntField(default=0)
    commission_minor = fields.BigIntField(default=0)
    payment: fields.ForeignKeyNullableRelation[Payment] = fields.ForeignKeyField(
        "models.Payment", null=True
    )
    payment_id: int | None
    failure_reason = fields.CharEnumField(FailureReason, max_length=16, null=True)
    failure_note = fields.CharField(max_length=500, default="")

    class Meta:
        table = "assignment"
        # Tortoise creates no foreign-key indexes: the ones lookups walk are declared here.
        indexes = (
            ("collector", "status", "scheduled_on"),
            ("tenant", "closed_on"),
            ("payment",),
            ("invoice",),
        )


class LedgerPosting(Model):
    """One money movement. Its legs sum to zero; it is never updated or deleted."""

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    kind = fields.CharField(max_length=32)
    memo = fields.CharField(max_length=255, default="")
    payment: fields.ForeignKeyNullableRelation[Payment] = fields.ForeignKeyField(
        "models.Payment", null=True
    )
    payment_id: int | None
    invoice: fields.ForeignKeyNullableRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", null=True
    )
    invoice_id: int | None
    created_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", null=True
    )
    created_by_id: int | None
    # Set for movements a person triggers by a button (payouts): a second press posts nothing.
    idempotency_key = fields.CharField(max_length=80, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "ledger_posting"
        unique_together = (("tenant", "idempotency_key"),)
        indexes = (("tenant", "kind"),)


class LedgerLeg(Model):
    """A signed amount on one account (debit positive). Per-party accounts name the party."""

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    posting: fields.ForeignKeyRelation[LedgerPosting] = fields.ForeignKeyField(
        "models.LedgerPosting", related_name="legs"
    )
    posting_id: int
    account = fields.CharField(max_length=32)
    staff: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", null=True
    )
    staff_id: int | None
    subscriber: fields.ForeignKeyNullableRelation[Subscriber] = fields.ForeignKeyField(
        "models.Subscriber", null=True
    )
    subscriber_id: int | None
    amount_minor = fields.BigIntField()

    class Meta:
        table = "ledger_leg"
        # (tenant, account, staff) carries the amount so a collector's commission balance
        # is an index-only sum; postings find their legs through (posting).
        indexes = (
            ("tenant", "account", "staff", "amount_minor"),
            ("subscriber", "account"),
            ("posting",),
        )


class OutboxMessage(Model):
    """A message to deliver after commit (WhatsApp receipt, reminder, Telegram notice).

    `status` is our side of the journey: pending (waiting for its first or next attempt at
    `next_attempt_at`), sending (claimed by `claimed_by` until `claimed_until`), sent,
    failed (gave up, `last_error` says why) or refused (could never be sent, e.g. a landline).
    `delivery_status` is the far side, from the gateway's webhooks, and only moves forward:
    sent -> delivered -> read (failed may come instead).
    """

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    channel = fields.CharField(max_length=16)
    kind = fields.CharField(max_length=32)
    recipient = fields.CharField(max_length=64)
    invoice: fields.ForeignKeyNullableRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", null=True
    )
    invoice_id: int | None
    payment: fields.ForeignKeyNullableRelation[Payment] = fields.ForeignKeyField(
        "models.Payment", null=True
    )
    payment_id: int | None
    payload: fields.JSONField[dict] = fields.JSONField(default=dict)
    # One message per purpose: e.g. "receipt:<payment id>"; a retried service queues nothing new.
    dedupe_key = fields.CharField(max_length=120)
    status = fields.CharField(max_length=16, default="pending")
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    # A claim is a lease: a worker that dies mid-send loses it at `claimed_until`.
    claimed_by = fields.CharField(max_length=64, null=True)
    claimed_until = fields.DatetimeField(null=True)
    provider = fields.CharField(max_length=16, null=True)
    provider_message_id = fields.CharField(max_length=120, null=True)
    delivery_status = fields.CharField(max_length=16, null=True)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outbox_message"
        unique_together = (("tenant", "dedupe_key"),)
        indexes = (("status", "next_attempt_at"), ("provider_message_id",))


class NotificationLog(Model):
    """One delivery-status event for an outbox message, stored once per (message, status)."""

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    message: fields.ForeignKeyRelation[OutboxMessage] = fields.ForeignKeyField(
        "models.OutboxMessage", related_name="events"
    )
    message_id: int
    invoice: fields.ForeignKeyNullableRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", null=True
    )
    invoice_id: int | None
    status = fields.CharField(max_length=16)
    occurred_at = fields.DatetimeField()
    received_at = fields.DatetimeField(auto_now_add=True)
    remote_addr = fields.CharField(max_length=64, default="")
    user_agent = fields.CharField(max_length=255, default="")
    event: fields.JSONField[dict] = fields.JSONField(default=dict)

    class Meta:
        table = "notification_log"
        unique_together = (("message", "status"),)


class AuditLog(Model):
    """Append-only: who did what to which object, when, and through which channel."""

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyNullableRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", null=True
    )
    tenant_id: int | None
    actor_kind = fields.CharField(max_length=16)  # staff / system / webhook / cli
    actor_staff: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", null=True
    )
    actor_staff_id: int | None
    action = fields.CharField(max_length=64)
    object_type = fields.CharField(max_length=32)
    object_id = fields.IntField(null=True)
    at = fields.DatetimeField(auto_now_add=True)
    telegram_user_id = fields.BigIntField(null=True)
    telegram_chat_id = fields.BigIntField(null=True)
    telegram_update_id = fields.BigIntField(null=True)
    remote_addr = fields.CharField(max_length=64, default="")
    user_agent = fields.CharField(max_length=255, default="")
    details: fields.JSONField[dict] = fields.JSONField(default=dict)

    class Meta:
        table = "audit_log"
        # The audit search: an object's rows by time, a person's actions by time.
        indexes = (
            ("tenant", "object_type", "object_id", "at"),
            ("tenant", "actor_staff", "at"),
            ("tenant", "at"),
        )


class JobRun(Model):
    """A scheduled job's run for one tenant and day, claimed before it starts.

    UNIQUE (job, tenant, day): of several processes whose schedulers fire at once, one
    inserts the row and runs; the others find it and skip. A process that was down for days
    runs once for today, not once per missed day.
    """

    id = fields.IntField(primary_key=True)
    job = fields.CharField(max_length=40)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField("models.Tenant")
    tenant_id: int
    day = fields.DateField()
    claimed_by = fields.CharField(max_length=64)
    started_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)
    stats: fields.JSONField[dict] = fields.JSONField(default=dict)

    class Meta:
        table = "job_run"
        unique_together = (("job", "tenant", "day"),)


class BotState(Model):
    """The Telegram bot's persistence: one JSON document per (kind, key).

    Kinds: `user`, `chat`, `bot`, `callback`, `conversation` (key = "<name>:<json key>").
    Conversation state lives here, not in a process, so a restart resumes where a person
    was and any process behind a load balancer can serve their next update.
    """

    id = fields.IntField(primary_key=True)
    kind = fields.CharField(max_length=16)
    key = fields.CharField(max_length=255)
    data: fields.JSONField[dict | list | str | int | None] = fields.JSONField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "bot_state"
        unique_together = (("kind", "key"),)
