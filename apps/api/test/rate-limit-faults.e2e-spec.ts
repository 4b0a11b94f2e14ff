import Redis from 'ioredis';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
// eslint-disable-next-line no-restricted-imports -- a test helper of the lib (it owns a redis-server child), not its API: the lib's index does not export it
import { OwnedRedis } from '../../../libs/rate-limit/test/owned-redis';
import { AdminApi, bootstrapKeyOf, type CreatedKey } from './support/api-keys';
import { eventually } from './support/eventually';
import { FaultProxy } from './support/fault-proxy';
import { type ApiAnswer, policyBody, postInference } from './support/inference-client';
import { parsePrometheusText, type Sample, sampleValue } from './support/prom-text';
import { startTestAppWith, type TestApp } from './support/test-app';

/**
 * TESTS F1 (Redis hard down, then back), F2 (Redis black-holed) and F3 (a limiter reply lost) against the
 * whole app, each test on a redis-server of its own (never the shared one on 6379).
 */

const TIMEOUT_MS = 150;
const THRESHOLD = 3;
const REPLICAS = 2;
const LIMIT = 10;
const LOCAL_LIMIT = LIMIT / REPLICAS;
/** The upper bound on any one request: the command timeout plus generous slack (never ~20 ioredis retries). */
const MAX_REQUEST_MS = TIMEOUT_MS + 1500;
/** Between two requests of the steady flow. */
const GAP_MS = 50;

const MODES = ['local', 'open', 'closed'] as const;
type Mode = (typeof MODES)[number];
const FAULTS = ['kill', 'freeze'] as const;

/** Where `/health/detailed` says limits are decided while Redis is out of reach. */
const OUTAGE_BACKEND: Record<Mode, string> = { local: 'memory', open: 'open', closed: 'closed' };

const BODY = policyBody();
const DAY_MS = 86_400_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One answer of the flow, with how long it took (only ever checked against {@link MAX_REQUEST_MS}). */
interface Sent extends ApiAnswer {
  readonly ms: number;
}

interface DetailedHealth {
  status: string;
  checks: {
    redis: { status: string };
    rate_limit: { status: string; backend: string; failure_mode: string; redis_circuit: string };
  };
}

interface ErrorBody {
  error: { code: string; message: string; request_id: string; details?: Record<string, unknown> };
}

/** The rig of one test: what it started, stopped in reverse order after it whatever happened. */
class Rig {
  readonly sent: Sent[] = [];
  private readonly cleanups: (() => Promise<void> | void)[] = [];
  t!: TestApp;
  admin!: AdminApi;
  adminKey!: string;

  defer(cleanup: () => Promise<void> | void): void {
    this.cleanups.push(cleanup);
  }

  async stop(): Promise<void> {
    const errors: unknown[] = [];
    for (const cleanup of this.cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        errors.push(error);
      }
    }
    this.cleanups.length = 0;
    if (errors.length > 0) throw errors[0];
  }

  async startApp(redisUrl: string, mode: Mode): Promise<void> {
    this.t = await startTestAppWith({
      REDIS_URL: redisUrl,
      RATE_LIMIT_FAILURE_MODE: mode,
      RATE_LIMIT_REDIS_TIMEOUT_MS: String(TIMEOUT_MS),
      RATE_LIMIT_BREAKER_THRESHOLD: String(THRESHOLD),
      RATE_LIMIT_BREAKER_COOLDOWN_MS: '200',
      RATE_LIMIT_REPLICAS: String(REPLICAS),
    });
    const t = this.t;
    this.defer(() => t.close());
    this.adminKey = bootstrapKeyOf(t);
    this.admin = new AdminApi(t, this.adminKey);
  }

  /** One inference request, timed and kept. */
  async send(key: CreatedKey): Promise<Sent> {
    const started = performance.now();
    const answer = await postInference(this.t.url, key.key, BODY);
    const sent = { ...answer, ms: performance.now() - started };
    this.sent.push(sent);
    return sent;
  }

  /** `n` requests at a steady pace (one at a time: the machine has 2 cores). */
  async flow(key: CreatedKey, n: number): Promise<Sent[]> {
    const out: Sent[] = [];
    for (let i = 0; i < n; i += 1) {
      if (i > 0) await sleep(GAP_MS);
      out.push(await this.send(key));
    }
    return out;
  }

  async metrics(): Promise<Sample[]> {
    const res = await this.t.fetch('/monitoring/metrics', { headers: { 'x-api-key': this.adminKey } });
    expect(res.status).toBe(200);
    return parsePrometheusText(res.text);
  }

  async detailed(): Promise<DetailedHealth> {
    const res = await this.t.fetch('/health/detailed', { headers: { 'x-api-key': this.adminKey } });
    expect(res.status).toBe(200);
    return res.json() as DetailedHealth;
  }

  /** Log records whose message starts with `prefix`. */
  logged(prefix: string): number {
    return this.t.logs.records().filter((r) => typeof r.msg === 'string' && r.msg.startsWith(prefix)).length;
  }

  /** Sends requests with `key` until the limiter has answered one from Redis (it connects in the background). */
  async untilOnRedis(key: CreatedKey): Promise<void> {
    const before = okAdmits(await this.metrics());
    await eventually(
      async () => {
        await this.send(key);
        return okAdmits(await this.metrics()) > before;
      },
      15_000,
      GAP_MS,
    );
  }
}

