import { Test } from '@nestjs/testing';
import { MonitoringModule } from '@app/monitoring';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { register } from 'prom-client';
import Redis from 'ioredis';
import { OwnedRedis } from '../test/owned-redis';
import { redisKeys } from './redis-store';
import { NO_LIMITS, type Limits } from './limits';
import { RateLimitHealthIndicator } from './rate-limit.health';
import { RateLimitModule } from './rate-limit.module';
import { limiterRedisOptions, type RateLimitLogger, type RateLimitModuleOptions } from './rate-limit.options';
import { type Decision, RateLimiter, RateLimitUnavailableError } from './rate-limiter.service';
import { eventually } from '../test/eventually';

const TIMEOUT_MS = 150;
/** A generous bound on one admission while Redis is down: the timeout plus scheduling noise. */
const BOUND_MS = TIMEOUT_MS + 1000;

/** Sum of a metric's samples whose labels include `labels`. */
async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = register.getSingleMetric(name);
  if (m === undefined) throw new Error(`no metric ${name}`);
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .filter((v) => !('metricName' in v) || (v as { metricName?: string }).metricName === `${name}_count`)
    .reduce((sum, v) => sum + v.value, 0);
}

/** Whether every observation of the Redis-duration histogram for `operation` is at most `le` seconds. */
async function redisWaitsUnder(operation: string, le: number): Promise<boolean> {
  const m = register.getSingleMetric('vla_redis_operation_duration_seconds');
  if (m === undefined) throw new Error('no histogram');
  const { values } = await m.get();
  const mine = values.filter((v) => v.labels.operation === operation);
  const count = mine.find((v) => (v as { metricName?: string }).metricName?.endsWith('_count'))?.value;
  const under = mine.find((v) => v.labels.le === le)?.value;
  return count !== undefined && count > 0 && under === count;
}

class Logs implements RateLimitLogger {
  readonly lines: { level: string; message: string; object: Record<string, unknown> }[] = [];
  warn(object: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'warn', message, object });
  }
  info(object: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'info', message, object });
  }
}

async function limiterWith(options: Partial<RateLimitModuleOptions>) {
  register.clear();
  const logs = new Logs();
  const moduleRef = await Test.createTestingModule({
    imports: [
      MonitoringModule.forRoot({
        appVersion: 'test',
        token: null,
        public: true,
        httpMetrics: false,
        defaultMetrics: false,
      }),
      RateLimitModule.forRoot({
        redisUrl: null,
        failureMode: 'local',
        replicas: 1,
        redisTimeoutMs: TIMEOUT_MS,
        breakerThreshold: 3,
        breakerCooldownMs: 100,
        leaseTtlMs: 60_000,
        keyPrefix: `test:rl:${randomUUID()}:`,
        logger: logs,
        ...options,
      }),
    ],
  }).compile();
  await moduleRef.init();
  return {
    limiter: moduleRef.get(RateLimiter),
    health: moduleRef.get(RateLimitHealthIndicator),
    logs,
    close: () => moduleRef.close(),
  };
}

const subject = () => ({ keyId: randomUUID(), tenantId: randomUUID(), tenantName: 'acme' });
const perMinute = (n: number): Limits => ({ ...NO_LIMITS, requestsPerMinute: n, burst: n });

async function timedAdmit(limiter: RateLimiter, who: ReturnType<typeof subject>, limits: Limits) {
  const started = performance.now();
  const decision = await limiter.admit(who, limits);
  return { decision, ms: performance.now() - started };
}

afterEach(() => register.clear());

describe('limiterRedisOptions', () => {
  it('bounds every wait on Redis: no offline queue, one retry, a command timeout, no resends', () => {
    expect(limiterRedisOptions(200)).toMatchObject({
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: 200,
      autoResendUnfulfilledCommands: false,
      lazyConnect: true,
    });
  });
});

