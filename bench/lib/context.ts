import type { Deployment } from './deployment';
import type { BenchSystem } from './system';

/** How big each scenario is; every load is bounded by these in count and time. */
export interface Sizes {
  /** Messages pre-filled for the relay, consume and scale scenarios. */
  messages: number;
  /** Unconfirmed publishes the raw publisher keeps in flight. */
  outstanding: number;
  connections: number;
  ingestSeconds: number;
  warmupSeconds: number;
  e2eRate: number;
  e2eSeconds: number;
  quietRate: number;
  quietSeconds: number;
  outageRate: number;
  outageSeconds: number;
  /** How long to wait for a backlog to drain before reporting what is left. */
  drainSeconds: number;
  /** Each measured round of the protocols scenario (REST and gRPC in turn). */
  protocolSeconds: number;
}

export interface BenchContext {
  sys: BenchSystem;
  sizes: Sizes;
  /** Warren's default prefetch (config/default.json), used for the raw ceiling too. */
  prefetch: number;
  /** `warren start` on a fresh SQLite directory, started on first use and shared by ingest, quiet, end-to-end and memory. */
  deployment(): Promise<Deployment>;
  closeDeployment(): Promise<void>;
  /**
   * The previous build's `warren start` on a SQLite directory of its own,
   * when BENCH_BASELINE names one (undefined otherwise): quiet and end to end
   * run it beside the shared deployment; end to end closes it.
   */
  baselineDeployment(): Promise<{ dep: Deployment; label: string } | undefined>;
  closeBaselineDeployment(): Promise<void>;
  /** Figures one scenario leaves for another (one-worker consume rates for scale, rates for end to end). */
  shared: {
    consumeRate?: Partial<Record<'sqlite' | 'postgres', number>>;
    ingestRate?: number;
    e2eRss?: { api: number; worker: number };
  };
  log(line: string): void;
}
