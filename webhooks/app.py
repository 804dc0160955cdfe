"""The one aiohttp server: Telegram updates (webhook mode), WhatsApp webhooks and health.

Handlers here verify, parse, hand off and answer fast: a Telegram update is checked
against the secret header in constant time *before* its body is parsed, then put on the
application's update queue (the same path polling uses). The WhatsApp gateways' routes
(delivery statuses, inbound messages) live in `webhooks/whatsapp.py` and are always
registered: gateways call them whatever mode the bot runs in.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections import OrderedDict

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from telegram import Update
from telegram.ext import Application
from tortoise import connections

from core.config import Settings
from webhooks.whatsapp import add_whatsapp_routes

log = logging.getLogger("collectbot.web")

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
APPLICATION: web.AppKey[Application] = web.AppKey("application", Application)
RECENT_UPDATES: web.AppKey[OrderedDict[int, None]] = web.AppKey("recent_updates", OrderedDict)

MAX_BODY_BYTES = 1024 * 1024  # Telegram updates are a few KB; a megabyte is generous
RECENT_UPDATE_IDS = 10_000
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


async def healthz(request: web.Request) -> web.Response:
    """Liveness plus a round trip to the database."""
    try:
        await connections.get("default").execute_query("SELECT 1")
    except Exception as exc:  # any database failure means "not healthy"
        log.warning("health check: database unavailable: %s", exc)
        return web.json_response({"status": "error", "database": "unavailable"}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


async def telegram_update(request: web.Request) -> web.Response:
    """`POST /telegram`: 401 without the right secret, 400 for anything not an update."""
    secret = request.app[SETTINGS].telegram_webhook_secret or ""
    given = request.headers.get(SECRET_HEADER, "")
    if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        return web.json_response({"error": "unauthorized"}, status=401)
    try:
        payload = json.loads(await request.read())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return web.json_response({"error": "body is not JSON"}, status=400)
    if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
        return web.json_response({"error": "not a Telegram update"}, status=400)
    application = request.app[APPLICATION]
    try:
        update = Update.de_json(payload, application.bot)
    except Exception:  # PTB raises assorted errors on malformed nested objects
        log.info("rejected a malformed update", exc_info=True)
        return web.json_response({"error": "malformed update"}, status=400)
    if _seen_recently(request.app, update.update_id):
        # Telegram delivers at least once; the services are idempotent anyway, this only
        # spares the person a second identical reply.
        return web.json_response({"ok": True, "duplicate": True})
    await application.update_queue.put(update)
    return web.json_response({"ok": True})


def _seen_recently(app: web.Application, update_id: int) -> bool:
    recent = app[RECENT_UPDATES]
    if update_id in recent:
        return True
    recent[update_id] = None
    if len(recent) > RECENT_UPDATE_IDS:
        recent.popitem(last=False)
    return False


# Secrets that travel in a path (Ultramsg's webhook token) must not reach the access log.
_SECRET_IN_PATH = re.compile(r"^(/webhooks/whatsapp/ultramsg/)[^/?]+")


def redact_path(path: str) -> str:
    """`path` with any secret segment replaced by `***`, for logs."""
    return _SECRET_IN_PATH.sub(r"\1***", path)


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log, without the secrets some webhook paths carry."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %.1fms "%s"',
            request.remote,
            request.method,
            redact_path(request.path),
            response.status,
            time * 1000,
            request.headers.get("User-Agent", "-"),
        )


def create_runner(app: web.Application) -> web.AppRunner:
    """The runner `serve` and the demo use, with the redacting access log."""
    return web.AppRunner(app, access_log_class=AccessLogger)


def create_web_app(settings: Settings, application: Application | None) -> web.Application:
    """The aiohttp app; `application` is None when the bot runs without webhook mode."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[RECENT_UPDATES] = OrderedDict()
    app.router.add_get("/healthz", healthz)
    add_whatsapp_routes(app, settings)
    if application is not None:
        app[APPLICATION] = application
        app.router.add_post("/telegram", telegram_update)
    return app
