import { DiscoveryModule, DiscoveryService, MetadataScanner } from '@nestjs/core';
import { RateLimiter } from '@app/rate-limit';
import Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { REQUIRED_SCOPE } from '../src/auth/auth.decorators';
import { RATE_LIMITED } from '../src/rate-limit/rate-limit.guard';
import { AdminApi, bootstrapKeyOf } from './support/api-keys';
import { ChildServer } from './support/child-server';
import { eventually } from './support/eventually';
import { type ApiAnswer, errorCodeOf, policyBody, postInference } from './support/inference-client';
import { ProbeModule } from './support/probe.module';
import { parsePrometheusText, sampleValue } from './support/prom-text';
import { redisTestUrl } from './support/services';
import { startTestApp, startTestAppWith, type TestApp } from './support/test-app';

const REDIS_URL = redisTestUrl();
/** The stores the limiter runs on here: memory always, Redis when CI gives one. */
const STORES: [string, Record<string, string>][] = [
  ['memory', {}],
  ...(REDIS_URL === undefined ? [] : ([['redis', { REDIS_URL }]] as [string, Record<string, string>][])),
];
const slow = policyBody('demo-policy-slow');
const fast = policyBody('demo-policy');

const details = (a: ApiAnswer) =>
  (a.json as { error?: { details?: Record<string, unknown> } }).error?.details;

async function metrics(t: TestApp, admin: string) {
  const res = await t.fetch('/monitoring/metrics', { headers: { 'x-api-key': admin } });
  return parsePrometheusText(res.text);
}

