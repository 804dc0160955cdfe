"""`collectbot demo`: the whole collection story, offline, on a fresh SQLite database.

It goes through the same services the bot calls (no shortcuts into the tables), so the
story it prints is what the product does: an office sets up, imports its subscribers and
invoices, invites a collector, builds a route; the collector collects in full, in part, and
meets a closed door; the office reads the report and pays the commission.
"""

from __future__ import annotations

import asyncio
import csv
import shutil
from datetime import timedelta
from importlib import resources
from pathlib import Path

from core.db.migrate import migrate
from core.db.models import OutboxMessage, Tenant
from core.db.orm import database
from core.domain.dates import utcnow
from core.domain.money import format_money, to_decimal
from core.domain.status import PaymentMethod, Role
from core.services.access import CLI, Origin
from core.services.assignments import assign_invoices, preview_assignment
from core.services.billing import create_plan, create_reseller, create_tenant
from core.services.collection import mark_collected, mark_failed
from core.services.commission import pay_commission
from core.services.importing import import_invoices, import_subscribers
from core.services.reports import CollectorReport, collector_report
from core.services.route import get_route
from core.services.staff import create_invite, invite_link, redeem_invite

ADMIN_TELEGRAM_ID = 5551001
COLLECTOR_TELEGRAM_ID = 5551002


def _say(who: str, text: str) -> None:
    pad = " " * (len(who) + 2)
    lines = text.splitlines() or [""]
    print(f"{who}: {lines[0]}")
    for line in lines[1:]:
        print(f"{pad}{line}")


def _demo_csv(name: str) -> bytes:
    return resources.files("collectbot").joinpath("demo_data", name).read_bytes()


def _fresh_dir(data_dir: Path) -> None:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)


async def run_demo(data_dir: Path) -> None:
    await asyncio.to_thread(_fresh_dir, data_dir)
    url = f"sqlite://{data_dir / 'demo.sqlite3'}"
    applied = await migrate(url)
    print(f"== A fresh database at {data_dir / 'demo.sqlite3'} ({len(applied)} migration(s))\n")
    async with database(url):
        await _story(data_dir)


