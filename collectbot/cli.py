"""`collectbot`: the command line (DESIGN.md section 6). One function per sub-command.

This package is the composition root: it may import every layer; `core` imports none of it.
Errors the rules raise (`DomainError`) are printed as their sentence with exit status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from core.config import Settings
from core.db.models import Staff
from core.db.orm import database
from core.domain.money import parse_rate
from core.domain.status import Role
from core.errors import DomainError, ImportRejected, NotFound
from core.services.access import CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collectbot",
        description="Doorstep cash collection and dunning for small ISPs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("migrate", help="create or upgrade the database schema (DATABASE_URL)")
    sub.add_parser(
        "serve", help="run the Telegram bot, the web server and the scheduler (Ctrl+C stops)"
    )

    tenant = sub.add_parser("tenant", help="add a company (ISP) to this installation")
    tenant.add_argument("--name", required=True)
    tenant.add_argument("--currency", default="BDT", help="ISO 4217 code (default BDT)")
    tenant.add_argument("--country", default="BD", help="ISO 3166 code for phone numbers")
    tenant.add_argument("--timezone", default="Asia/Dhaka")
    tenant.add_argument("--locale", default="en")

    invite = sub.add_parser("invite", help="print a one-time Telegram link for a new staff member")
    invite.add_argument("--tenant", type=int, required=True, help="company id")
    invite.add_argument("--role", choices=[r.value for r in Role], required=True)
    invite.add_argument("--name", required=True)
    invite.add_argument("--phone")
    invite.add_argument("--commission", default="0", help="collectors: percent, e.g. 5 or 2.5")
    invite.add_argument("--reseller", type=int, help="reseller id (reseller staff, collectors)")
    invite.add_argument(
        "--permission",
        action="append",
        default=[],
        dest="permissions",
        help="reseller staff: collectors.view/create/edit/assign/delete/commission_pay "
        "(repeat the option)",
    )

    imp = sub.add_parser("import", help="import subscribers or invoices from a CSV file")
    imp.add_argument("kind", choices=["subscribers", "invoices"])
    imp.add_argument("file", type=Path)
    imp.add_argument("--tenant", type=int, required=True, help="company id")
    imp.add_argument("--dry-run", action="store_true", help="validate only; write nothing")

    demo = sub.add_parser("demo", help="run the whole collection story offline on SQLite")
    demo.add_argument("--data-dir", type=Path, default=Path("demo-data"))
    return parser


async def _migrate(args: argparse.Namespace, settings: Settings) -> None:
    from core.db.migrate import migrate

    applied = await migrate(settings.database_url)
    print(f"Applied {len(applied)} migration(s)." if applied else "The schema is up to date.")


async def _serve(args: argparse.Namespace, settings: Settings) -> None:
    from collectbot.serve import serve

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    await serve(settings)


async def _tenant(args: argparse.Namespace, settings: Settings) -> None:
    from core.services.billing import create_tenant

    async with database(settings.database_url):
        tenant = await create_tenant(
            name=args.name,
            currency=args.currency,
            country=args.country,
            timezone=args.timezone,
            locale=args.locale,
            origin=CLI,
        )
    print(f"Company {tenant.name!r} created with id {tenant.id}.")


async def _invite(args: argparse.Namespace, settings: Settings) -> None:
    from core.services.staff import create_invite, invite_link

    async with database(settings.database_url):
        result = await create_invite(
            None,
            tenant_id=args.tenant,
            role=Role(args.role),
            name=args.name,
            phone=args.phone,
            commission_bp=parse_rate(args.commission),
            reseller_id=args.reseller,
            permissions=args.permissions,
            origin=CLI,
        )
    print(
        f"Invitation for {result.staff.name} ({args.role}), valid until "
        f"{result.expires_at:%Y-%m-%d %H:%M} UTC. Send them this link:"
    )
    print(invite_link(settings.bot_username, result.token))


async def _import(args: argparse.Namespace, settings: Settings) -> None:
    from core.services.importing import import_invoices, import_subscribers

    if not args.file.is_file():
        raise NotFound(f"There is no file {args.file}.")
    data = args.file.read_bytes()
    run = import_subscribers if args.kind == "subscribers" else import_invoices
    async with database(settings.database_url):
        admin = await office_admin(args.tenant)
        report = await run(admin, data, dry_run=args.dry_run, origin=CLI)
    verb = "would be imported (dry run: nothing written)" if report.dry_run else "imported"
    print(
        f"{report.rows} {args.kind} checked; {report.rows if report.dry_run else report.created}"
        f" {verb}."
    )


async def office_admin(tenant_id: int) -> Staff:
    """The admin a command-line action is recorded against: the company's first active one."""
    admin = (
        await Staff.filter(tenant_id=tenant_id, role=Role.ADMIN, deleted_at=None)
        .order_by("id")
        .first()
    )
    if admin is None:
        raise NotFound(
            f"Company {tenant_id} has no admin yet: run `collectbot invite --tenant {tenant_id} "
            "--role admin --name ...` first."
        )
    return admin


async def _demo(args: argparse.Namespace, settings: Settings) -> None:
    from collectbot.demo import run_demo

    await run_demo(args.data_dir)


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, None]]] = {
    "migrate": _migrate,
    "serve": _serve,
    "tenant": _tenant,
    "invite": _invite,
    "import": _import,
    "demo": _demo,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    try:
        asyncio.run(COMMANDS[args.command](args, settings))
    except ImportRejected as exc:
        print(f"{exc}", file=sys.stderr)
        for row, field, message in exc.errors:
            where = f"row {row}" + (f", {field}" if field else "")
            print(f"  {where}: {message}", file=sys.stderr)
        return 2
    except DomainError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
