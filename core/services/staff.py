"""Staff accounts: inviting people, binding their Telegram account, editing, resetting, deleting.

A person becomes staff only by opening a one-time invite deep link (`/start <token>`).
This module owns that life cycle and holds these invariants:

- The raw token exists only in the `InviteResult` handed to the caller (shown once); the
  database keeps its SHA-256 hex, so a leaked database does not leak working links.
- An invite binds at most once: redemption marks it used with a conditional UPDATE
  (`... WHERE used_at IS NULL`) and checks that exactly one row changed, so of two
  redemptions racing exactly one wins, on SQLite and PostgreSQL alike.
- A Telegram account belongs to at most one staff row (a UNIQUE column); deleting or
  resetting a staff member unbinds it, so the person can be invited again later.
- Deletion is soft: the row, its invites and its history stay; `deleted_at` stops it acting
  (`access.require_active`) and `identify_staff` no longer finds it.
- Every query is scoped to the actor's tenant (an id from another tenant is `NotFound`);
  reseller staff act only on collectors of their own reseller. The tenant comes from the
  actor, except in the CLI bootstrap, where whoever runs the command names it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.db.models import Assignment, Invite, Reseller, Staff, Tenant
from core.domain.dates import local_today, utcnow
from core.domain.phones import normalise_phone
from core.domain.status import AssignmentStatus, Role
from core.errors import (
    Conflict,
    InvalidAmount,
    InvalidInput,
    InviteInvalid,
    NotFound,
    PermissionDenied,
)
from core.services.access import (
    COLLECTORS_CREATE,
    COLLECTORS_DELETE,
    COLLECTORS_EDIT,
    SYSTEM,
    Origin,
    check_permissions_list,
    in_reseller_scope,
    require_active,
    require_permission,
)
from core.services.audit import write_audit

DEFAULT_INVITE_TTL = timedelta(hours=72)
MAX_COMMISSION_BP = 10_000
_NAME_MAX = 120  # Staff.name column length
# Telegram deep-link payloads: at most 64 characters of this alphabet.
_DEEP_LINK_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BOT_USERNAME = re.compile(r"[A-Za-z0-9_]{5,32}")


@dataclass(frozen=True)
class InviteResult:
    """A new invitation. `token` is the raw one-time token: show it once, it is not stored."""

    staff: Staff
    token: str
    expires_at: datetime


def invite_link(bot_username: str, token: str) -> str:
    """The deep link that opens the bot with `/start <token>`: https://t.me/<bot>?start=<token>."""
    bot = bot_username.strip().removeprefix("@")
    if not _BOT_USERNAME.fullmatch(bot):
        raise InvalidInput(f"{bot_username!r} is not a Telegram bot username.")
    if not _DEEP_LINK_PAYLOAD.fullmatch(token):
        raise InvalidInput("An invitation token is 1-64 letters, digits, '_' or '-'.")
    return f"https://t.me/{bot}?start={token}"


async def identify_staff(telegram_user_id: int) -> Staff | None:
    """The active staff row bound to this Telegram account, or None (unknown or deleted)."""
    return await Staff.get_or_none(telegram_user_id=telegram_user_id, deleted_at=None)


