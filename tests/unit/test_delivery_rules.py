"""Delivery rules: one status vocabulary, forward-only moves, retry timing, WhatsApp numbers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.domain.delivery import (
    META_STATUSES,
    ULTRAMSG_ACKS,
    DeliveryStatus,
    moves_forward,
    retry_delay,
    whatsapp_refusal,
)


def test_ultramsg_device_ack_means_delivered_and_pending_means_nothing_new() -> None:
    assert ULTRAMSG_ACKS["device"] == DeliveryStatus.DELIVERED
    assert ULTRAMSG_ACKS["server"] == DeliveryStatus.SENT
    assert ULTRAMSG_ACKS["played"] == DeliveryStatus.READ
    assert ULTRAMSG_ACKS["pending"] is None


def test_meta_statuses_map_to_the_same_vocabulary() -> None:
    assert [META_STATUSES[s] for s in ("sent", "delivered", "read", "failed")] == [
        DeliveryStatus.SENT,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.READ,
        DeliveryStatus.FAILED,
    ]


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        (None, DeliveryStatus.SENT, True),
        (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, True),
        (DeliveryStatus.SENT, DeliveryStatus.READ, True),
        (DeliveryStatus.READ, DeliveryStatus.DELIVERED, False),
        (DeliveryStatus.READ, DeliveryStatus.READ, False),
        (DeliveryStatus.SENT, DeliveryStatus.FAILED, True),
        (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, False),
        (DeliveryStatus.FAILED, DeliveryStatus.SENT, False),
    ],
)
def test_a_status_only_ever_moves_forward(
    current: DeliveryStatus | None, new: DeliveryStatus, expected: bool
) -> None:
    assert moves_forward(current, new) is expected


def test_retries_back_off_exponentially_up_to_the_cap() -> None:
    delays = [retry_delay(n, base_seconds=30, cap_seconds=600) for n in range(1, 8)]
    assert delays == [timedelta(seconds=s) for s in (30, 60, 120, 240, 480, 600, 600)]


def test_a_retry_delay_for_attempt_zero_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        retry_delay(0, base_seconds=30, cap_seconds=600)


def test_a_bangladeshi_mobile_number_can_receive_whatsapp() -> None:
    assert whatsapp_refusal("+8801711000001") is None


def test_a_dhaka_landline_is_refused_with_the_reason() -> None:
    assert whatsapp_refusal("+88029660001") == (
        "+88029660001 is a landline, which cannot receive WhatsApp"
    )


@pytest.mark.parametrize(
    ("phone", "reason"),
    [
        (None, "the subscriber has no phone number"),
        ("", "the subscriber has no phone number"),
        ("01711000001", "01711000001 is not a phone number in international form"),
        ("+88017110", "+88017110 is not a valid phone number"),
    ],
)
def test_numbers_that_are_not_numbers_are_refused(phone: str | None, reason: str) -> None:
    assert whatsapp_refusal(phone) == reason
