"""Choosing and building the WhatsApp gateway from the settings (WHATSAPP_PROVIDER)."""

from __future__ import annotations

import aiohttp

from collectbot.whatsapp.gateway import Gateway
from collectbot.whatsapp.meta import MetaGateway
from collectbot.whatsapp.ultramsg import UltramsgGateway
from core.config import Settings
from core.services.outbox import RetryPolicy

PROVIDERS = ("none", "ultramsg", "meta")
_REQUIRED = {
    "ultramsg": ("ultramsg_instance_id", "ultramsg_token"),
    "meta": ("meta_phone_number_id", "meta_access_token"),
}


def check_whatsapp_settings(settings: Settings) -> None:
    """Refuse a provider without the variables it needs, naming them."""
    provider = settings.whatsapp_provider
    if provider not in PROVIDERS:
        raise SystemExit(f"WHATSAPP_PROVIDER is one of {', '.join(PROVIDERS)}, not {provider!r}.")
    missing = [name.upper() for name in _REQUIRED.get(provider, ()) if not getattr(settings, name)]
    if missing:
        raise SystemExit(f"WHATSAPP_PROVIDER={provider} needs {' and '.join(missing)}.")


def build_gateway(settings: Settings, session: aiohttp.ClientSession) -> Gateway | None:
    """The configured gateway, or None when WhatsApp is off (messages then wait queued)."""
    check_whatsapp_settings(settings)
    if settings.whatsapp_provider == "ultramsg":
        assert settings.ultramsg_instance_id and settings.ultramsg_token
        return UltramsgGateway(
            session,
            api_url=settings.ultramsg_api_url,
            instance_id=settings.ultramsg_instance_id,
            token=settings.ultramsg_token,
            timeout_seconds=settings.whatsapp_timeout_seconds,
        )
    if settings.whatsapp_provider == "meta":
        assert settings.meta_phone_number_id and settings.meta_access_token
        return MetaGateway(
            session,
            graph_url=settings.meta_graph_url,
            phone_number_id=settings.meta_phone_number_id,
            access_token=settings.meta_access_token,
            receipt_template=settings.meta_receipt_template,
            timeout_seconds=settings.whatsapp_timeout_seconds,
        )
    return None


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.outbox_max_attempts,
        base_seconds=settings.outbox_retry_base_seconds,
        cap_seconds=settings.outbox_retry_cap_seconds,
    )
