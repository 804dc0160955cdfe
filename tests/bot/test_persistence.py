"""The bot's persistence: what one process writes, another process reads on the next update."""

from __future__ import annotations

import pytest

from bot.persistence import OrmPersistence

pytestmark = pytest.mark.usefixtures("db")


async def test_user_data_written_by_one_process_is_refreshed_in_another():
    writer, reader = OrmPersistence(), OrmPersistence()
    stale = {"step": "old"}

    await writer.update_user_data(42, {"step": "amount", "stop": 7, "lang": "bn"})
    await reader.refresh_user_data(42, stale)

    assert stale == {"step": "amount", "stop": 7, "lang": "bn"}
    assert await reader.get_user_data() == {42: {"step": "amount", "stop": 7, "lang": "bn"}}


async def test_writing_twice_keeps_one_document_with_the_latest_data():
    store = OrmPersistence()
    await store.update_chat_data(-100, {"a": 1})
    await store.update_chat_data(-100, {"a": 2})
    assert await store.get_chat_data() == {-100: {"a": 2}}


async def test_dropped_user_data_is_gone_and_refresh_empties_the_dict():
    store = OrmPersistence()
    await store.update_user_data(1, {"x": 1})
    await store.drop_user_data(1)
    data = {"x": 1}
    await store.refresh_user_data(1, data)
    assert (data, await store.get_user_data()) == ({}, {})


async def test_conversation_states_round_trip_and_none_ends_a_conversation():
    store = OrmPersistence()
    await store.update_conversation("collect", (10, 20), "AMOUNT")
    await store.update_conversation("collect", (11, 21), "PHOTO")
    await store.update_conversation("collect", (11, 21), None)
    assert await store.get_conversations("collect") == {(10, 20): "AMOUNT"}
    assert await store.get_conversations("other") == {}


async def test_bot_and_callback_data_round_trip():
    store = OrmPersistence()
    await store.update_bot_data({"started": True})
    await store.update_callback_data(([("id1", 12.5, {"k": "v"})], {"m1": "id1"}))
    assert await store.get_bot_data() == {"started": True}
    assert await store.get_callback_data() == ([("id1", 12.5, {"k": "v"})], {"m1": "id1"})
