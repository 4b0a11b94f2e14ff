import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import Redis from 'ioredis';
import { DataSource } from 'typeorm';
import { eventually } from './support/eventually';
import { parsePrometheusText, sampleValue } from './support/prom-text';
import { postgresTestUrl, redisTestUrl, uniqueSchema } from './support/services';
import { startTestApp, type TestApp } from './support/test-app';

const TOKEN = 'services-e2e-metrics-token-01';

async function componentHealth(t: TestApp, component: string): Promise<number | undefined> {
  const res = await t.fetch('/monitoring/metrics', { headers: { authorization: `Bearer ${TOKEN}` } });
  return sampleValue(parsePrometheusText(res.text), 'vla_application_health', { component });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

const pgUrl = postgresTestUrl();
const describePg = pgUrl === undefined ? describe.skip : describe;

describePg(`PostgreSQL (DATABASE_URL_TEST${pgUrl === undefined ? ' unset: set it to run' : ''})`, () => {
  const schema = uniqueSchema();
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({
      DATABASE_URL: pgUrl!,
      DATABASE_SCHEMA: schema,
      METRICS_TOKEN: TOKEN,
      BOOTSTRAP_KEY: 'off',
    });
  });
  afterAll(async () => {
    await t.app.get(DataSource).query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await t.close();
  });

  it('runs the migrations at start in its own schema and is ready', async () => {
    expect((await t.fetch('/health/ready')).status).toBe(200);
    // The database is not part of readiness (docs/operations.md); its health is in the metrics.
    expect(t.app.get(DataSource).options.type).toBe('postgres');
    const health = await t.fetch('/monitoring/metrics', { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(
      sampleValue(parsePrometheusText(health.text), 'vla_application_health', { component: 'database' }),
    ).toBe(1);
    const rows: { key: string }[] = await t.app
      .get(DataSource)
      .query(`SELECT key FROM "${schema}".platform_settings ORDER BY key`);
    expect(rows.map((r) => r.key)).toEqual(['installed_at']);
    const migrations: { name: string }[] = await t.app
      .get(DataSource)
      .query(`SELECT name FROM "${schema}".migrations`);
    expect(migrations.map((m) => m.name)).toEqual([
      'CreatePlatformSettings1764000000000',
      'CreateTenantsAndApiKeys1764100000000',
      'CreateUsageRecords1764200000000',
      'AddTenantTokensPerMinute1764300000000',
    ]);
    expect(await componentHealth(t, 'database')).toBe(1);
  });

  it('serves the same routes as on SQLite', async () => {
    expect((await t.fetch('/health')).status).toBe(200);
    expect((await t.fetch('/no/such')).status).toBe(404);
  });
});

const redisUrl = redisTestUrl();
const describeRedis = redisUrl === undefined ? describe.skip : describe;

describeRedis(`Redis (REDIS_URL_TEST${redisUrl === undefined ? ' unset: set it to run' : ''})`, () => {
  it('the configured Redis is reachable (a set variable that does not answer fails the run)', async () => {
    const client = new Redis(redisUrl!, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    try {
      await client.connect();
      expect(await client.ping()).toBe('PONG');
    } finally {
      client.disconnect();
    }
  });

  it('reports Redis healthy in vla_application_health', async () => {
    const t = await startTestApp({ REDIS_URL: redisUrl!, METRICS_TOKEN: TOKEN });
    try {
      await eventually(async () => (await componentHealth(t, 'redis')) === 1);
    } finally {
      await t.close();
    }
  });
});

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;
const describeOwnRedis = hasRedisServer ? describe : describe.skip;

describeOwnRedis(
  `a Redis of our own that dies${hasRedisServer ? '' : ' (skipped: install redis-server to run)'}`,
  () => {
    let redis: ChildProcess | undefined;
    afterEach(() => {
      redis?.kill('SIGKILL');
    });

    it('the API keeps serving and reports redis 0, then 1 again after a restart on the same port', async () => {
      const port = await freePort();
      const startRedis = () =>
        spawn(
          'redis-server',
          ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
          {
            stdio: 'ignore',
          },
        );
      redis = startRedis();
      const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => 50 });
      try {
        await eventually(async () => {
          try {
            if (probe.status !== 'ready') await probe.connect();
            return (await probe.ping()) === 'PONG';
          } catch {
            return false;
          }
        });
      } finally {
        probe.disconnect();
      }

      const t = await startTestApp({ REDIS_URL: `redis://127.0.0.1:${port}`, METRICS_TOKEN: TOKEN });
      try {
        await eventually(async () => (await componentHealth(t, 'redis')) === 1);
        redis.kill('SIGKILL');
        await eventually(async () => (await componentHealth(t, 'redis')) === 0);
        expect((await t.fetch('/health/ready')).status).toBe(200);
        expect((await t.fetch('/health')).status).toBe(200);

        redis = startRedis();
        await eventually(async () => (await componentHealth(t, 'redis')) === 1);
      } finally {
        await t.close();
      }
    });
  },
);
