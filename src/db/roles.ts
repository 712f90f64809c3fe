import type { Knex } from 'knex';
import type { Config } from '../config';

/**
 * A service that owns tables: the API, or a worker by the database its
 * declaration names (src/services.ts lists them all). With SQLite each has
 * its own file under data/; with PostgreSQL its own schema.
 */
export type Service = string;

/**
 * One PostgreSQL role per service (database.roles.*): the role owns its
 * service's schema and every table in it, so no service's credentials can
 * read or write another's tables, and the API's role is given read access to
 * the read models it serves (READ_MODELS: the analytics and notifications schemas), and
 * nothing else. A role is in use when its password is configured; with none,
 * every process connects with database.url as it always has.
 */

/**
 * The services whose read models the API serves (read-only): the schemas
 * src/db/repositories/readModels.ts queries, which the API's connection
 * attaches and its role may read. The API's list, not the workers': a worker
 * whose tables the API does not read stays off it.
 */
export const READ_MODELS: readonly Service[] = ['analytics', 'notifications'];

/** The role a service connects and migrates as, or undefined when it has none (database.url's user). */
export function serviceRole(config: Config, service: Service): string | undefined {
  if (config.database.client !== 'postgres') return undefined;
  const role = config.database.roles[service];
  return role.password ? role.username : undefined;
}

export function usesServiceRoles(config: Config): boolean {
  return (Object.keys(config.database.roles) as Service[]).some((s) => serviceRole(config, s) !== undefined);
}

/** database.url with the service's own role and password in place of the owner's, when it has a role. */
export function serviceDatabaseUrl(config: Config, service: Service): string {
  if (!serviceRole(config, service)) return config.database.url;
  const url = new URL(config.database.url);
  url.username = encodeURIComponent(config.database.roles[service].username);
  url.password = encodeURIComponent(config.database.roles[service].password);
  return url.toString();
}

/**
 * A utility statement with a literal in it (CREATE ROLE ... PASSWORD takes no
 * bind parameter): the server quotes the values itself with format(), so a
 * password holding quotes or backslashes is taken as written.
 */
async function formatted(db: Knex, template: string, ...values: string[]): Promise<string> {
  const placeholders = values.map(() => '?::text').join(', ');
  const res = (await db.raw(`SELECT format(?, ${placeholders}) AS sql`, [template, ...values])) as { rows: { sql: string }[] };
  return res.rows[0]!.sql;
}

/**
 * Creates each configured role that does not exist yet (LOGIN, no other
 * attribute) and sets its password from configuration, so a changed password
 * takes effect at the next migrate; makes the connecting owner a member, so
 * it can hand the role its schema and act as it while migrating.
 */
export async function ensureServiceRoles(owner: Knex, config: Config): Promise<void> {
  const database = ((await owner.raw('SELECT current_database() AS name')) as { rows: { name: string }[] }).rows[0]!.name;
  for (const service of Object.keys(config.database.roles) as Service[]) {
    const role = serviceRole(config, service);
    if (!role) continue;
    const { password } = config.database.roles[service];
    const exists = ((await owner.raw('SELECT 1 FROM pg_roles WHERE rolname = ?', [role])) as { rows: unknown[] }).rows.length > 0;
    // Two processes migrating at once may both find it missing: the loser's CREATE fails, and its next run finds the role.
    await owner.raw(await formatted(owner, exists ? 'ALTER ROLE %I WITH LOGIN PASSWORD %L' : 'CREATE ROLE %I WITH LOGIN PASSWORD %L', role, password));
    const member = ((await owner.raw("SELECT pg_has_role(current_user, ?, 'MEMBER') AS member", [role])) as { rows: { member: boolean }[] }).rows[0]!.member;
    if (!member) await owner.raw('GRANT ?? TO CURRENT_USER', [role]);
    await owner.raw('GRANT CONNECT ON DATABASE ?? TO ??', [database, role]);
  }
}

/**
 * Gives the service's schema, and everything already in it, to its role:
 * created owned by the role on a fresh database, handed over from the owner
 * on one that was migrated before roles were configured.
 */
export async function handSchemaToRole(owner: Knex, schema: Service, role: string): Promise<void> {
  await owner.raw('CREATE SCHEMA IF NOT EXISTS ?? AUTHORIZATION ??', [schema, role]);
  await owner.raw('ALTER SCHEMA ?? OWNER TO ??', [schema, role]);
  // Tables and views (their indexes and column sequences follow), and sequences no column owns.
  const res = (await owner.raw(
    `SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ? AND pg_get_userbyid(c.relowner) <> ?
        AND (c.relkind IN ('r', 'p', 'v', 'm', 'f')
             OR (c.relkind = 'S' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))))`,
    [schema, role],
  )) as { rows: { relname: string; relkind: string }[] };
  for (const { relname, relkind } of res.rows) {
    const kind = relkind === 'S' ? 'SEQUENCE' : relkind === 'v' ? 'VIEW' : relkind === 'm' ? 'MATERIALIZED VIEW' : 'TABLE';
    await owner.raw(`ALTER ${kind} ?? OWNER TO ??`, [`${schema}.${relname}`, role]);
  }
}

/**
 * After a read model's migrations, on its own connection (as its role, or
 * as the owner when it has none): the API's role may use the schema and
 * SELECT its tables, those of later migrations included (default
 * privileges of whoever creates them), and nothing more.
 */
export async function grantReadModelToApi(db: Knex, config: Config, service: Service): Promise<void> {
  const api = serviceRole(config, 'api');
  if (!api || !READ_MODELS.includes(service)) return;
  await db.raw('GRANT USAGE ON SCHEMA ?? TO ??', [service, api]);
  await db.raw('GRANT SELECT ON ALL TABLES IN SCHEMA ?? TO ??', [service, api]);
  await db.raw('ALTER DEFAULT PRIVILEGES IN SCHEMA ?? GRANT SELECT ON TABLES TO ??', [service, api]);
}