describe('RateLimiter without Redis', () => {
  it('decides in memory, shows the memory backend, and admits unlimited requests without a store', async () => {
    const { limiter, health, close } = await limiterWith({});
    try {
      const who = subject();
      const decisions: Decision[] = [];
      for (let i = 0; i < 4; i += 1) decisions.push(await limiter.admit(who, perMinute(3)));
      expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false]);
      expect(decisions.every((d) => d.backend === 'memory')).toBe(true);
      expect(await metric('vla_rate_limit_backend', { backend: 'memory' })).toBe(1);
      expect(await metric('vla_rate_limit_backend', { backend: 'redis' })).toBe(0);
      expect(
        await metric('vla_rate_limit_hits_total', { tenant: 'acme', limit_type: 'requests_per_minute' }),
      ).toBe(1);
      expect(
        await metric('vla_rate_limit_tokens_remaining', {
          tenant: 'acme',
          limit_type: 'requests_per_minute',
        }),
      ).toBe(0);
      expect((await limiter.admit(who, NO_LIMITS)).allowed).toBe(true);
      expect(health.check('rate_limit')).toEqual({
        rate_limit: { status: 'up', backend: 'memory', failure_mode: 'local', redis_circuit: 'none' },
      });
      expect(health.gatesReadiness).toBe(false);
    } finally {
      await close();
    }
  });

  it('releases a concurrency slot once, however often release is called', async () => {
    const { limiter, close } = await limiterWith({});
    try {
      const who = subject();
      const one = { ...NO_LIMITS, maxConcurrent: 1 };
      const first = await limiter.admit(who, one);
      expect((await limiter.admit(who, one)).allowed).toBe(false);
      first.release();
      first.release();
      const second = await limiter.admit(who, one);
      expect(second.allowed).toBe(true);
      expect((await limiter.admit(who, one)).allowed).toBe(false);
      expect(limiter.memory.inFlight(who.keyId)).toBe(1);
    } finally {
      await close();
    }
  });

  it('records the quota usage percent of a tenant', async () => {
    const { limiter, close } = await limiterWith({});
    try {
      const who = subject();
      const quota = { ...NO_LIMITS, dailyQuota: 4 };
      await limiter.admit(who, quota);
      expect(await metric('vla_quota_usage_percent', { tenant: 'acme' })).toBe(25);
      for (let i = 0; i < 4; i += 1) await limiter.admit(who, quota);
      expect(await metric('vla_quota_usage_percent', { tenant: 'acme' })).toBe(100);
      expect(await metric('vla_rate_limit_hits_total', { limit_type: 'daily_quota' })).toBe(1);
    } finally {
      await close();
    }
  });
});