const value = (samples: readonly Sample[], name: string, labels: Record<string, string> = {}) =>
  sampleValue(samples, name, labels) ?? 0;
/** Admissions Redis answered (allowed or refused). */
const okAdmits = (s: readonly Sample[]) =>
  value(s, 'vla_redis_operations_total', { operation: 'admit', status: 'ok' });
/** Admissions that reached for Redis at all: every attempt is timed, failures included. */
const admitAttempts = (s: readonly Sample[]) =>
  value(s, 'vla_redis_operation_duration_seconds_count', { operation: 'admit' });
const fallbacks = (s: readonly Sample[], mode: Mode) =>
  value(s, 'vla_rate_limit_store_fallback_total', { mode });

/** The per-minute limit an answer advertises: 10 when Redis decided, 5 (limit / replicas) for `local`. */
const advertisedRpm = (a: ApiAnswer) =>
  /"requests_per_minute";q=(\d+)/.exec(a.headers['ratelimit-policy'] ?? '')?.[1];

/** The process state letter in /proc (`T`: stopped by SIGSTOP). */
function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

/** Runs `fn` with a client of our own straight to the owned Redis (redis-cli, in effect). */
async function withRedis<T>(port: number, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await fn(redis);
  } finally {
    // QUIT waits for the server to close the connection: nothing of ours is left open afterwards.
    await redis.quit().catch(() => redis.disconnect());
  }
}

/** The tenant's daily quota counter in Redis (summed over days, should the run cross midnight UTC). */
async function storedQuota(port: number, tenantId: string): Promise<number> {
  const today = Math.floor(Date.now() / DAY_MS);
  return withRedis(port, async (redis) => {
    const values = await redis.mget(
      `vla:rl:{${tenantId}}:day:${today - 1}`,
      `vla:rl:{${tenantId}}:day:${today}`,
    );
    return values.reduce((sum, v) => sum + Number(v ?? 0), 0);
  });
}

function expectErrorShape(a: ApiAnswer, code: string): ErrorBody['error'] {
  expect(a.headers['content-type']).toMatch(/^application\/json/);
  const body = a.json as ErrorBody;
  expect(body.error).toMatchObject({
    code,
    message: expect.any(String) as string,
    request_id: expect.any(String) as string,
  });
  return body.error;
}

