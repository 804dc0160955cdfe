"""Invite deep links: the shape Telegram accepts for `/start` payloads."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.services.staff import invite_link


def test_an_invite_link_opens_the_bot_with_the_token_as_start_payload() -> None:
    assert invite_link("CollectBot", "abc_DEF-123") == "https://t.me/CollectBot?start=abc_DEF-123"


def test_a_leading_at_sign_on_the_bot_username_is_dropped() -> None:
    assert invite_link("@collect_bot", "tok") == "https://t.me/collect_bot?start=tok"


@pytest.mark.parametrize("token", ["", "a" * 65, "has space", "slash/", "plus+", "eq="])
def test_a_token_telegram_would_not_carry_is_refused(token: str) -> None:
    with pytest.raises(InvalidInput):
        invite_link("CollectBot", token)


def test_a_64_character_token_is_the_longest_accepted() -> None:
    assert invite_link("CollectBot", "a" * 64).endswith("?start=" + "a" * 64)


@pytest.mark.parametrize("bot", ["", "bot", "my bot", "https://t.me/CollectBot"])
def test_something_that_is_not_a_bot_username_is_refused(bot: str) -> None:
    with pytest.raises(InvalidInput):
        invite_link(bot, "tok")
