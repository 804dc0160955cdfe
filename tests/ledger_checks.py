"""Whole-ledger checks the money tests end with."""

from __future__ import annotations

from tortoise.functions import Count, Sum

from core.db.models import LedgerLeg


async def unbalanced_postings() -> list[dict]:
    """Postings whose legs do not sum to zero, or that have fewer than two legs."""
    rows = (
        await LedgerLeg.annotate(total=Sum("amount_minor"), legs=Count("id"))
        .group_by("posting_id")
        .values("posting_id", "total", "legs")
    )
    return [r for r in rows if r["total"] != 0 or r["legs"] < 2]
