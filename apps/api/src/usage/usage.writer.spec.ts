import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { Registry } from 'prom-client';
import { type DataSource, In } from 'typeorm';
import { eventually } from '../../test/support/eventually';
import { FaultProxy, latency } from '../../test/support/fault-proxy';
import { LogCapture } from '../../test/support/log-capture';
import { parsePrometheusText, sampleValue } from '../../test/support/prom-text';
import { postgresTestUrl } from '../../test/support/services';
import type { AppConfig, DatabaseConfig } from '../config';
import { buildDataSourceOptions } from '../database/database-options';
import { databaseMetricsIn } from '../database/database.metrics';
import { openDataSource } from '../database/open-data-source';
import type { UsageRecord } from './usage-record';
import { UsageRecordEntity } from './usage-record.entity';
import { MAX_ROWS_PER_INSERT, UsageRecordsRepository } from './usage-records.repository';
import { usageMetricsIn } from './usage.metrics';
import { UsageWriter } from './usage.writer';

/** Connecting to PostgreSQL through the proxy may take up to its connect timeout; no test waits on a clock. */
jest.setTimeout(60_000);

type UsageOptions = AppConfig['usage'];
const DEFAULT_USAGE: UsageOptions = {
  flushIntervalMs: 1000,
  batchSize: 500,
  bufferMax: 10_000,
  overflowPolicy: 'reject',
};

/** A writer over `dataSource` with metrics in a registry and logs of its own; its timer is not started. */
function makeWriter(dataSource: DataSource, usage: Partial<UsageOptions> = {}, shutdownDeadlineMs?: number) {
  const registry = new Registry();
  const logs = new LogCapture();
  const repo = new UsageRecordsRepository(
    dataSource,
    databaseMetricsIn(registry, () => dataSource),
  );
  const writer: UsageWriter = UsageWriter.create({
    config: { usage: { ...DEFAULT_USAGE, ...usage } },
    repo,
    logger: pino({ level: 'debug' }, logs),
    metrics: usageMetricsIn(registry, () => writer),
    shutdownDeadlineMs,
  });
  /** The value of one series in the registry's exposition text (undefined when absent). */
  const metric = async (name: string, labels: Record<string, string> = {}) =>
    sampleValue(parsePrometheusText(await registry.metrics()), name, labels);
  const logged = (msg: string) => logs.records().filter((r) => r.msg === msg);
  return { writer, repo, metric, logged };
}

/** A fresh prefix per test, so tests sharing a table never see each other's rows. */
const newPrefix = () => `t${randomBytes(4).toString('hex')}`;

/** A record with every field set; `n` makes its request id and its values distinct. */
function usageRow(prefix: string, n: number, overrides: Partial<UsageRecord> = {}): UsageRecord {
  return {
    requestId: `${prefix}-${String(n).padStart(4, '0')}`,
    tenantId: '6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f',
    keyId: 'AbCdEf012345',
    model: 'demo-policy',
    robotType: 'franka_panda',
    httpStatus: 200,
    status: 'ok',
    errorCode: null,
    queueMs: 1.25 + n,
    preprocessMs: 3.5,
    inferenceMs: 12.125,
    safetyMs: 0.0625,
    totalMs: 17.5 + n,
    batchSize: 4,
    computeMs: 3.03125,
    safetyOutcome: 'pass',
    createdAt: new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678) + n * 1000),
    ...overrides,
  };
}

const rows = (prefix: string, count: number, from = 0) =>
  Array.from({ length: count }, (_, i) => usageRow(prefix, from + i));

/** What differs between the two databases. */
interface Target {
  /** The DataSource the writer writes through (on PostgreSQL: through the fault proxy). */
  writerDataSource(): DataSource;
  /** A direct DataSource to check what was stored. */
  checkDataSource(): DataSource;
  /** `usage_records`, qualified as raw SQL needs it. */
  readonly table: string;
}

