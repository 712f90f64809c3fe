#!/usr/bin/env bash
# `npm run test:faults`: the fault suite. Real processes under load against the
# real broker; scenarios stop and restart RabbitMQ and raise its alarms, and
# always restore it. Writes docs/RELIABILITY.md with the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
bash scripts/broker-check.sh
echo "== [${SECONDS}s] the fault suite on ${WARREN_TEST_DB:-sqlite}"
WARREN_TEST_DB=${WARREN_TEST_DB:-sqlite} npx mocha --config .mocharc.json --timeout 300000 \
  --file dist/test/faults/support/rootHooks.js --ignore 'dist/test/faults/cluster.test.js' 'dist/test/faults/*.test.js'
# A node of a three-node cluster of the suite's own (ports 5701-5703) lost under
# load from two API processes: on PostgreSQL, whatever the database above.
echo "== [${SECONDS}s] the cluster scenarios on PostgreSQL"
WARREN_TEST_DB=postgres npx mocha --config .mocharc.json --timeout 900000 dist/test/faults/cluster.test.js
echo "== [${SECONDS}s] fault suite done"
