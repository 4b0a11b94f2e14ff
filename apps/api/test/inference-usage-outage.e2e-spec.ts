import pg from 'pg';
import { AdminApi, bootstrapKeyOf } from './support/api-keys';
import { startTestAppWith } from './support/app-with';
import { eventually } from './support/eventually';
import { FaultProxy } from './support/fault-proxy';
import { type ApiAnswer, errorCodeOf, policyBody, postInference } from './support/inference-client';
import { findSamples, parsePrometheusText, sampleValue } from './support/prom-text';
import { postgresTestUrl, uniqueSchema } from './support/services';
import type { TestApp } from './support/test-app';

const TOKEN = 'usage-outage-metrics-token-01';
const pgUrl = postgresTestUrl();
const describePg = pgUrl === undefined ? describe.skip : describe;

/** One app on its own schema, reaching PostgreSQL through a fault proxy, with an inference key. */
interface Rig {
  readonly t: TestApp;
  readonly proxy: FaultProxy;
  readonly schema: string;
  readonly admin: AdminApi;
  readonly key: string;
}

async function startRig(env: Record<string, string>): Promise<Rig> {
  const target = new URL(pgUrl!);
  const proxy = await FaultProxy.start({
    targetHost: target.hostname,
    targetPort: Number(target.port === '' ? 5432 : target.port),
  });
  const proxied = new URL(pgUrl!);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(proxy.port);
  const schema = uniqueSchema('usage');
  const t = await startTestAppWith({
    DATABASE_URL: proxied.toString(),
    DATABASE_SCHEMA: schema,
    METRICS_TOKEN: TOKEN,
    USAGE_FLUSH_INTERVAL_MS: '100',
    // The longest allowed: keys verified once stay cached through the outage.
    API_KEY_CACHE_TTL_MS: '300000',
    ...env,
  });
  const admin = new AdminApi(t, bootstrapKeyOf(t));
  await admin.createTenant('robots');
  const { key } = await admin.createKey('robots', ['inference']);
  return { t, proxy, schema, admin, key };
}

async function stopRig(rig: Rig | undefined): Promise<void> {
  if (rig === undefined) return;
  await rig.proxy.setMode('pass');
  await rig.t.close();
  await rig.proxy.close();
  await withPostgres((client) => client.query(`DROP SCHEMA IF EXISTS "${rig.schema}" CASCADE`));
}

/** Runs `fn` with a client of its own straight to PostgreSQL (not through the proxy). */
async function withPostgres<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** request id -> number of usage rows stored for it, for the ids given. */
async function rowCounts(schema: string, ids: readonly string[]): Promise<Map<string, number>> {
  const { rows } = await withPostgres((client) =>
    client.query<{ request_id: string; n: string }>(
      `SELECT request_id, COUNT(*) AS n FROM "${schema}".usage_records WHERE request_id = ANY($1) GROUP BY request_id`,
      [ids],
    ),
  );
  return new Map(rows.map((r) => [r.request_id, Number(r.n)]));
}

