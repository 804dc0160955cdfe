"""PTB persistence on the ORM: user, chat and bot data, callback data and conversations.

Two properties the bot relies on:
- Written on every change: `bot.app` calls `Application.update_persistence()` after each
  update (PTB's default is once a minute), so a crash loses nothing a person typed.
- Read on every update: PTB calls `refresh_user_data` / `refresh_chat_data` before a
  handler runs; we reload that person's and chat's documents from the database, so any
  process can serve anyone's next update. (Conversation *states* of PTB's
  ConversationHandler are loaded once at start-up by PTB itself; our flows therefore keep
  their step in `user_data`, which is refreshed per update.)
"""

from __future__ import annotations

import json
from copy import deepcopy
from typing import Any

from telegram.ext import BasePersistence, PersistenceInput
from telegram.ext._utils.types import CDCData, ConversationDict, ConversationKey
from tortoise import connections

from core.db.models import BotState
from core.domain.dates import utcnow

USER, CHAT, BOT, CALLBACK, CONVERSATION = "user", "chat", "bot", "callback", "conversation"

# Portable upsert (SQLite >= 3.24 and PostgreSQL): the (kind, key) UNIQUE index decides.
_UPSERT = (
    "INSERT INTO bot_state (kind, key, data, updated_at) VALUES ({p1}, {p2}, {p3}, {p4}) "
    "ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at"
)


class OrmPersistence(BasePersistence[dict[str, Any], dict[str, Any], dict[str, Any]]):
    """`BasePersistence` backed by the `bot_state` table."""

    def __init__(self) -> None:
        # update_interval only matters as a fallback: the application flushes after each
        # update. Data must be JSON (ids, short strings): no pickles in the database.
        # bot_data holds process wiring (settings), not state; no handler keeps chat data.
        super().__init__(
            store_data=PersistenceInput(bot_data=False, chat_data=False, callback_data=False),
            update_interval=60,
        )

    # --- reading -------------------------------------------------------------------------

    async def _load_kind(self, kind: str) -> dict[str, Any]:
        rows = await BotState.filter(kind=kind).values_list("key", "data")
        return {str(key): data for key, data in rows}

    async def _load(self, kind: str, key: str) -> Any:
        row = await BotState.filter(kind=kind, key=key).values_list("data", flat=True)
        return row[0] if row else None

    async def get_user_data(self) -> dict[int, dict[str, Any]]:
        return {int(k): dict(v or {}) for k, v in (await self._load_kind(USER)).items()}

    async def get_chat_data(self) -> dict[int, dict[str, Any]]:
        return {int(k): dict(v or {}) for k, v in (await self._load_kind(CHAT)).items()}

    async def get_bot_data(self) -> dict[str, Any]:
        return dict(await self._load(BOT, "bot") or {})

    async def get_callback_data(self) -> CDCData | None:
        data = await self._load(CALLBACK, "callback")
        if not data:
            return None
        entries, mapping = data
        return [(k, float(t), dict(d)) for k, t, d in entries], dict(mapping)

    async def get_conversations(self, name: str) -> ConversationDict:
        prefix = f"{name}:"
        rows = await BotState.filter(kind=CONVERSATION, key__startswith=prefix).values_list(
            "key", "data"
        )
        return {tuple(json.loads(key[len(prefix) :])): state for key, state in rows}

    async def refresh_user_data(self, user_id: int, user_data: dict[str, Any]) -> None:
        fresh = await self._load(USER, str(user_id))
        user_data.clear()
        user_data.update(fresh or {})

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[str, Any]) -> None:
        fresh = await self._load(CHAT, str(chat_id))
        chat_data.clear()
        chat_data.update(fresh or {})

    async def refresh_bot_data(self, bot_data: dict[str, Any]) -> None:
        """Bot-wide data is not shared between processes; nothing to reload."""

    # --- writing -------------------------------------------------------------------------

    async def _save(self, kind: str, key: str, data: Any) -> None:
        conn = connections.get("default")
        if conn.capabilities.dialect == "postgres":
            sql = _UPSERT.format(p1="$1", p2="$2", p3="$3::jsonb", p4="$4")
        else:
            sql = _UPSERT.format(p1="?", p2="?", p3="?", p4="?")
        now = utcnow()
        await conn.execute_query(
            sql,
            [
                kind,
                key,
                json.dumps(data),
                now if conn.capabilities.dialect == "postgres" else now.isoformat(sep=" "),
            ],
        )

    async def _drop(self, kind: str, key: str) -> None:
        await BotState.filter(kind=kind, key=key).delete()

    async def update_user_data(self, user_id: int, data: dict[str, Any]) -> None:
        await self._save(USER, str(user_id), data)

    async def update_chat_data(self, chat_id: int, data: dict[str, Any]) -> None:
        await self._save(CHAT, str(chat_id), data)

    async def update_bot_data(self, data: dict[str, Any]) -> None:
        await self._save(BOT, "bot", data)

    async def update_callback_data(self, data: CDCData) -> None:
        entries, mapping = data
        await self._save(CALLBACK, "callback", [deepcopy(list(entries)), dict(mapping)])

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        db_key = f"{name}:{json.dumps(list(key))}"
        if new_state is None:
            await self._drop(CONVERSATION, db_key)
        else:
            await self._save(CONVERSATION, db_key, new_state)

    async def drop_user_data(self, user_id: int) -> None:
        await self._drop(USER, str(user_id))

    async def drop_chat_data(self, chat_id: int) -> None:
        await self._drop(CHAT, str(chat_id))

    async def flush(self) -> None:
        """Every change is already written; nothing is buffered."""