async def create_invite(
    actor: Staff | None,
    *,
    role: Role,
    name: str,
    phone: str | None = None,
    commission_bp: int = 0,
    reseller_id: int | None = None,
    permissions: list[str] | None = None,
    tenant_id: int | None = None,
    ttl: timedelta = DEFAULT_INVITE_TTL,
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> InviteResult:
    """Create an unbound staff row and a one-time invitation for it.

    Admins may invite any role. Reseller staff with `collectors.create` may invite only
    collectors, who join the actor's own reseller. Collectors cannot invite.

    Args:
        actor: who invites; None only for the CLI bootstrap (the first admin of a tenant),
            which needs `tenant_id` and an origin whose channel is "cli".
        role: the new person's role.
        reseller_id: required for reseller staff; optional for collectors (admins only);
            reseller staff may leave it out (their own reseller is used).
        permissions: reseller staff only (required for them): which `collectors.*` actions.
        ttl: how long the link works.
    """
    now = now or utcnow()
    try:
        role = Role(role)  # the CLI passes what was typed
    except ValueError as exc:
        raise InvalidInput(f"{role!r} is not a role; use admin, reseller or collector.") from exc
    if actor is None:
        if origin.channel != "cli" or tenant_id is None:
            raise PermissionDenied("Only the command line can invite staff without an admin.")
        tenant = await Tenant.get_or_none(id=tenant_id)
        if tenant is None:
            raise NotFound(f"There is no company with id {tenant_id}.")
    else:
        require_active(actor)
        if tenant_id is not None and tenant_id != actor.tenant_id:
            raise PermissionDenied("You can only invite staff into your own company.")
        reseller_id = _check_inviter(actor, role, reseller_id)
        tenant = await Tenant.get(id=actor.tenant_id)

    name = _clean_name(name)
    phone = normalise_phone(phone, tenant.country) if phone and phone.strip() else None
    _check_commission(commission_bp)
    _check_ttl(ttl)
    if role == Role.ADMIN and reseller_id is not None:
        raise InvalidInput("An admin works for the whole company, not for one reseller.")
    if role == Role.RESELLER and reseller_id is None:
        raise InvalidInput("Choose the reseller this staff member works for.")
    if reseller_id is not None and not await Reseller.exists(id=reseller_id, tenant_id=tenant.id):
        raise NotFound(f"There is no reseller {reseller_id} in your company.")
    if role == Role.RESELLER:
        if permissions is None:
            raise InvalidInput("Choose what this reseller staff member may do with collectors.")
        permissions = check_permissions_list(permissions)
    elif permissions:
        raise InvalidInput("Only reseller staff have a list of permissions.")

    async with in_transaction() as conn:
        staff = await Staff.create(
            tenant_id=tenant.id,
            role=role,
            name=name,
            phone=phone,
            permissions=permissions or [],
            commission_bp=commission_bp,
            reseller_id=reseller_id,
            using_db=conn,
        )
        token, invite = await _new_invite(conn, staff, actor, now=now, ttl=ttl)
        await write_audit(
            tenant_id=tenant.id,
            actor=actor,
            action="staff.invite",
            object_type="staff",
            object_id=staff.id,
            origin=origin,
            details={
                "role": role.value,
                "name": name,
                "reseller_id": reseller_id,
                "commission_bp": commission_bp,
                "permissions": staff.permissions,
                "invite_id": invite.id,
                "expires_at": invite.expires_at.isoformat(),
            },
            using_db=conn,
        )
    return InviteResult(staff=staff, token=token, expires_at=invite.expires_at)


async def redeem_invite(
    *,
    token: str,
    telegram_user_id: int,
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> Staff:
    """Bind the Telegram account that opened an invite link to the invited staff row.

    A redelivered `/start` from the account that already redeemed the link returns the same
    staff row again (Telegram delivers updates at least once); any other reuse is refused.

    Raises:
        InviteInvalid: the token is unknown, used, revoked or expired, or its staff row was
            deleted.
        Conflict: this Telegram account is already bound to another active staff row.
    """
    now = now or utcnow()
    digest = _sha256(token.strip())
    if origin.telegram_user_id is None:
        origin = dataclasses.replace(origin, telegram_user_id=telegram_user_id)
    try:
        async with in_transaction() as conn:
            invite = await Invite.get_or_none(token_sha256=digest, using_db=conn)
            if invite is None:
                raise InviteInvalid(
                    "This invitation link is not valid. Ask your office for a new one."
                )
            staff = await Staff.get(id=invite.staff_id, using_db=conn)
            if (
                invite.used_at is not None
                and invite.revoked_at is None
                and staff.deleted_at is None
                and staff.telegram_user_id == telegram_user_id
            ):
                return staff
            _check_invite_usable(invite, staff, now)
            other = (
                await Staff.filter(telegram_user_id=telegram_user_id, deleted_at=None)
                .exclude(id=staff.id)
                .using_db(conn)
                .first()
            )
            if other is not None:
                raise Conflict(
                    "This Telegram account is already linked to another staff account. "
                    "Ask your office to remove that one first."
                )
            # The conditional UPDATE is the referee: of two redemptions racing, only the one
            # that changes the row wins; the other sees 0 rows and is refused.
            claimed = (
                await Invite.filter(id=invite.id, used_at=None, revoked_at=None)
                .using_db(conn)
                .update(used_at=now)
            )
            if claimed != 1:
                raise InviteInvalid(
                    "This invitation link was already used. Ask your office for a new one."
                )
            # Guarded the same way, so a delete or a reset that commits first is not undone.
            bound = (
                await Staff.filter(id=staff.id, deleted_at=None, telegram_user_id=None)
                .using_db(conn)
                .update(telegram_user_id=telegram_user_id)
            )
            if bound != 1:
                raise InviteInvalid(
                    "This invitation link is no longer valid. Ask your office for a new one."
                )
            staff.telegram_user_id = telegram_user_id
            await write_audit(
                tenant_id=staff.tenant_id,
                actor=staff,
                action="staff.bind",
                object_type="staff",
                object_id=staff.id,
                origin=origin,
                details={"invite_id": invite.id, "telegram_user_id": telegram_user_id},
                using_db=conn,
            )
    except IntegrityError as exc:
        # The UNIQUE Telegram id lost a race with another invite redeemed by this account.
        raise Conflict(
            "This Telegram account is already linked to another staff account. "
            "Ask your office to remove that one first."
        ) from exc
    return staff


async def edit_staff(
    actor: Staff,
    *,
    staff_id: int,
    name: str | None = None,
    phone: str | None = None,
    commission_bp: int | None = None,
    permissions: list[str] | None = None,
    cash_cap_minor: int | None = None,
    origin: Origin = SYSTEM,
) -> Staff:
    """Change a staff member's details; None leaves a field as it is, `phone=""` clears it,
    `cash_cap_minor=0` removes a collector's cash cap.

    Needs `collectors.edit` (admins always). Reseller staff edit only their own collectors.
    The audit row keeps the old and new value of every field that changed.
    """
    require_permission(actor, COLLECTORS_EDIT)
    tenant = await Tenant.get(id=actor.tenant_id)
    new: dict[str, Any] = {}
    if name is not None:
        new["name"] = _clean_name(name)
    if phone is not None:
        new["phone"] = normalise_phone(phone, tenant.country) if phone.strip() else None
    if commission_bp is not None:
        _check_commission(commission_bp)
        new["commission_bp"] = commission_bp
    if permissions is not None:
        new["permissions"] = check_permissions_list(permissions)
    if cash_cap_minor is not None:
        if cash_cap_minor < 0:
            raise InvalidInput("The cash cap cannot be negative.", code="cap_negative")
        new["cash_cap_minor"] = cash_cap_minor or None

    async with in_transaction() as conn:
        staff = await _load_target(conn, actor, staff_id, words="edit")
        if "permissions" in new and staff.role != Role.RESELLER:
            raise InvalidInput("Only reseller staff have a list of permissions.")
        if "cash_cap_minor" in new and staff.role != Role.COLLECTOR:
            raise InvalidInput("Only collectors carry cash.", code="cap_collectors_only")
        old = {field: getattr(staff, field) for field in new}
        changed = {field: value for field, value in new.items() if old[field] != value}
        if not changed:
            return staff
        await Staff.filter(id=staff.id).using_db(conn).update(**changed)
        for field, value in changed.items():
            setattr(staff, field, value)
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action="staff.edit",
            object_type="staff",
            object_id=staff.id,
            origin=origin,
            details={
                "old": {field: old[field] for field in changed},
                "new": changed,
            },
            using_db=conn,
        )
    return staff


async def reset_staff(
    actor: Staff,
    *,
    staff_id: int,
    ttl: timedelta = DEFAULT_INVITE_TTL,
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> InviteResult:
    """Unbind a staff member's Telegram account and issue a new invite (a lost phone).

    Needs `collectors.edit`. Every invite of theirs still open is revoked, so only the new
    link works.
    """
    now = now or utcnow()
    require_permission(actor, COLLECTORS_EDIT)
    _check_ttl(ttl)
    async with in_transaction() as conn:
        staff = await _load_target(conn, actor, staff_id, words="reset")
        old_telegram_user_id = staff.telegram_user_id
        await Staff.filter(id=staff.id).using_db(conn).update(telegram_user_id=None)
        staff.telegram_user_id = None
        revoked = await _revoke_open_invites(conn, staff.id, now)
        token, invite = await _new_invite(conn, staff, actor, now=now, ttl=ttl)
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action="staff.reset",
            object_type="staff",
            object_id=staff.id,
            origin=origin,
            details={
                "old_telegram_user_id": old_telegram_user_id,
                "revoked_invites": revoked,
                "invite_id": invite.id,
                "expires_at": invite.expires_at.isoformat(),
            },
            using_db=conn,
        )
    return InviteResult(staff=staff, token=token, expires_at=invite.expires_at)


async def delete_staff(
    actor: Staff,
    *,
    staff_id: int,
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> Staff:
    """Soft-delete a staff member: they can no longer act; their row and history stay.

    Needs `collectors.delete`. Nobody can delete their own account (the office is never left
    without the admin who asked). The Telegram account is unbound so the person can be
    invited again later; the old id is kept in the audit row.
    """
    now = now or utcnow()
    require_permission(actor, COLLECTORS_DELETE)
    if staff_id == actor.id:
        raise PermissionDenied("You cannot delete your own account. Ask another admin.")
    async with in_transaction() as conn:
        staff = await _load_target(conn, actor, staff_id, words="delete")
        old_telegram_user_id = staff.telegram_user_id
        # Conditional, so two deletes racing leave one audit row and one `Conflict`.
        deleted = (
            await Staff.filter(id=staff.id, deleted_at=None)
            .using_db(conn)
            .update(deleted_at=now, telegram_user_id=None)
        )
        if deleted != 1:
            raise Conflict(f"{staff.name} was already removed.")
        staff.deleted_at = now
        staff.telegram_user_id = None
        revoked = await _revoke_open_invites(conn, staff.id, now)
        # Their open stops leave the route, so the office can give them to someone else.
        released = (
            await Assignment.filter(collector_id=staff.id, status=AssignmentStatus.ASSIGNED)
            .using_db(conn)
            .update(
                status=AssignmentStatus.REMOVED,
                open_invoice_id=None,
                closed_at=now,
                # The tenant's calendar day, as every other closed stop records it.
                closed_on=local_today(
                    now, (await Tenant.get(id=staff.tenant_id, using_db=conn)).timezone
                ),
            )
        )
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action="staff.delete",
            object_type="staff",
            object_id=staff.id,
            origin=origin,
            details={
                "role": staff.role.value,
                "name": staff.name,
                "old_telegram_user_id": old_telegram_user_id,
                "revoked_invites": revoked,
                "released_stops": released,
            },
            using_db=conn,
        )
    return staff


# --- helpers -------------------------------------------------------------------------------


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    # 24 random bytes -> 32 URL-safe characters: a valid Telegram deep-link payload.
    return secrets.token_urlsafe(24)


async def _new_invite(
    conn: BaseDBAsyncClient,
    staff: Staff,
    actor: Staff | None,
    *,
    now: datetime,
    ttl: timedelta,
) -> tuple[str, Invite]:
    token = _new_token()
    invite = await Invite.create(
        tenant_id=staff.tenant_id,
        staff_id=staff.id,
        token_sha256=_sha256(token),
        created_by_id=actor.id if actor else None,
        expires_at=now + ttl,
        using_db=conn,
    )
    return token, invite


async def _revoke_open_invites(conn: BaseDBAsyncClient, staff_id: int, now: datetime) -> int:
    return int(
        await Invite.filter(staff_id=staff_id, used_at=None, revoked_at=None)
        .using_db(conn)
        .update(revoked_at=now)
    )


async def _load_target(
    conn: BaseDBAsyncClient, actor: Staff, staff_id: int, *, words: str
) -> Staff:
    """The staff row `actor` acts on, locked for the transaction (PostgreSQL), or an error.

    Rows of other tenants and, for reseller staff, rows outside their reseller are reported
    as not found, so ids leak nothing.
    """
    staff = (
        await Staff.filter(id=staff_id, tenant_id=actor.tenant_id)
        .select_for_update()
        .using_db(conn)
        .first()
    )
    if staff is None or not in_reseller_scope(actor, staff.reseller_id):
        raise NotFound("There is no such staff member in your company.")
    if actor.role != Role.ADMIN and staff.role != Role.COLLECTOR:
        raise PermissionDenied(f"Only an admin can {words} reseller staff.")
    if staff.deleted_at is not None and words != "delete":
        raise Conflict(f"{staff.name} was removed; invite them again instead.")
    return staff


def _check_inviter(actor: Staff, role: Role, reseller_id: int | None) -> int | None:
    """Who may invite whom; returns the reseller the new staff member will belong to."""
    if actor.role == Role.ADMIN:
        return reseller_id
    if actor.role == Role.COLLECTOR:
        raise PermissionDenied("Collectors cannot invite staff. Ask your office.")
    require_permission(actor, COLLECTORS_CREATE)
    if role != Role.COLLECTOR:
        raise PermissionDenied("Reseller staff can invite only collectors. Ask an admin.")
    if actor.reseller_id is None:
        raise PermissionDenied("Your account is not linked to a reseller. Ask an admin.")
    if reseller_id is not None and reseller_id != actor.reseller_id:
        raise PermissionDenied("You can add collectors only to your own reseller.")
    return actor.reseller_id


def _check_invite_usable(invite: Invite, staff: Staff, now: datetime) -> None:
    if invite.revoked_at is not None:
        raise InviteInvalid(
            "This invitation link was cancelled by your office. Ask them for a new one."
        )
    if invite.used_at is not None:
        raise InviteInvalid(
            "This invitation link was already used. Ask your office for a new one."
        )
    if now >= invite.expires_at:
        raise InviteInvalid("This invitation link has expired. Ask your office for a new one.")
    if staff.deleted_at is not None:
        raise InviteInvalid(
            "The account this link was for has been removed. Ask your office for a new one."
        )


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("A staff member needs a name.")
    if len(name) > _NAME_MAX:
        raise InvalidInput(f"A name can be at most {_NAME_MAX} characters.")
    return name


def _check_commission(commission_bp: int) -> None:
    if not 0 <= commission_bp <= MAX_COMMISSION_BP:
        raise InvalidAmount("A commission rate is between 0 and 10000 basis points (0% to 100%).")


def _check_ttl(ttl: timedelta) -> None:
    if ttl <= timedelta(0):
        raise InvalidInput("An invitation must be valid for some time; give a positive period.")


SUPPORTED_LANGUAGES = ("en", "bn")


async def set_language(actor: Staff, *, language: str, origin: Origin = SYSTEM) -> Staff:
    """The language this person reads the bot in (one of `SUPPORTED_LANGUAGES`)."""
    require_active(actor)
    if language not in SUPPORTED_LANGUAGES:
        raise InvalidInput(f"Choose one of: {', '.join(SUPPORTED_LANGUAGES)}.")
    async with in_transaction() as conn:
        await Staff.filter(id=actor.id).using_db(conn).update(language=language)
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action="staff.language",
            object_type="staff",
            object_id=actor.id,
            origin=origin,
            details={"from": actor.language, "to": language},
            using_db=conn,
        )
    actor.language = language
    return actor