/** The stored rows whose request id starts with `prefix`, by request id. */
async function storedRows(target: Target, prefix: string): Promise<UsageRecordEntity[]> {
  const all = await target
    .checkDataSource()
    .getRepository(UsageRecordEntity)
    .createQueryBuilder('u')
    .where('u.request_id LIKE :p', { p: `${prefix}-%` })
    .orderBy('u.request_id', 'ASC')
    .getMany();
  return all;
}
const storedCount = async (target: Target, prefix: string) => (await storedRows(target, prefix)).length;

/** The behaviour every database must show. */
function writerContract(target: Target): void {
  let current: ReturnType<typeof makeWriter> | undefined;
  const writerFor = (usage: Partial<UsageOptions> = {}, shutdownDeadlineMs?: number) => {
    current = makeWriter(target.writerDataSource(), usage, shutdownDeadlineMs);
    return current;
  };
  afterEach(() => {
    current?.writer.onModuleDestroy();
    current = undefined;
  });

  it('stores every field of every record, nulls included', async () => {
    const { writer, metric } = writerFor();
    const prefix = newPrefix();
    const full = usageRow(prefix, 1);
    const refused = usageRow(prefix, 2, {
      robotType: null,
      httpStatus: 503,
      status: 'queue_full',
      errorCode: 'queue_full',
      queueMs: null,
      preprocessMs: 2.75,
      inferenceMs: null,
      safetyMs: null,
      totalMs: 3.0001,
      batchSize: null,
      computeMs: null,
      safetyOutcome: null,
    });
    const modified = usageRow(prefix, 3, { safetyOutcome: 'modified', batchSize: 8, computeMs: 0.1 });
    for (const r of [full, refused, modified]) writer.record(r);
    expect(writer.backlog).toBe(3);

    await writer.flushNow();

    expect(writer.backlog).toBe(0);
    expect(await storedRows(target, prefix)).toEqual([full, refused, modified]);
    expect(await metric('vla_usage_records_written_total')).toBe(3);
    expect(await metric('vla_usage_write_backlog')).toBe(0);
  });

  it('writes N records in ceil(N / batch size) INSERTs', async () => {
    const { writer, metric } = writerFor({ batchSize: 7 });
    const prefix = newPrefix();
    for (const r of rows(prefix, 20)) writer.record(r);
    expect(await metric('vla_usage_write_backlog')).toBe(20);

    await writer.flushNow();

    expect(await storedCount(target, prefix)).toBe(20);
    const inserts = { operation: 'usage_insert', status: 'ok' };
    expect(await metric('vla_database_query_duration_seconds_count', inserts)).toBe(3);
    expect(await metric('vla_usage_records_written_total')).toBe(20);
    expect(await metric('vla_usage_flush_duration_seconds_count')).toBe(1);
  });

  it('F7: a request id already stored is ignored, the other 19 of the batch are stored', async () => {
    const { writer, repo, metric } = writerFor();
    const prefix = newPrefix();
    const batch = rows(prefix, 20);
    const x = batch[7];
    expect(await repo.insertNew([{ ...x, model: 'stored-first', httpStatus: 201 }], 'usage_insert')).toBe(1);

    for (const r of batch) writer.record(r);
    await writer.flushNow();

    const stored = await storedRows(target, prefix);
    expect(stored).toHaveLength(20);
    expect(stored.find((r) => r.requestId === x.requestId)).toMatchObject({
      model: 'stored-first',
      httpStatus: 201,
    });
    expect(await metric('vla_usage_records_written_total')).toBe(19);
    expect(await metric('vla_usage_write_failures_total', { reason: 'conflict' })).toBe(1);
    expect(await metric('vla_usage_records_dropped_total', { reason: 'invalid_row' })).toBe(0);
    // One batch INSERT, no row-by-row retry: the conflict never failed the statement.
    expect(
      await metric('vla_database_query_duration_seconds_count', {
        operation: 'usage_insert_row',
        status: 'ok',
      }),
    ).toBe(0);
    expect(writer.backlog).toBe(0);
  });

  it('records the same request twice: stored once', async () => {
    const { writer, metric } = writerFor();
    const prefix = newPrefix();
    const r = usageRow(prefix, 1);
    writer.record(r);
    await writer.flushNow();
    writer.record(r);
    await writer.flushNow();
    expect(await storedCount(target, prefix)).toBe(1);
    expect(await metric('vla_usage_write_failures_total', { reason: 'conflict' })).toBe(1);
  });

  it('isolates a row the database refuses (NOT NULL): the others are stored, the bad one is counted and logged', async () => {
    const { writer, metric, logged } = writerFor();
    const prefix = newPrefix();
    const batch = rows(prefix, 10);
    // What a caller outside the type system could hand over: a required column left null.
    const poisoned = { ...batch[4], model: null } as unknown as UsageRecord;
    batch[4] = poisoned;
    for (const r of batch) writer.record(r);

    await writer.flushNow();

    const stored = await storedRows(target, prefix);
    expect(stored.map((r) => r.requestId)).toEqual(
      batch.filter((r) => r !== poisoned).map((r) => r.requestId),
    );
    expect(writer.backlog).toBe(0);
    expect(await metric('vla_usage_write_failures_total', { reason: 'invalid_row' })).toBe(1);
    expect(await metric('vla_usage_records_dropped_total', { reason: 'invalid_row' })).toBe(1);
    expect(await metric('vla_usage_records_written_total')).toBe(9);
    expect(logged('usage record refused by the database: dropped')).toEqual([
      expect.objectContaining({ component: 'usage', request_id: poisoned.requestId }),
    ]);
    // Flushing again does not retry the dropped row.
    await writer.flushNow();
    expect(await metric('vla_usage_write_failures_total', { reason: 'invalid_row' })).toBe(1);
  });

  it('keeps the batch, in order, while the table is missing, and stores it once it is back', async () => {
    const { writer, metric } = writerFor({ batchSize: 4 });
    const prefix = newPrefix();
    const batch = rows(prefix, 10);
    const check = target.checkDataSource();
    await check.query(`ALTER TABLE ${target.table} RENAME TO usage_records_away`);
    try {
      for (const r of batch) writer.record(r);
      await writer.flushNow();
      expect(writer.backlog).toBe(10);
      expect(await metric('vla_usage_write_failures_total', { reason: 'database' })).toBe(1);
      expect(await metric('vla_usage_records_dropped_total', { reason: 'invalid_row' })).toBe(0);
    } finally {
      await check.query(
        `ALTER TABLE ${target.table.replace('usage_records', 'usage_records_away')} RENAME TO usage_records`,
      );
    }
    await writer.flushNow();
    expect(writer.backlog).toBe(0);
    const stored = await storedRows(target, prefix);
    expect(stored.map((r) => r.requestId)).toEqual(batch.map((r) => r.requestId));
  });

  it('flushes on its own every interval', async () => {
    const { writer } = writerFor({ flushIntervalMs: 20 });
    writer.onModuleInit();
    const prefix = newPrefix();
    for (const r of rows(prefix, 5)) writer.record(r);
    await eventually(async () => (await storedCount(target, prefix)) === 5);
    writer.record(usageRow(prefix, 5));
    await eventually(async () => (await storedCount(target, prefix)) === 6);
    expect(writer.backlog).toBe(0);
  });

  it('reject: accepting() is false at USAGE_BUFFER_MAX and true again after a flush; admitted rows are kept', async () => {
    const { writer, metric } = writerFor({ bufferMax: 5, overflowPolicy: 'reject' });
    const prefix = newPrefix();
    const batch = rows(prefix, 4);
    for (const r of batch) writer.record(r);
    expect(writer.accepting()).toBe(true);
    writer.record(usageRow(prefix, 4));
    expect(writer.accepting()).toBe(false);
    // A request admitted before the buffer filled still leaves its row.
    writer.record(usageRow(prefix, 5));
    expect(writer.backlog).toBe(6);
    expect(await metric('vla_usage_records_dropped_total', { reason: 'overflow' })).toBe(0);

    await writer.flushNow();

    expect(writer.accepting()).toBe(true);
    expect(await storedCount(target, prefix)).toBe(6);
  });

  it('reject: memory stays bounded even for a caller that never asks accepting()', async () => {
    const { writer, metric } = writerFor({ bufferMax: 5, overflowPolicy: 'reject' });
    const prefix = newPrefix();
    for (const r of rows(prefix, 13)) writer.record(r);
    expect(writer.backlog).toBe(10);
    expect(await metric('vla_usage_records_dropped_total', { reason: 'overflow' })).toBe(3);
  });

  it('drop: a full buffer drops the newest records, counted and logged once per interval with the count', async () => {
    const { writer, metric, logged } = writerFor({
      bufferMax: 5,
      overflowPolicy: 'drop',
      flushIntervalMs: 20,
    });
    const prefix = newPrefix();
    const batch = rows(prefix, 8);
    for (const r of batch) writer.record(r);
    expect(writer.accepting()).toBe(true);
    expect(writer.backlog).toBe(5);
    expect(await metric('vla_usage_records_dropped_total', { reason: 'overflow' })).toBe(3);

    writer.onModuleInit();
    await eventually(async () => (await storedCount(target, prefix)) === 5);
    await eventually(() => logged('usage records dropped').length > 0);
    expect(logged('usage records dropped')).toEqual([
      expect.objectContaining({ reason: 'overflow', dropped: 3, policy: 'drop' }),
    ]);
    const stored = await storedRows(target, prefix);
    expect(stored.map((r) => r.requestId)).toEqual(batch.slice(0, 5).map((r) => r.requestId));
  });

  it('splits a batch larger than one statement can bind', async () => {
    const { writer } = writerFor({ batchSize: 5000 });
    const prefix = newPrefix();
    const count = MAX_ROWS_PER_INSERT + 10;
    for (const r of rows(prefix, count)) writer.record(r);
    await writer.flushNow();
    expect(await storedCount(target, prefix)).toBe(count);
  });

  it('shutdown: flushes everything left, then counts late records as dropped', async () => {
    const { writer, metric, logged } = writerFor();
    writer.onModuleInit();
    const prefix = newPrefix();
    for (const r of rows(prefix, 40)) writer.record(r);

    await writer.beforeApplicationShutdown();

    expect(await storedCount(target, prefix)).toBe(40);
    expect(await metric('vla_usage_write_backlog')).toBe(0);
    expect(await metric('vla_usage_records_dropped_total', { reason: 'shutdown' })).toBe(0);
    expect(logged('usage buffer flushed at shutdown')).toEqual([expect.objectContaining({ records: 40 })]);

    expect(writer.accepting()).toBe(false);
    writer.record(usageRow(prefix, 40));
    writer.record(usageRow(prefix, 41));
    expect(await metric('vla_usage_records_dropped_total', { reason: 'shutdown' })).toBe(2);
    expect(logged('usage records dropped')).toEqual([
      expect.objectContaining({ reason: 'shutdown', dropped: 1 }),
    ]);
    expect(await storedCount(target, prefix)).toBe(40);
  });
}

