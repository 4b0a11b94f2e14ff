import fc from 'fast-check';
import Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { type Admission, type Limits, NO_LIMITS, type Subject } from './limits';
import { MemoryRateLimitStore } from './memory-store';
import type { RateLimitStore } from './rate-limit-store';
import { RedisRateLimitStore } from './redis-store';
import { NOON, TestClock } from '../test/store-contract';

const LEASE_TTL_MS = 20_000;

const limitsArb: fc.Arbitrary<Limits> = fc.record({
  requestsPerMinute: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: null }),
  burst: fc.option(fc.integer({ min: 1, max: 5 }), { nil: null }),
  maxConcurrent: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }),
  dailyQuota: fc.option(fc.integer({ min: 0, max: 6 }), { nil: null }),
  tokensPerMinute: fc.option(fc.integer({ min: 1, max: 5000 }), { nil: null }),
});

type Op =
  | { kind: 'admit'; who: number }
  | { kind: 'limits'; next: Limits }
  | { kind: 'release'; which: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'tokens'; who: number; tokens: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('admit' as const), who: fc.nat(2) }) },
  // An admin changes the limits between two requests.
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('limits' as const), next: limitsArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), which: fc.nat(20) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      // Now and then the clock steps back a little (NTP).
      ms: fc.oneof(
        fc.integer({ min: 1, max: 2000 }),
        fc.constantFrom(600, 1000, 6000, 20_000, 86_400_000),
        fc.integer({ min: -500, max: -1 }),
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('tokens' as const),
      who: fc.nat(2),
      tokens: fc.integer({ min: 1, max: 200 }),
    }),
  },
);

/** The comparable part of a decision (reset times are compared to the millisecond). */
const view = (a: Admission) => ({
  allowed: a.allowed,
  limit: a.allowed ? null : a.limit,
  retryAfterMs: a.allowed ? 0 : Math.round(a.retryAfterMs),
  states: a.states.map((s) => ({ ...s, resetMs: Math.round(s.resetMs) })),
});

/**
 * Runs one random sequence of admissions, releases, token charges and clock steps against a store, and
 * checks the invariants that hold whatever the store: never more slots held than allowed, and never more
 * admissions in a UTC day than the quota. Returns every decision, for comparing stores.
 */
async function run(store: RateLimitStore, clock: TestClock, initial: Limits, ops: Op[], tenant: string) {
  let limits = initial;
  const subjects: Subject[] = [0, 1, 2].map((i) => ({ keyId: `${tenant}-k${i}`, tenantId: tenant }));
  const held: { who: Subject; ticket: string }[] = [];
  const decisions: ReturnType<typeof view>[] = [];
  const admittedToday = new Map<number, number>();
  for (const op of ops) {
    if (op.kind === 'limits') {
      limits = op.next;
      // The invariants below hold per limit setting.
      admittedToday.clear();
      held.length = 0;
    } else if (op.kind === 'advance') clock.advance(op.ms);
    else if (op.kind === 'tokens') {
      if (limits.tokensPerMinute !== null)
        await store.recordTokens(subjects[op.who], op.tokens, limits.tokensPerMinute, randomUUID());
    } else if (op.kind === 'release') {
      const slot = held.splice(op.which % Math.max(1, held.length), 1)[0];
      if (slot !== undefined) await store.release(slot.who, slot.ticket);
    } else {
      const who = subjects[op.who];
      const ticket = randomUUID();
      const decision = await store.admit(who, limits, ticket);
      decisions.push(view(decision));
      if (!decision.allowed) continue;
      held.push({ who, ticket });
      const day = Math.floor(clock.ms / 86_400_000);
      admittedToday.set(day, (admittedToday.get(day) ?? 0) + 1);
      if (limits.dailyQuota !== null) expect(admittedToday.get(day)).toBeLessThanOrEqual(limits.dailyQuota);
      if (limits.maxConcurrent !== null) {
        const mine = held.filter((h) => h.who === who).length;
        // Leases may also have expired: held is an upper bound of what the store counts.
        expect(mine <= limits.maxConcurrent || clock.ms - NOON >= LEASE_TTL_MS).toBe(true);
      }
    }
  }
  return decisions;
}

describe('rate-limit stores, random sequences (fast-check)', () => {
  it('the memory store keeps its invariants for any sequence', async () => {
    await fc.assert(
      fc.asyncProperty(limitsArb, fc.array(opArb, { maxLength: 40 }), async (limits, ops) => {
        const clock = new TestClock(NOON);
        const store = new MemoryRateLimitStore({ leaseTtlMs: LEASE_TTL_MS, now: clock.now });
        try {
          await run(store, clock, limits, ops, randomUUID());
        } finally {
          store.close();
        }
      }),
      { numRuns: 300, seed: 20261201 },
    );
  });

  const redisUrl = process.env.REDIS_URL_TEST;
  const withRedis = redisUrl === undefined || redisUrl === '' ? it.skip : it;
  withRedis(
    'the Redis store decides exactly as the memory store, decision by decision (REDIS_URL_TEST)',
    async () => {
      const client = new Redis(redisUrl ?? '', { maxRetriesPerRequest: 1 });
      const prefix = `test:rl:${randomUUID()}:`;
      try {
        await fc.assert(
          fc.asyncProperty(limitsArb, fc.array(opArb, { maxLength: 40 }), async (limits, ops) => {
            const tenant = randomUUID();
            const memoryClock = new TestClock(NOON);
            const memory = new MemoryRateLimitStore({ leaseTtlMs: LEASE_TTL_MS, now: memoryClock.now });
            const redisClock = new TestClock(NOON);
            const redis = new RedisRateLimitStore(client, {
              leaseTtlMs: LEASE_TTL_MS,
              prefix,
              now: redisClock.now,
            });
            try {
              const expected = await run(memory, memoryClock, limits, ops, tenant);
              const actual = await run(redis, redisClock, limits, ops, tenant);
              expect(actual).toEqual(expected);
            } finally {
              memory.close();
            }
          }),
          { numRuns: 150, seed: 20261201 },
        );
      } finally {
        const keys = await client.keys(`${prefix}*`);
        if (keys.length > 0) await client.del(...keys);
        client.disconnect();
      }
    },
    60_000,
  );
});

// Keeps NO_LIMITS in the arbitrary's domain: a sequence with every limit off admits everything.
it('admits everything with every limit off', async () => {
  const clock = new TestClock(NOON);
  const store = new MemoryRateLimitStore({ leaseTtlMs: LEASE_TTL_MS, now: clock.now });
  try {
    const decisions = await run(
      store,
      clock,
      NO_LIMITS,
      [
        { kind: 'admit', who: 0 },
        { kind: 'admit', who: 0 },
      ],
      't',
    );
    expect(decisions.every((d) => d.allowed)).toBe(true);
  } finally {
    store.close();
  }
});
