"""Placeholder filled by the dunning issue's work in progress: registers no handler yet."""

from __future__ import annotations

from telegram.ext import Application


def register(application: Application) -> None:
    """Add this module's handlers (none yet)."""
