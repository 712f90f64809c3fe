/** @file What the console's app and routes are built from: its dependencies and the state of one request. */
import type { RouterContext } from '@koa/router';
import type { Knex } from 'knex';
import type { ApiState } from '../api/context';
import type { Config } from '../config';
import type { Logger } from '../log';
import type { ActionDeps } from './actions';
import type { IndexerStatus } from './indexer';
import type { Operator } from './operatorTokens';

export interface ConsoleDeps {
  /** The console's own database. */
  db: Knex;
  config: Config;
  log: Logger;
  /** Epoch ms. */
  now?: () => number;
  /** The indexer running in this process, when one does (readiness). */
  indexer?: { status(): IndexerStatus };
  /** The broker URL replays and discards take from the DLQs with (the console's own user); without one they answer 503. */
  amqpUrl?: string;
  /** Tests only: a fake broker's DLQs in place of src/ops/dlq.ts. */
  dlq?: ActionDeps['dlq'];
}

export type ConsoleAppDeps = ConsoleDeps & { now: () => number };

/** The API's request state (request id, parsed body), and the operator the request's token stands for. */
export interface ConsoleState extends ApiState {
  operator?: Operator;
  /** The pages' sign-in session (its cookie's secret), when the request has one. */
  session?: string;
  /** A page's form fields. */
  form?: Record<string, string>;
}

export type ConsoleContext = RouterContext<ConsoleState>;

/** The operator of a request behind requireOperatorToken. */
export function operatorOf(ctx: { state: ConsoleState }): Operator {
  const op = ctx.state.operator;
  if (!op) throw new Error('operatorOf outside requireOperatorToken');
  return op;
}