describe.each(MODES)('rate limiter in %s failure mode, on a Redis the test owns', (mode) => {
  describe.each(FAULTS)('Redis %s', (fault) => {
    let rig: Rig;
    beforeEach(() => {
      rig = new Rig();
    });
    afterEach(() => rig.stop());

    it(`${fault === 'kill' ? 'F1' : 'F2'}: the fallback decides within the timeout, the circuit stops touching Redis, and limits return to Redis without a restart`, async () => {
      const owned = await OwnedRedis.start();
      rig.defer(() => owned.kill());
      await rig.startApp(owned.url, mode);
      // Thaw first: an app closing against a frozen Redis would wait out its quit timeouts.
      rig.defer(() => owned.thaw());
      const { admin } = rig;
      const tenant = await admin.createTenant('robots', { daily_request_quota: 1000 });
      const key = await admin.createKey('robots', ['inference'], { requests_per_minute: LIMIT });
      // Another tenant's key with room to spare, so the warm-up spends none of the limits under test.
      await admin.createTenant('warmup');
      const warm = await admin.createKey('warmup', ['inference'], { requests_per_minute: 100_000 });
      await rig.untilOnRedis(warm);

      // Before the fault: Redis decides, at the full limit, and holds the key's bucket.
      const before = await rig.flow(key, 2);
      expect(before.map((a) => [a.status, advertisedRpm(a)])).toEqual([
        [200, String(LIMIT)],
        [200, String(LIMIT)],
      ]);
      const rpmKey = `vla:rl:{${tenant.id}}:rpm:${key.id}`;
      expect(await withRedis(owned.port, (r) => r.exists(rpmKey))).toBe(1);
      const unreachable0 = rig.logged('redis unreachable');
      const answers0 = rig.logged('redis answers again');
      const m0 = await rig.metrics();
      expect(value(m0, 'vla_rate_limit_backend', { backend: 'redis' })).toBe(1);
      expect(value(m0, 'vla_dependency_circuit_state', { dependency: 'redis' })).toBe(0);
      expect(value(m0, 'vla_rate_limit_failure_mode', { mode })).toBe(1);

      // The fault, between two requests of the flow.
      if (fault === 'kill') {
        await owned.kill();
      } else {
        const pid = owned.pid!;
        owned.freeze();
        await eventually(() => processState(pid) === 'T', 5000);
      }

      const outageN = { local: 8, open: 12, closed: 6 }[mode];
      const outage = await rig.flow(key, outageN);
      if (mode === 'local') {
        // A fresh local bucket at limit / replicas: exactly 5 admitted, then 429.
        expect(outage.map((a) => a.status)).toEqual([
          ...Array<number>(LOCAL_LIMIT).fill(200),
          ...Array<number>(outageN - LOCAL_LIMIT).fill(429),
        ]);
        for (const a of outage) expect(advertisedRpm(a)).toBe(String(LOCAL_LIMIT));
        const refused = expectErrorShape(outage[outageN - 1], 'rate_limited');
        expect(refused.details).toEqual({ limit_type: 'requests_per_minute', limit: LOCAL_LIMIT });
      } else if (mode === 'open') {
        // 2 + 12 requests: past the limit of 10, all admitted unchecked.
        expect(outage.map((a) => a.status)).toEqual(Array<number>(outageN).fill(200));
        expect(before.length + outageN).toBeGreaterThan(LIMIT);
      } else {
        for (const a of outage) {
          expect(a.status).toBe(503);
          expectErrorShape(a, 'rate_limit_unavailable');
          expect(a.headers['retry-after']).toBe('1');
        }
      }

      // While it is down: health, readiness, metrics, one log line.
      const health = await rig.detailed();
      expect(health.checks.redis.status).toBe('down');
      expect(health.checks.rate_limit).toMatchObject({
        status: mode === 'closed' ? 'down' : 'up',
        backend: OUTAGE_BACKEND[mode],
        failure_mode: mode,
        redis_circuit: expect.stringMatching(/^(open|half_open)$/) as string,
      });
      const ready = await rig.t.fetch('/health/ready');
      if (mode === 'closed') {
        expect(ready.status).toBe(503);
        expect((ready.json() as ErrorBody).error.code).toBe('not_ready');
      } else {
        expect(ready.status).toBe(200);
      }
      const m1 = await rig.metrics();
      for (const backend of ['redis', 'memory', 'open', 'closed'])
        expect([backend, value(m1, 'vla_rate_limit_backend', { backend })]).toEqual([
          backend,
          backend === OUTAGE_BACKEND[mode] ? 1 : 0,
        ]);
      expect([1, 2]).toContain(value(m1, 'vla_dependency_circuit_state', { dependency: 'redis' }));
      expect(value(m1, 'vla_application_health', { component: 'redis' })).toBe(0);
      // Every request of the outage was decided by the failure mode...
      expect(fallbacks(m1, mode) - fallbacks(m0, mode)).toBe(outageN);
      // ...and only the first THRESHOLD reached for Redis: then the circuit opened.
      expect(admitAttempts(m1) - admitAttempts(m0)).toBe(THRESHOLD);
      expect(rig.logged('redis unreachable') - unreachable0).toBe(1);
      expect(rig.logged('redis answers again') - answers0).toBe(0);

      // Later requests (the breaker has probed meanwhile) still do not touch Redis.
      const later = await rig.flow(key, 2);
      expect(later.map((a) => a.status)).toEqual(
        Array<number>(2).fill({ local: 429, open: 200, closed: 503 }[mode]),
      );
      const m2 = await rig.metrics();
      expect(admitAttempts(m2)).toBe(admitAttempts(m1));
      expect(fallbacks(m2, mode) - fallbacks(m1, mode)).toBe(2);
      const failedProbes =
        value(m2, 'vla_redis_operations_total', { operation: 'probe', status: 'error' }) +
        value(m2, 'vla_redis_operations_total', { operation: 'probe', status: 'timeout' });
      expect(failedProbes).toBeGreaterThan(0);

      // Recovery, with no app restart.
      if (fault === 'kill') await owned.restart();
      else owned.thaw();
      await eventually(async () => {
        const h = await rig.detailed();
        return h.checks.rate_limit.backend === 'redis' && h.checks.redis.status === 'up';
      }, 15_000);
      expect(rig.logged('redis unreachable') - unreachable0).toBe(1);
      expect(rig.logged('redis answers again') - answers0).toBe(1);
      expect((await rig.t.fetch('/health/ready')).status).toBe(200);
      const m3 = await rig.metrics();
      expect(value(m3, 'vla_rate_limit_backend', { backend: 'redis' })).toBe(1);
      expect(value(m3, 'vla_rate_limit_backend', { backend: OUTAGE_BACKEND[mode] })).toBe(0);
      expect(value(m3, 'vla_dependency_circuit_state', { dependency: 'redis' })).toBe(0);
      expect(value(m3, 'vla_application_health', { component: 'redis' })).toBe(1);

      // The key is decided by Redis again, at the full limit, and its bucket is back in Redis.
      const back = await rig.send(key);
      expect([back.status, advertisedRpm(back)]).toEqual([200, String(LIMIT)]);
      expect(await withRedis(owned.port, (r) => r.exists(rpmKey))).toBe(1);
      // A key made now gets the full limit (not limit / replicas): exactly 10, then 429.
      const fresh = await admin.createKey('robots', ['inference'], { requests_per_minute: LIMIT });
      const freshAnswers = await rig.flow(fresh, LIMIT + 1);
      expect(freshAnswers.map((a) => a.status)).toEqual([...Array<number>(LIMIT).fill(200), 429]);
      for (const a of freshAnswers) expect(advertisedRpm(a)).toBe(String(LIMIT));
      expect(
        await withRedis(owned.port, (r) => r.pttl(`vla:rl:{${tenant.id}}:rpm:${fresh.id}`)),
      ).toBeGreaterThan(0);
      const m4 = await rig.metrics();
      expect(fallbacks(m4, mode)).toBe(fallbacks(m2, mode));

      // The tenant's quota in Redis counts what Redis admitted, never what the failure mode decided.
      const onRedisAfter = 1 + LIMIT;
      if (fault === 'kill') {
        // A restarted Redis (no persistence) starts from zero.
        expect(await storedQuota(owned.port, tenant.id)).toBe(onRedisAfter);
      } else {
        // The frozen Redis kept its state. The THRESHOLD admissions that timed out had been written to its
        // socket and ran when it thawed, after the app had decided them without it: the limiter undoes
        // them once Redis answers, so nothing is counted twice.
        await eventually(
          async () => (await storedQuota(owned.port, tenant.id)) === before.length + onRedisAfter,
        );
        expect(await withRedis(owned.port, (r) => r.zcard(`vla:rl:{${tenant.id}}:conc:${key.id}`))).toBe(0);
      }

      for (const a of rig.sent) expect(a.ms).toBeLessThanOrEqual(MAX_REQUEST_MS);
    });
  });
});

