#!/usr/bin/env bash
# `npm start`: install, build, then run the whole system (topology, migrations,
# API, every worker and the operator console) on the embedded SQLite default, against RabbitMQ on localhost.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
bash scripts/broker-check.sh
exec node --enable-source-maps dist/src/cli.js start