describe('RateLimiter on a Redis the test owns', () => {
  let redis: OwnedRedis;
  beforeAll(async () => {
    redis = await OwnedRedis.start();
  });
  afterAll(async () => {
    await redis.kill();
  });
  afterEach(async () => {
    redis.thaw();
    if (redis.pid === undefined) await redis.restart();
  });

  const ready = async (limiter: RateLimiter) => {
    // The connection is made in the background at start.
    await eventually(async () => {
      try {
        return (await limiter.admit(subject(), perMinute(1000))).backend === 'redis';
      } catch {
        return false; // closed mode refuses until the connection is up
      }
    });
  };

  it('shares one limit between two limiters (two replicas) exactly', async () => {
    const prefix = `test:rl:${randomUUID()}:`;
    const a = await limiterWith({ redisUrl: redis.url, keyPrefix: prefix });
    const b = await limiterWith({ redisUrl: redis.url, keyPrefix: prefix });
    try {
      await ready(a.limiter);
      await ready(b.limiter);
      const who = subject();
      const decisions = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).limiter.admit(who, perMinute(5))),
      );
      expect(decisions.filter((d) => d.allowed)).toHaveLength(5);
      expect(decisions.every((d) => d.backend === 'redis')).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it.each(['kill', 'freeze'] as const)(
    'local mode, Redis %s: no admission waits past the timeout, the circuit opens and stops touching Redis, limits hold at limit / replicas, and Redis is used again once it is back',
    async (fault) => {
      const { limiter, health, logs, close } = await limiterWith({ redisUrl: redis.url, replicas: 2 });
      try {
        await ready(limiter);
        const who = subject();
        expect((await limiter.admit(who, perMinute(10))).backend).toBe('redis');

        const fallbacksBefore = await metric('vla_rate_limit_store_fallback_total', { mode: 'local' });
        const failureStatus = fault === 'kill' ? 'error' : 'timeout';
        const failuresBefore = await metric('vla_redis_operations_total', {
          operation: 'admit',
          status: failureStatus,
        });
        if (fault === 'kill') await redis.kill();
        else redis.freeze();

        const during: { decision: Decision; ms: number }[] = [];
        for (let i = 0; i < 8; i += 1) during.push(await timedAdmit(limiter, subject(), perMinute(10)));
        for (const { ms } of during) expect(ms).toBeLessThan(BOUND_MS);
        // Tighter, from the limiter's own clock: no wait on Redis reached 0.5 s (timeout 0.15 s; ioredis's
        // defaults would retry for seconds).
        expect(await redisWaitsUnder('admit', 0.5)).toBe(true);
        expect(during.every(({ decision }) => decision.allowed && decision.backend === 'memory')).toBe(true);
        expect(limiter.circuit === 'open' || limiter.circuit === 'half_open').toBe(true);
        expect(await metric('vla_rate_limit_backend', { backend: 'memory' })).toBe(1);
        expect(
          (await metric('vla_rate_limit_store_fallback_total', { mode: 'local' })) - fallbacksBefore,
        ).toBe(8);
        // The breaker opened after its threshold (3) of failures; the other 5 never touched Redis.
        expect(
          (await metric('vla_redis_operations_total', { operation: 'admit', status: failureStatus })) -
            failuresBefore,
        ).toBe(3);

        // Open: admissions do not touch Redis (the admit count stays), and limits hold at 10 / 2 replicas.
        const redisAdmits = await metric('vla_redis_operation_duration_seconds', { operation: 'admit' });
        const local = subject();
        const results: boolean[] = [];
        for (let i = 0; i < 7; i += 1) results.push((await limiter.admit(local, perMinute(10))).allowed);
        expect(results).toEqual([true, true, true, true, true, false, false]);
        expect(await metric('vla_redis_operation_duration_seconds', { operation: 'admit' })).toBe(
          redisAdmits,
        );
        expect(health.check('rate_limit').rate_limit).toMatchObject({
          status: 'up',
          backend: 'memory',
        });

        if (fault === 'kill') await redis.restart();
        else redis.thaw();
        await eventually(() => limiter.circuit === 'closed');
        expect((await limiter.admit(subject(), perMinute(10))).backend).toBe('redis');
        expect(await metric('vla_dependency_circuit_state', { dependency: 'redis' })).toBe(0);
        expect(await metric('vla_rate_limit_backend', { backend: 'redis' })).toBe(1);
        // One line when the outage began and one when it ended, however many requests fell back.
        expect(logs.lines.map((l) => l.level)).toEqual(['warn', 'info']);
      } finally {
        await close();
      }
    },
  );

  it('undoes the admissions that ran in a stalled Redis after their callers gave up: no slot held, no double count', async () => {
    const prefix = `test:rl:${randomUUID()}:`;
    const { limiter, close } = await limiterWith({ redisUrl: redis.url, keyPrefix: prefix });
    const check = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      await ready(limiter);
      const who = subject();
      const limits = { ...NO_LIMITS, maxConcurrent: 2, dailyQuota: 100 };
      const keys = redisKeys(prefix, who);
      const day = `${keys.quota}:${Math.floor(Number((await check.time())[0]) / 86_400)}`;
      redis.freeze();
      // Sent to the frozen Redis, timed out, decided locally; they run in Redis when it thaws.
      const during: Decision[] = [];
      for (let i = 0; i < 4; i += 1) {
        const decision = await limiter.admit(who, limits);
        during.push(decision);
        decision.release();
      }
      expect(during.every((d) => d.allowed && d.backend === 'memory')).toBe(true);
      redis.thaw();
      await eventually(() => limiter.circuit === 'closed');
      // The three that reached Redis before the circuit opened ran on thaw, and are undone.
      await eventually(
        async () => (await check.zcard(keys.concurrency)) === 0 && (await check.get(day)) === '0',
      );
      expect(
        await metric('vla_redis_operations_total', { operation: 'void', status: 'ok' }),
      ).toBeGreaterThanOrEqual(3);
      // The key has both its slots.
      const a = await limiter.admit(who, limits);
      const b = await limiter.admit(who, limits);
      expect([a.allowed, b.allowed, a.backend]).toEqual([true, true, 'redis']);
      expect(await check.get(day)).toBe('2');
    } finally {
      check.disconnect();
      await close();
    }
  });

  it('keeps the circuit open while Redis answers PING but cannot run the script (out of memory), and logs the outage once', async () => {
    const { limiter, logs, close } = await limiterWith({ redisUrl: redis.url });
    const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      await ready(limiter);
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await admin.config('SET', 'maxmemory', '1');
      expect(await admin.ping()).toBe('PONG');
      for (let i = 0; i < 5; i += 1)
        expect((await limiter.admit(subject(), perMinute(10))).backend).toBe('memory');
      expect(limiter.circuit).not.toBe('closed');
      // Ten cool-downs of probing: every probe runs the script, fails, and the circuit stays open.
      await eventually(
        async () => (await metric('vla_redis_operations_total', { operation: 'probe' })) >= 10,
      );
      expect(limiter.circuit).not.toBe('closed');
      expect(await metric('vla_redis_operations_total', { operation: 'probe', status: 'ok' })).toBe(0);
      await admin.config('SET', 'maxmemory', '0');
      await eventually(() => limiter.circuit === 'closed');
      expect((await limiter.admit(subject(), perMinute(10))).backend).toBe('redis');
      expect(logs.lines.map((l) => l.level)).toEqual(['warn', 'info']);
    } finally {
      await admin.config('SET', 'maxmemory', '0').catch(() => undefined);
      admin.disconnect();
      await close();
    }
  });

  it('does not count a corrupted key of one subject against the circuit', async () => {
    const prefix = `test:rl:${randomUUID()}:`;
    const { limiter, close } = await limiterWith({ redisUrl: redis.url, keyPrefix: prefix });
    const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      await ready(limiter);
      const broken = subject();
      await admin.lpush(redisKeys(prefix, broken).concurrency, 'not a sorted set');
      for (let i = 0; i < 6; i += 1) {
        const decision = await limiter.admit(broken, { ...NO_LIMITS, maxConcurrent: 5 });
        expect(decision).toMatchObject({ allowed: true, backend: 'memory' });
        decision.release();
      }
      expect(limiter.circuit).toBe('closed');
      // Its releases fail too (the same broken key), and are not retried against the circuit either.
      for (let i = 0; i < 6; i += 1) {
        expect((await limiter.admit(subject(), perMinute(10))).backend).toBe('redis');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(limiter.circuit).toBe('closed');
    } finally {
      admin.disconnect();
      await close();
    }
  });

  it('open mode admits unchecked while Redis is down, counted as fallbacks', async () => {
    const { limiter, close } = await limiterWith({ redisUrl: redis.url, failureMode: 'open' });
    try {
      await ready(limiter);
      await redis.kill();
      const before = await metric('vla_rate_limit_store_fallback_total', { mode: 'open' });
      const who = subject();
      for (let i = 0; i < 5; i += 1) {
        expect(await limiter.admit(who, perMinute(1))).toMatchObject({
          allowed: true,
          backend: 'open',
          states: [],
        });
      }
      expect((await metric('vla_rate_limit_store_fallback_total', { mode: 'open' })) - before).toBe(5);
      expect(limiter.backend).toBe('open');
    } finally {
      await close();
    }
  });

  it('closed mode refuses with rate_limit_unavailable within the timeout, and its health is down', async () => {
    const { limiter, health, close } = await limiterWith({ redisUrl: redis.url, failureMode: 'closed' });
    try {
      await ready(limiter);
      expect(health.gatesReadiness).toBe(true);
      redis.freeze();
      for (let i = 0; i < 5; i += 1) {
        const started = performance.now();
        await expect(limiter.admit(subject(), perMinute(1))).rejects.toBeInstanceOf(
          RateLimitUnavailableError,
        );
        expect(performance.now() - started).toBeLessThan(BOUND_MS);
      }
      expect(limiter.backend).toBe('closed');
      expect(await metric('vla_rate_limit_backend', { backend: 'closed' })).toBe(1);
      expect(health.check('rate_limit').rate_limit).toMatchObject({
        status: 'down',
        backend: 'closed',
      });
      redis.thaw();
      await eventually(() => limiter.circuit === 'closed');
      expect((await limiter.admit(subject(), perMinute(1))).backend).toBe('redis');
      expect(health.check('rate_limit').rate_limit).toMatchObject({ status: 'up', backend: 'redis' });
    } finally {
      await close();
    }
  });
});
