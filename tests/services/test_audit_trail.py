"""The audit trail of a collector, a subscriber or an invoice: whose rows, which period,
which scope, page by page. History is made with the real services."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from core.db.models import AuditLog, Staff
from core.domain.status import FailureReason, Role
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.services.access import COLLECTORS_ASSIGN, COLLECTORS_VIEW, Origin
from core.services.assignments import assign_invoices
from core.services.audit_trail import TrailSubject, audit_trail, summarise_details
from core.services.billing import SubscriberInput, create_subscriber
from core.services.collection import mark_collected, mark_failed
from core.services.commission import pay_commission
from core.services.invoicing import new_invoice
from core.services.staff import create_invite, edit_staff, redeem_invite
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant

pytestmark = pytest.mark.usefixtures("db")

NADIA_TG, KARIM_TG, JAMAL_TG = 5551000, 5551234, 5551300


def _telegram(user_id: int) -> Origin:
    return Origin(channel="telegram", telegram_user_id=user_id, telegram_chat_id=user_id)


async def _office():
    """Nadia invites Karim, who joins; she raises his commission to 5 %, adds Rahim with two
    invoices, and puts them and Salma's invoice on Karim's route. Karim collects Rahim's
    first, finds nobody home for the second, collects Salma's; Nadia pays his commission.
    Jamal, another collector, collects Keya's invoice."""
    tenant = await make_tenant(name="Dhaka Fiber Net", timezone="Asia/Dhaka")
    nadia = await make_staff(tenant, Role.ADMIN, name="Nadia", telegram_user_id=NADIA_TG)
    invite = await create_invite(
        nadia, role=Role.COLLECTOR, name="Karim", origin=_telegram(NADIA_TG)
    )
    karim = await redeem_invite(
        token=invite.token, telegram_user_id=KARIM_TG, origin=_telegram(KARIM_TG)
    )
    karim = await edit_staff(
        nadia, staff_id=karim.id, commission_bp=500, origin=_telegram(NADIA_TG)
    )
    rahim = await create_subscriber(
        nadia, SubscriberInput(username="rahim01", name="Rahim Uddin", phone="01711000001")
    )
    first = await new_invoice(nadia, username="rahim01", amount_minor=150_000)
    second = await new_invoice(nadia, username="rahim01", amount_minor=80_000)
    salma = await make_invoice(await make_subscriber(tenant, name="Salma Begum"), 100_000)
    stops = {}
    for number in (first.number, second.number, salma.number):
        result = await assign_invoices(
            nadia, collector_id=karim.id, numbers=[number], origin=_telegram(NADIA_TG)
        )
        stops[number] = result.outcomes[0].assignment_id
    await mark_collected(
        karim,
        assignment_id=stops[first.number],
        idempotency_key="tg:1",
        origin=_telegram(KARIM_TG),
    )
    await mark_failed(
        karim,
        assignment_id=stops[second.number],
        reason=FailureReason.NOT_HOME,
        origin=_telegram(KARIM_TG),
    )
    await mark_collected(
        karim,
        assignment_id=stops[salma.number],
        idempotency_key="tg:2",
        origin=_telegram(KARIM_TG),
    )
    await pay_commission(nadia, collector_id=karim.id, origin=_telegram(NADIA_TG))
    jamal = await make_staff(tenant, Role.COLLECTOR, name="Jamal", telegram_user_id=JAMAL_TG)
    keya = await make_invoice(await make_subscriber(tenant, name="Keya Das"), 70_000)
    jamals = await assign_invoices(nadia, collector_id=jamal.id, numbers=[keya.number])
    await mark_collected(
        jamal,
        assignment_id=jamals.outcomes[0].assignment_id,
        idempotency_key="tg:3",
        origin=_telegram(JAMAL_TG),
    )
    return tenant, nadia, karim, rahim, first.number, second.number, salma.number