describe.each(STORES)('rate limits on POST /v1/inference, %s store', (store, env) => {
  let t: TestApp;
  let adminKey: string;
  let admin: AdminApi;
  let redis: Redis | undefined;

  beforeAll(async () => {
    t = await startTestApp(env);
    adminKey = bootstrapKeyOf(t);
    admin = new AdminApi(t, adminKey);
    if (env.REDIS_URL !== undefined) {
      redis = new Redis(env.REDIS_URL, { maxRetriesPerRequest: 1 });
      await eventually(() => t.app.get(RateLimiter).backend === 'redis');
    }
  });
  afterAll(async () => {
    redis?.disconnect();
    await t?.close();
  });

  /** Slots a key holds, read from the store itself (the Redis sorted set, or the memory store). */
  const inFlight = async (tenantId: string, keyId: string): Promise<number> =>
    redis === undefined
      ? t.app.get(RateLimiter).memory.inFlight(keyId)
      : redis.zcard(`vla:rl:{${tenantId}}:conc:${keyId}`);

  it('a key limited to 5 per minute gets 429 rate_limited with Retry-After on the 6th request, and the RateLimit headers on every answer', async () => {
    const tenant = `rpm-${store}-${randomUUID().slice(0, 8)}`;
    await admin.createTenant(tenant);
    const key = await admin.createKey(tenant, ['inference'], { requests_per_minute: 5 });
    const answers: ApiAnswer[] = [];
    for (let i = 0; i < 6; i += 1) answers.push(await postInference(t.url, key.key, fast));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 429]);
    expect(answers.map((a) => a.headers.ratelimit?.match(/r=(\d+)/)?.[1])).toEqual([
      '4',
      '3',
      '2',
      '1',
      '0',
      '0',
    ]);
    for (const a of answers) expect(a.headers['ratelimit-policy']).toBe('"requests_per_minute";q=5;w=60');
    const refused = answers[5];
    if (refused === undefined) throw new Error('six answers expected');
    expect(errorCodeOf(refused)).toBe('rate_limited');
    expect(details(refused)).toEqual({ limit_type: 'requests_per_minute', limit: 5 });
    // One request comes back every 12 s.
    expect(refused.headers['retry-after']).toBe('12');
    expect((refused.json as { error: { message: string; request_id: string } }).error).toMatchObject({
      message: expect.stringContaining('5 requests per minute') as string,
      request_id: expect.any(String) as string,
    });
    const samples = await metrics(t, adminKey);
    expect(
      sampleValue(samples, 'vla_rate_limit_hits_total', { tenant, limit_type: 'requests_per_minute' }),
    ).toBe(1);
    expect(
      sampleValue(samples, 'vla_rate_limit_tokens_remaining', { tenant, limit_type: 'requests_per_minute' }),
    ).toBe(0);
    // Another key of the same tenant has a bucket of its own.
    const other = await admin.createKey(tenant, ['inference'], { requests_per_minute: 5 });
    expect((await postInference(t.url, other.key, fast)).status).toBe(200);
  });

  it('L4: exactly the limit out of 50 concurrent requests (never one more)', async () => {
    const tenant = `burst-${store}-${randomUUID().slice(0, 8)}`;
    await admin.createTenant(tenant);
    const key = await admin.createKey(tenant, ['inference'], { requests_per_minute: 10 });
    const agent = new Agent({ connections: 50 });
    try {
      const answers = await Promise.all(
        Array.from({ length: 50 }, () => postInference(t.url, key.key, fast, { dispatcher: agent })),
      );
      expect(answers.filter((a) => a.status === 200)).toHaveLength(10);
      const refused = answers.filter((a) => a.status === 429);
      expect(refused).toHaveLength(40);
      for (const a of refused) {
        expect(errorCodeOf(a)).toBe('rate_limited');
        expect(Number(a.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        expect(a.headers.ratelimit).toMatch(/^"requests_per_minute";r=0;t=\d+$/);
      }
    } finally {
      await agent.close();
    }
    const samples = await metrics(t, adminKey);
    expect(
      sampleValue(samples, 'vla_rate_limit_hits_total', { tenant, limit_type: 'requests_per_minute' }),
    ).toBe(40);
  });

  it("holds a tenant's daily quota across its keys: 429 quota_exceeded until midnight UTC", async () => {
    const tenant = `quota-${store}-${randomUUID().slice(0, 8)}`;
    await admin.createTenant(tenant, { daily_request_quota: 3 });
    const a = await admin.createKey(tenant, ['inference']);
    const b = await admin.createKey(tenant, ['inference']);
    const statuses = [];
    for (const key of [a, b, a]) statuses.push((await postInference(t.url, key.key, fast)).status);
    expect(statuses).toEqual([200, 200, 200]);
    const refused = await postInference(t.url, b.key, fast);
    expect(refused.status).toBe(429);
    expect(errorCodeOf(refused)).toBe('quota_exceeded');
    expect(details(refused)).toEqual({ limit_type: 'daily_quota', limit: 3 });
    const untilMidnight = Math.ceil((Math.ceil(Date.now() / 86_400_000) * 86_400_000 - Date.now()) / 1000);
    expect(Math.abs(Number(refused.headers['retry-after']) - untilMidnight)).toBeLessThanOrEqual(5);
    expect(refused.headers['ratelimit-policy']).toBe('"daily_quota";q=3;w=86400');
    const samples = await metrics(t, adminKey);
    expect(sampleValue(samples, 'vla_quota_usage_percent', { tenant })).toBe(100);
  });

  it('L3: concurrency 2 holds under parallel requests, another key is unaffected, and no slot leaks after failures or a client that leaves', async () => {
    const tenant = `conc-${store}-${randomUUID().slice(0, 8)}`;
    const { id: tenantId } = await admin.createTenant(tenant);
    const k = await admin.createKey(tenant, ['inference'], { max_concurrent: 2 });
    const j = await admin.createKey(tenant, ['inference'], { max_concurrent: 2 });
    const agent = new Agent({ connections: 16 });
    try {
      for (let round = 1; round <= 3; round += 1) {
        const aborter = new AbortController();
        // J's two requests first: the slow model runs one at a time, so K's admitted requests wait behind
        // them and are still in flight when one of them is aborted, however fast this CPU runs the model.
        const onJ = Array.from({ length: 2 }, () => postInference(t.url, j.key, slow, { dispatcher: agent }));
        await eventually(async () => (await inFlight(tenantId, j.id)) === 2);
        const onK = Array.from({ length: 6 }, (_, i) =>
          postInference(t.url, k.key, slow, {
            dispatcher: agent,
            ...(i === 0 && round === 2 ? { signal: aborter.signal } : {}),
          }).catch(
            // The aborted one: its transport error is not kept (see docs/development.md).
            () => null,
          ),
        );
        if (round === 2) {
          // Abort one of K's requests once the server holds both of K's slots.
          await eventually(async () => (await inFlight(tenantId, k.id)) === 2);
          aborter.abort();
        }
        const kAnswers = await Promise.all(onK);
        const jAnswers = await Promise.all(onJ);
        const refused = kAnswers.filter((a) => a?.status === 429);
        expect(refused).toHaveLength(4);
        for (const a of refused)
          expect(details(a as ApiAnswer)).toEqual({ limit_type: 'concurrency', limit: 2 });
        expect(kAnswers.filter((a) => a?.status === 200)).toHaveLength(round === 2 ? 1 : 2);
        expect(jAnswers.map((a) => a.status)).toEqual([200, 200]);
        await eventually(async () => (await inFlight(tenantId, k.id)) === 0);
        await eventually(async () => (await inFlight(tenantId, j.id)) === 0);
        const samples = await metrics(t, adminKey);
        expect(sampleValue(samples, 'vla_rate_limit_hits_total', { tenant, limit_type: 'concurrency' })).toBe(
          4 * round,
        );
      }
    } finally {
      await agent.close();
    }
  });

  it('gives a slot back when the request fails after admission (bad body, unknown model)', async () => {
    const tenant = `fail-${store}-${randomUUID().slice(0, 8)}`;
    const { id: tenantId } = await admin.createTenant(tenant);
    const k = await admin.createKey(tenant, ['inference'], { max_concurrent: 1 });
    for (let i = 0; i < 3; i += 1) {
      expect((await postInference(t.url, k.key, { ...fast, state: 'nope' })).status).toBe(400);
      expect((await postInference(t.url, k.key, { ...fast, model: 'no-such-model' })).status).toBe(404);
      expect((await postInference(t.url, k.key, '{"model":', { rawText: true })).status).toBe(400);
    }
    await eventually(async () => (await inFlight(tenantId, k.id)) === 0);
    expect((await postInference(t.url, k.key, fast)).status).toBe(200);
  });

  it("applies a key's or tenant's new limits on this replica at once (PATCH through the admin API)", async () => {
    const tenant = `patch-${store}-${randomUUID().slice(0, 8)}`;
    const { id: tenantId } = await admin.createTenant(tenant);
    const key = await admin.createKey(tenant, ['inference'], { requests_per_minute: 1 });
    expect((await postInference(t.url, key.key, fast)).status).toBe(200);
    expect((await postInference(t.url, key.key, fast)).status).toBe(429);
    expect((await admin.call('PATCH', `/admin/keys/${key.id}`, { requests_per_minute: 100 })).status).toBe(
      200,
    );
    const raised = await postInference(t.url, key.key, fast);
    expect(raised.status).toBe(200);
    expect(raised.headers['ratelimit-policy']).toBe('"requests_per_minute";q=100;w=60');
    expect((await admin.call('PATCH', `/admin/tenants/${tenantId}`, { daily_request_quota: 0 })).status).toBe(
      200,
    );
    const none = await postInference(t.url, key.key, fast);
    expect(errorCodeOf(none)).toBe('quota_exceeded');
  });

  it('leaves routes that are not rate limited without the headers, and keys without limits unlimited', async () => {
    const tenant = `free-${store}-${randomUUID().slice(0, 8)}`;
    await admin.createTenant(tenant);
    const key = await admin.createKey(tenant, ['inference']);
    const answer = await postInference(t.url, key.key, fast);
    expect(answer.status).toBe(200);
    expect(answer.headers.ratelimit).toBeUndefined();
    const models = await t.fetch('/v1/models', { headers: { 'x-api-key': key.key } });
    expect(models.status).toBe(200);
    expect(models.headers['ratelimit-policy']).toBeUndefined();
  });
});