describe('UsageWriter on SQLite', () => {
  let dir: string;
  let ds: DataSource;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vla-usage-'));
    ds = await openDataSource(buildDataSourceOptions({ type: 'sqlite', path: join(dir, 'usage.sqlite') }));
  });
  afterAll(async () => {
    if (ds?.isInitialized) await ds.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  writerContract({ writerDataSource: () => ds, checkDataSource: () => ds, table: 'usage_records' });

  it('keeps the rows buffered while the database is closed, and counts each failed attempt as transient', async () => {
    const closed = await openDataSource(
      buildDataSourceOptions({ type: 'sqlite', path: join(dir, 'closed.sqlite') }),
    );
    await closed.destroy();
    const { writer, metric } = makeWriter(closed);
    const prefix = newPrefix();
    for (const r of rows(prefix, 3)) writer.record(r);
    await writer.flushNow();
    expect(writer.backlog).toBe(3);
    expect(await metric('vla_usage_write_failures_total', { reason: 'transient' })).toBe(1);
    expect(
      await metric('vla_database_query_duration_seconds_count', {
        operation: 'usage_insert',
        status: 'error',
      }),
    ).toBe(1);
    expect(await metric('vla_usage_records_dropped_total', { reason: 'invalid_row' })).toBe(0);
  });
});

