/**
 * @file What this build of Warren is: the version of package.json and the
 * commit it was built from, for `warren --version` and `warren_build_info`.
 *
 * The commit comes from the environment (`WARREN_COMMIT`), which the image
 * sets from a build argument (`docker build --build-arg
 * WARREN_COMMIT=$(git rev-parse HEAD)`): the build context holds no `.git`
 * (see .dockerignore), so a file written at build time would need the commit
 * handed in all the same, and a file in dist/ goes stale the moment the
 * checkout moves without a rebuild. A process that was told nothing says
 * `unknown` rather than guess.
 */
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from './config';

export interface BuildInfo {
  version: string;
  commit: string;
}

let version: string | undefined;

/** The version of the package.json at the project root (read once; the image copies it beside dist/). */
function packageVersion(): string {
  if (version === undefined) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version?: unknown };
      version = typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      version = 'unknown';
    }
  }
  return version;
}

/** A commit is what `git rev-parse` prints (full or abbreviated hex); anything else is not trusted as one. */
const COMMIT = /^[0-9a-f]{7,64}$/i;

export function buildInfo(env: NodeJS.ProcessEnv = process.env): BuildInfo {
  const commit = env.WARREN_COMMIT?.trim() ?? '';
  return { version: packageVersion(), commit: COMMIT.test(commit) ? commit.toLowerCase() : 'unknown' };
}

/** What `warren --version` prints: `warren 0.1.0 (commit 0123abc…)`, or `(commit unknown)`. */
export function versionLine(build: BuildInfo = buildInfo()): string {
  return `warren ${build.version} (commit ${build.commit})`;
}
