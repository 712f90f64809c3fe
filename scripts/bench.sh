#!/usr/bin/env bash
# `npm run bench`: install and build, check the services it measures against,
# then run every benchmark scenario (bench/run.ts) and write docs/BENCHMARKS.md.
# Extra arguments go to the runner (e.g. `npm run bench -- --only consume`).
#
#   --baseline <rev>   also run the previous build <rev> (a commit, tag or
#                      branch) beside this one where a scenario measures a
#                      target, so each figure stands beside its predecessor's
#                      from the same run. The build is kept in .bench-baseline/<sha>.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = --baseline ]; then
    rev="${2:?--baseline needs a revision}"
    sha="$(git rev-parse --verify "$rev^{commit}")" || { echo "warren bench: --baseline $rev is not a commit of this repository" >&2; exit 1; }
    dir="$PWD/.bench-baseline/$sha"
    if [ ! -f "$dir/dist/src/cli.js" ]; then
      echo "warren bench: building the baseline $rev ($sha) in $dir"
      rm -rf "$dir" && mkdir -p "$dir"
      git archive "$sha" | tar -x -C "$dir"
      if cmp -s "$dir/package-lock.json" package-lock.json && [ -d node_modules ]; then
        cp -a node_modules "$dir/" # the same lock file: the same packages, native builds included
      else
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
      fi
      (cd "$dir" && npm run build --silent)
    fi
    export BENCH_BASELINE="$dir" BENCH_BASELINE_LABEL="${sha:0:7}"
    shift 2
  else
    args+=("$1")
    shift
  fi
done
set -- "${args[@]+"${args[@]}"}"
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
