"""What subscribers owe: one subscriber's balance and story, and the largest balances."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from tortoise.transactions import in_transaction

from core.db.models import Payment, Plan
from core.domain.status import (
    BillingMode,
    InvoicePurpose,
    InvoiceStatus,
    PaymentMethod,
    Role,
    SubscriberStatus,
)
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.services.access import Origin
from core.services.assignments import assign_invoices
from core.services.balances import (
    Balance,
    OpenInvoice,
    largest_balances,
    subscriber_balance,
    subscriber_story,
)
from core.services.collection import mark_collected
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant

pytestmark = pytest.mark.usefixtures("db")

# 02:00 on Wednesday 25 Nov in Dhaka, still Tuesday the 24th in UTC: an invoice due on the
# 24th is overdue for the tenant although UTC's calendar says it falls due today.
NOW = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
TODAY = date(2026, 11, 25)
YESTERDAY = date(2026, 11, 24)


async def _company():
    tenant = await make_tenant(name="Dhaka Fiber Net")
    admin = await make_staff(tenant, Role.ADMIN, name="Nadia")
    return tenant, admin


async def _owes(tenant, amount_minor, *, due=TODAY, **subscriber):
    """A subscriber with one unpaid invoice of `amount_minor`, due on `due`."""
    sub = await make_subscriber(tenant, **subscriber)
    await make_invoice(sub, amount_minor, due_date=due)
    return sub


async def _collect(admin, collector, invoice, amount_minor, key):
    """A collector takes `amount_minor` at the door, through the real services."""
    route = await assign_invoices(admin, collector_id=collector.id, numbers=[invoice.number])
    return await mark_collected(
        collector,
        assignment_id=route.outcomes[0].assignment_id,
        idempotency_key=key,
        amount_minor=amount_minor,
        origin=Origin(channel="telegram", telegram_user_id=collector.telegram_user_id),
        now=NOW,
    )


# --- one subscriber's balance --------------------------------------------------------------


async def test_a_balance_counts_unpaid_invoices_and_what_is_left_of_partly_paid_ones():
    tenant, admin = await _company()
    rahim = await make_subscriber(tenant, username="rahim")
    await make_invoice(rahim, 150_000, due_date=date(2026, 12, 1))
    await make_invoice(
        rahim, 100_000, status=InvoiceStatus.PARTIAL, paid_minor=60_000, due_date=TODAY
    )

    balance = await subscriber_balance(tenant.id, rahim.id, today=TODAY)

    assert balance == Balance(
        owed_minor=190_000, overdue_minor=0, open_invoices=2, oldest_due=TODAY
    )


async def test_drafts_cancelled_and_paid_invoices_owe_nothing():
    tenant, admin = await _company()
    rahim = await make_subscriber(tenant)
    await make_invoice(rahim, 50_000, status=InvoiceStatus.DRAFT, due_date=YESTERDAY)
    await make_invoice(rahim, 70_000, status=InvoiceStatus.CANCELLED, due_date=YESTERDAY)
    await make_invoice(rahim, 80_000, status=InvoiceStatus.PAID, paid_minor=80_000)

    balance = await subscriber_balance(tenant.id, rahim.id, today=TODAY)

    assert balance == Balance(owed_minor=0, overdue_minor=0, open_invoices=0, oldest_due=None)
    assert not balance.owes


async def test_a_real_partial_collection_leaves_what_is_still_due_on_the_balance():
    tenant, admin = await _company()
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim")
    rahim = await make_subscriber(tenant)
    invoice = await make_invoice(rahim, 150_000, due_date=YESTERDAY)

    collected = await _collect(admin, karim, invoice, 100_000, "k1")

    assert collected.invoice_status == InvoiceStatus.PARTIAL
    assert await subscriber_balance(tenant.id, rahim.id, today=TODAY) == Balance(
        owed_minor=50_000, overdue_minor=50_000, open_invoices=1, oldest_due=YESTERDAY
    )


async def test_a_balance_reads_within_the_callers_transaction():
    tenant, admin = await _company()
    rahim = await make_subscriber(tenant)

    async with in_transaction() as conn:
        await make_invoice(rahim, 30_000)  # Tortoise routes it into the open transaction
        balance = await subscriber_balance(tenant.id, rahim.id, today=TODAY, conn=conn)

    assert balance.owed_minor == 30_000


async def test_a_balance_never_counts_another_tenants_invoices():
    tenant, admin = await _company()
    rahim = await _owes(tenant, 10_000)
    other = await make_tenant()

    assert (await subscriber_balance(other.id, rahim.id, today=TODAY)).owed_minor == 0


# --- one subscriber's story ----------------------------------------------------------------


async def test_the_story_tells_who_the_subscriber_is_and_splits_overdue_on_the_local_day():
    tenant, admin = await _company()
    reseller = await make_reseller(tenant, name="Mirpur Net")
    plan = await Plan.create(tenant=tenant, name="Home 10 Mbps", price_minor=150_000)
    rahim = await make_subscriber(
        tenant,
        username="rahim",
        name="Rahim Uddin",
        phone="+8801711000001",
        address="House 12, Road 5",
        area="Dhanmondi",
        street="Road 5",
        status=SubscriberStatus.SUSPENDED,
        expiry_date=date(2026, 11, 20),
        billing_mode=BillingMode.POSTPAID,
        reseller=reseller,
        plan=plan,
    )
    late = await make_invoice(rahim, 150_000, due_date=YESTERDAY)
    today = await make_invoice(
        rahim,
        20_000,
        status=InvoiceStatus.PARTIAL,
        paid_minor=5_000,
        due_date=TODAY,
        purpose=InvoicePurpose.LATE_FEE,
    )

    story = await subscriber_story(admin, username="Rahim", now=NOW)

    s = story.subscriber
    assert (s.username, s.name, s.phone, s.address, s.area, s.street) == (
        "rahim",
        "Rahim Uddin",
        "+8801711000001",
        "House 12, Road 5",
        "Dhanmondi",
        "Road 5",
    )
    assert (s.status, s.expiry_date, s.billing_mode, s.reseller_name, s.plan_name) == (
        SubscriberStatus.SUSPENDED,
        date(2026, 11, 20),
        BillingMode.POSTPAID,
        "Mirpur Net",
        "Home 10 Mbps",
    )
    assert story.today == TODAY and story.expired
    assert story.balance == Balance(
        owed_minor=165_000, overdue_minor=150_000, open_invoices=2, oldest_due=YESTERDAY
    )
    assert story.open_invoices == (
        OpenInvoice(
            number=late.number,
            kind=late.kind,
            purpose=InvoicePurpose.RENEWAL,
            status=InvoiceStatus.UNPAID,
            amount_minor=150_000,
            paid_minor=0,
            due_date=YESTERDAY,
            overdue=True,
        ),
        OpenInvoice(
            number=today.number,
            kind=today.kind,
            purpose=InvoicePurpose.LATE_FEE,
            status=InvoiceStatus.PARTIAL,
            amount_minor=20_000,
            paid_minor=5_000,
            due_date=TODAY,
            overdue=False,
        ),
    )
    assert story.open_not_shown == 0


async def test_a_subscriber_without_reseller_or_plan_has_neither_named():
    tenant, admin = await _company()
    await make_subscriber(tenant, username="salma")

    story = await subscriber_story(admin, username="salma", now=NOW)

    assert (story.subscriber.reseller_name, story.subscriber.plan_name) == (None, None)
    assert story.balance.open_invoices == 0
    assert (story.open_invoices, story.payments) == ((), ())


async def test_a_subscriber_with_a_reseller_but_no_plan_has_the_reseller_named():
    tenant, admin = await _company()
    await make_subscriber(
        tenant, username="toma", reseller=await make_reseller(tenant, name="Uttara")
    )

    story = await subscriber_story(admin, username="toma", now=NOW)

    assert (story.subscriber.reseller_name, story.subscriber.plan_name) == ("Uttara", None)


async def test_the_story_shows_twenty_open_invoices_oldest_first_and_counts_the_rest():
    tenant, admin = await _company()
    rahim = await make_subscriber(tenant, username="rahim")
    for n in range(23):
        await make_invoice(rahim, 1_000, due_date=date(2026, 1, 1) + timedelta(days=n))

    story = await subscriber_story(admin, username="rahim", now=NOW)

    assert [i.due_date for i in story.open_invoices] == [
        date(2026, 1, 1) + timedelta(days=n) for n in range(20)
    ]
    assert story.open_not_shown == 3
    assert story.balance.owed_minor == 23_000


async def test_the_story_lists_the_last_ten_payments_newest_first_with_who_took_them():
    tenant, admin = await _company()
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim")
    rahim = await make_subscriber(tenant, username="rahim")
    old = await make_invoice(rahim, 1_200_000, status=InvoiceStatus.PARTIAL)
    for n in range(11):
        await Payment.create(
            tenant=tenant,
            invoice=old,
            subscriber=rahim,
            amount_minor=10_000 + n,
            method=PaymentMethod.BKASH,
            received_at=datetime(2026, 10, 1, tzinfo=UTC) + timedelta(days=n),
            operator=admin,
            reference=f"TX{n}",
            idempotency_key=f"office:{n}",
        )
    door = await make_invoice(rahim, 150_000, due_date=YESTERDAY)
    await _collect(admin, karim, door, 100_000, "door")

    story = await subscriber_story(admin, username="rahim", now=NOW)

    first = story.payments[0]
    assert (first.received_at, first.amount_minor, first.method, first.invoice_number) == (
        NOW,
        100_000,
        PaymentMethod.CASH,
        door.number,
    )
    assert (first.collector_name, first.taken_by) == ("Karim", "Karim")
    assert [p.reference for p in story.payments[1:]] == [f"TX{n}" for n in range(10, 1, -1)]
    assert {p.taken_by for p in story.payments[1:]} == {"Nadia"}
    assert story.balance.owed_minor == 1_200_000 + 50_000


async def test_an_unknown_username_is_not_found_in_one_sentence_with_its_code():
    tenant, admin = await _company()

    with pytest.raises(NotFound) as raised:
        await subscriber_story(admin, username="nobody", now=NOW)

    assert str(raised.value) == "There is no subscriber 'nobody' in your company."
    assert (raised.value.code, raised.value.params) == (
        "subscriber_not_found",
        {"username": "nobody"},
    )


async def test_another_tenants_subscriber_is_not_found_like_one_that_does_not_exist():
    tenant, admin = await _company()
    await _owes(await make_tenant(), 10_000, username="rahim")

    with pytest.raises(NotFound):
        await subscriber_story(admin, username="rahim", now=NOW)


async def test_reseller_staff_see_the_story_of_their_own_subscribers_only():
    tenant, admin = await _company()
    mirpur, uttara = await make_reseller(tenant), await make_reseller(tenant)
    clerk = await make_staff(tenant, Role.RESELLER, reseller=mirpur)
    await _owes(tenant, 10_000, username="ours", reseller=mirpur)
    await _owes(tenant, 20_000, username="theirs", reseller=uttara)
    await _owes(tenant, 30_000, username="office")

    story = await subscriber_story(clerk, username="ours", now=NOW)

    assert story.balance.owed_minor == 10_000
    for username in ("theirs", "office"):
        with pytest.raises(NotFound):
            await subscriber_story(clerk, username=username, now=NOW)


async def test_collectors_and_removed_staff_are_refused():
    tenant, admin = await _company()
    karim = await make_staff(tenant, Role.COLLECTOR)
    gone = await make_staff(tenant, Role.ADMIN, deleted_at=NOW)
    await _owes(tenant, 10_000, username="rahim")

    with pytest.raises(PermissionDenied) as story_refused:
        await subscriber_story(karim, username="rahim", now=NOW)
    with pytest.raises(PermissionDenied) as list_refused:
        await largest_balances(karim, now=NOW)
    with pytest.raises(PermissionDenied) as removed:
        await largest_balances(gone, now=NOW)

    assert story_refused.value.code == list_refused.value.code == "balances_office_only"
    assert removed.value.code == "staff_removed"


# --- the largest balances ------------------------------------------------------------------


async def test_the_largest_balances_come_first_ties_by_subscriber_and_stop_at_the_limit():
    tenant, admin = await _company()
    small = await _owes(tenant, 10_000)
    tie_first = await _owes(tenant, 50_000)
    tie_second = await _owes(tenant, 50_000)
    big = await _owes(tenant, 40_000)
    await make_invoice(big, 30_000, due_date=YESTERDAY)

    found = await largest_balances(admin, limit=3, now=NOW)

    assert [(r.subscriber_id, r.owed_minor) for r in found.rows] == [
        (big.id, 70_000),
        (tie_first.id, 50_000),
        (tie_second.id, 50_000),
    ]
    row = found.rows[0]
    assert (row.username, row.name, row.area, row.phone) == (
        big.username,
        big.name,
        big.area,
        big.phone,
    )
    assert (row.overdue_minor, row.open_invoices, row.oldest_due) == (30_000, 2, YESTERDAY)
    assert small.id not in {r.subscriber_id for r in found.rows}


async def test_the_totals_cover_every_matching_subscriber_not_only_the_rows_shown():
    tenant, admin = await _company()
    for amount in (10_000, 20_000, 30_000, 40_000):
        await _owes(tenant, amount, due=YESTERDAY if amount < 25_000 else TODAY)
    nothing_owed = await make_subscriber(tenant)
    await make_invoice(nothing_owed, 99_000, status=InvoiceStatus.DRAFT)

    found = await largest_balances(admin, limit=2, now=NOW)

    assert [r.owed_minor for r in found.rows] == [40_000, 30_000]
    assert (found.subscribers, found.owed_minor, found.overdue_minor, found.not_shown) == (
        4,
        100_000,
        30_000,
        2,
    )


async def test_nobody_owing_gives_no_rows_and_zero_totals():
    tenant, admin = await _company()
    paid = await make_subscriber(tenant)
    await make_invoice(paid, 10_000, status=InvoiceStatus.PAID, paid_minor=10_000)

    found = await largest_balances(admin, now=NOW)

    assert (found.rows, found.subscribers, found.owed_minor, found.overdue_minor) == (
        (),
        0,
        0,
        0,
    )


async def test_overdue_only_lists_subscribers_with_something_overdue_on_the_local_day():
    tenant, admin = await _company()
    late = await _owes(tenant, 10_000, due=YESTERDAY)
    await make_invoice(late, 5_000, due_date=TODAY)
    await _owes(tenant, 90_000, due=TODAY)

    found = await largest_balances(admin, overdue_only=True, now=NOW)

    assert [(r.subscriber_id, r.owed_minor, r.overdue_minor) for r in found.rows] == [
        (late.id, 15_000, 10_000)
    ]
    assert (found.subscribers, found.owed_minor, found.overdue_only) == (1, 15_000, True)


async def test_area_matches_in_any_case_and_reseller_by_name():
    tenant, admin = await _company()
    mirpur = await make_reseller(tenant, name="Mirpur Net")
    in_area = await _owes(tenant, 10_000, area="Old Town")
    of_reseller = await _owes(tenant, 20_000, area="Mirpur", reseller=mirpur)
    await _owes(tenant, 30_000, area="Mirpur")

    by_area = await largest_balances(admin, area=" old town ", now=NOW)
    by_reseller = await largest_balances(admin, reseller="mirpur net", now=NOW)

    assert [r.subscriber_id for r in by_area.rows] == [in_area.id]
    assert by_area.area == "old town"
    assert [r.subscriber_id for r in by_reseller.rows] == [of_reseller.id]
    assert by_reseller.reseller_name == "Mirpur Net"


async def test_reseller_staff_see_only_their_own_subscribers_in_the_largest_balances():
    tenant, admin = await _company()
    mirpur, uttara = await make_reseller(tenant), await make_reseller(tenant)
    clerk = await make_staff(tenant, Role.RESELLER, reseller=mirpur)
    ours = await _owes(tenant, 10_000, reseller=mirpur)
    await _owes(tenant, 20_000, reseller=uttara)
    await _owes(tenant, 30_000)

    found = await largest_balances(clerk, now=NOW)

    assert [r.subscriber_id for r in found.rows] == [ours.id]
    assert (found.subscribers, found.owed_minor) == (1, 10_000)
    with pytest.raises(NotFound) as raised:
        await largest_balances(clerk, reseller=uttara.name, now=NOW)
    assert raised.value.code == "reseller_not_found"


async def test_another_tenants_subscribers_never_appear_in_the_largest_balances():
    tenant, admin = await _company()
    ours = await _owes(tenant, 10_000)
    await _owes(await make_tenant(), 999_000)

    found = await largest_balances(admin, now=NOW)

    assert [r.subscriber_id for r in found.rows] == [ours.id]
    assert found.owed_minor == 10_000


@pytest.mark.parametrize("limit", [0, -1, 101])
async def test_a_limit_outside_one_to_a_hundred_is_refused(limit):
    tenant, admin = await _company()

    with pytest.raises(InvalidInput) as raised:
        await largest_balances(admin, limit=limit, now=NOW)

    assert (raised.value.code, raised.value.params) == ("balances_bad_limit", {"limit": 100})
