"""The audit log: one append-only row per action, written inside the action's transaction."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from core.db.models import AuditLog, Staff
from core.services.access import Origin


async def write_audit(
    *,
    tenant_id: int | None,
    actor: Staff | None,
    action: str,
    object_type: str,
    object_id: int | None,
    origin: Origin,
    details: dict[str, Any] | None = None,
    using_db: BaseDBAsyncClient | None = None,
) -> AuditLog:
    """Record that `actor` (None = the system) did `action` to an object."""
    kind = "staff" if actor is not None else origin.channel
    return await AuditLog.create(
        tenant_id=tenant_id,
        actor_kind=kind,
        actor_staff_id=actor.id if actor else None,
        action=action,
        object_type=object_type,
        object_id=object_id,
        telegram_user_id=origin.telegram_user_id,
        telegram_chat_id=origin.telegram_chat_id,
        telegram_update_id=origin.telegram_update_id,
        remote_addr=origin.remote_addr,
        user_agent=origin.user_agent[:255],
        details=details or {},
        using_db=using_db,
    )
