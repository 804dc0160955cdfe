"""The staff service against a real database: invites, binding, edit, reset, soft delete."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from tortoise import Tortoise

from core.db.models import AuditLog, Invite, Staff, Tenant
from core.domain.status import Role
from core.errors import (
    Conflict,
    InactiveStaff,
    InvalidAmount,
    InvalidInput,
    InviteInvalid,
    NotFound,
    PermissionDenied,
)
from core.services.access import (
    CLI,
    COLLECTORS_CREATE,
    COLLECTORS_DELETE,
    COLLECTORS_EDIT,
    COLLECTORS_VIEW,
    Origin,
    require_active,
)
from core.services.staff import (
    InviteResult,
    create_invite,
    delete_staff,
    edit_staff,
    identify_staff,
    redeem_invite,
    reset_staff,
)
from tests.factories import make_reseller, make_staff, make_tenant

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TTL = timedelta(hours=72)
TG = 7_000_001
TG_OTHER = 7_000_002

pytestmark = pytest.mark.usefixtures("db")


async def invite_collector(actor: Staff, **overrides: object) -> InviteResult:
    options: dict[str, object] = {"role": Role.COLLECTOR, "name": "Karim", "now": NOW}
    return await create_invite(actor, **(options | overrides))  # type: ignore[arg-type]


async def invite_of(staff: Staff) -> Invite:
    return await Invite.get(staff_id=staff.id)


async def audit_actions(staff_id: int) -> list[tuple[str, str, int | None]]:
    rows = await AuditLog.filter(object_type="staff", object_id=staff_id).order_by("id")
    return [(row.action, row.actor_kind, row.actor_staff_id) for row in rows]


# --- inviting ------------------------------------------------------------------------------


async def test_an_admin_invites_a_collector_as_an_unbound_staff_row() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)

    result = await invite_collector(
        admin, name="  Karim   Mia ", phone="01711-000001", commission_bp=250
    )

    staff = await Staff.get(id=result.staff.id)
    assert (staff.tenant_id, staff.role, staff.name, staff.phone, staff.commission_bp) == (
        tenant.id,
        Role.COLLECTOR,
        "Karim Mia",
        "+8801711000001",
        250,
    )
    assert staff.telegram_user_id is None
    assert result.expires_at == NOW + TTL
    invite = await invite_of(staff)
    assert (invite.tenant_id, invite.created_by_id, invite.expires_at) == (
        tenant.id,
        admin.id,
        NOW + TTL,
    )
    assert (invite.used_at, invite.revoked_at) == (None, None)


async def test_the_token_is_a_deep_link_payload_stored_only_as_its_sha256() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)

    result = await invite_collector(admin)

    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", result.token)
    invite = await invite_of(result.staff)
    assert invite.token_sha256 == hashlib.sha256(result.token.encode()).hexdigest()
    for model in Tortoise.apps["models"].values():
        rows = await model.all().values()
        assert result.token not in repr(rows), model.__name__


async def test_two_invites_get_different_tokens() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)

    first = await invite_collector(admin)
    second = await invite_collector(admin)

    assert first.token != second.token


async def test_an_admin_invites_reseller_staff_with_their_permissions() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    reseller = await make_reseller(tenant)

    result = await create_invite(
        admin,
        role=Role.RESELLER,
        name="Nadia",
        reseller_id=reseller.id,
        permissions=[COLLECTORS_EDIT, COLLECTORS_CREATE, COLLECTORS_EDIT],
        now=NOW,
    )

    staff = await Staff.get(id=result.staff.id)
    assert (staff.role, staff.reseller_id, staff.permissions) == (
        Role.RESELLER,
        reseller.id,
        [COLLECTORS_CREATE, COLLECTORS_EDIT],
    )


async def test_reseller_staff_need_a_reseller() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)

    with pytest.raises(InvalidInput):
        await create_invite(admin, role=Role.RESELLER, name="Nadia", permissions=[], now=NOW)


async def test_reseller_staff_need_a_list_of_permissions() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    reseller = await make_reseller(tenant)

    with pytest.raises(InvalidInput):
        await create_invite(admin, role=Role.RESELLER, name="Nadia", reseller_id=reseller.id)


async def test_an_unknown_permission_is_refused_on_invite() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    reseller = await make_reseller(tenant)

    with pytest.raises(PermissionDenied, match=re.escape("Unknown permission 'invoices.delete'")):
        await create_invite(
            admin,
            role=Role.RESELLER,
            name="Nadia",
            reseller_id=reseller.id,
            permissions=[COLLECTORS_VIEW, "invoices.delete"],
        )
    assert await Staff.filter(name="Nadia").count() == 0


async def test_a_reseller_of_another_tenant_is_not_found() -> None:
    tenant, other = await make_tenant(), await make_tenant()
    admin = await make_staff(tenant)
    foreign = await make_reseller(other)

    with pytest.raises(NotFound):
        await invite_collector(admin, reseller_id=foreign.id)
    assert await Staff.filter(role=Role.COLLECTOR).count() == 0


@pytest.mark.parametrize("commission_bp", [-1, 10_001])
async def test_a_commission_rate_outside_0_to_10000_bp_is_refused(commission_bp: int) -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)

    with pytest.raises(InvalidAmount):
        await invite_collector(admin, commission_bp=commission_bp)
    assert await Invite.all().count() == 0


@pytest.mark.parametrize("commission_bp", [0, 10_000])
async def test_a_commission_rate_of_0_or_10000_bp_is_accepted(commission_bp: int) -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)

    result = await invite_collector(admin, commission_bp=commission_bp)

    assert (await Staff.get(id=result.staff.id)).commission_bp == commission_bp


async def test_a_role_given_as_text_is_checked() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)

    result = await create_invite(admin, role="collector", name="Karim")  # type: ignore[arg-type]
    assert (await Staff.get(id=result.staff.id)).role == Role.COLLECTOR
    with pytest.raises(InvalidInput, match="not a role"):
        await create_invite(admin, role="manager", name="Boss")  # type: ignore[arg-type]


async def test_a_phone_that_is_not_a_number_is_refused() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)

    with pytest.raises(InvalidInput):
        await invite_collector(admin, phone="12")


async def test_a_reseller_invites_a_collector_into_their_own_reseller() -> None:
    tenant = await make_tenant()
    reseller = await make_reseller(tenant)
    actor = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_CREATE]
    )

    result = await invite_collector(actor)

    staff = await Staff.get(id=result.staff.id)
    assert (staff.role, staff.reseller_id) == (Role.COLLECTOR, reseller.id)
    assert (await invite_of(staff)).created_by_id == actor.id


async def test_a_reseller_cannot_put_a_collector_into_another_reseller() -> None:
    tenant = await make_tenant()
    own, other = await make_reseller(tenant), await make_reseller(tenant)
    actor = await make_staff(tenant, Role.RESELLER, reseller=own, permissions=[COLLECTORS_CREATE])

    with pytest.raises(PermissionDenied):
        await invite_collector(actor, reseller_id=other.id)
    assert await Staff.filter(role=Role.COLLECTOR).count() == 0


@pytest.mark.parametrize("role", [Role.ADMIN, Role.RESELLER])
async def test_a_reseller_may_invite_only_collectors(role: Role) -> None:
    tenant = await make_tenant()
    reseller = await make_reseller(tenant)
    actor = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_CREATE]
    )

    with pytest.raises(PermissionDenied):
        await create_invite(
            actor, role=role, name="Boss", reseller_id=reseller.id, permissions=[], now=NOW
        )
    assert await Staff.filter(name="Boss").count() == 0


async def test_a_reseller_without_collectors_create_is_refused() -> None:
    tenant = await make_tenant()
    reseller = await make_reseller(tenant)
    actor = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_VIEW, COLLECTORS_EDIT]
    )

    with pytest.raises(PermissionDenied, match="create collectors"):
        await invite_collector(actor)
    assert await Staff.filter(role=Role.COLLECTOR).count() == 0


async def test_a_collector_cannot_invite() -> None:
    tenant = await make_tenant()
    collector = await make_staff(tenant, Role.COLLECTOR)

    with pytest.raises(PermissionDenied, match="Collectors cannot invite"):
        await invite_collector(collector)
    assert await Staff.filter(role=Role.COLLECTOR).count() == 1


async def test_a_deleted_admin_cannot_invite() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant, deleted_at=NOW)

    with pytest.raises(InactiveStaff):
        await invite_collector(admin)


async def test_an_admin_cannot_invite_into_another_tenant() -> None:
    tenant, other = await make_tenant(), await make_tenant()
    admin = await make_staff(tenant)

    with pytest.raises(PermissionDenied):
        await invite_collector(admin, tenant_id=other.id)
    assert await Staff.filter(tenant_id=other.id).count() == 0


async def test_the_command_line_invites_the_first_admin_of_a_tenant() -> None:
    tenant = await make_tenant()

    result = await create_invite(
        None, role=Role.ADMIN, name="Owner", tenant_id=tenant.id, origin=CLI, now=NOW
    )

    staff = await Staff.get(id=result.staff.id)
    assert (staff.tenant_id, staff.role) == (tenant.id, Role.ADMIN)
    assert (await invite_of(staff)).created_by_id is None
    assert await audit_actions(staff.id) == [("staff.invite", "cli", None)]


@pytest.mark.parametrize(
    ("origin", "with_tenant"),
    [(Origin(), True), (Origin(channel="telegram"), True), (CLI, False)],
    ids=["system", "telegram", "cli-without-tenant"],
)
async def test_without_an_actor_only_the_command_line_may_invite_into_a_named_tenant(
    origin: Origin, with_tenant: bool
) -> None:
    tenant = await make_tenant()

    with pytest.raises(PermissionDenied):
        await create_invite(
            None,
            role=Role.ADMIN,
            name="Owner",
            tenant_id=tenant.id if with_tenant else None,
            origin=origin,
        )
    assert await Staff.all().count() == 0


async def test_the_command_line_cannot_invite_into_a_tenant_that_does_not_exist() -> None:
    with pytest.raises(NotFound):
        await create_invite(None, role=Role.ADMIN, name="Owner", tenant_id=999, origin=CLI)


# --- redeeming -----------------------------------------------------------------------------


async def test_redeeming_an_invite_binds_the_telegram_account() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    result = await invite_collector(admin)

    staff = await redeem_invite(
        token=result.token, telegram_user_id=TG, now=NOW + timedelta(hours=1)
    )

    assert (staff.id, staff.telegram_user_id) == (result.staff.id, TG)
    assert (await Staff.get(id=staff.id)).telegram_user_id == TG
    assert (await invite_of(staff)).used_at == NOW + timedelta(hours=1)
    identified = await identify_staff(TG)
    assert identified is not None
    assert identified.id == staff.id


async def test_an_invite_still_works_one_second_before_it_expires() -> None:
    tenant = await make_tenant()
    result = await invite_collector(await make_staff(tenant))

    staff = await redeem_invite(
        token=result.token, telegram_user_id=TG, now=NOW + TTL - timedelta(seconds=1)
    )

    assert staff.telegram_user_id == TG


async def test_an_expired_invite_is_refused() -> None:
    tenant = await make_tenant()
    result = await invite_collector(await make_staff(tenant))

    with pytest.raises(InviteInvalid, match="expired"):
        await redeem_invite(token=result.token, telegram_user_id=TG, now=NOW + TTL)
    assert (await Staff.get(id=result.staff.id)).telegram_user_id is None


async def test_a_used_invite_cannot_be_redeemed_by_another_account() -> None:
    tenant = await make_tenant()
    result = await invite_collector(await make_staff(tenant))
    await redeem_invite(token=result.token, telegram_user_id=TG, now=NOW)

    with pytest.raises(InviteInvalid, match="already used"):
        await redeem_invite(token=result.token, telegram_user_id=TG_OTHER, now=NOW)
    assert (await Staff.get(id=result.staff.id)).telegram_user_id == TG
    assert await identify_staff(TG_OTHER) is None


async def test_a_redelivered_start_from_the_same_account_returns_the_same_staff_once() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    result = await invite_collector(admin)
    first = await redeem_invite(token=result.token, telegram_user_id=TG, now=NOW)

    again = await redeem_invite(token=result.token, telegram_user_id=TG, now=NOW)

    assert (again.id, again.telegram_user_id) == (first.id, TG)
    assert await audit_actions(first.id) == [
        ("staff.invite", "staff", admin.id),
        ("staff.bind", "staff", first.id),
    ]


async def test_a_revoked_invite_is_refused() -> None:
    tenant = await make_tenant()
    result = await invite_collector(await make_staff(tenant))
    await Invite.filter(staff_id=result.staff.id).update(revoked_at=NOW)

    with pytest.raises(InviteInvalid, match="cancelled"):
        await redeem_invite(token=result.token, telegram_user_id=TG, now=NOW)
    assert (await Staff.get(id=result.staff.id)).telegram_user_id is None


@pytest.mark.parametrize("token", ["no-such-token-at-all", "", "x" * 64])
async def test_an_unknown_token_is_refused(token: str) -> None:
    tenant = await make_tenant()
    await invite_collector(await make_staff(tenant))

    with pytest.raises(InviteInvalid, match="not valid"):
        await redeem_invite(token=token, telegram_user_id=TG, now=NOW)
    assert await identify_staff(TG) is None


async def test_the_invite_of_a_deleted_staff_member_is_refused() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    result = await invite_collector(admin)
    await delete_staff(admin, staff_id=result.staff.id, now=NOW)

    with pytest.raises(InviteInvalid):
        await redeem_invite(token=result.token, telegram_user_id=TG, now=NOW)
    assert await identify_staff(TG) is None


async def test_an_open_invite_of_a_staff_row_marked_deleted_is_refused() -> None:
    # Deleting through the service also revokes the invite; this holds even if it did not.
    tenant = await make_tenant()
    result = await invite_collector(await make_staff(tenant))
    await Staff.filter(id=result.staff.id).update(deleted_at=NOW)

    with pytest.raises(InviteInvalid, match="removed"):
        await redeem_invite(token=result.token, telegram_user_id=TG, now=NOW)
    assert (await invite_of(result.staff)).used_at is None


async def test_a_telegram_account_bound_to_another_staff_member_is_refused() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    await make_staff(tenant, Role.COLLECTOR, telegram_user_id=TG)
    result = await invite_collector(admin)

    with pytest.raises(Conflict):
        await redeem_invite(token=result.token, telegram_user_id=TG, now=NOW)
    # Nothing was half-done: the link still works for the right person.
    assert (await invite_of(result.staff)).used_at is None
    staff = await redeem_invite(token=result.token, telegram_user_id=TG_OTHER, now=NOW)
    assert staff.telegram_user_id == TG_OTHER


async def test_a_telegram_account_bound_in_another_tenant_is_refused() -> None:
    tenant, other = await make_tenant(), await make_tenant()
    await make_staff(other, Role.COLLECTOR, telegram_user_id=TG)
    result = await invite_collector(await make_staff(tenant))

    with pytest.raises(Conflict):
        await redeem_invite(token=result.token, telegram_user_id=TG, now=NOW)


async def test_the_bind_audit_row_records_the_telegram_account() -> None:
    tenant = await make_tenant()
    result = await invite_collector(await make_staff(tenant))
    origin = Origin(channel="telegram", telegram_user_id=TG, telegram_chat_id=TG)

    await redeem_invite(token=result.token, telegram_user_id=TG, origin=origin, now=NOW)

    row = await AuditLog.get(action="staff.bind")
    assert (row.tenant_id, row.actor_staff_id, row.object_id, row.telegram_user_id) == (
        tenant.id,
        result.staff.id,
        result.staff.id,
        TG,
    )
    assert row.details["telegram_user_id"] == TG


@pytest.mark.postgres_only
async def test_ten_concurrent_redemptions_of_one_invite_bind_exactly_one_account() -> None:
    tenant = await make_tenant()
    result = await invite_collector(await make_staff(tenant))
    telegram_ids = [8_000_000 + i for i in range(10)]

    outcomes = await asyncio.gather(
        *(redeem_invite(token=result.token, telegram_user_id=tg, now=NOW) for tg in telegram_ids),
        return_exceptions=True,
    )

    winners = [o for o in outcomes if isinstance(o, Staff)]
    losers = [o for o in outcomes if not isinstance(o, Staff)]
    assert len(winners) == 1
    assert [type(o) for o in losers] == [InviteInvalid] * 9
    staff = await Staff.get(id=result.staff.id)
    assert staff.telegram_user_id == winners[0].telegram_user_id
    assert staff.telegram_user_id in telegram_ids
    assert await AuditLog.filter(action="staff.bind").count() == 1


# --- editing -------------------------------------------------------------------------------


async def test_an_admin_edits_a_collector_and_the_audit_keeps_old_and_new_values() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    collector = await make_staff(
        tenant, Role.COLLECTOR, name="Karim", phone="+8801711000001", commission_bp=100
    )

    edited = await edit_staff(
        admin, staff_id=collector.id, name="Karim Mia", phone="01811-000002", commission_bp=300
    )

    stored = await Staff.get(id=collector.id)
    expected = ("Karim Mia", "+8801811000002", 300)
    assert (stored.name, stored.phone, stored.commission_bp) == expected
    assert (edited.name, edited.phone, edited.commission_bp) == expected
    row = await AuditLog.get(action="staff.edit")
    assert (row.actor_staff_id, row.object_id) == (admin.id, collector.id)
    assert row.details == {
        "old": {"name": "Karim", "phone": "+8801711000001", "commission_bp": 100},
        "new": {"name": "Karim Mia", "phone": "+8801811000002", "commission_bp": 300},
    }


async def test_an_edit_that_changes_nothing_writes_no_audit_row() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    collector = await make_staff(tenant, Role.COLLECTOR, name="Karim", commission_bp=100)

    await edit_staff(admin, staff_id=collector.id, name="Karim", commission_bp=100)

    assert await AuditLog.filter(action="staff.edit").count() == 0


async def test_an_empty_phone_clears_the_phone() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    collector = await make_staff(tenant, Role.COLLECTOR, phone="+8801711000001")

    await edit_staff(admin, staff_id=collector.id, phone="")

    assert (await Staff.get(id=collector.id)).phone is None


@pytest.mark.parametrize("commission_bp", [-5, 10_001])
async def test_edit_refuses_a_commission_rate_outside_0_to_10000_bp(commission_bp: int) -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    collector = await make_staff(tenant, Role.COLLECTOR, commission_bp=100)

    with pytest.raises(InvalidAmount):
        await edit_staff(admin, staff_id=collector.id, commission_bp=commission_bp)
    assert (await Staff.get(id=collector.id)).commission_bp == 100


async def test_edit_refuses_an_unknown_permission() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    reseller = await make_reseller(tenant)
    staff = await make_staff(tenant, Role.RESELLER, reseller=reseller, permissions=[])

    with pytest.raises(PermissionDenied, match="Unknown permission"):
        await edit_staff(admin, staff_id=staff.id, permissions=[COLLECTORS_VIEW, "root"])
    assert (await Staff.get(id=staff.id)).permissions == []


async def test_an_admin_changes_a_reseller_staff_members_permissions() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    reseller = await make_reseller(tenant)
    staff = await make_staff(tenant, Role.RESELLER, reseller=reseller, permissions=[])

    await edit_staff(admin, staff_id=staff.id, permissions=[COLLECTORS_VIEW, COLLECTORS_EDIT])

    assert (await Staff.get(id=staff.id)).permissions == [COLLECTORS_EDIT, COLLECTORS_VIEW]


async def test_a_collector_has_no_permissions_to_edit() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    collector = await make_staff(tenant, Role.COLLECTOR)

    with pytest.raises(InvalidInput):
        await edit_staff(admin, staff_id=collector.id, permissions=[COLLECTORS_VIEW])
    assert (await Staff.get(id=collector.id)).permissions == []


async def test_a_reseller_edits_a_collector_of_their_own_reseller() -> None:
    tenant = await make_tenant()
    reseller = await make_reseller(tenant)
    actor = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_EDIT]
    )
    collector = await make_staff(tenant, Role.COLLECTOR, reseller=reseller, commission_bp=100)

    await edit_staff(actor, staff_id=collector.id, commission_bp=200)

    assert (await Staff.get(id=collector.id)).commission_bp == 200


async def test_a_reseller_cannot_see_a_collector_of_another_reseller() -> None:
    tenant = await make_tenant()
    own, other = await make_reseller(tenant), await make_reseller(tenant)
    actor = await make_staff(
        tenant, Role.RESELLER, reseller=own, permissions=[COLLECTORS_EDIT, COLLECTORS_DELETE]
    )
    collector = await make_staff(tenant, Role.COLLECTOR, reseller=other, commission_bp=100)
    office_collector = await make_staff(tenant, Role.COLLECTOR)

    for staff_id in (collector.id, office_collector.id):
        with pytest.raises(NotFound):
            await edit_staff(actor, staff_id=staff_id, commission_bp=200)
        with pytest.raises(NotFound):
            await delete_staff(actor, staff_id=staff_id, now=NOW)
    assert (await Staff.get(id=collector.id)).commission_bp == 100
    assert await Staff.filter(deleted_at__isnull=False).count() == 0


async def test_a_reseller_cannot_edit_a_colleague_of_their_own_reseller() -> None:
    tenant = await make_tenant()
    reseller = await make_reseller(tenant)
    actor = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_EDIT]
    )
    colleague = await make_staff(tenant, Role.RESELLER, reseller=reseller, name="Nadia")

    with pytest.raises(PermissionDenied):
        await edit_staff(actor, staff_id=colleague.id, name="Someone else")
    assert (await Staff.get(id=colleague.id)).name == "Nadia"


async def test_a_reseller_without_collectors_edit_cannot_edit() -> None:
    tenant = await make_tenant()
    reseller = await make_reseller(tenant)
    actor = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_VIEW]
    )
    collector = await make_staff(tenant, Role.COLLECTOR, reseller=reseller, commission_bp=100)

    with pytest.raises(PermissionDenied, match="edit collectors"):
        await edit_staff(actor, staff_id=collector.id, commission_bp=200)
    with pytest.raises(PermissionDenied, match="edit collectors"):
        await reset_staff(actor, staff_id=collector.id, now=NOW)
    assert (await Staff.get(id=collector.id)).commission_bp == 100


async def test_a_collector_cannot_edit_anyone() -> None:
    tenant = await make_tenant()
    collector = await make_staff(tenant, Role.COLLECTOR, commission_bp=100)

    with pytest.raises(PermissionDenied):
        await edit_staff(collector, staff_id=collector.id, commission_bp=10_000)
    assert (await Staff.get(id=collector.id)).commission_bp == 100


async def test_a_deleted_staff_member_cannot_be_edited() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    collector = await make_staff(tenant, Role.COLLECTOR, name="Karim", deleted_at=NOW)

    with pytest.raises(Conflict):
        await edit_staff(admin, staff_id=collector.id, name="Karim Mia")
    assert (await Staff.get(id=collector.id)).name == "Karim"


@pytest.mark.parametrize("action", ["edit", "reset", "delete"])
async def test_a_staff_id_from_another_tenant_is_not_found(action: str) -> None:
    tenant, other = await make_tenant(), await make_tenant()
    admin = await make_staff(tenant)
    foreign = await make_staff(other, Role.COLLECTOR, name="Foreign", telegram_user_id=TG)

    with pytest.raises(NotFound):
        if action == "edit":
            await edit_staff(admin, staff_id=foreign.id, name="Mine now")
        elif action == "reset":
            await reset_staff(admin, staff_id=foreign.id, now=NOW)
        else:
            await delete_staff(admin, staff_id=foreign.id, now=NOW)
    stored = await Staff.get(id=foreign.id)
    assert (stored.name, stored.telegram_user_id, stored.deleted_at) == ("Foreign", TG, None)
    assert await Invite.all().count() == 0
    assert await AuditLog.all().count() == 0


# --- resetting -----------------------------------------------------------------------------


async def test_reset_unbinds_and_only_the_new_link_works() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    first = await invite_collector(admin)
    await redeem_invite(token=first.token, telegram_user_id=TG, now=NOW)

    second = await reset_staff(admin, staff_id=first.staff.id, now=NOW + timedelta(days=1))

    assert second.staff.id == first.staff.id
    assert second.staff.telegram_user_id is None
    assert second.token != first.token
    assert second.expires_at == NOW + timedelta(days=1) + TTL
    assert (await Staff.get(id=first.staff.id)).telegram_user_id is None
    assert await identify_staff(TG) is None
    with pytest.raises(InviteInvalid):
        await redeem_invite(token=first.token, telegram_user_id=TG, now=NOW + timedelta(days=1))
    staff = await redeem_invite(
        token=second.token, telegram_user_id=TG_OTHER, now=NOW + timedelta(days=1)
    )
    assert (staff.id, staff.telegram_user_id) == (first.staff.id, TG_OTHER)


async def test_reset_revokes_an_invite_that_was_never_used() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    first = await invite_collector(admin)

    await reset_staff(admin, staff_id=first.staff.id, now=NOW + timedelta(hours=1))

    with pytest.raises(InviteInvalid, match="cancelled"):
        await redeem_invite(token=first.token, telegram_user_id=TG, now=NOW + timedelta(hours=1))
    invites = await Invite.filter(staff_id=first.staff.id).order_by("id")
    assert [(i.revoked_at, i.used_at) for i in invites] == [
        (NOW + timedelta(hours=1), None),
        (None, None),
    ]


async def test_reset_writes_an_audit_row_with_the_old_telegram_account() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    collector = await make_staff(tenant, Role.COLLECTOR, telegram_user_id=TG)

    result = await reset_staff(admin, staff_id=collector.id, now=NOW)

    row = await AuditLog.get(action="staff.reset")
    assert (row.actor_staff_id, row.object_id) == (admin.id, collector.id)
    assert row.details["old_telegram_user_id"] == TG
    assert row.details["invite_id"] == (await invite_of(result.staff)).id


async def test_a_reseller_resets_a_collector_of_their_own_reseller() -> None:
    tenant = await make_tenant()
    reseller = await make_reseller(tenant)
    actor = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_EDIT]
    )
    collector = await make_staff(tenant, Role.COLLECTOR, reseller=reseller, telegram_user_id=TG)

    result = await reset_staff(actor, staff_id=collector.id, now=NOW)

    assert (await Staff.get(id=collector.id)).telegram_user_id is None
    assert (await invite_of(result.staff)).created_by_id == actor.id


# --- deleting ------------------------------------------------------------------------------


async def test_deleting_keeps_the_row_and_stops_the_person_acting() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    result = await invite_collector(admin)
    await redeem_invite(token=result.token, telegram_user_id=TG, now=NOW)

    deleted = await delete_staff(admin, staff_id=result.staff.id, now=NOW + timedelta(days=3))

    stored = await Staff.get(id=result.staff.id)
    assert (stored.deleted_at, stored.telegram_user_id, stored.name) == (
        NOW + timedelta(days=3),
        None,
        "Karim",
    )
    assert deleted.deleted_at == NOW + timedelta(days=3)
    assert await identify_staff(TG) is None
    with pytest.raises(InactiveStaff):
        require_active(stored)
    assert (await invite_of(stored)).used_at == NOW
    row = await AuditLog.get(action="staff.delete")
    assert (row.actor_staff_id, row.object_id, row.details["old_telegram_user_id"]) == (
        admin.id,
        stored.id,
        TG,
    )


async def test_deleting_twice_is_a_conflict() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    collector = await make_staff(tenant, Role.COLLECTOR)
    await delete_staff(admin, staff_id=collector.id, now=NOW)

    with pytest.raises(Conflict):
        await delete_staff(admin, staff_id=collector.id, now=NOW + timedelta(days=1))
    assert (await Staff.get(id=collector.id)).deleted_at == NOW
    assert await AuditLog.filter(action="staff.delete").count() == 1


async def test_an_admin_cannot_delete_themselves() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)

    with pytest.raises(PermissionDenied):
        await delete_staff(admin, staff_id=admin.id, now=NOW)
    assert (await Staff.get(id=admin.id)).deleted_at is None


async def test_a_reseller_without_collectors_delete_cannot_delete() -> None:
    tenant = await make_tenant()
    reseller = await make_reseller(tenant)
    actor = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_EDIT]
    )
    collector = await make_staff(tenant, Role.COLLECTOR, reseller=reseller)

    with pytest.raises(PermissionDenied, match="delete collectors"):
        await delete_staff(actor, staff_id=collector.id, now=NOW)
    assert (await Staff.get(id=collector.id)).deleted_at is None


async def test_a_reseller_deletes_a_collector_of_their_own_reseller() -> None:
    tenant = await make_tenant()
    reseller = await make_reseller(tenant)
    actor = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_DELETE]
    )
    collector = await make_staff(tenant, Role.COLLECTOR, reseller=reseller)

    await delete_staff(actor, staff_id=collector.id, now=NOW)

    assert (await Staff.get(id=collector.id)).deleted_at == NOW


async def test_a_deleted_person_can_be_invited_again_with_the_same_telegram_account() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    old = await make_staff(tenant, Role.COLLECTOR, telegram_user_id=TG)
    await delete_staff(admin, staff_id=old.id, now=NOW)
    result = await invite_collector(admin)

    staff = await redeem_invite(token=result.token, telegram_user_id=TG, now=NOW)

    assert staff.id != old.id
    identified = await identify_staff(TG)
    assert identified is not None
    assert identified.id == staff.id


# --- identity and the audit trail ----------------------------------------------------------


async def test_identify_staff_returns_none_for_an_unknown_account() -> None:
    tenant = await make_tenant()
    await make_staff(tenant, telegram_user_id=TG)

    assert await identify_staff(TG_OTHER) is None


async def test_each_action_writes_one_audit_row_naming_its_actor() -> None:
    tenant = await make_tenant()
    admin = await make_staff(tenant)
    result = await invite_collector(admin)
    staff_id = result.staff.id
    await redeem_invite(token=result.token, telegram_user_id=TG, now=NOW)
    await edit_staff(admin, staff_id=staff_id, commission_bp=500)
    await reset_staff(admin, staff_id=staff_id, now=NOW)
    await delete_staff(admin, staff_id=staff_id, now=NOW)

    assert await audit_actions(staff_id) == [
        ("staff.invite", "staff", admin.id),
        ("staff.bind", "staff", staff_id),
        ("staff.edit", "staff", admin.id),
        ("staff.reset", "staff", admin.id),
        ("staff.delete", "staff", admin.id),
    ]
    tenants = set(await AuditLog.all().values_list("tenant_id", flat=True))
    assert tenants == {tenant.id}
    assert await Tenant.all().count() == 1
