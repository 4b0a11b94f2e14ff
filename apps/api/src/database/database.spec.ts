import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import type { DatabaseConfig } from '../config';
import { buildDataSourceOptions } from './database-options';
import { ApiKeyEntity, PlatformSettingEntity, TenantEntity } from './entities';
import { openDataSource } from './open-data-source';
import { PlatformSettingsRepository } from './platform-settings.repository';

/** Connecting to PostgreSQL may take up to its connect timeout; no test here waits on a clock. */
jest.setTimeout(30_000);

const DAY_MS = 24 * 60 * 60 * 1000;
/** Every migration, in the order it must be recorded. */
const MIGRATIONS_RECORDED = [
  { timestamp: 1764000000000, name: 'CreatePlatformSettings1764000000000' },
  { timestamp: 1764100000000, name: 'CreateTenantsAndApiKeys1764100000000' },
  { timestamp: 1764200000000, name: 'CreateUsageRecords1764200000000' },
  { timestamp: 1764300000000, name: 'AddTenantTokensPerMinute1764300000000' },
];

/** What differs between the two databases: where the tables live and how to read raw values. */
interface Target {
  config(): DatabaseConfig;
  /** Names of the tables in the platform's schema. */
  tables(ds: DataSource): Promise<string[]>;
  /** Rows of TypeORM's migrations table. */
  migrations(ds: DataSource): Promise<{ timestamp: number; name: string }[]>;
  /** `updated_at` of `key` as the database stores it, `YYYY-MM-DD HH:MM:SS.mmm`. */
  storedUpdatedAt(ds: DataSource, key: string): Promise<string>;
  /** Names of the columns of `table`. */
  columns(ds: DataSource, table: string): Promise<string[]>;
}

interface NameRow {
  name: string;
}
interface TextRow {
  t: string;
}
/** `timestamp` is a bigint column: pg returns it as a string, SQLite as a number. */
interface MigrationRow {
  timestamp: number | string;
  name: string;
}
const toMigrations = (rows: MigrationRow[]) =>
  rows.map((r) => ({ timestamp: Number(r.timestamp), name: r.name }));

async function open(target: Target): Promise<DataSource> {
  return openDataSource(buildDataSourceOptions(target.config()));
}

