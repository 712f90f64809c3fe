#!/usr/bin/env bash
# `npm run test:faults`: the fault suite. Real processes under load against the
# real broker; scenarios stop and restart RabbitMQ and raise its alarms, and
# always restore it. Writes docs/RELIABILITY.md with the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
bash scripts/broker-check.sh
WARREN_TEST_DB=${WARREN_TEST_DB:-sqlite} npx mocha --config .mocharc.json --timeout 300000 \
  --file dist/test/faults/support/rootHooks.js 'dist/test/faults/*.test.js'