async def test_a_collectors_trail_is_what_they_did_and_what_was_done_to_them_newest_first():
    tenant, nadia, karim, rahim, first, second, salma = await _office()

    trail = await audit_trail(nadia, collector="karim")

    assert (trail.subject, trail.subject_id, trail.subject_ref, trail.subject_name) == (
        TrailSubject.COLLECTOR,
        karim.id,
        f"#{karim.id}",
        "Karim",
    )
    assert [
        (e.actor_name, e.action, e.object_label, e.telegram_user_id, e.amount_minor)
        for e in trail.entries
    ] == [
        ("Nadia", "commission.pay", "Karim", NADIA_TG, 12_500),
        ("Karim", "assignment.collect", salma, KARIM_TG, 100_000),
        ("Karim", "assignment.fail", second, KARIM_TG, None),
        ("Karim", "assignment.collect", first, KARIM_TG, 150_000),
        ("Nadia", "staff.edit", "Karim", NADIA_TG, None),
        ("Karim", "staff.bind", "Karim", KARIM_TG, None),
        ("Nadia", "staff.invite", "Karim", NADIA_TG, None),
    ]
    assert [e.summary for e in trail.entries[1:5]] == [
        "method: cash",
        "reason: not_home",
        "method: cash",
        "commission_bp: 0 → 500",
    ]
    assert trail.more is False and trail.next_before_id is None


async def test_a_subscribers_trail_holds_their_own_rows_and_those_of_all_their_invoices():
    tenant, nadia, karim, rahim, first, second, salma = await _office()

    trail = await audit_trail(nadia, subscriber="RAHIM01")

    assert (trail.subject, trail.subject_ref, trail.subject_name) == (
        TrailSubject.SUBSCRIBER,
        "rahim01",
        "Rahim Uddin",
    )
    assert [(e.actor_name, e.action, e.object_label) for e in trail.entries] == [
        ("Karim", "assignment.fail", second),
        ("Karim", "assignment.collect", first),
        ("Nadia", "assignment.create", second),
        ("Nadia", "assignment.create", first),
        ("Nadia", "invoice.create", second),
        ("Nadia", "invoice.create", first),
        ("Nadia", "subscriber.create", "rahim01"),
    ]


async def test_an_invoices_trail_holds_only_that_invoice_and_finds_it_in_any_case():
    tenant, nadia, karim, rahim, first, second, salma = await _office()

    trail = await audit_trail(nadia, invoice=first.lower())

    assert (trail.subject, trail.subject_ref, trail.subject_name) == (
        TrailSubject.INVOICE,
        first,
        "Rahim Uddin",
    )
    assert [(e.actor_kind, e.actor_name, e.action) for e in trail.entries] == [
        ("staff", "Karim", "assignment.collect"),
        ("staff", "Nadia", "assignment.create"),
        ("staff", "Nadia", "invoice.create"),
    ]
    assert {e.object_label for e in trail.entries} == {first}


async def test_older_entries_come_page_by_page_without_gaps_or_repeats():
    tenant, nadia, karim, rahim, first, second, salma = await _office()
    everything = await audit_trail(nadia, subscriber="rahim01")

    pages = [await audit_trail(nadia, subscriber="rahim01", limit=3)]
    while pages[-1].more:
        pages.append(
            await audit_trail(
                nadia, subscriber="rahim01", limit=3, before_id=pages[-1].next_before_id
            )
        )

    assert [len(p.entries) for p in pages] == [3, 3, 1]
    assert [p.more for p in pages] == [True, True, False]
    assert [e for p in pages for e in p.entries] == list(everything.entries)


async def test_a_before_id_beyond_every_row_reads_from_the_newest():
    tenant, nadia, *_ = await _office()

    trail = await audit_trail(nadia, subscriber="rahim01", before_id=10**12)

    assert len(trail.entries) == 7 and trail.more is False


