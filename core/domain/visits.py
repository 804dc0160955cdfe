"""What happens after a door does not open: when the stop comes back, and when to flag it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from core.domain.status import FailureReason
from core.errors import InvalidInput

DEFAULT_RESCHEDULE_DAYS = 2
DEFAULT_FAILED_VISITS_BEFORE_FLAG = 3
MAX_NOTE_LENGTH = 500


@dataclass(frozen=True)
class FailedVisitDecision:
    """After a failed visit: the new failed-visit count, flag it, and when to come back."""

    failed_visits: int
    flag_for_admin: bool
    return_on: date | None


def decide_after_failed_visit(
    *, failed_visits_before: int, today: date, reschedule_days: int, flag_after: int
) -> FailedVisitDecision:
    """Count the visit; flag the invoice on the Nth failure, else bring it back in N days.

    A flagged invoice leaves the route: the office decides (call, suspend, write off)
    rather than sending a collector to the same closed door a fourth time.
    """
    count = failed_visits_before + 1
    if count >= flag_after:
        return FailedVisitDecision(count, True, None)
    return FailedVisitDecision(count, False, today + timedelta(days=reschedule_days))


def check_failure_note(reason: FailureReason, note: str | None) -> str:
    """`other` needs a line of text; every note is trimmed and bounded."""
    cleaned = (note or "").strip()
    if reason is FailureReason.OTHER and not cleaned:
        raise InvalidInput("Tell me what happened in a few words.", code="failure_note_required")
    if len(cleaned) > MAX_NOTE_LENGTH:
        raise InvalidInput(
            f"Keep the note under {MAX_NOTE_LENGTH} characters.",
            code="note_too_long",
            limit=MAX_NOTE_LENGTH,
        )
    return cleaned