async function scrape(t: TestApp) {
  const res = await t.fetch('/monitoring/metrics', { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return parsePrometheusText(res.text);
}

const backlog = async (t: TestApp) => sampleValue(await scrape(t), 'vla_usage_write_backlog') ?? NaN;
const dropped = async (t: TestApp) =>
  findSamples(await scrape(t), 'vla_usage_records_dropped_total').reduce((n, s) => n + s.value, 0);

/** Sends `count` inference requests one after another, ids `${prefix}-0`, `${prefix}-1`, ... */
async function sequential(rig: Rig, prefix: string, count: number): Promise<(ApiAnswer & { id: string })[]> {
  const out: (ApiAnswer & { id: string })[] = [];
  for (let i = 0; i < count; i++) {
    const id = `${prefix}-${i}`;
    out.push({ id, ...(await postInference(rig.t.url, rig.key, policyBody(), { requestId: id })) });
  }
  return out;
}

describePg(
  `PostgreSQL down under inference with usage writes (TESTS F4, F6${pgUrl === undefined ? '; skipped: set DATABASE_URL_TEST to run' : ''})`,
  () => {
    describe('a short outage (F4): cached keys keep working, every row is stored exactly once after', () => {
      let rig: Rig | undefined;
      beforeAll(async () => {
        rig = await startRig({});
      });
      afterAll(async () => {
        await stopRig(rig);
      });

      it('serves 200s through the outage, buffers the rows, writes each one once on recovery', async () => {
        const { t, proxy, schema } = rig!;
        const unseen = (await rig!.admin.createKey('robots', ['inference'])).key;

        const warm = await sequential(rig!, 'f4-before', 10);
        expect(warm.map((r) => r.status)).toEqual(new Array<number>(10).fill(200));
        await eventually(async () => (await backlog(t)) === 0);
        expect(
          (
            await rowCounts(
              schema,
              warm.map((r) => r.id),
            )
          ).size,
        ).toBe(10);

        await proxy.setMode('refuse');
        const during = await sequential(rig!, 'f4-during', 30);
        expect(during.map((r) => r.status)).toEqual(new Array<number>(30).fill(200));
        // Nothing reached the database: all 30 rows wait in memory.
        expect(await backlog(t)).toBe(30);
        // A key the process never verified cannot be checked now: the database is down, the key may be good.
        const unknown = await postInference(t.url, unseen, policyBody(), { requestId: 'f4-unseen' });
        expect(unknown.status).toBe(503);
        expect(errorCodeOf(unknown)).toBe('dependency_unavailable');
        // The writer keeps trying (and failing) meanwhile; the rows stay buffered.
        await eventually(
          async () =>
            (sampleValue(await scrape(t), 'vla_usage_write_failures_total', { reason: 'transient' }) ?? 0) >
            0,
        );
        expect(await backlog(t)).toBe(30);

        await proxy.setMode('pass');
        await eventually(async () => (await backlog(t)) === 0, 40_000, 100);
        const ids = [...warm, ...during].map((r) => r.id);
        const counts = await rowCounts(schema, ids);
        expect([...counts.keys()].sort()).toEqual([...ids].sort());
        expect([...counts.values()].every((n) => n === 1)).toBe(true);
        // The unseen key's refusal happened before the inference service: no row.
        expect((await rowCounts(schema, ['f4-unseen'])).size).toBe(0);
        expect(await dropped(t)).toBe(0);
      }, 90_000);

      // TESTS F4: readiness stays 200 while the cache can serve; readiness failing on all replicas at once
      // would be a total outage. Readiness does not include the database for that reason.
      it('keeps readiness 200 while the database is down and cached keys still serve', async () => {
        const { t, proxy } = rig!;
        // The key verified (and cached) before the outage, whether or not the test above ran.
        expect((await postInference(t.url, rig!.key, policyBody())).status).toBe(200);
        expect((await t.fetch('/health/ready')).status).toBe(200);
        await proxy.setMode('refuse');
        try {
          expect((await postInference(t.url, rig!.key, policyBody())).status).toBe(200);
          // The app has seen the outage (its own health metric says so) ...
          await eventually(
            async () =>
              sampleValue(await scrape(t), 'vla_application_health', { component: 'database' }) === 0,
          );
          // ... and still serves: readiness must not take every replica out of the balancer at once.
          expect((await postInference(t.url, rig!.key, policyBody())).status).toBe(200);
          const ready = await t.fetch('/health/ready');
          expect(ready.status).toBe(200);
        } finally {
          await proxy.setMode('pass');
        }
      });
    });

    describe('an outage that fills the buffer (F6, USAGE_BUFFER_MAX=20, policy reject)', () => {
      let rig: Rig | undefined;
      afterAll(async () => {
        await stopRig(rig);
      });

      it('refuses new work with 503 usage_unavailable once the buffer is full, drops nothing, stores every 200', async () => {
        rig = await startRig({ USAGE_BUFFER_MAX: '20' });
        const { t, proxy, schema } = rig;
        const warm = await sequential(rig, 'f6-before', 3);
        expect(warm.map((r) => r.status)).toEqual([200, 200, 200]);
        await eventually(async () => (await backlog(t)) === 0);

        await proxy.setMode('refuse');
        const during = await sequential(rig, 'f6-during', 40);
        // One request at a time: each 200 adds one row, and the 21st request finds the buffer full.
        expect(during.map((r) => r.status)).toEqual([
          ...new Array<number>(20).fill(200),
          ...new Array<number>(20).fill(503),
        ]);
        for (const r of during.slice(20)) {
          expect(errorCodeOf(r)).toBe('usage_unavailable');
          expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
          expect((r.json as { error: { request_id: string } }).error.request_id).toBe(r.id);
        }
        expect(await backlog(t)).toBe(20);
        expect(await dropped(t)).toBe(0);

        await proxy.setMode('pass');
        await eventually(async () => (await backlog(t)) === 0, 40_000, 100);
        const answered = [...warm, ...during.slice(0, 20)].map((r) => r.id);
        const counts = await rowCounts(
          schema,
          [...warm, ...during].map((r) => r.id),
        );
        // Rows for every 200, once each; the refused requests did no billable work and left no row.
        expect([...counts.keys()].sort()).toEqual([...answered].sort());
        expect([...counts.values()].every((n) => n === 1)).toBe(true);
        expect(await dropped(t)).toBe(0);
        // The buffer has room again: new work is accepted.
        expect((await postInference(t.url, rig.key, policyBody())).status).toBe(200);
      }, 90_000);
    });
  },
);
