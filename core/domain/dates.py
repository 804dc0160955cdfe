"""Calendar rules: local "today" per tenant, month arithmetic, expiry extension.

Pure functions on `date`/`datetime`; the clock is always passed in so the scheduler and the
tests can walk time forward.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(UTC)


def local_today(now: datetime, timezone: str) -> date:
    """The calendar day it is for the tenant (a Dhaka collector's Tuesday, not UTC's)."""
    return now.astimezone(ZoneInfo(timezone)).date()


def add_months(day: date, months: int) -> date:
    """`day` plus whole months, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def extend_expiry(current_expiry: date | None, today: date, period_months: int) -> date:
    """A renewal paid in full runs from the later of the old expiry and today.

    Paying early keeps the days already bought; paying after a lapse does not back-date
    service the subscriber did not have.
    """
    start = max(current_expiry, today) if current_expiry else today
    return add_months(start, period_months)


def month_start(day: date) -> date:
    return day.replace(day=1)


def local_day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """The UTC instants where a tenant's local calendar day starts and the next one starts."""
    tz = ZoneInfo(timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    end = start + timedelta(days=1)
    # Re-anchor the end on the local calendar (DST days are 23 or 25 hours long).
    end = datetime(end.year, end.month, end.day, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)
