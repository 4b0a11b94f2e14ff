import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Registry } from 'prom-client';
import type { DataSource } from 'typeorm';
import { parsePrometheusText, sampleValue } from '../../test/support/prom-text';
import { postgresTestUrl } from '../../test/support/services';
import { buildDataSourceOptions } from './database-options';
import { databaseMetricsIn, poolState } from './database.metrics';
import { openDataSource } from './open-data-source';

jest.setTimeout(30_000);

/** The pool gauges and the query histogram in a registry of their own, over `source()`. */
function metricsOver(source: () => DataSource | undefined) {
  const registry = new Registry();
  const metrics = databaseMetricsIn(registry, source);
  const scrape = async () => parsePrometheusText(await registry.metrics());
  return { metrics, scrape };
}

describe('database metrics on SQLite', () => {
  let dir: string;
  let ds: DataSource;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vla-dbm-'));
    ds = await openDataSource(buildDataSourceOptions({ type: 'sqlite', path: join(dir, 'm.sqlite') }));
  });
  afterAll(async () => {
    if (ds.isInitialized) await ds.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('times queries by operation and status, and rethrows what failed', async () => {
    const { metrics, scrape } = metricsOver(() => ds);
    metrics.declareOperations('probe');
    expect(
      sampleValue(await scrape(), 'vla_database_query_duration_seconds_count', {
        operation: 'probe',
        status: 'error',
      }),
    ).toBe(0);

    expect(await metrics.timeQuery('probe', () => ds.query<{ one: number }[]>('SELECT 1 AS one'))).toEqual([
      { one: 1 },
    ]);
    await expect(metrics.timeQuery('probe', () => ds.query('SELECT * FROM missing'))).rejects.toThrow(
      /missing/,
    );

    const samples = await scrape();
    expect(
      sampleValue(samples, 'vla_database_query_duration_seconds_count', { operation: 'probe', status: 'ok' }),
    ).toBe(1);
    expect(
      sampleValue(samples, 'vla_database_query_duration_seconds_count', {
        operation: 'probe',
        status: 'error',
      }),
    ).toBe(1);
  });

  it('reports one connection, available while open and not once closed', async () => {
    const { scrape } = metricsOver(() => ds);
    let samples = await scrape();
    expect(sampleValue(samples, 'vla_database_pool_size')).toBe(1);
    expect(sampleValue(samples, 'vla_database_pool_available')).toBe(1);
    expect(sampleValue(samples, 'vla_database_pool_used')).toBe(0);

    const other = await openDataSource(
      buildDataSourceOptions({ type: 'sqlite', path: join(dir, 'o.sqlite') }),
    );
    await other.destroy();
    expect(poolState(other)).toEqual({ size: 1, used: 0, available: 0, waiting: 0 });
    samples = await metricsOver(() => other).scrape();
    expect(sampleValue(samples, 'vla_database_pool_available')).toBe(0);
  });

  it('never fails the scrape, whatever the data source does', async () => {
    const broken = {
      get isInitialized(): boolean {
        throw new Error('boom');
      },
    } as unknown as DataSource;
    const samples = await metricsOver(() => broken).scrape();
    expect(sampleValue(samples, 'vla_database_pool_size')).toBe(0);
    expect(sampleValue(samples, 'vla_database_pool_available')).toBe(0);
    expect(sampleValue(await metricsOver(() => undefined).scrape(), 'vla_database_pool_used')).toBe(0);
  });
});

const PG_URL = postgresTestUrl();

(PG_URL === undefined ? describe.skip : describe)(
  PG_URL === undefined
    ? 'database metrics on PostgreSQL (skipped: set DATABASE_URL_TEST to run)'
    : 'database metrics on PostgreSQL (DATABASE_URL_TEST)',
  () => {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    let ds: DataSource;
    beforeAll(async () => {
      ds = await openDataSource(
        buildDataSourceOptions({
          type: 'postgres',
          url: PG_URL ?? '',
          schema,
          poolSize: 3,
          connectTimeoutMs: 5000,
          statementTimeoutMs: 5000,
        }),
      );
    });
    afterAll(async () => {
      if (ds?.isInitialized) await ds.destroy();
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
    });

    it('reads size, used and available from the pg Pool, and returns to full once a connection is released', async () => {
      const { scrape } = metricsOver(() => ds);
      const runner = ds.createQueryRunner();
      await runner.connect();
      await runner.startTransaction();
      try {
        const samples = await scrape();
        expect(sampleValue(samples, 'vla_database_pool_size')).toBe(3);
        expect(sampleValue(samples, 'vla_database_pool_used')).toBe(1);
        expect(sampleValue(samples, 'vla_database_pool_available')).toBe(2);
      } finally {
        await runner.rollbackTransaction();
        await runner.release();
      }
      const samples = await scrape();
      expect(sampleValue(samples, 'vla_database_pool_used')).toBe(0);
      expect(sampleValue(samples, 'vla_database_pool_available')).toBe(3);
    });

    it('reports nothing available once the data source is closed', async () => {
      const other = await openDataSource(
        buildDataSourceOptions({
          type: 'postgres',
          url: PG_URL ?? '',
          schema,
          poolSize: 2,
          connectTimeoutMs: 5000,
          statementTimeoutMs: 5000,
        }),
      );
      await other.destroy();
      expect(poolState(other)).toEqual({ size: 2, used: 0, available: 0, waiting: 0 });
    });
  },
);
