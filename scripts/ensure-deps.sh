#!/usr/bin/env bash
# Installs npm dependencies when they are missing or older than the lockfile, then builds.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  echo "warren: installing npm dependencies (sqlite3 compiles from source where no prebuilt binary is reachable; allow ~90 s)"
  npm ci --no-audit --no-fund
fi
npm run --silent build