/** The same behaviour on every database: migrations as in production, then rows read back. */
function databaseContract(target: Target): void {
  let ds: DataSource | undefined;
  const current = (): DataSource => {
    if (ds === undefined) throw new Error('the database was not opened by the first test');
    return ds;
  };

  afterAll(async () => {
    if (ds?.isInitialized) await ds.destroy();
  });

  it('runs the migrations: the tables exist and every migration is recorded', async () => {
    ds = await open(target);
    expect(await target.tables(ds)).toEqual(
      expect.arrayContaining(['migrations', 'platform_settings', 'tenants', 'api_keys', 'usage_records']),
    );
    expect(await target.migrations(ds)).toEqual(MIGRATIONS_RECORDED);
  });

  it('stores, reads back and upserts a setting through a Repository', async () => {
    const repo = current().getRepository(PlatformSettingEntity);
    await repo.insert({ key: 'installed_at', value: '2026-01-01T00:00:00.000Z' });

    const inserted = await repo.findOneByOrFail({ key: 'installed_at' });
    expect(inserted.value).toBe('2026-01-01T00:00:00.000Z');
    expect(inserted.updatedAt).toBeInstanceOf(Date);
    // A generous window: catches a zone or unit mix-up (hours, seconds vs ms), not a slow machine.
    expect(Math.abs(inserted.updatedAt.getTime() - Date.now())).toBeLessThan(DAY_MS);

    await repo.upsert({ key: 'installed_at', value: 'changed' }, ['key']);
    const rows = await repo.find();
    expect(rows.map(({ key, value }) => ({ key, value }))).toEqual([
      { key: 'installed_at', value: 'changed' },
    ]);
    expect(rows[0].updatedAt).toBeInstanceOf(Date);
    expect(Math.abs(rows[0].updatedAt.getTime() - Date.now())).toBeLessThan(DAY_MS);
  });

  it('keeps the first value with PlatformSettingsRepository.setIfAbsent', async () => {
    const settings = new PlatformSettingsRepository(current().getRepository(PlatformSettingEntity));
    expect(await settings.setIfAbsent('first_start', 'one')).toBe('one');
    expect(await settings.setIfAbsent('first_start', 'two')).toBe('one');
    await settings.set('first_start', 'three');
    expect(await settings.get('first_start')).toBe('three');
    expect(await settings.get('never_set')).toBeUndefined();
  });

  it('stores timestamps in UTC and reads back the same instant', async () => {
    const repo = current().getRepository(PlatformSettingEntity);
    const instant = new Date('2025-03-30T01:30:45.678Z'); // a DST change in Europe, to catch local time
    await repo.insert({ key: 'utc_probe', value: 'x', updatedAt: instant });

    expect(await target.storedUpdatedAt(current(), 'utc_probe')).toBe('2025-03-30 01:30:45.678');
    const row = await repo.findOneByOrFail({ key: 'utc_probe' });
    expect(row.updatedAt.getTime()).toBe(instant.getTime());
  });

  it('stores tenants and their keys; tenant names are unique and a tenant with keys cannot be deleted', async () => {
    const tenants = current().getRepository(TenantEntity);
    const keys = current().getRepository(ApiKeyEntity);
    const tenantId = randomUUID();
    await tenants.insert({
      id: tenantId,
      name: 'acme',
      dailyRequestQuota: 10_000,
      requestsPerMinute: null,
      tokensPerMinute: 50_000,
    });
    await keys.insert({
      id: 'AbCdEf012345',
      tenantId,
      name: 'robot fleet',
      secretHash: 'f'.repeat(64),
      scopes: ['inference', 'ops'],
      requestsPerMinute: 600,
      maxConcurrent: 4,
      lastUsedAt: null,
      expiresAt: new Date('2030-01-01T00:00:00.000Z'),
      revokedAt: null,
    });

    const tenant = await tenants.findOneByOrFail({ name: 'acme' });
    expect(tenant).toMatchObject({
      id: tenantId,
      disabled: false,
      dailyRequestQuota: 10_000,
      requestsPerMinute: null,
      tokensPerMinute: 50_000,
    });
    expect(Math.abs(tenant.createdAt.getTime() - Date.now())).toBeLessThan(DAY_MS);
    const key = await keys.findOneOrFail({ where: { id: 'AbCdEf012345' }, relations: { tenant: true } });
    expect(key).toMatchObject({
      tenantId,
      scopes: ['inference', 'ops'],
      requestsPerMinute: 600,
      maxConcurrent: 4,
      lastUsedAt: null,
      revokedAt: null,
    });
    expect(key.expiresAt?.toISOString()).toBe('2030-01-01T00:00:00.000Z');
    expect(key.tenant?.name).toBe('acme');

    await expect(tenants.insert({ id: randomUUID(), name: 'acme' })).rejects.toThrow();
    await expect(tenants.delete({ id: tenantId })).rejects.toThrow();
    await keys.update({ id: 'AbCdEf012345' }, { revokedAt: new Date('2031-02-03T04:05:06.789Z') });
    expect((await keys.findOneByOrFail({ id: 'AbCdEf012345' })).revokedAt?.toISOString()).toBe(
      '2031-02-03T04:05:06.789Z',
    );
  });

  it('reopened, runs no migration again and keeps the data', async () => {
    await current().destroy();
    ds = await open(target);

    expect(await ds.showMigrations()).toBe(false);
    expect(await ds.runMigrations()).toEqual([]);
    expect(await target.migrations(ds)).toEqual(MIGRATIONS_RECORDED);
    const rows = await ds.getRepository(PlatformSettingEntity).find({ order: { key: 'ASC' } });
    expect(rows.map(({ key, value }) => ({ key, value }))).toEqual([
      { key: 'first_start', value: 'three' },
      { key: 'installed_at', value: 'changed' },
      { key: 'utc_probe', value: 'x' },
    ]);
  });

  it('undoes the tokens_per_minute migration and runs it again, keeping tenants and keys', async () => {
    const ds = current();
    const tenants = ds.getRepository(TenantEntity);
    expect(await target.columns(ds, 'tenants')).toContain('tokens_per_minute');
    await tenants.update({ name: 'acme' }, { tokensPerMinute: 1_000_000_000 });
    expect((await tenants.findOneByOrFail({ name: 'acme' })).tokensPerMinute).toBe(1_000_000_000);

    await ds.undoLastMigration({ transaction: 'each' });
    expect(await target.columns(ds, 'tenants')).not.toContain('tokens_per_minute');
    expect(await target.migrations(ds)).toEqual(MIGRATIONS_RECORDED.slice(0, -1));

    // As on an existing database: the column is added, every tenant's value is null (the platform default).
    expect(await ds.runMigrations({ transaction: 'each' })).toHaveLength(1);
    expect(await target.migrations(ds)).toEqual(MIGRATIONS_RECORDED);
    expect(await target.columns(ds, 'tenants')).toContain('tokens_per_minute');
    const tenant = await tenants.findOneByOrFail({ name: 'acme' });
    expect(tenant).toMatchObject({
      dailyRequestQuota: 10_000,
      requestsPerMinute: null,
      tokensPerMinute: null,
    });
    const key = await ds
      .getRepository(ApiKeyEntity)
      .findOneOrFail({ where: { id: 'AbCdEf012345' }, relations: { tenant: true } });
    expect(key.tenant?.id).toBe(tenant.id);
    // The altered table keeps its constraints: the unique name and the keys' foreign key.
    await expect(tenants.insert({ id: randomUUID(), name: 'acme' })).rejects.toThrow();
    await expect(tenants.delete({ id: tenant.id })).rejects.toThrow();
  });
}

