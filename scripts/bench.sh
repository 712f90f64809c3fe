#!/usr/bin/env bash
# `npm run bench`: install and build, check the services it measures against,
# then run every benchmark scenario (bench/run.ts) and write docs/BENCHMARKS.md.
# Extra arguments go to the runner (e.g. `npm run bench -- --only consume`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
bash scripts/broker-check.sh
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "warren bench: Redis is not reachable on 127.0.0.1:6379 (the BullMQ peer needs it); start it with \`redis-server --daemonize yes\`" >&2
  exit 1
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  echo "warren bench: PostgreSQL is not reachable on 127.0.0.1:5432 (consume and scale need it); start it with \`service postgresql start\`" >&2
  exit 1
fi
exec node --enable-source-maps dist/bench/run.js "$@"
