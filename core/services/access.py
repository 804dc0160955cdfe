"""Who may do what: roles, reseller permissions and scope, and where a request came from.

Every service calls these before touching a row. Button data and typed ids are never
trusted: the object is loaded within the actor's tenant and checked against their scope.
Objects outside it are reported as not found, so ids of other tenants leak nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.db.models import Invoice, Staff, Subscriber
from core.domain.status import Role
from core.errors import InactiveStaff, InvalidInput, NotFound, PermissionDenied

COLLECTORS_VIEW = "collectors.view"
COLLECTORS_CREATE = "collectors.create"
COLLECTORS_EDIT = "collectors.edit"
COLLECTORS_ASSIGN = "collectors.assign"
COLLECTORS_DELETE = "collectors.delete"
COLLECTORS_COMMISSION_PAY = "collectors.commission_pay"

RESELLER_PERMISSIONS = frozenset(
    {
        COLLECTORS_VIEW,
        COLLECTORS_CREATE,
        COLLECTORS_EDIT,
        COLLECTORS_ASSIGN,
        COLLECTORS_DELETE,
        COLLECTORS_COMMISSION_PAY,
    }
)

_ACTION_WORDS = {
    COLLECTORS_VIEW: "see collectors",
    COLLECTORS_CREATE: "create collectors",
    COLLECTORS_EDIT: "edit collectors",
    COLLECTORS_ASSIGN: "assign invoices to collectors",
    COLLECTORS_DELETE: "delete collectors",
    COLLECTORS_COMMISSION_PAY: "pay commission",
}


@dataclass(frozen=True)
class Origin:
    """Where a request came from, copied into the audit log."""

    channel: str = "system"  # telegram / cli / webhook / system
    telegram_user_id: int | None = None
    telegram_chat_id: int | None = None
    telegram_update_id: int | None = None
    remote_addr: str = ""
    user_agent: str = ""


SYSTEM = Origin()
CLI = Origin(channel="cli")


def require_active(staff: Staff) -> None:
    """A deleted staff member can no longer act (their history stays)."""
    if staff.deleted_at is not None:
        raise InactiveStaff("This account was removed by the office.", code="staff_removed")


def require_permission(actor: Staff, permission: str) -> None:
    """Admins may do everything; reseller staff what their permissions list; collectors none."""
    require_active(actor)
    if actor.role == Role.ADMIN:
        return
    if actor.role == Role.RESELLER and permission in (actor.permissions or []):
        return
    words = _ACTION_WORDS.get(permission, permission)
    raise PermissionDenied(
        f"You are not allowed to {words}. Ask an admin.",
        code="not_allowed",
        permission=permission.replace(".", "_"),
    )


def require_admin(actor: Staff, words: str) -> None:
    require_active(actor)
    if actor.role != Role.ADMIN:
        raise PermissionDenied(f"Only an admin can {words}.", code="admin_only")


def require_office(
    actor: Staff, sentence: str = "Only the office can see this.", code: str = "office_only"
) -> None:
    """Admins and reseller staff (scoped by the reads themselves); collectors are refused."""
    require_active(actor)
    if actor.role not in (Role.ADMIN, Role.RESELLER):
        raise PermissionDenied(sentence, code=code)


def in_reseller_scope(actor: Staff, reseller_id: int | None) -> bool:
    """Admins see the whole tenant; reseller staff only rows of their own reseller."""
    if actor.role == Role.ADMIN:
        return True
    return actor.reseller_id is not None and actor.reseller_id == reseller_id


async def invoice_in_scope(actor: Staff, number: str, *fields: str) -> dict[str, Any]:
    """The `fields` of invoice `number` (as typed: trimmed, any case), in one query.

    Raises:
        InvalidInput: no number given.
        NotFound: no such invoice in the actor's tenant, or outside their reseller's
            subscribers (code `invoice_not_found`, the same words either way).
    """
    wanted = number.strip().upper()
    if not wanted:
        raise InvalidInput("Give an invoice number, like INV-2026-0042.", code="numbers_required")
    rows = await Invoice.filter(tenant_id=actor.tenant_id, number=wanted).values(
        *fields, "subscriber__reseller_id"
    )
    if not rows or not in_reseller_scope(actor, rows[0]["subscriber__reseller_id"]):
        raise NotFound(
            f"There is no invoice {wanted} in your company.",
            code="invoice_not_found",
            number=wanted,
        )
    return dict(rows[0])


async def subscriber_in_scope(actor: Staff, username: str) -> Subscriber:
    """A subscriber of the actor's tenant and scope by username, as typed: exact, else in any
    case if only one matches; a leading @ is ignored.

    Raises:
        InvalidInput: no username given.
        NotFound: none in the actor's tenant, or outside their reseller's subscribers
            (code `subscriber_not_found`, the same words either way).
    """
    wanted = username.strip().lstrip("@")
    if not wanted:
        raise InvalidInput("Give the subscriber's username.", code="username_required")
    found = await Subscriber.get_or_none(tenant_id=actor.tenant_id, username=wanted)
    if found is None:
        matches = await Subscriber.filter(
            tenant_id=actor.tenant_id, username__iexact=wanted
        ).limit(2)
        found = matches[0] if len(matches) == 1 else None
    if found is None or not in_reseller_scope(actor, found.reseller_id):
        raise NotFound(
            f"There is no subscriber {wanted!r} in your company.",
            code="subscriber_not_found",
            username=wanted,
        )
    return found


def check_permissions_list(permissions: list[str]) -> list[str]:
    unknown = sorted(set(permissions) - RESELLER_PERMISSIONS)
    if unknown:
        raise PermissionDenied(
            f"Unknown permission {unknown[0]!r}; use {', '.join(sorted(RESELLER_PERMISSIONS))}."
        )
    return sorted(set(permissions))


async def find_collector(actor: Staff, collector_id: int) -> Staff:
    """A collector of the actor's tenant and reseller scope (deleted ones included).

    Raises:
        NotFound: no such collector, another tenant's, or outside the actor's reseller.
    """
    collector = await Staff.get_or_none(id=collector_id, tenant_id=actor.tenant_id)
    if (
        collector is None
        or collector.role != Role.COLLECTOR
        or not in_reseller_scope(actor, collector.reseller_id)
    ):
        raise NotFound("There is no such collector in your company.", code="no_such_collector")
    return collector
