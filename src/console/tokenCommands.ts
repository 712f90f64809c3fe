/** @file `warren console token create|revoke`: operator tokens, written straight into the console's database. */
import type { Config } from '../config';
import { openDatabase } from '../db/knex';
import { OperatorError } from '../ops/operatorError';
import { createOperatorToken, OperatorTokenError, revokeOperatorToken, type OperatorRole } from './operatorTokens';
import { OPERATOR_TOKENS_TABLE } from '../db/migrations/console';

type Print = (text: string) => void;

async function withConsoleDb<T>(config: Config, run: (db: ReturnType<typeof openDatabase>) => Promise<T>): Promise<T> {
  const db = openDatabase(config, 'console');
  try {
    if (!(await db.schema.hasTable(OPERATOR_TOKENS_TABLE))) throw new OperatorError("the console's database has no tables yet: run warren migrate first");
    return await run(db);
  } finally {
    await db.destroy();
  }
}

/** Prints the new token once (stdout, alone on its line, for scripts) and what it is (stderr). */
export async function consoleTokenCreate(
  config: Config,
  opts: { role: OperatorRole; name?: string },
  print: Print = console.log,
  note: Print = (line) => process.stderr.write(`${line}\n`),
): Promise<void> {
  await withConsoleDb(config, async (db) => {
    try {
      const created = await createOperatorToken(db, opts.role, opts.name, Date.now());
      note(`created ${created.role} token ${created.name} (id ${created.id}); it is shown once, keep it now`);
      print(created.token);
    } catch (err) {
      if (err instanceof OperatorTokenError) throw new OperatorError(`warren console token create: ${err.message}`, 2);
      throw err;
    }
  });
}

export async function consoleTokenRevoke(config: Config, nameOrId: string, print: Print = console.log): Promise<void> {
  await withConsoleDb(config, async (db) => {
    if (!(await revokeOperatorToken(db, nameOrId, Date.now())))
      throw new OperatorError(`warren console token revoke: no active token named or with id ${nameOrId}`);
    print(`revoked ${nameOrId}`);
  });
}