const PG_URL = postgresTestUrl();

(PG_URL === undefined ? describe.skip : describe)(
  PG_URL === undefined
    ? 'UsageWriter on PostgreSQL (skipped: set DATABASE_URL_TEST to run)'
    : 'UsageWriter on PostgreSQL (DATABASE_URL_TEST), through the fault proxy',
  () => {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    let proxy: FaultProxy;
    let direct: DataSource;
    let proxied: DataSource;

    const pgConfig = (url: string): DatabaseConfig => ({
      type: 'postgres',
      url,
      schema,
      poolSize: 2,
      connectTimeoutMs: 2000,
      statementTimeoutMs: 5000,
    });

    beforeAll(async () => {
      const url = new URL(PG_URL ?? '');
      direct = await openDataSource(buildDataSourceOptions(pgConfig(url.toString())));
      proxy = await FaultProxy.start({ targetHost: url.hostname, targetPort: Number(url.port || 5432) });
      url.hostname = '127.0.0.1';
      url.port = String(proxy.port);
      proxied = await openDataSource(buildDataSourceOptions(pgConfig(url.toString())));
    });
    afterEach(async () => {
      await proxy.setMode('pass');
    });
    afterAll(async () => {
      await proxy?.setMode('pass');
      if (proxied?.isInitialized) await proxied.destroy();
      if (direct?.isInitialized) await direct.destroy();
      await proxy?.close();
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
    });

    const target: Target = {
      writerDataSource: () => proxied,
      checkDataSource: () => direct,
      get table() {
        return `"${schema}".usage_records`;
      },
    };
    writerContract(target);

    it('isolates a value longer than its column (22001): the other rows are stored', async () => {
      const { writer, metric, logged } = makeWriter(proxied);
      const prefix = newPrefix();
      const batch = rows(prefix, 6);
      batch[2] = { ...batch[2], model: 'm'.repeat(129) };
      for (const r of batch) writer.record(r);
      await writer.flushNow();
      expect((await storedRows(target, prefix)).map((r) => r.requestId)).toEqual(
        batch.filter((_, i) => i !== 2).map((r) => r.requestId),
      );
      expect(await metric('vla_usage_records_dropped_total', { reason: 'invalid_row' })).toBe(1);
      expect(logged('usage record refused by the database: dropped')).toEqual([
        expect.objectContaining({
          request_id: batch[2].requestId,
          err: expect.objectContaining({ code: '22001' }) as unknown,
        }),
      ]);
    });

    it('F4: records made while PostgreSQL refuses connections are all stored, exactly once, after it is back', async () => {
      const { writer, metric, logged } = makeWriter(proxied, { flushIntervalMs: 50 });
      writer.onModuleInit();
      try {
        const prefix = newPrefix();
        for (const r of rows(prefix, 5)) writer.record(r);
        await eventually(async () => (await storedCount(target, prefix)) === 5);

        await proxy.setMode('refuse');
        const outage = rows(prefix, 30, 5);
        for (const r of outage) writer.record(r);
        await eventually(
          async () => ((await metric('vla_usage_write_failures_total', { reason: 'transient' })) ?? 0) >= 2,
        );
        expect(await metric('vla_usage_write_backlog')).toBe(30);
        expect(await storedCount(target, prefix)).toBe(5);
        expect(logged('usage records not written: kept and retried').length).toBeGreaterThan(0);

        await proxy.setMode('pass');
        await eventually(async () => (await storedCount(target, prefix)) === 35);
        const counted = await direct.query<{ n: string }[]>(
          `SELECT count(*) AS n FROM "${schema}".usage_records WHERE request_id = ANY($1)`,
          [outage.map((r) => r.requestId)],
        );
        expect(Number(counted[0].n)).toBe(30);
        await eventually(async () => (await metric('vla_usage_write_backlog')) === 0);
        expect(await metric('vla_usage_records_written_total')).toBe(35);
        expect(await metric('vla_usage_records_dropped_total', { reason: 'invalid_row' })).toBe(0);
        expect(logged('usage writes resumed')).toHaveLength(1);
      } finally {
        writer.onModuleDestroy();
      }
    });

    it('F4, lost replies: a batch whose reply was lost is retried and stored once', async () => {
      const { writer, metric } = makeWriter(proxied);
      const prefix = newPrefix();
      for (const r of rows(prefix, 10)) writer.record(r);
      await proxy.setMode('drop-replies');
      await writer.flushNow();
      expect(writer.backlog).toBe(10);
      expect(await metric('vla_usage_write_failures_total', { reason: 'transient' })).toBe(1);

      await proxy.setMode('pass');
      await writer.flushNow();
      expect(writer.backlog).toBe(0);
      expect(await storedCount(target, prefix)).toBe(10);
      // Whatever reached the database before the reply was lost counts as a conflict, never twice.
      const written = (await metric('vla_usage_records_written_total')) ?? 0;
      const conflicts = (await metric('vla_usage_write_failures_total', { reason: 'conflict' })) ?? 0;
      expect(written + conflicts).toBe(10);
    });

    it('S2: shutdown with 40 records buffered and latency(1500) on PostgreSQL stores all 40', async () => {
      const { writer, metric } = makeWriter(proxied);
      const prefix = newPrefix();
      writer.record(usageRow(prefix, 999)); // a warm connection, as in a running app
      await writer.flushNow();
      for (const r of rows(prefix, 40)) writer.record(r);
      await proxy.setMode(latency(1500));

      await writer.beforeApplicationShutdown();

      expect(await storedCount(target, prefix)).toBe(41);
      expect(await metric('vla_usage_write_backlog')).toBe(0);
      expect(await metric('vla_usage_records_dropped_total', { reason: 'shutdown' })).toBe(0);
    });

    it('shutdown against a black-holed database: the leftovers are logged and counted, never silently lost', async () => {
      const { writer, metric, logged } = makeWriter(proxied, {}, 300);
      const prefix = newPrefix();
      for (const r of rows(prefix, 7)) writer.record(r);
      await proxy.setMode('blackhole');

      await writer.beforeApplicationShutdown();

      expect(await metric('vla_usage_records_dropped_total', { reason: 'shutdown' })).toBe(7);
      expect(await metric('vla_usage_write_backlog')).toBe(0);
      expect(logged('usage records not written by the shutdown deadline: counted as dropped')).toEqual([
        expect.objectContaining({ component: 'usage', records: 7 }),
      ]);
    });

    it('the pool gauges read the pg Pool', async () => {
      const registry = new Registry();
      databaseMetricsIn(registry, () => direct);
      const samples = parsePrometheusText(await registry.metrics());
      expect(sampleValue(samples, 'vla_database_pool_size')).toBe(2);
      expect(sampleValue(samples, 'vla_database_pool_used')).toBe(0);
      expect(sampleValue(samples, 'vla_database_pool_available')).toBe(2);
    });
  },
);

describe('UsageRecordsRepository', () => {
  it('refuses more rows than one statement can bind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vla-usage-repo-'));
    const ds = await openDataSource(buildDataSourceOptions({ type: 'sqlite', path: join(dir, 'u.sqlite') }));
    try {
      const repo = new UsageRecordsRepository(
        ds,
        databaseMetricsIn(new Registry(), () => ds),
      );
      await expect(repo.insertNew(rows('big', MAX_ROWS_PER_INSERT + 1), 'usage_insert')).rejects.toThrow(
        RangeError,
      );
      expect(await repo.insertNew([], 'usage_insert')).toBe(0);
      expect(
        await ds.getRepository(UsageRecordEntity).count({ where: { requestId: In(['big-0000']) } }),
      ).toBe(0);
    } finally {
      await ds.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