async def test_the_period_is_the_tenants_calendar_days_with_both_ends_included():
    tenant, nadia, karim, rahim, first, second, salma = await _office()
    await AuditLog.filter(tenant_id=tenant.id).update(at=datetime(2026, 1, 1, tzinfo=UTC))
    rows = await AuditLog.filter(tenant_id=tenant.id, actor_staff_id=karim.id).order_by("id")
    # Dhaka is UTC+6: its 22 Nov runs from 21 Nov 18:00 to 22 Nov 18:00 UTC.
    for row, at in zip(
        rows,
        (
            datetime(2026, 11, 21, 17, 59, 59, 999_999, tzinfo=UTC),  # 21 Nov 23:59 in Dhaka
            datetime(2026, 11, 21, 18, 0, tzinfo=UTC),  # 22 Nov 00:00
            datetime(2026, 11, 22, 17, 59, 59, 999_999, tzinfo=UTC),  # 22 Nov 23:59
            datetime(2026, 11, 22, 18, 0, tzinfo=UTC),  # 23 Nov 00:00
        ),
        strict=True,
    ):
        await AuditLog.filter(id=row.id).update(at=at)

    trail = await audit_trail(
        nadia, collector=str(karim.id), start=date(2026, 11, 22), end=date(2026, 11, 22)
    )

    assert [e.id for e in trail.entries] == [rows[2].id, rows[1].id]
    assert trail.entries[0].at == datetime(2026, 11, 22, 17, 59, 59, 999_999, tzinfo=UTC)
    assert (trail.start, trail.end) == (date(2026, 11, 22), date(2026, 11, 22))


async def test_without_dates_the_period_is_the_last_thirty_days_up_to_today_in_dhaka():
    tenant, nadia, karim, rahim, first, second, salma = await _office()
    now = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)  # 25 Nov, noon in Dhaka
    rows = await AuditLog.filter(object_type="invoice").order_by("id")
    inside, outside = rows[0], rows[1]
    await AuditLog.filter(tenant_id=tenant.id).update(at=now + timedelta(days=1))
    await AuditLog.filter(id=inside.id).update(at=datetime(2026, 10, 26, 18, 0, tzinfo=UTC))
    await AuditLog.filter(id=outside.id).update(at=datetime(2026, 10, 26, 17, 59, tzinfo=UTC))

    trail = await audit_trail(nadia, subscriber="rahim01", now=now)

    assert (trail.start, trail.end) == (date(2026, 10, 27), date(2026, 11, 25))
    assert [e.id for e in trail.entries] == [inside.id]


async def test_a_period_from_one_day_runs_to_today_and_one_to_a_day_covers_thirty_days():
    tenant, nadia, karim, *_ = await _office()
    now = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)

    since = await audit_trail(nadia, collector="Karim", start=date(2026, 11, 1), now=now)
    until = await audit_trail(nadia, collector="Karim", end=date(2026, 11, 10), now=now)

    assert (since.start, since.end) == (date(2026, 11, 1), date(2026, 11, 25))
    assert (until.start, until.end) == (date(2026, 10, 12), date(2026, 11, 10))


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        (date(2026, 11, 22), date(2026, 11, 1), "period_reversed"),
        (date(2025, 11, 1), date(2026, 11, 2), "period_too_long"),
    ],
)
async def test_a_reversed_or_overlong_period_is_refused_with_one_sentence(start, end, code):
    tenant, nadia, *_ = await _office()

    with pytest.raises(InvalidInput) as refused:
        await audit_trail(nadia, collector="Karim", start=start, end=end)

    assert refused.value.code == code


async def test_a_period_of_exactly_366_days_is_allowed():
    tenant, nadia, *_ = await _office()

    trail = await audit_trail(
        nadia, collector="Karim", start=date(2025, 11, 2), end=date(2026, 11, 2)
    )

    assert (trail.end - trail.start).days + 1 == 366


@pytest.mark.parametrize(
    "subjects",
    [{}, {"collector": "Karim", "invoice": "INV-2026-0001"}],
)
async def test_exactly_one_subject_must_be_named(subjects):
    tenant, nadia, *_ = await _office()

    with pytest.raises(InvalidInput) as refused:
        await audit_trail(nadia, **subjects)

    assert refused.value.code == "audit_one_subject"