describe('the rate-limit guard covers every inference route', () => {
  it('every route with scope inference carries @RateLimited()', async () => {
    const t = await startTestAppWith({}, [ProbeModule, DiscoveryModule]);
    try {
      const discovery = t.app.get(DiscoveryService);
      const scanner = t.app.get(MetadataScanner);
      const inferenceRoutes: { route: string; limited: boolean }[] = [];
      for (const wrapper of discovery.getControllers()) {
        const proto = (wrapper.metatype as { prototype?: object } | undefined)?.prototype;
        if (proto === undefined) continue;
        for (const name of scanner.getAllMethodNames(proto)) {
          const handler = (proto as Record<string, unknown>)[name] as object;
          const scope: unknown =
            Reflect.getMetadata(REQUIRED_SCOPE, handler) ??
            Reflect.getMetadata(REQUIRED_SCOPE, wrapper.metatype as object);
          if (scope !== 'inference') continue;
          const limited =
            Reflect.getMetadata(RATE_LIMITED, handler) === true ||
            Reflect.getMetadata(RATE_LIMITED, wrapper.metatype as object) === true;
          inferenceRoutes.push({ route: `${wrapper.name}.${name}`, limited });
        }
      }
      expect(inferenceRoutes.length).toBeGreaterThanOrEqual(1);
      expect(inferenceRoutes.filter((r) => !r.limited)).toEqual([]);
      expect(inferenceRoutes.map((r) => r.route)).toContain('InferenceController.infer');
    } finally {
      await t.close();
    }
  });
});

