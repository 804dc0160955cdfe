"""The collector's day: route, collect, fail, today, history (being built)."""

from __future__ import annotations

from telegram.ext import Application


def register(application: Application) -> None:
    """Commands, menu buttons, stop buttons and receipt photos of collectors."""
