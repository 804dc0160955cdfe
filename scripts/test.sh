#!/usr/bin/env bash
# Runs the suite on SQLite, then again on PostgreSQL.
#
# PostgreSQL is required when CI=1 (started here if it is down); on a laptop without one the
# second run is skipped with a loud line. pytest's exit code 5 ("no tests collected") is a
# failure: an empty selection must never pass.
set -uo pipefail
PYTHON=${PYTHON:-python3}
PG_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}

run_pytest() {
  "$PYTHON" -m pytest "$@"
  local rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: treating as a failure" >&2
    return 1
  fi
  return "$rc"
}

pg_up() {
  "$PYTHON" - "$PG_URL" <<'PY'
import asyncio, sys
import asyncpg
async def main(url):
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1), timeout=3)
    await conn.close()
try:
    asyncio.run(main(sys.argv[1]))
except Exception as exc:
    print(f"PostgreSQL not reachable: {exc}", file=sys.stderr)
    sys.exit(1)
PY
}

echo "== tests on SQLite"
COLLECTBOT_TEST_DB=sqlite run_pytest -q -p no:cacheprovider || exit 1

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    for v in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || true
    done
    sleep 2
  fi
fi
if pg_up; then
  echo "== tests on PostgreSQL"
  COLLECTBOT_TEST_DB=postgres TEST_POSTGRES_URL=$PG_URL run_pytest -q -p no:cacheprovider || exit 1
elif [ "${CI:-}" = "1" ]; then
  echo "PostgreSQL must be reachable in CI ($PG_URL)" >&2
  exit 1
else
  echo "!! PostgreSQL is not reachable at $PG_URL: the PostgreSQL run was SKIPPED" >&2
fi
