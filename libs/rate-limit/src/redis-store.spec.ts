import Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { NO_LIMITS } from './limits';
import { parseAdmission, redisKeys, RedisRateLimitStore } from './redis-store';
import { eventually } from '../test/eventually';

describe('parseAdmission', () => {
  it('reads an admitted and a refused reply, and an empty state list that cjson wrote as {}', () => {
    expect(parseAdmission('[1,"",0,{}]')).toEqual({ allowed: true, states: [] });
    expect(parseAdmission('[0,"concurrency",1000,[["concurrency",2,0,0]]]')).toEqual({
      allowed: false,
      limit: 'concurrency',
      retryAfterMs: 1000,
      states: [{ type: 'concurrency', limit: 2, remaining: 0, resetMs: 0 }],
    });
  });

  it.each([
    ['no reply', null],
    ['not JSON', 'OK'],
    ['the wrong length', '[1,"",0]'],
    ['an unknown refusing limit', '[0,"bogus",1,[]]'],
    ['an unknown limit in the states', '[1,"",0,[["bogus",1,1,1]]]'],
  ])('refuses a reply with %s instead of admitting', (_, reply) => {
    expect(() => parseAdmission(reply)).toThrow();
  });
});

describe('redisKeys', () => {
  it('puts every key of a subject in the tenant hash tag (one Redis Cluster slot)', () => {
    const keys = redisKeys('p:', { keyId: 'k1', tenantId: 't1' });
    for (const key of [keys.requests, keys.concurrency, keys.quota, keys.tokens, keys.ticket('x')]) {
      expect(key.startsWith('p:{t1}:')).toBe(true);
    }
  });
});

const redisUrl = process.env.REDIS_URL_TEST;
const withRedis = redisUrl === undefined || redisUrl === '' ? describe.skip : describe;

withRedis('RedisRateLimitStore on a real Redis (REDIS_URL_TEST)', () => {
  const client = new Redis(redisUrl ?? '', { lazyConnect: true, maxRetriesPerRequest: 1 });
  const prefix = `test:rl:${randomUUID()}:`;
  const subject = () => ({ keyId: randomUUID(), tenantId: randomUUID() });

  beforeAll(async () => {
    await client.connect();
  });
  afterAll(async () => {
    const keys = await client.keys(`${prefix}*`);
    if (keys.length > 0) await client.del(...keys);
    await client.quit();
  });

  it('counts a resent admission (same ticket, reply lost) once and answers it the same', async () => {
    const store = new RedisRateLimitStore(client, { leaseTtlMs: 60_000, prefix });
    const who = subject();
    const limits = { ...NO_LIMITS, requestsPerMinute: 2, burst: 2, maxConcurrent: 5, dailyQuota: 10 };
    const ticket = randomUUID();
    const first = await store.admit(who, limits, ticket);
    const resent = await store.admit(who, limits, ticket);
    expect(resent).toEqual(first);
    const keys = store.keys(who);
    expect(await client.zcard(keys.concurrency)).toBe(1);
    const day = Math.floor(Number((await client.time())[0]) / 86_400);
    expect(await client.get(`${keys.quota}:${day}`)).toBe('1');
    expect((await store.admit(who, limits, randomUUID())).allowed).toBe(true);
    expect(await store.admit(who, limits, randomUUID())).toMatchObject({
      allowed: false,
      limit: 'requests_per_minute',
    });
  });

  it('voids an admission that ran after its caller gave up: slot, quota and request given back, once', async () => {
    const store = new RedisRateLimitStore(client, { leaseTtlMs: 60_000, prefix });
    const who = subject();
    const limits = { ...NO_LIMITS, requestsPerMinute: 2, burst: 2, maxConcurrent: 1, dailyQuota: 2 };
    const lost = randomUUID();
    expect((await store.admit(who, limits, lost)).allowed).toBe(true);
    expect(await store.void(who, lost)).toBe(true);
    expect(await store.void(who, lost)).toBe(false);
    const keys = store.keys(who);
    expect(await client.zcard(keys.concurrency)).toBe(0);
    // Everything is whole again: the same limits admit two requests (released in between).
    const first = randomUUID();
    expect(await store.admit(who, limits, first)).toMatchObject({
      allowed: true,
      states: [
        { type: 'requests_per_minute', remaining: 1 },
        { type: 'concurrency', remaining: 0 },
        { type: 'daily_quota', remaining: 1 },
      ],
    });
    await store.release(who, first);
    expect((await store.admit(who, limits, randomUUID())).allowed).toBe(true);
  });

  it('frees the slot of a voided admission even after its marker expired', async () => {
    const store = new RedisRateLimitStore(client, { leaseTtlMs: 60_000, prefix, markerTtlMs: 50 });
    const who = subject();
    const ticket = randomUUID();
    expect((await store.admit(who, { ...NO_LIMITS, maxConcurrent: 1 }, ticket)).allowed).toBe(true);
    await eventually(async () => (await client.exists(store.keys(who).ticket(ticket))) === 0);
    expect(await store.void(who, ticket)).toBe(false);
    expect(await client.zcard(store.keys(who).concurrency)).toBe(0);
  });

  it('voids a ticket that never ran, so that a late copy of its admission counts nothing', async () => {
    const store = new RedisRateLimitStore(client, { leaseTtlMs: 60_000, prefix });
    const who = subject();
    const limits = { ...NO_LIMITS, maxConcurrent: 1 };
    const late = randomUUID();
    expect(await store.void(who, late)).toBe(false);
    await expect(store.admit(who, limits, late)).rejects.toThrow();
    expect(await client.zcard(store.keys(who).concurrency)).toBe(0);
    expect((await store.admit(who, limits, randomUUID())).allowed).toBe(true);
  });

  it("uses the Redis server's clock when given none, and leaves every key with an expiry", async () => {
    const store = new RedisRateLimitStore(client, { leaseTtlMs: 60_000, prefix });
    const who = subject();
    const limits = { ...NO_LIMITS, requestsPerMinute: 1, burst: 1, maxConcurrent: 1, dailyQuota: 5 };
    expect((await store.admit(who, limits, randomUUID())).allowed).toBe(true);
    expect(await store.admit(who, limits, randomUUID())).toMatchObject({ allowed: false });
    await store.recordTokens(who, 10, 100, randomUUID());
    const keys = await client.keys(`${prefix}{${who.tenantId}}*`);
    expect(keys.length).toBeGreaterThanOrEqual(4);
    for (const key of keys) expect(await client.pttl(key)).toBeGreaterThan(0);
  });

  it('loads the script again after SCRIPT FLUSH (NOSCRIPT falls back to EVAL)', async () => {
    const store = new RedisRateLimitStore(client, { leaseTtlMs: 60_000, prefix });
    await client.script('FLUSH');
    expect((await store.admit(subject(), { ...NO_LIMITS, dailyQuota: 1 }, randomUUID())).allowed).toBe(true);
  });
});
