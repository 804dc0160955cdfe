"""CSV import of subscribers and invoices, against a real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import date
from importlib.resources import files

import pytest

from core.db.models import (
    AuditLog,
    CustomerClass,
    Invoice,
    LedgerLeg,
    LedgerPosting,
    Plan,
    Staff,
    Subscriber,
    Tenant,
)
from core.domain.ledger import RECEIVABLE, REVENUE
from core.domain.status import InvoiceKind, InvoicePurpose, InvoiceStatus, Role
from core.errors import ImportRejected, PermissionDenied
from core.services.access import CLI
from core.services.importing import (
    MAX_BYTES,
    MAX_ROWS,
    ImportReport,
    import_invoices,
    import_subscribers,
)
from core.services.ledger import account_balance
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant

SUBSCRIBERS_HEADER = "username,name,phone"
INVOICES_HEADER = "number,username,amount"


def csv_bytes(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def demo_file(name: str) -> bytes:
    return files("collectbot").joinpath("demo_data", name).read_bytes()


def sha256_of(name: str) -> str:
    return hashlib.sha256(demo_file(name)).hexdigest()


async def row_counts() -> dict[str, int]:
    return {
        "subscribers": await Subscriber.all().count(),
        "invoices": await Invoice.all().count(),
        "postings": await LedgerPosting.all().count(),
        "legs": await LedgerLeg.all().count(),
        "audit": await AuditLog.all().count(),
    }


@pytest.fixture
async def tenant(db: str) -> Tenant:
    return await make_tenant()


@pytest.fixture
async def admin(tenant: Tenant) -> Staff:
    return await make_staff(tenant, Role.ADMIN)


async def rejection_of_subscribers(admin: Staff, data: bytes) -> ImportRejected:
    with pytest.raises(ImportRejected) as caught:
        await import_subscribers(admin, data)
    return caught.value


async def rejection_of_invoices(admin: Staff, data: bytes) -> ImportRejected:
    with pytest.raises(ImportRejected) as caught:
        await import_invoices(admin, data, today=date(2026, 11, 1))
    return caught.value


# --- the demo files and what an import writes ---------------------------------------------


async def test_the_demo_files_import_cleanly(tenant: Tenant, admin: Staff) -> None:
    plan = await Plan.create(tenant=tenant, name="Home 20 Mbps", price_minor=150_000)
    reseller = await make_reseller(tenant, name="Lalmatia Net")

    subscribers = await import_subscribers(admin, demo_file("subscribers.csv"), origin=CLI)
    invoices = await import_invoices(admin, demo_file("invoices.csv"), origin=CLI)

    assert subscribers == ImportReport(kind="subscribers", rows=12, created=12, dry_run=False)
    assert invoices == ImportReport(kind="invoices", rows=12, created=12, dry_run=False)
    rahman = await Subscriber.get(tenant=tenant, username="dhn-rahman")
    assert (rahman.phone, rahman.area, rahman.street, rahman.plan_id, rahman.expiry_date) == (
        "+8801711000001",
        "Dhanmondi",
        "Road 27",
        plan.id,
        date(2026, 11, 5),
    )
    assert await Subscriber.filter(tenant=tenant, reseller=reseller).count() == 3
    assert set(await Subscriber.filter(tenant=tenant).values_list("area", flat=True)) == {
        "Dhanmondi",
        "Mohammadpur",
        "Lalmatia",
    }
    numbers = (
        await Invoice.filter(tenant=tenant).order_by("number").values_list("number", flat=True)
    )
    assert numbers == [f"INV-2026-{n:04d}" for n in range(41, 53)]
    first = await Invoice.get(number="INV-2026-0041")
    assert (
        first.status,
        first.issue_date,
        first.due_date,
        first.purpose,
        first.reminder_days,
    ) == (
        InvoiceStatus.UNPAID,
        date(2026, 11, 1),
        date(2026, 11, 10),
        InvoicePurpose.RENEWAL,
        plan.reminder_days,
    )
    audit = (
        await AuditLog.filter(tenant=tenant)
        .order_by("id")
        .values_list("action", "actor_staff_id", "details")
    )
    assert audit == [
        ("import.subscribers", admin.id, {"rows": 12, "sha256": sha256_of("subscribers.csv")}),
        ("import.invoices", admin.id, {"rows": 12, "sha256": sha256_of("invoices.csv")}),
    ]
    amounts = await Invoice.filter(tenant=tenant).values_list("amount_minor", flat=True)
    assert sum(amounts) == 1_840_000


async def test_a_dry_run_checks_the_files_and_writes_nothing(tenant: Tenant, admin: Staff) -> None:
    await make_subscriber(tenant, username="rahim")
    before = await row_counts()

    subscribers = await import_subscribers(
        admin, csv_bytes(SUBSCRIBERS_HEADER, "karim,Karim,01711-000001"), dry_run=True
    )
    invoices = await import_invoices(
        admin, csv_bytes(INVOICES_HEADER, "INV-2026-0001,rahim,1500"), dry_run=True
    )

    assert subscribers == ImportReport(kind="subscribers", rows=1, created=0, dry_run=True)
    assert invoices == ImportReport(kind="invoices", rows=1, created=0, dry_run=True)
    assert await row_counts() == before


async def test_a_dry_run_reports_the_same_errors_as_a_real_import(admin: Staff) -> None:
    data = csv_bytes(SUBSCRIBERS_HEADER, "karim,Karim,12345")

    with pytest.raises(ImportRejected) as caught:
        await import_subscribers(admin, data, dry_run=True)

    assert caught.value.errors == [(2, "phone", "'12345' is not a valid phone number for BD.")]


async def test_invoice_postings_balance_and_the_receivable_is_the_invoices_total(
    tenant: Tenant, admin: Staff
) -> None:
    rahim = await make_subscriber(tenant, username="rahim")
    karim = await make_subscriber(tenant, username="karim")
    data = csv_bytes(
        INVOICES_HEADER,
        "INV-2026-0001,rahim,1500",
        'INV-2026-0002,rahim,"1,200.50"',
        "INV-2026-0003,karim,800",
    )

    await import_invoices(admin, data, today=date(2026, 11, 1))

    legs = await LedgerLeg.filter(tenant=tenant).values_list("posting_id", "amount_minor")
    per_posting: dict[int, int] = defaultdict(int)
    for posting_id, amount_minor in legs:
        per_posting[posting_id] += amount_minor
    assert list(per_posting.values()) == [0, 0, 0]
    postings = (
        await LedgerPosting.filter(tenant=tenant)
        .order_by("memo")
        .values_list("kind", "memo", "invoice__number", "created_by_id")
    )
    assert postings == [
        ("invoice_issued", "INV-2026-0001", "INV-2026-0001", admin.id),
        ("invoice_issued", "INV-2026-0002", "INV-2026-0002", admin.id),
        ("invoice_issued", "INV-2026-0003", "INV-2026-0003", admin.id),
    ]
    receivable = await account_balance(
        tenant_id=tenant.id, account=RECEIVABLE, subscriber_id=rahim.id
    )
    assert receivable == 150_000 + 120_050
    assert (
        await account_balance(tenant_id=tenant.id, account=RECEIVABLE, subscriber_id=karim.id)
        == 80_000
    )
    assert await account_balance(tenant_id=tenant.id, account=REVENUE) == -350_050


async def test_invoice_dates_and_reminders_default_as_create_invoice_does(
    tenant: Tenant, admin: Staff
) -> None:
    terms = await CustomerClass.create(
        tenant=tenant, name="Corporate", net_days=15, out_of_turn_net_days=4
    )
    plan = await Plan.create(tenant=tenant, name="Home", price_minor=150_000, reminder_days=4)
    await make_subscriber(tenant, username="corp", customer_class=terms, plan=plan)
    await make_subscriber(tenant, username="home")
    data = csv_bytes(
        "number,username,amount,issue_date,purpose,kind,reminder_days",
        "A-1,corp,100,,,,",
        "A-2,corp,100,2026-11-20,Out of turn,,",
        "A-3,home,100,,,debit-note,",
        "A-4,home,100,,,,",
        "A-5,home,100,,,,9",
    )

    await import_invoices(admin, data, today=date(2026, 11, 1))

    rows = (
        await Invoice.filter(tenant=tenant)
        .order_by("number")
        .values_list("number", "issue_date", "due_date", "purpose", "kind", "reminder_days")
    )
    renewal, out_of_turn = InvoicePurpose.RENEWAL, InvoicePurpose.OUT_OF_TURN
    invoice, debit_note = InvoiceKind.INVOICE, InvoiceKind.DEBIT_NOTE
    assert rows == [
        ("A-1", date(2026, 11, 1), date(2026, 11, 16), renewal, invoice, 4),
        ("A-2", date(2026, 11, 20), date(2026, 11, 24), out_of_turn, invoice, 4),
        ("A-3", date(2026, 11, 1), date(2026, 12, 1), renewal, debit_note, 5),
        ("A-4", date(2026, 11, 1), date(2026, 12, 1), renewal, invoice, None),
        ("A-5", date(2026, 11, 1), date(2026, 12, 1), renewal, invoice, 9),
    ]


async def test_subscriber_references_are_looked_up_by_name(tenant: Tenant, admin: Staff) -> None:
    plan = await Plan.create(tenant=tenant, name="Home 20 Mbps", price_minor=150_000)
    terms = await CustomerClass.create(tenant=tenant, name="Corporate")
    reseller = await make_reseller(tenant, name="Lalmatia Net")
    data = csv_bytes(
        "username,name,phone,plan,customer_class,reseller,billing_mode",
        "karim,Karim,01711-000001,home 20 mbps,Corporate,Lalmatia Net,Postpaid",
    )

    await import_subscribers(admin, data)

    karim = await Subscriber.get(tenant=tenant, username="karim")
    assert (karim.plan_id, karim.customer_class_id, karim.reseller_id, karim.billing_mode) == (
        plan.id,
        terms.id,
        reseller.id,
        "postpaid",
    )


async def test_a_byte_order_mark_blank_rows_and_a_blank_phone_are_accepted(
    tenant: Tenant, admin: Staff
) -> None:
    data = "\ufeffusername,name,phone\r\nkarim,Karim,\r\n,,\r\n\r\nrahim,Rahim,01711-000001\r\n"

    report = await import_subscribers(admin, data.encode())

    assert report == ImportReport(kind="subscribers", rows=2, created=2, dry_run=False)
    phones = (
        await Subscriber.filter(tenant=tenant)
        .order_by("username")
        .values_list("username", "phone")
    )
    assert phones == [("karim", None), ("rahim", "+8801711000001")]


async def test_a_file_with_semicolons_between_cells_is_read(tenant: Tenant, admin: Staff) -> None:
    data = csv_bytes("username;name;phone", "karim;Karim;01711-000001")

    report = await import_subscribers(admin, data)

    assert report.created == 1


# --- every bad row and field is reported, nothing is written ------------------------------


async def test_every_bad_row_and_field_is_reported_and_nothing_is_written(
    tenant: Tenant, admin: Staff
) -> None:
    await make_subscriber(tenant, username="taken")
    before = await row_counts()
    data = csv_bytes(
        "username,name,phone,latitude,longitude,expiry_date,billing_mode,plan",
        "good,Good Row,01711-000001,23.75,90.37,2026-12-01,prepaid,",
        ",No Username,01711-000002,,,,,",
        "taken,Taken,01711-000003,,,,,",
        "bad,,12345,91,,30/11/2026,monthly,Gold",
        "good,Again,01711-000004,23.75,abc,,,",
        '"multi line",' + '"Name spanning\ntwo lines",01711-000005,,,,,,extra',
    )

    rejected = await rejection_of_subscribers(admin, data)

    assert [(row, field) for row, field, _ in rejected.errors] == [
        (3, "username"),
        (4, "username"),
        (5, "name"),
        (5, "phone"),
        (5, "latitude"),
        (5, "longitude"),
        (5, "expiry_date"),
        (5, "billing_mode"),
        (5, "plan"),
        (6, "username"),
        (6, "longitude"),
        (7, ""),
    ]
    messages = {(row, field): message for row, field, message in rejected.errors}
    assert messages[3, "username"] == "Every row needs a username; this one is empty."
    assert messages[4, "username"] == "A subscriber with username 'taken' already exists."
    assert messages[5, "latitude"] == (
        "'91' is not a latitude; write a number from -90 to 90, e.g. 23.7461."
    )
    assert messages[5, "longitude"] == "Give both latitude and longitude, or neither."
    assert messages[5, "expiry_date"] == (
        "'30/11/2026' is not a date; write it as YYYY-MM-DD, e.g. 2026-11-30."
    )
    assert messages[5, "billing_mode"] == (
        "'monthly' is not a billing mode; use one of prepaid, postpaid."
    )
    assert messages[5, "plan"] == (
        "There is no plan named 'Gold' in your company; create it first or fix the name."
    )
    assert messages[6, "username"] == (
        "Username 'good' is also on row 2; a subscriber can be in the file only once."
    )
    assert messages[7, ""] == "This row has more cells than the header has columns."
    assert str(rejected) == (
        "Nothing was imported: the subscribers file has 12 problems in 5 rows. "
        "Fix them and import the file again."
    )
    assert await row_counts() == before


async def test_every_bad_invoice_row_is_reported_and_nothing_is_written(
    tenant: Tenant, admin: Staff
) -> None:
    rahim = await make_subscriber(tenant, username="rahim")
    await make_invoice(rahim, number="INV-2026-0001")
    before = await row_counts()
    data = csv_bytes(
        "number,username,amount,issue_date,due_date,purpose,kind,reminder_days",
        "INV-2026-0001,rahim,1500,,,,,",
        "INV-2026-0002,rahim,1500,2026-11-10,2026-11-09,gift,credit,0",
        "INV-2026-0003,rahim,1500,,,,,",
        "INV-2026-0003,nobody,,,,,,",
    )

    rejected = await rejection_of_invoices(admin, data)

    assert rejected.errors == [
        (2, "number", "Invoice number INV-2026-0001 is already used."),
        (3, "purpose", "'gift' is not a purpose; use one of " + ", ".join(InvoicePurpose) + "."),
        (3, "kind", "'credit' is not a kind; use one of invoice, debit_note."),
        (3, "reminder_days", "'0' is not a whole number from 1 to 365."),
        (3, "due_date", "The due date cannot be before the issue date."),
        (
            5,
            "number",
            "Invoice number INV-2026-0003 is also on row 4; each number can be used once.",
        ),
        (
            5,
            "username",
            "There is no subscriber with username 'nobody'; "
            "import the subscriber first or fix the username.",
        ),
        (5, "amount", "Every row needs a amount; this one is empty."),
    ]
    assert await row_counts() == before


async def test_a_bad_phone_is_named_with_its_row(admin: Staff) -> None:
    data = csv_bytes(SUBSCRIBERS_HEADER, "karim,Karim,01711-000001", "rahim,Rahim,not a phone")

    rejected = await rejection_of_subscribers(admin, data)

    assert rejected.errors == [(3, "phone", "'not a phone' is not a phone number.")]


async def test_a_username_twice_in_the_file_or_already_in_the_database_is_refused(
    tenant: Tenant, admin: Staff
) -> None:
    await make_subscriber(tenant, username="rahim")
    data = csv_bytes(
        SUBSCRIBERS_HEADER,
        "karim,Karim,01711-000001",
        "karim,Karim Again,01711-000002",
        "rahim,Rahim,01711-000003",
    )

    rejected = await rejection_of_subscribers(admin, data)

    assert rejected.errors == [
        (
            3,
            "username",
            "Username 'karim' is also on row 2; a subscriber can be in the file only once.",
        ),
        (4, "username", "A subscriber with username 'rahim' already exists."),
    ]
    assert await Subscriber.filter(username="karim").count() == 0


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "The amount must be more than zero."),
        ("-5", "The amount must be more than zero."),
        ("fifteen hundred", "Type the amount as a number, like 1500 or 1500.50 (BDT)."),
        ("10.005", "BDT has at most 2 decimals."),
        ("1" * 20, f"{'1' * 20} BDT is too large for an invoice."),
    ],
)
async def test_an_amount_that_is_not_money_is_refused(
    tenant: Tenant, admin: Staff, amount: str, message: str
) -> None:
    await make_subscriber(tenant, username="rahim")

    rejected = await rejection_of_invoices(
        admin, csv_bytes(INVOICES_HEADER, f"INV-2026-0001,rahim,{amount}")
    )

    assert rejected.errors == [(2, "amount", message)]
    assert await Invoice.all().count() == 0


async def test_a_cell_longer_than_its_column_is_refused(admin: Staff) -> None:
    data = csv_bytes(SUBSCRIBERS_HEADER, f"{'u' * 65},Karim,01711-000001")

    rejected = await rejection_of_subscribers(admin, data)

    assert rejected.errors == [
        (2, "username", "The username is 65 characters long; the most is 64.")
    ]


# --- the header ---------------------------------------------------------------------------


async def test_a_missing_required_column_is_named(admin: Staff) -> None:
    rejected = await rejection_of_subscribers(admin, csv_bytes("username,name", "karim,Karim"))

    assert rejected.errors == [(1, "phone", "The required column 'phone' is missing.")]
    assert str(rejected) == (
        "Nothing was imported: the header row has 1 problem. Fix it and import the file again."
    )


async def test_an_unknown_column_is_refused_rather_than_dropped(admin: Staff) -> None:
    data = csv_bytes("username,name,phnoe", "karim,Karim,01711-000001")

    rejected = await rejection_of_subscribers(admin, data)

    assert rejected.errors == [
        (
            1,
            "phnoe",
            "'phnoe' is not a column of a subscribers file; did you mean 'phone'? the columns "
            "are username, name, phone, address, area, street, latitude, longitude, "
            "expiry_date, billing_mode, plan, customer_class, reseller.",
        ),
        (1, "phone", "The required column 'phone' is missing."),
    ]
    assert await Subscriber.all().count() == 0


async def test_a_column_given_twice_is_refused(admin: Staff) -> None:
    data = csv_bytes("username,name,phone,Phone", "karim,Karim,01711-000001,01711-000002")

    rejected = await rejection_of_subscribers(admin, data)

    assert rejected.errors == [(1, "phone", "The column 'phone' appears more than once.")]


async def test_a_value_under_an_unnamed_column_is_refused(admin: Staff) -> None:
    data = csv_bytes("username,name,phone,", "karim,Karim,01711-000001,", "rahim,Rahim,,oops")

    rejected = await rejection_of_subscribers(admin, data)

    assert rejected.errors == [(3, "", "Column 4 has no name in the header but a value here.")]


# --- files that are not a CSV we can read -------------------------------------------------


async def test_a_file_that_is_not_utf8_is_refused_with_how_to_save_it(admin: Staff) -> None:
    data = "username,name,phone\nkarim,Karim Café,01711-000001\n".encode("cp1252")

    rejected = await rejection_of_subscribers(admin, data)

    assert str(rejected) == (
        "The file is not UTF-8 text (line 2 has a character it cannot be read as). "
        "In your spreadsheet choose Save As > 'CSV UTF-8' and import that file."
    )
    assert rejected.errors == []


@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        (
            b"",
            "The file is empty: export the subscribers as a CSV file whose first row names "
            "the columns (username,name,phone).",
        ),
        (
            b"\xef\xbb\xbf \r\n",
            "The file is empty: export the subscribers as a CSV file whose first row names "
            "the columns (username,name,phone).",
        ),
        (b"username,name,phone\n", "The file has a header but no subscribers under it."),
        (
            b"PK\x03\x04\x14\x00\x06\x00",
            "This is an Excel workbook, not a CSV file. "
            "In your spreadsheet choose Save As > 'CSV UTF-8' and import that file.",
        ),
        (
            "username,name,phone\n".encode("utf-16"),
            "The file is saved as UTF-16, not UTF-8. "
            "In your spreadsheet choose Save As > 'CSV UTF-8' and import that file.",
        ),
        (
            b"username,name,phone\x00\x00\x01",
            "This is not a CSV text file. "
            "In your spreadsheet choose Save As > 'CSV UTF-8' and import that file.",
        ),
        (
            b'username,name,phone\nkarim,"Karim" Khan,01711-000001\n',
            "Line 2 of the file is not valid CSV (',' expected after '\"'). Check its quotes, "
            "or save the file again from your spreadsheet. "
            "In your spreadsheet choose Save As > 'CSV UTF-8' and import that file.",
        ),
    ],
    ids=["empty", "blank", "header-only", "xlsx", "utf-16", "binary", "bad-quotes"],
)
async def test_a_file_that_is_not_csv_or_is_empty_is_refused(
    admin: Staff, data: bytes, sentence: str
) -> None:
    rejected = await rejection_of_subscribers(admin, data)

    assert (str(rejected), rejected.errors) == (sentence, [])


async def test_a_file_over_five_megabytes_is_refused(admin: Staff) -> None:
    data = csv_bytes(SUBSCRIBERS_HEADER) + b"x" * MAX_BYTES

    rejected = await rejection_of_subscribers(admin, data)

    assert str(rejected) == (
        "The file is 5.0 MB; an import takes at most 5 MB. Split it into smaller files."
    )


async def test_a_file_over_fifty_thousand_rows_is_refused(admin: Staff) -> None:
    rows = [f"user{n},Name {n},01711-{n:06d}" for n in range(MAX_ROWS + 1)]

    rejected = await rejection_of_subscribers(admin, csv_bytes(SUBSCRIBERS_HEADER, *rows))

    assert str(rejected) == (
        "The file has more than 50,000 rows; split it into files of at most 50,000 rows each."
    )
    assert await Subscriber.all().count() == 0


# --- who may import, and which tenant's rows they see -------------------------------------


@pytest.mark.parametrize("role", [Role.COLLECTOR, Role.RESELLER])
async def test_only_an_admin_may_import(tenant: Tenant, role: Role) -> None:
    staff = await make_staff(tenant, role, permissions=["collectors.assign"])
    await make_subscriber(tenant, username="rahim")

    with pytest.raises(PermissionDenied) as subscribers:
        await import_subscribers(staff, csv_bytes(SUBSCRIBERS_HEADER, "karim,Karim,"))
    with pytest.raises(PermissionDenied) as invoices:
        await import_invoices(staff, csv_bytes(INVOICES_HEADER, "INV-1,rahim,100"))

    assert (str(subscribers.value), str(invoices.value)) == (
        "Only an admin can import subscribers.",
        "Only an admin can import invoices.",
    )
    assert await Subscriber.all().count() == 1
    assert await Invoice.all().count() == 0


async def test_another_tenants_usernames_are_not_visible(tenant: Tenant, admin: Staff) -> None:
    other = await make_tenant()
    await make_subscriber(other, username="rahim")
    outsider = await make_subscriber(other, username="outsider")
    await make_invoice(outsider, number="INV-2026-0001")
    await Plan.create(tenant=other, name="Gold", price_minor=100_000)

    report = await import_subscribers(admin, csv_bytes(SUBSCRIBERS_HEADER, "rahim,Rahim,"))
    rejected = await rejection_of_invoices(
        admin,
        csv_bytes(INVOICES_HEADER, "INV-2026-0001,rahim,100", "INV-2026-0002,outsider,100"),
    )
    plan_rejected = await rejection_of_subscribers(
        admin, csv_bytes("username,name,phone,plan", "karim,Karim,,Gold")
    )

    assert report.created == 1
    assert rejected.errors == [
        (
            3,
            "username",
            "There is no subscriber with username 'outsider'; "
            "import the subscriber first or fix the username.",
        )
    ]
    assert plan_rejected.errors == [
        (
            2,
            "plan",
            "There is no plan named 'Gold' in your company; create it first or fix the name.",
        )
    ]
    assert await Invoice.filter(tenant=tenant).count() == 0
