#!/usr/bin/env bash
# `npm test`: install, build, then unit tests, and the integration suite
# against the real RabbitMQ on SQLite and (when reachable) PostgreSQL.
# Each integration suite runs in a vhost and database of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
bash scripts/broker-check.sh

mocha() { npx mocha --config .mocharc.json "$@"; }

echo "== [${SECONDS}s] unit tests"
WARREN_TEST_PG_URL=${WARREN_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test} mocha 'dist/test/unit/**/*.test.js'

echo "== [${SECONDS}s] integration tests on SQLite"
WARREN_TEST_DB=sqlite mocha --timeout 120000 'dist/test/integration/**/*.test.js'

# The operator console in headless Chromium (.ci/run installs it): once, on
# SQLite; the console's database code is covered on both by the suites above.
if command -v chromium >/dev/null 2>&1 || [ -n "${CHROMIUM_PATH:-}" ]; then
  echo "== [${SECONDS}s] browser tests (headless Chromium) on SQLite"
  WARREN_TEST_DB=sqlite mocha --timeout 180000 'dist/test/browser/**/*.test.js'
elif [ "${WARREN_REQUIRE_CHROMIUM:-}" = 1 ]; then
  echo "warren: the console's browser tests need Chromium and WARREN_REQUIRE_CHROMIUM=1: apt-get install chromium (Debian), or set CHROMIUM_PATH" >&2
  exit 1
else
  echo "== [${SECONDS}s] no chromium on PATH: skipping the console's browser tests (apt-get install chromium to run them)"
fi

# The other SQLite drivers (database.sqliteDriver): the passes above run the
# default, `auto` (the API on better-sqlite3, its writer on a thread of its
# own; node-sqlite3 for the rest); better-sqlite3 in-thread runs the database layer,
# the outbox store, the API in-process and the end-to-end flow, so it stays working.
echo "== [${SECONDS}s] unit tests and the flow on SQLite with better-sqlite3"
WARREN_DATABASE_SQLITE_DRIVER=better-sqlite3 mocha 'dist/test/unit/db/**/*.test.js' 'dist/test/unit/outbox/store.test.js' 'dist/test/unit/api/**/*.test.js'
WARREN_TEST_DB=sqlite WARREN_DATABASE_SQLITE_DRIVER=better-sqlite3 mocha --timeout 120000 dist/test/integration/flow.test.js dist/test/integration/hostile-api.test.js

pg_url=${WARREN_TEST_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
if node -e "const {Client}=require('pg');const c=new Client('$pg_url');c.connect().then(()=>c.end()).then(()=>process.exit(0),()=>process.exit(1))"; then
  # Through PgBouncer in transaction mode (scripts/pgbouncer.sh): Warren
  # keeps nothing on a PostgreSQL session, so the pooled pass covers what a
  # direct one would, and more; the unit tests above reach PostgreSQL directly.
  # WARREN_TEST_PG_DIRECT=1 runs the pass on $pg_url itself.
  have_pgbouncer=
  if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then have_pgbouncer=1; fi
  if [ "${WARREN_TEST_PG_DIRECT:-}" != 1 ] && [ -n "$have_pgbouncer" ]; then
    if ! bash scripts/pgbouncer.sh status >/dev/null 2>&1; then
      bash scripts/pgbouncer.sh start
      trap 'bash scripts/pgbouncer.sh stop' EXIT
    fi
    echo "== [${SECONDS}s] integration tests on PostgreSQL through PgBouncer (transaction pooling)"
    WARREN_TEST_DB=postgres WARREN_TEST_PG_URL="$(bash scripts/pgbouncer.sh url)" mocha --timeout 120000 'dist/test/integration/**/*.test.js'
  elif [ "${WARREN_TEST_PG_DIRECT:-}" != 1 ] && [ "${WARREN_REQUIRE_PGBOUNCER:-}" = 1 ]; then
    echo "warren: pgbouncer is not installed and WARREN_REQUIRE_PGBOUNCER=1" >&2
    exit 1
  else
    echo "== [${SECONDS}s] integration tests on PostgreSQL, directly"
    WARREN_TEST_DB=postgres WARREN_TEST_PG_URL="$pg_url" mocha --timeout 120000 'dist/test/integration/**/*.test.js'
  fi
elif [ "${WARREN_REQUIRE_POSTGRES:-}" = 1 ]; then
  echo "warren: PostgreSQL is not reachable at $pg_url and WARREN_REQUIRE_POSTGRES=1" >&2
  exit 1
else
  echo "== [${SECONDS}s] PostgreSQL not reachable at $pg_url: skipping the PostgreSQL integration pass"
fi
echo "== [${SECONDS}s] npm test done"