async def test_reseller_staff_read_their_own_subscribers_and_collectors_but_no_others():
    tenant = await make_tenant()
    ours, theirs = await make_reseller(tenant), await make_reseller(tenant)
    admin = await make_staff(tenant, Role.ADMIN)
    clerk = await make_staff(
        tenant, Role.RESELLER, reseller=ours, permissions=[COLLECTORS_VIEW, COLLECTORS_ASSIGN]
    )
    own_collector = await make_staff(tenant, Role.COLLECTOR, reseller=ours, name="Rafiq")
    office_collector = await make_staff(tenant, Role.COLLECTOR, name="Karim")
    own = await make_subscriber(tenant, reseller=ours, username="own01")
    other = await make_subscriber(tenant, reseller=theirs, username="other01")
    own_invoice, other_invoice = await make_invoice(own), await make_invoice(other)
    await assign_invoices(clerk, collector_id=own_collector.id, numbers=[own_invoice.number])
    await assign_invoices(admin, collector_id=office_collector.id, numbers=[other_invoice.number])

    assert [e.action for e in (await audit_trail(clerk, subscriber="own01")).entries] == [
        "assignment.create"
    ]
    assert len((await audit_trail(clerk, invoice=own_invoice.number)).entries) == 1
    assert (await audit_trail(clerk, collector="Rafiq")).subject_id == own_collector.id
    refusals = []
    for subject in (
        {"subscriber": "other01"},
        {"invoice": other_invoice.number},
        {"collector": "Karim"},
        {"collector": str(office_collector.id)},
    ):
        with pytest.raises(NotFound) as refused:
            await audit_trail(clerk, **subject)
        refusals.append(refused.value.code)
    assert refusals == [
        "subscriber_not_found",
        "invoice_not_found",
        "collector_not_found",
        "collector_not_found",
    ]


async def test_another_companys_invoice_subscriber_and_collector_are_not_found():
    tenant, nadia, karim, rahim, first, *_ = await _office()
    elsewhere = await make_tenant()
    their_admin = await make_staff(elsewhere, Role.ADMIN)

    refusals = []
    for subject in (
        {"invoice": first},
        {"subscriber": "rahim01"},
        {"collector": str(karim.id)},
    ):
        with pytest.raises(NotFound) as refused:
            await audit_trail(their_admin, **subject)
        refusals.append(refused.value.code)

    assert refusals == ["invoice_not_found", "subscriber_not_found", "collector_not_found"]


async def test_collectors_and_reseller_staff_without_the_view_right_are_refused():
    tenant, nadia, karim, rahim, first, *_ = await _office()
    reseller = await make_reseller(tenant)
    clerk = await make_staff(tenant, Role.RESELLER, reseller=reseller, permissions=[])

    for actor in (karim, clerk):
        with pytest.raises(PermissionDenied):
            await audit_trail(actor, invoice=first)


async def test_a_removed_collectors_trail_is_still_found_by_number():
    tenant, nadia, karim, *_ = await _office()
    await Staff.filter(id=karim.id).update(deleted_at=datetime(2026, 11, 30, tzinfo=UTC))

    trail = await audit_trail(nadia, collector=f"#{karim.id}")

    assert trail.subject_name == "Karim" and len(trail.entries) == 7


def test_a_details_summary_leaves_out_ids_and_empty_values_and_is_cut_short():
    assert summarise_details(
        {"assignment_id": 4, "reason": "other", "note": "gate locked", "flagged": True}
    ) == ("flagged, note: gate locked, reason: other")
    assert summarise_details({"number": "INV-1", "amount_minor": 5, "refused": False}) == ""
    assert summarise_details({"old": {"phone": None}, "new": {"phone": "+880171"}}) == (
        "phone: – → +880171"
    )
    long = summarise_details({"note": "x" * 200})
    assert len(long) == 80 and long.endswith("…")
