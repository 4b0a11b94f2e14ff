import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import pg from 'pg';
import type { DataSourceOptions } from 'typeorm';
import type { DatabaseConfig } from '../config';
import { ENTITIES } from './entities';
import { MIGRATIONS } from './migrations';

/** OID of PostgreSQL's `timestamp without time zone`. */
const PG_TIMESTAMP_OID = 1114;

let pgUtcConfigured = false;
/**
 * Timestamps are UTC on both databases whatever the process time zone: pg writes Dates as UTC and reads
 * `timestamp` columns as UTC (process-wide settings of the pg module, applied once).
 */
function configurePgUtc(): void {
  if (pgUtcConfigured) return;
  pg.defaults.parseInputDatesAsUTC = true;
  pg.types.setTypeParser(PG_TIMESTAMP_OID, (value: string) => new Date(`${value.replace(' ', 'T')}Z`));
  pgUtcConfigured = true;
}

/**
 * TypeORM options for the configured database. Schema changes come only from migrations (`synchronize` is
 * never on); the caller runs them at start. The SQLite file and its folder are created when missing.
 */
export function buildDataSourceOptions(config: DatabaseConfig): DataSourceOptions {
  const common = { entities: ENTITIES, migrations: MIGRATIONS, synchronize: false, logging: false } as const;
  if (config.type === 'sqlite') {
    if (config.path !== ':memory:') mkdirSync(dirname(config.path), { recursive: true });
    return {
      ...common,
      type: 'better-sqlite3',
      database: config.path,
      // WAL lets readers proceed while a writer commits; busy timeout instead of SQLITE_BUSY errors.
      enableWAL: config.path !== ':memory:',
      prepareDatabase: (db: { pragma(source: string): unknown }) => {
        db.pragma('busy_timeout = 5000');
        db.pragma('foreign_keys = ON');
      },
    };
  }
  configurePgUtc();
  return {
    ...common,
    type: 'postgres',
    url: config.url,
    schema: config.schema,
    applicationName: 'vla-platform',
    connectTimeoutMS: config.connectTimeoutMs,
    poolSize: config.poolSize,
    extra: {
      max: config.poolSize,
      connectionTimeoutMillis: config.connectTimeoutMs,
      // CURRENT_TIMESTAMP defaults must be UTC too, whatever the server's or role's TimeZone setting.
      options: '-c TimeZone=UTC',
    },
  };
}