const withRedis = REDIS_URL === undefined ? describe.skip : describe;

withRedis('two server processes on one Redis (REDIS_URL_TEST)', () => {
  let dir: string;
  let a: TestApp;
  let b: ChildServer | undefined;
  let adminKey: string;
  let admin: AdminApi;

  const startB = async (): Promise<string> => {
    b = ChildServer.spawn('apps/api/src/main.ts', {
      DATABASE_URL: `sqlite:${join(dir, 'platform.sqlite')}`,
      REDIS_URL: REDIS_URL ?? '',
      BOOTSTRAP_KEY: 'off',
    });
    const url = await b.waitUntilListening();
    await eventually(async () => (await request(`${url}/health/ready`)).statusCode === 200, 30_000);
    return url;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vla-rl-two-'));
    a = await startTestApp({
      DATABASE_URL: `sqlite:${join(dir, 'platform.sqlite')}`,
      REDIS_URL: REDIS_URL ?? '',
    });
    adminKey = bootstrapKeyOf(a);
    admin = new AdminApi(a, adminKey);
    await eventually(() => a.app.get(RateLimiter).backend === 'redis');
  }, 60_000);
  afterAll(async () => {
    await b?.dispose();
    await a?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('share a limit of 5 per minute exactly: 10 requests spread over both, 5 succeed', async () => {
    const urlB = await startB();
    const tenant = `two-${randomUUID().slice(0, 8)}`;
    await admin.createTenant(tenant);
    const key = await admin.createKey(tenant, ['inference'], { requests_per_minute: 5 });
    const answers: ApiAnswer[] = [];
    for (let i = 0; i < 10; i += 1)
      answers.push(await postInference(i % 2 === 0 ? a.url : urlB, key.key, fast));
    expect(answers.filter((x) => x.status === 200)).toHaveLength(5);
    expect(answers.filter((x) => x.status === 429)).toHaveLength(5);

    // L4 across both: 50 concurrent on a 10 per minute key.
    const burst = await admin.createKey(tenant, ['inference'], { requests_per_minute: 10 });
    const agent = new Agent({ connections: 50 });
    try {
      const all = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          postInference(i % 2 === 0 ? a.url : urlB, burst.key, fast, { dispatcher: agent }),
        ),
      );
      expect(all.filter((x) => x.status === 200)).toHaveLength(10);
      expect(all.filter((x) => x.status === 429)).toHaveLength(40);
    } finally {
      await agent.close();
    }
  }, 60_000);

  it('L5: a quota of 25 holds for 60 concurrent requests over both, and is still used up after B restarts', async () => {
    const urlB = b?.url !== undefined && b.url !== '' ? b.url : await startB();
    const tenant = `l5-${randomUUID().slice(0, 8)}`;
    await admin.createTenant(tenant, { daily_request_quota: 25 });
    const keys = [await admin.createKey(tenant, ['inference']), await admin.createKey(tenant, ['inference'])];
    const agent = new Agent({ connections: 60 });
    try {
      const all = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          postInference(i % 2 === 0 ? a.url : urlB, (keys[i % 2] as { key: string }).key, fast, {
            dispatcher: agent,
          }),
        ),
      );
      expect(all.filter((x) => x.status === 200)).toHaveLength(25);
      const refused = all.filter((x) => x.status === 429);
      expect(refused).toHaveLength(35);
      for (const x of refused) expect(errorCodeOf(x)).toBe('quota_exceeded');
    } finally {
      await agent.close();
    }
    await b?.dispose();
    const restarted = await startB();
    const after = await postInference(restarted, (keys[1] as { key: string }).key, fast);
    expect(after.status).toBe(429);
    expect(errorCodeOf(after)).toBe('quota_exceeded');
    const samples = await metrics(a, adminKey);
    expect(sampleValue(samples, 'vla_quota_usage_percent', { tenant })).toBe(100);
  }, 90_000);
});
