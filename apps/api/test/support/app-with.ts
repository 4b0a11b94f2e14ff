import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { type Metric, register } from 'prom-client';
import { DataSource } from 'typeorm';
import { postgresTestUrl, uniqueSchema } from './services';
import { startTestAppWith, type TestApp } from './test-app';

export { startTestAppWith };

/** A database several apps can share: the env that points an app at it, and how to get rid of it. */
export interface TestDatabase {
  readonly kind: 'sqlite' | 'postgres';
  readonly env: Readonly<Record<string, string>>;
  /** The schema holding the tables on PostgreSQL (undefined on SQLite). */
  readonly schema: string | undefined;
  drop(): Promise<void>;
}

/** A database kind the suites run on: SQLite always, PostgreSQL when DATABASE_URL_TEST is set. */
export interface DatabaseTarget {
  readonly name: string;
  create(): TestDatabase;
}

const sqliteTarget: DatabaseTarget = {
  name: 'SQLite',
  create() {
    const dir = mkdtempSync(join(tmpdir(), 'vla-e2e-shared-'));
    return {
      kind: 'sqlite',
      env: { DATABASE_URL: `sqlite:${join(dir, 'platform.sqlite')}` },
      schema: undefined,
      drop: () => Promise.resolve(rmSync(dir, { recursive: true, force: true })),
    };
  },
};

function postgresTarget(url: string): DatabaseTarget {
  return {
    name: 'PostgreSQL',
    create() {
      const schema = uniqueSchema('auth');
      return {
        kind: 'postgres',
        env: { DATABASE_URL: url, DATABASE_SCHEMA: schema },
        schema,
        // A client of its own: the apps' DataSources may be closed (or destroyed by a test) by now.
        async drop() {
          const client = new pg.Client({ connectionString: url });
          await client.connect();
          try {
            await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          } finally {
            await client.end();
          }
        },
      };
    },
  };
}

/** SQLite, plus PostgreSQL when DATABASE_URL_TEST is set: for `describe.each`. */
export function databaseTargets(): DatabaseTarget[] {
  const url = postgresTestUrl();
  return url === undefined ? [sqliteTarget] : [sqliteTarget, postgresTarget(url)];
}

/**
 * Runs `fn` with a second app beside the one under test (same process, e.g. on the same database), then
 * closes it and puts the first app's metrics back into the process-wide registry, which starting the
 * second app cleared: the first app's scrapes stay whole afterwards.
 */
export async function alongside<T>(
  env: Record<string, string>,
  fn: (second: TestApp) => Promise<T>,
): Promise<T> {
  // Typed as plain descriptions, but these are the registered metric objects themselves.
  const saved = register.getMetricsAsArray() as unknown as Metric[];
  const second = await startTestAppWith(env);
  try {
    return await fn(second);
  } finally {
    await second.close();
    register.clear();
    for (const metric of saved) register.registerMetric(metric);
  }
}

/** Every value of every row of every table of the app's database, as strings. */
export async function dumpDatabase(
  t: TestApp,
  db: Pick<TestDatabase, 'kind' | 'schema'>,
): Promise<Record<string, string[][]>> {
  const ds = t.app.get(DataSource);
  const tables: { name: string }[] =
    db.kind === 'sqlite'
      ? await ds.query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
      : await ds.query(
          `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'`,
          [db.schema],
        );
  const dump: Record<string, string[][]> = {};
  for (const { name } of tables) {
    const qualified = db.schema === undefined ? `"${name}"` : `"${db.schema}"."${name}"`;
    const rows: Record<string, unknown>[] = await ds.query(`SELECT * FROM ${qualified}`);
    dump[name] = rows.map((row) => Object.values(row).map(asText));
  }
  return dump;
}

function asText(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return `${value.toString('latin1')} ${value.toString('hex')}`;
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}

/** `SELECT columns FROM table WHERE column = value` on either database (schema-qualified on PostgreSQL). */
export function selectWhere(
  t: TestApp,
  db: Pick<TestDatabase, 'kind' | 'schema'>,
  table: string,
  columns: readonly string[],
  where: { readonly column: string; readonly value: unknown },
): Promise<Record<string, unknown>[]> {
  const qualified = db.schema === undefined ? `"${table}"` : `"${db.schema}"."${table}"`;
  const placeholder = db.kind === 'sqlite' ? '?' : '$1';
  return t.app
    .get(DataSource)
    .query(
      `SELECT ${columns.map((c) => `"${c}"`).join(', ')} FROM ${qualified} WHERE "${where.column}" = ${placeholder}`,
      [where.value],
    );
}
