"""Admins and reseller staff: collectors, routes, reports, commission, invoice stories."""

from __future__ import annotations

from telegram.ext import Application


def register(application: Application) -> None:
    """Office commands and their confirmation buttons."""
