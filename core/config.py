"""Settings: the environment variables of DESIGN.md section 6, read once into one object.

The names are an external contract (deploy scripts set them); change a default here and the
README's configuration table together.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the service reads from its environment (and from `.env` when present)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "sqlite://data/collectbot.sqlite3"
    data_dir: Path = Path("data")

    bot_token: str | None = None
    bot_username: str = "collectbot"
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_file_url: str = "https://api.telegram.org/file/bot"
    telegram_mode: str = "polling"
    public_url: str | None = None
    telegram_webhook_secret: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8080

    whatsapp_provider: str = "none"
    ultramsg_api_url: str = "https://api.ultramsg.com"
    ultramsg_instance_id: str | None = None
    ultramsg_token: str | None = None
    ultramsg_webhook_token: str | None = None
    meta_graph_url: str = "https://graph.facebook.com/v21.0"
    meta_phone_number_id: str | None = None
    meta_access_token: str | None = None
    meta_app_secret: str | None = None
    meta_verify_token: str | None = None
    # An approved message template with a document header, used for receipts outside the
    # 24 hours after the subscriber last wrote to us (Meta allows no free-form message then).
    meta_receipt_template: str | None = None

    # The outbox worker: how often it looks for due messages, and how hard it tries.
    outbox_poll_seconds: float = 2.0
    outbox_max_attempts: int = 8
    outbox_retry_base_seconds: int = 30
    outbox_retry_cap_seconds: int = 3600
    whatsapp_timeout_seconds: float = 20.0

    # How long an invite link stays valid.
    invite_ttl_hours: int = 72