describe('F3: a limiter reply lost on the way back (fault proxy drop-replies)', () => {
  let rig: Rig;
  beforeEach(() => {
    rig = new Rig();
  });
  afterEach(() => rig.stop());

  it('a lost reply: the admission is not resent, the fallback decides it, and once Redis answers it is undone, so Redis counts exactly what it decided', async () => {
    const owned = await OwnedRedis.start();
    rig.defer(() => owned.kill());
    const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: owned.port });
    rig.defer(() => proxy.close());
    await rig.startApp(`redis://127.0.0.1:${proxy.port}`, 'local');
    const { admin } = rig;
    const tenant = await admin.createTenant('robots', { daily_request_quota: 1000 });
    // A concurrency limit, so each admission holds a slot that is released with a second command.
    const key = await admin.createKey('robots', ['inference'], { max_concurrent: 1000 });
    await rig.untilOnRedis(key);
    await rig.flow(key, 4);

    const m0 = await rig.metrics();
    // Let every release settle, so that the next reply the limiter's connection gets is the admission's.
    await eventually(async () => {
      const s = await rig.metrics();
      return value(s, 'vla_redis_operations_total', { operation: 'release', status: 'ok' }) === okAdmits(s);
    });
    const m1 = await rig.metrics();
    expect(okAdmits(m1)).toBe(okAdmits(m0));

    // One admission whose reply never comes back: Redis ran it, the connection is reset. Back to `pass` as
    // soon as that reply is swallowed, before the limiter reconnects (its handshake must not be dropped too).
    const swallowed = proxy.swallowedBytes;
    await proxy.setMode('drop-replies');
    const pending = rig.send(key);
    await eventually(() => proxy.swallowedBytes > swallowed, 5000, 2);
    await proxy.setMode('pass');
    const dropped = await pending;
    expect(dropped.status).toBe(200);
    const m2 = await rig.metrics();
    expect(okAdmits(m2)).toBe(okAdmits(m1));
    expect(admitAttempts(m2) - admitAttempts(m1)).toBe(1);
    // It waited out the command timeout (nothing rejects a command whose reply is lost), then the limiter
    // gave up on it and the local fallback decided it.
    const timeouts = (s: readonly Sample[]) =>
      value(s, 'vla_redis_operations_total', { operation: 'admit', status: 'timeout' });
    expect(timeouts(m2) - timeouts(m1)).toBe(1);
    expect(fallbacks(m2, 'local') - fallbacks(m1, 'local')).toBe(1);

    // The flow goes on; the limiter reconnects and Redis decides again.
    await rig.flow(key, 6);
    await rig.untilOnRedis(key);
    await rig.flow(key, 3);
    await eventually(async () => {
      const s = await rig.metrics();
      return value(s, 'vla_redis_operations_total', { operation: 'release', status: 'ok' }) === okAdmits(s);
    });

    const m3 = await rig.metrics();
    const ok = okAdmits(m3);
    const decidedLocally = fallbacks(m3, 'local');
    expect(rig.sent.every((a) => a.status === 200)).toBe(true);
    // Every request was decided exactly once: by Redis or by the fallback.
    expect(ok + decidedLocally).toBe(rig.sent.length);
    // Nothing was resent: no admission ran in Redis twice.
    // The lost admission ran in Redis, but its answer never came and the fallback decided it: the limiter
    // undid it once Redis answered again. The stored quota is exactly what Redis decided.
    await eventually(async () => (await storedQuota(owned.port, tenant.id)) === ok);
    expect(ok).toBe(rig.sent.length - decidedLocally);
    await withRedis(owned.port, async (redis) => {
      // One marker per admission Redis ran (kept 60 s for a resent command); the lost one's is now void.
      const markers = await redis.keys(`vla:rl:{${tenant.id}}:ticket:*`);
      expect(markers).toHaveLength(ok + 1);
      const values = await Promise.all(markers.map((m) => redis.get(m)));
      expect(values.filter((v) => v === 'void')).toHaveLength(1);
      // No slot is left held: the lost admission's was given back too.
      expect(await redis.zcard(`vla:rl:{${tenant.id}}:conc:${key.id}`)).toBe(0);
    });
    for (const a of rig.sent) expect(a.ms).toBeLessThanOrEqual(MAX_REQUEST_MS);
  });
});