async def _story(data_dir: Path) -> None:
    now = utcnow()
    tenant = await create_tenant(
        name="Dhaka Fiber Net", currency="BDT", country="BD", timezone="Asia/Dhaka", origin=CLI
    )

    def money(minor: int) -> str:
        return format_money(minor, tenant.currency, tenant.locale)

    print("== The office sets up")
    invite = await create_invite(
        None,
        tenant_id=tenant.id,
        role=Role.ADMIN,
        name="Nadia",
        phone="01911-000010",
        origin=CLI,
    )
    _say("$ collectbot invite", invite_link("collectbot", invite.token))
    admin = await redeem_invite(
        token=invite.token,
        telegram_user_id=ADMIN_TELEGRAM_ID,
        origin=Origin(channel="telegram", telegram_user_id=ADMIN_TELEGRAM_ID),
    )
    _say("Nadia", f"/start {invite.token[:6]}…  -> bound as admin of {tenant.name}")
    office = Origin(channel="telegram", telegram_user_id=ADMIN_TELEGRAM_ID)
    await create_plan(admin, name="Home 20 Mbps", price_minor=150_000, origin=office)
    await create_reseller(admin, name="Lalmatia Net", origin=office)

    subs = await import_subscribers(admin, _demo_csv("subscribers.csv"), origin=CLI)
    invs = await import_invoices(admin, _demo_csv("invoices.csv"), origin=CLI)
    _say("$ collectbot import", f"{subs.created} subscribers and {invs.created} invoices imported")

    karim_invite = await create_invite(
        admin,
        role=Role.COLLECTOR,
        name="Karim",
        phone="01811-000020",
        commission_bp=500,
        origin=office,
    )
    karim = await redeem_invite(
        token=karim_invite.token,
        telegram_user_id=COLLECTOR_TELEGRAM_ID,
        origin=Origin(channel="telegram", telegram_user_id=COLLECTOR_TELEGRAM_ID),
    )
    _say("Karim", "/start …  -> bound as collector (commission 5%)")

    print("\n== Nadia builds Karim's route")
    preview = await preview_assignment(admin, collector_id=karim.id, area="Dhanmondi", now=now)
    _say("Nadia", "/assign Karim area=Dhanmondi")
    _say(
        "Bot",
        f"Karim · Dhanmondi: {len(preview.numbers)} invoices, "
        f"{money(preview.total_due_minor)} due  [Assign] [Cancel]",
    )
    result = await assign_invoices(
        admin, collector_id=karim.id, numbers=list(preview.numbers), origin=office, now=now
    )
    _say(
        "Bot",
        f"{len(result.assigned)} stops added to Karim's route for {result.scheduled_on:%a %d %b}.",
    )
    extra = await assign_invoices(
        admin,
        collector_id=karim.id,
        numbers=["INV-2026-0046", "INV-2026-0099"],
        origin=office,
        now=now,
    )
    _say("Nadia", "/assign Karim INV-2026-0046 INV-2026-0099")
    _say(
        "Bot",
        " · ".join(
            f"{o.number} {'assigned' if o.assignment_id else 'refused: ' + str(o.refused)}"
            for o in extra.outcomes
        ),
    )

    print("\n== Karim walks his route")
    route = await get_route(karim, now=now)
    _say(
        "Bot",
        f"{route.day:%A %d %b} · {len(route.stops)} stops · to collect "
        f"{money(route.to_collect_minor)}",
    )
    for n, stop in enumerate(route.stops, start=1):
        _say(
            "Bot",
            f"{n}/{len(route.stops)}  {stop.subscriber_name} · {stop.phone}\n"
            f"{stop.address}, {stop.area} · due {money(stop.due_minor)} "
            f"({stop.invoice_number})",
        )
    karim_origin = Origin(channel="telegram", telegram_user_id=COLLECTOR_TELEGRAM_ID)
    first, second, third = route.stops[0], route.stops[1], route.stops[2]

    full = await mark_collected(
        karim,
        assignment_id=first.assignment_id,
        idempotency_key="demo-1",
        origin=karim_origin,
        now=now,
    )
    _say("Karim", f"[Collected] [Full {money(first.due_minor)} · cash] [Post without photo]")
    expiry = f" · service runs to {full.new_expiry:%d %b %Y}" if full.new_expiry else ""
    _say(
        "Bot",
        f"✅ {money(full.amount_minor)} posted · {full.invoice_number} "
        f"{full.invoice_status.value}{expiry}\nReceipt queued for WhatsApp.",
    )

    part_amount = first_round_hundred(second.due_minor)
    part = await mark_collected(
        karim,
        assignment_id=second.assignment_id,
        idempotency_key="demo-2",
        amount_minor=part_amount,
        method=PaymentMethod.BKASH,
        reference="BK7Q2X",
        origin=karim_origin,
        now=now,
    )
    _say(
        "Karim",
        f"[Collected] [Other amount] > {to_decimal(part_amount, tenant.currency):.0f}"
        "  [Other method] [bKash]",
    )
    _say(
        "Bot",
        f"✅ {money(part.amount_minor)} posted · {part.invoice_number} partly paid · "
        f"{money(part.remaining_minor)} still due",
    )

    failed = await mark_failed(
        karim, assignment_id=third.assignment_id, reason="not_home", origin=karim_origin, now=now
    )
    _say("Karim", f"[Failed] [Not home]  ({third.subscriber_name})")
    _say("Bot", f"Noted: not home. This stop comes back on {failed.return_on:%A %d %b}.")

    after = await get_route(karim, now=now)
    _say(
        "Bot",
        f"Today: {money(after.collected_today_minor)} collected · commission "
        f"{money(after.commission_today_minor)} · {len(after.stops)} stops left",
    )

    print("\n== The office closes the day")
    report = await collector_report(admin, now=now)
    _print_report(report, money)
    path = await asyncio.to_thread(_write_report_csv, report, data_dir)
    karim_row = next(r for r in report.rows if r.collector_id == karim.id)
    payout = await pay_commission(
        admin, collector_id=karim.id, idempotency_key="demo-payout", origin=office
    )
    _say("Nadia", f"/pay Karim  [Pay {money(karim_row.balance_minor)}]")
    _say(
        "Bot",
        f"Paid Karim {money(payout.paid_minor)}. Balance now {money(payout.balance_after_minor)}.",
    )
    queued = await OutboxMessage.filter(tenant_id=tenant.id, status="pending").count()
    print(f"\n{queued} WhatsApp receipts wait in the outbox; the report is in {path}.")
    print(
        f"The stop that failed returns on {(now + timedelta(days=2)):%d %b}; "
        "every posting in the ledger sums to zero."
    )
    await _check_ledger(tenant)


def first_round_hundred(due_minor: int) -> int:
    """A realistic part payment: about two thirds of the due, in whole hundreds."""
    return max(100, (due_minor * 2 // 3) // 10_000 * 10_000)


def _print_report(report: CollectorReport, money) -> None:
    _say("Nadia", f"/report  ({report.start:%d %b} – {report.end:%d %b})")
    for r in report.rows:
        _say(
            "Bot",
            f"{r.name}: {r.visits} visits · {r.collected} collected · {r.failed} failed"
            f" · success {r.success_rate_bp / 100:.0f}%\n"
            f"cash {money(r.cash_collected_minor)} · commission "
            f"{money(r.commission_earned_minor)} · paid {money(r.paid_out_minor)} · "
            f"balance {money(r.balance_minor)}",
        )


def _write_report_csv(report: CollectorReport, data_dir: Path) -> Path:
    path = data_dir / f"collector-report-{report.start}-{report.end}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "collector",
                "visits",
                "collected",
                "failed",
                "success_pct",
                "cash",
                "commission",
                "paid_out",
                "balance",
                "currency",
            ]
        )
        for r in report.rows:
            writer.writerow(
                [
                    r.name,
                    r.visits,
                    r.collected,
                    r.failed,
                    f"{r.success_rate_bp / 100:.2f}",
                    to_decimal(r.cash_collected_minor, report.currency),
                    to_decimal(r.commission_earned_minor, report.currency),
                    to_decimal(r.paid_out_minor, report.currency),
                    to_decimal(r.balance_minor, report.currency),
                    report.currency,
                ]
            )
    return path


async def _check_ledger(tenant: Tenant) -> None:
    from tortoise.functions import Sum

    from core.db.models import LedgerLeg

    rows = (
        await LedgerLeg.filter(tenant_id=tenant.id)
        .annotate(total=Sum("amount_minor"))
        .group_by("posting_id")
        .values("posting_id", "total")
    )
    bad = [r for r in rows if r["total"] != 0]
    if bad:
        raise SystemExit(f"Unbalanced postings: {bad}")
