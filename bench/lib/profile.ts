import fs from 'node:fs';
import path from 'node:path';

/** A V8 CPU profile (`node --cpu-prof`), as much of it as the summary reads. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  file: string;
  seconds: number;
  /** Share of samples by where the code lives (a package, Warren's src/, Node internals, GC, idle). */
  byArea: { area: string; share: number }[];
  /** Hottest functions by self time. */
  top: { fn: string; share: number }[];
}

function areaOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const src = /\/dist\/(src\/[^/]+(?:\/[^/]+)?)/.exec(url);
  if (src) return src[1]!.replace(/\.js$/, '');
  return path.basename(url);
}

export function summarizeProfile(file: string, topN = 12): ProfileSummary {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const total = prof.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0) || 1;
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const n of prof.nodes) {
    const hits = n.hitCount ?? 0;
    if (!hits) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + hits);
    const key = `${functionName || '(anonymous)'} ${url ? `${areaOf(url, functionName)}:${lineNumber + 1}` : ''}`.trim();
    fns.set(key, (fns.get(key) ?? 0) + hits);
  }
  const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return {
    file,
    seconds: (prof.endTime - prof.startTime) / 1e6,
    byArea: sorted(areas)
      .slice(0, topN)
      .map(([area, hits]) => ({ area, share: hits / total })),
    top: sorted(fns)
      .slice(0, topN)
      .map(([fn, hits]) => ({ fn, share: hits / total })),
  };
}

/** The profiles written into `dir` (one per process; V8 names them CPU.<date>.<time>.<pid>...). */
export function profilesIn(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => path.join(dir, f));
}