describe('database on SQLite', () => {
  let dir: string;
  let path: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vla-db-'));
    path = join(dir, 'not', 'yet', 'there', 'platform.sqlite');
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the missing folders of the database file', () => {
    expect(existsSync(dirname(path))).toBe(false);
    buildDataSourceOptions({ type: 'sqlite', path });
    expect(existsSync(dirname(path))).toBe(true);
  });

  databaseContract({
    config: () => ({ type: 'sqlite', path }),
    tables: async (ds) =>
      (await ds.query<NameRow[]>(`SELECT name FROM sqlite_master WHERE type = 'table'`)).map((r) => r.name),
    migrations: async (ds) =>
      toMigrations(await ds.query<MigrationRow[]>('SELECT timestamp, name FROM migrations ORDER BY id')),
    storedUpdatedAt: async (ds, key) => {
      const rows = await ds.query<TextRow[]>('SELECT updated_at AS t FROM platform_settings WHERE key = ?', [
        key,
      ]);
      return rows[0].t;
    },
    columns: async (ds, table) =>
      (await ds.query<NameRow[]>('SELECT name FROM pragma_table_info(?)', [table])).map((r) => r.name),
  });

  it('wrote the database file', () => {
    expect(existsSync(path)).toBe(true);
  });
});

const PG_URL = process.env.DATABASE_URL_TEST;

/** Refuses any database whose name does not say it is for tests: these tests create and drop schemas. */
function testDatabaseUrl(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  if (!name.includes('test')) {
    throw new Error(
      `Refusing to run the database tests on "${name}": DATABASE_URL_TEST must name a database whose name contains "test".`,
    );
  }
  return url;
}

(PG_URL === undefined || PG_URL === '' ? describe.skip : describe)(
  PG_URL === undefined || PG_URL === ''
    ? 'database on PostgreSQL (skipped: set DATABASE_URL_TEST to run)'
    : 'database on PostgreSQL (DATABASE_URL_TEST)',
  () => {
    /** One schema per run, so parallel runs and leftovers never collide. */
    const schema = `t_${randomBytes(6).toString('hex')}`;
    let url: string | undefined;

    beforeAll(() => {
      // Throws (failing every test below) before anything connects to a database not meant for tests.
      url = testDatabaseUrl(PG_URL ?? '');
    });
    afterAll(async () => {
      if (url === undefined) return;
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
    });

    databaseContract({
      config: () => ({
        type: 'postgres',
        url: url ?? '',
        schema,
        poolSize: 2,
        connectTimeoutMs: 5000,
        statementTimeoutMs: 5000,
      }),
      tables: async (ds) =>
        (
          await ds.query<NameRow[]>(
            'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = $1',
            [schema],
          )
        ).map((r) => r.name),
      migrations: async (ds) =>
        toMigrations(
          await ds.query<MigrationRow[]>(`SELECT timestamp, name FROM "${schema}"."migrations" ORDER BY id`),
        ),
      storedUpdatedAt: async (ds, key) => {
        const rows = await ds.query<TextRow[]>(
          `SELECT to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS.MS') AS t FROM "${schema}".platform_settings WHERE key = $1`,
          [key],
        );
        return rows[0].t;
      },
      columns: async (ds, table) =>
        (
          await ds.query<NameRow[]>(
            'SELECT column_name AS name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2',
            [schema, table],
          )
        ).map((r) => r.name),
    });

    it('pins every session to UTC, so CURRENT_TIMESTAMP defaults are UTC whatever the server says', async () => {
      const ds = await openDataSource(
        buildDataSourceOptions({
          type: 'postgres',
          url: url ?? '',
          schema,
          poolSize: 1,
          connectTimeoutMs: 5000,
          statementTimeoutMs: 5000,
        }),
      );
      try {
        expect(await ds.query<{ TimeZone: string }[]>('SHOW TimeZone')).toEqual([{ TimeZone: 'UTC' }]);
      } finally {
        await ds.destroy();
      }
    });

    it('keeps the platform tables out of the public schema', async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const { rows } = await client.query<{ schema: string }>(
          `SELECT table_schema AS schema FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'platform_settings'`,
          [schema],
        );
        expect(rows).toEqual([{ schema }]);
      } finally {
        await client.end();
      }
    });
  },
);
