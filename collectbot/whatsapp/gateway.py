"""What the outbox worker asks of a WhatsApp gateway, whichever provider is behind it.

A gateway sends one message and answers with the provider's message id, or raises
`GatewayError` saying whether trying again could help. It never touches the database:
the worker records what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class GatewayError(Exception):
    """The gateway did not take the message.

    `permanent` is True when the same request can never succeed (a number WhatsApp does
    not know, a missing template, bad credentials); the worker then stops retrying.
    """

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Document:
    """A PDF to send, with its caption and, for template sends, the template's parameters."""

    filename: str
    content: bytes
    caption: str
    language: str
    template_params: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outgoing:
    """One message for one recipient (E.164, with its +)."""

    recipient: str
    reference: str  # ours, echoed back by gateways that support it (Ultramsg referenceId)
    text: str | None = None
    document: Document | None = None
    # When the recipient last wrote to us (the Cloud API's 24-hour window), if known.
    recipient_last_inbound_at: datetime | None = None


class Gateway(Protocol):
    name: str

    async def send(self, message: Outgoing, *, now: datetime) -> str:
        """Send `message`; return the provider's message id or raise `GatewayError`."""
        ...
