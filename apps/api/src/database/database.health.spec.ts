import { ComponentHealth } from '@app/monitoring';
import { HealthIndicatorService } from '@nestjs/terminus';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { buildDataSourceOptions } from './database-options';
import { DatabaseHealthIndicator } from './database.health';
import { openDataSource } from './open-data-source';

describe('DatabaseHealthIndicator', () => {
  let dir: string;
  let dataSource: DataSource;
  let queries: number;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vla-health-'));
    dataSource = await openDataSource(
      buildDataSourceOptions({ type: 'sqlite', path: join(dir, 'db.sqlite') }),
    );
    queries = 0;
    const query = dataSource.query.bind(dataSource);
    dataSource.query = ((...args: Parameters<DataSource['query']>) => {
      queries++;
      return query(...args);
    }) as DataSource['query'];
  });
  afterEach(async () => {
    if (dataSource.isInitialized) await dataSource.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const indicator = () =>
    new DatabaseHealthIndicator(new HealthIndicatorService(), dataSource, new ComponentHealth());

  it('answers a burst of probes with one query, and reuses the answer', async () => {
    const health = indicator();
    const answers = await Promise.all(Array.from({ length: 50 }, () => health.ping()));
    expect(answers.every((up) => up)).toBe(true);
    expect(await health.ping()).toBe(true);
    expect(queries).toBe(1);
  });

  it('reports down, without a query, once the connection is closed', async () => {
    const health = indicator();
    await dataSource.destroy();
    expect(await health.ping()).toBe(false);
    expect(queries).toBe(0);
    expect(await health.check('database')).toEqual({
      database: { status: 'down', type: 'better-sqlite3', message: 'database unreachable' },
    });
  });

  it('registers its probe as the database component of vla_application_health', async () => {
    const components = new ComponentHealth();
    new DatabaseHealthIndicator(new HealthIndicatorService(), dataSource, components).onModuleInit();
    expect(await components.snapshot()).toEqual(new Map([['database', true]]));
  });
});
