import { MonitoringModule } from '@app/monitoring';
import { Test } from '@nestjs/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { register } from 'prom-client';
import { LogCapture } from '../../test/support/log-capture';
import { parsePrometheusText, sampleValue } from '../../test/support/prom-text';
import { ConfigModule, loadConfig } from '../config';
import { buildDataSourceOptions } from '../database/database-options';
import { DatabaseModule } from '../database/database.module';
import { openDataSource } from '../database/open-data-source';
import { LoggingModule } from '../logging/logging.module';
import type { UsageRecord } from './usage-record';
import { UsageRecordEntity } from './usage-record.entity';
import { UsageModule } from './usage.module';
import { UsageWriter } from './usage.writer';

const row = (n: number): UsageRecord => ({
  requestId: `module-${n}`,
  tenantId: '6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f',
  keyId: 'AbCdEf012345',
  model: 'demo-policy',
  robotType: 'franka_panda',
  httpStatus: 200,
  status: 'ok',
  errorCode: null,
  queueMs: 1,
  preprocessMs: 2,
  inferenceMs: 3,
  safetyMs: 0.5,
  totalMs: 7,
  batchSize: 1,
  computeMs: 3,
  safetyOutcome: 'pass',
  createdAt: new Date('2026-01-02T03:04:05.678Z'),
});

describe('UsageModule in Nest, with the real DatabaseModule', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vla-usage-module-'));
    register.clear();
  });
  afterEach(() => {
    register.clear();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exports the writer and its metrics, and flushes at shutdown before the database closes', async () => {
    const path = join(dir, 'platform.sqlite');
    // A flush interval far longer than the test: only the shutdown hook can write these rows.
    const config = loadConfig(
      { DATABASE_URL: `sqlite:${path}`, USAGE_FLUSH_INTERVAL_MS: '600000' },
      { version: '0.0.0-test' },
    );
    const logs = new LogCapture();
    const moduleRef = await Test.createTestingModule({
      imports: [
        ConfigModule.forRoot(config),
        LoggingModule.forRoot(pino({ level: 'info' }, logs)),
        MonitoringModule.forRoot({
          appVersion: config.version,
          token: null,
          public: true,
          httpMetrics: false,
          defaultMetrics: false,
        }),
        DatabaseModule,
        UsageModule,
      ],
    }).compile();
    await moduleRef.init();

    const writer = moduleRef.get(UsageWriter);
    for (let n = 0; n < 3; n++) writer.record(row(n));
    let samples = parsePrometheusText(await register.metrics());
    expect(sampleValue(samples, 'vla_usage_write_backlog')).toBe(3);
    expect(sampleValue(samples, 'vla_usage_records_dropped_total', { reason: 'shutdown' })).toBe(0);
    expect(sampleValue(samples, 'vla_database_pool_size')).toBe(1);
    expect(sampleValue(samples, 'vla_database_pool_available')).toBe(1);

    await moduleRef.close();

    samples = parsePrometheusText(await register.metrics());
    expect(sampleValue(samples, 'vla_usage_records_written_total')).toBe(3);
    expect(sampleValue(samples, 'vla_usage_write_backlog')).toBe(0);
    expect(
      sampleValue(samples, 'vla_database_query_duration_seconds_count', {
        operation: 'usage_insert',
        status: 'ok',
      }),
    ).toBe(1);
    // The DataSource closed after the flush (onApplicationShutdown): nothing is available any more.
    expect(sampleValue(samples, 'vla_database_pool_available')).toBe(0);

    const check = await openDataSource(buildDataSourceOptions({ type: 'sqlite', path }));
    try {
      const stored = await check.getRepository(UsageRecordEntity).find({ order: { requestId: 'ASC' } });
      expect(stored).toEqual([row(0), row(1), row(2)]);
    } finally {
      await check.destroy();
    }
  });
});
