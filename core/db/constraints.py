"""Row rules Tortoise cannot declare, held by the database itself.

Tortoise's schema generator emits no CHECK constraints, so these are added by the
migrations (and by the test fixtures, after `generate_schemas`). PostgreSQL gets CHECK
constraints; SQLite cannot add one to an existing table, so it gets triggers that abort the
statement. Keep the two lists saying the same thing.
"""

from __future__ import annotations

POSTGRES = [
    "ALTER TABLE invoice ADD CONSTRAINT ck_invoice_amount_positive CHECK (amount_minor > 0)",
    "ALTER TABLE invoice ADD CONSTRAINT ck_invoice_paid_within_amount"
    " CHECK (paid_minor >= 0 AND paid_minor <= amount_minor)",
    "ALTER TABLE payment ADD CONSTRAINT ck_payment_amount_positive CHECK (amount_minor > 0)",
    "ALTER TABLE staff ADD CONSTRAINT ck_staff_commission_rate"
    " CHECK (commission_bp >= 0 AND commission_bp <= 10000)",
]

_SQLITE_RULES = {
    "invoice": "NEW.amount_minor <= 0 OR NEW.paid_minor < 0 OR NEW.paid_minor > NEW.amount_minor",
    "payment": "NEW.amount_minor <= 0",
    "staff": "NEW.commission_bp < 0 OR NEW.commission_bp > 10000",
}

SQLITE = [
    f"CREATE TRIGGER ck_{table}_{event.lower()} BEFORE {event} ON {table} "
    f"WHEN {rule} BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: {table}'); END"
    for table, rule in _SQLITE_RULES.items()
    for event in ("INSERT", "UPDATE")
]


def statements(dialect: str) -> list[str]:
    return POSTGRES if dialect == "postgres" else SQLITE
