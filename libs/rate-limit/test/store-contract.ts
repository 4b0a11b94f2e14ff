import { randomUUID } from 'node:crypto';
import { type Limits, NO_LIMITS, type Subject } from '../src/limits';
import type { RateLimitStore } from '../src/rate-limit-store';

/** A settable wall clock shared by a store under test. */
export class TestClock {
  constructor(public ms: number) {}
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

export interface StoreUnderTest {
  readonly store: RateLimitStore;
  readonly clock: TestClock;
  readonly leaseTtlMs: number;
}

/** Midday UTC on a fixed date: far from midnight, so only the midnight test crosses a day. */
export const NOON = Date.UTC(2026, 11, 1, 12, 0, 0);
const LEASE_TTL_MS = 30_000;

const limits = (partial: Partial<Limits>): Limits => ({ ...NO_LIMITS, ...partial });

/**
 * The behaviour every rate-limit store must have: the Redis store and the memory store run this one suite
 * (`make` builds a fresh, empty store on a clock at {@link NOON}), so the two cannot drift apart.
 */
export function storeContract(
  name: string,
  make: (leaseTtlMs: number) => Promise<StoreUnderTest>,
  done?: () => Promise<void>,
): void {
  describe(`${name} store contract`, () => {
    let s: StoreUnderTest;
    let n = 0;
    /** A fresh key of a fresh tenant per call, unless a tenant is given. */
    const subject = (tenantId = `t${randomUUID()}`): Subject => ({
      keyId: `k${(n += 1)}-${randomUUID()}`,
      tenantId,
    });
    const admit = (who: Subject, l: Limits, ticket = randomUUID()) => s.store.admit(who, l, ticket);

    beforeEach(async () => {
      s = await make(LEASE_TTL_MS);
    });
    afterAll(async () => {
      await done?.();
    });

    it('admits everything without touching a limit when every limit is off', async () => {
      const who = subject();
      for (let i = 0; i < 20; i += 1) {
        const a = await admit(who, NO_LIMITS);
        expect(a).toEqual({ allowed: true, states: [] });
      }
    });

    it('admits a burst of requests_per_minute, then refuses with the time until one request is back', async () => {
      const who = subject();
      const rpm = limits({ requestsPerMinute: 10, burst: 10 });
      const remaining: number[] = [];
      for (let i = 0; i < 10; i += 1) {
        const a = await admit(who, rpm);
        expect(a.allowed).toBe(true);
        remaining.push(a.states[0]?.remaining ?? -1);
      }
      expect(remaining).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
      const refused = await admit(who, rpm);
      expect(refused).toMatchObject({ allowed: false, limit: 'requests_per_minute' });
      if (refused.allowed) throw new Error('unreachable');
      expect(refused.retryAfterMs).toBe(6000);
      expect(refused.states).toEqual([
        expect.objectContaining({ type: 'requests_per_minute', limit: 10, remaining: 0 }),
      ]);
      s.clock.advance(5999);
      expect((await admit(who, rpm)).allowed).toBe(false);
      s.clock.advance(1);
      expect(await admit(who, rpm)).toMatchObject({ allowed: true, states: [{ remaining: 0 }] });
    });

    it('reports the time until the bucket is full as the reset', async () => {
      const who = subject();
      const rpm = limits({ requestsPerMinute: 60, burst: 60 });
      await admit(who, rpm);
      const second = await admit(who, rpm);
      expect(second.states[0]).toMatchObject({ remaining: 58 });
      expect(second.states[0]?.resetMs).toBe(2000);
    });

    it('lets a smaller burst through at once and then only the rate', async () => {
      const who = subject();
      const rpm = limits({ requestsPerMinute: 60, burst: 2 });
      expect((await admit(who, rpm)).allowed).toBe(true);
      expect((await admit(who, rpm)).allowed).toBe(true);
      const third = await admit(who, rpm);
      expect(third).toMatchObject({ allowed: false, limit: 'requests_per_minute' });
      if (third.allowed) throw new Error('unreachable');
      expect(third.retryAfterMs).toBe(1000);
      s.clock.advance(1000);
      expect((await admit(who, rpm)).allowed).toBe(true);
      expect((await admit(who, rpm)).allowed).toBe(false);
    });

    it('applies a raised limit at once, and a lowered one leaves at most one full bucket to wait', async () => {
      const who = subject();
      expect((await admit(who, limits({ requestsPerMinute: 1, burst: 1 }))).allowed).toBe(true);
      expect((await admit(who, limits({ requestsPerMinute: 1, burst: 1 }))).allowed).toBe(false);
      // One request used of a new limit of 100: 98 left after this one.
      expect(await admit(who, limits({ requestsPerMinute: 100, burst: 100 }))).toMatchObject({
        allowed: true,
        states: [{ remaining: 98 }],
      });
      for (let i = 0; i < 20; i += 1) await admit(who, limits({ requestsPerMinute: 100, burst: 100 }));
      // 22 used, lowered to 2 per minute: the debt is capped at the new bucket, 2 requests, paid in 30 s.
      const lowered = await admit(who, limits({ requestsPerMinute: 2, burst: 2 }));
      expect(lowered).toMatchObject({ allowed: false, limit: 'requests_per_minute', retryAfterMs: 30_000 });
      s.clock.advance(30_000);
      expect((await admit(who, limits({ requestsPerMinute: 2, burst: 2 }))).allowed).toBe(true);
    });

    it('computes an odd rate exactly: 7 per minute frees one request every 8571.43 ms', async () => {
      const who = subject();
      const seven = limits({ requestsPerMinute: 7, burst: 1 });
      expect((await admit(who, seven)).allowed).toBe(true);
      const refused = await admit(who, seven);
      expect(refused).toMatchObject({ allowed: false, retryAfterMs: 8572 });
      s.clock.advance(8571);
      expect((await admit(who, seven)).allowed).toBe(false);
      s.clock.advance(1);
      expect((await admit(who, seven)).allowed).toBe(true);
    });

    it('admits exactly the limit out of a concurrent burst (no check-then-act race)', async () => {
      const who = subject();
      const rpm = limits({ requestsPerMinute: 10, burst: 10 });
      const results = await Promise.all(Array.from({ length: 50 }, () => admit(who, rpm)));
      expect(results.filter((r) => r.allowed)).toHaveLength(10);
      expect(results.filter((r) => !r.allowed)).toHaveLength(40);
    });

    it('admits a whole large burst at one instant, on an epoch-sized clock (no rounding at the edge)', async () => {
      const who = subject();
      const big = limits({ requestsPerMinute: 7000, burst: 7000 });
      let admitted = 0;
      let lastRemaining = -1;
      for (let batch = 0; batch < 15; batch += 1) {
        const answers = await Promise.all(Array.from({ length: 500 }, () => admit(who, big)));
        for (const a of answers) if (a.allowed) admitted += 1;
        if (batch === 0) lastRemaining = Math.min(...answers.map((a) => a.states[0]?.remaining ?? -1));
      }
      expect(admitted).toBe(7000);
      expect(lastRemaining).toBe(6500);
    });

    it('reports what a refused request left untouched: the other limits keep the unit it did not spend', async () => {
      const who = subject();
      const l = limits({ requestsPerMinute: 10, burst: 10, maxConcurrent: 1, dailyQuota: 5 });
      expect((await admit(who, l)).allowed).toBe(true);
      expect(await admit(who, l)).toEqual({
        allowed: false,
        limit: 'concurrency',
        retryAfterMs: 1000,
        states: [
          expect.objectContaining({ type: 'requests_per_minute', remaining: 9 }),
          { type: 'concurrency', limit: 1, remaining: 0, resetMs: 0 },
          expect.objectContaining({ type: 'daily_quota', remaining: 4 }),
        ],
      });
    });

    it('refuses everything at a rate of 0 (requests or tokens per minute)', async () => {
      for (const l of [limits({ requestsPerMinute: 0, burst: 1 }), limits({ tokensPerMinute: 0 })]) {
        const refused = await admit(subject(), l);
        expect(refused).toMatchObject({
          allowed: false,
          retryAfterMs: 60_000,
          states: [{ limit: 0, remaining: 0 }],
        });
      }
      await s.store.recordTokens(subject(), 10, 0, randomUUID());
    });

    it('holds the daily quota whatever the clock says, far in the past included', async () => {
      s.clock.ms = Date.UTC(2020, 0, 1, 12);
      const who = subject();
      const quota = limits({ dailyQuota: 2 });
      const answers = [];
      for (let i = 0; i < 4; i += 1) answers.push((await admit(who, quota)).allowed);
      expect(answers).toEqual([true, true, false, false]);
    });

    it("forgets a bucket's debt once it would have been paid back at the rate it was written with", async () => {
      const who = subject();
      for (let i = 0; i < 6; i += 1)
        expect((await admit(who, limits({ requestsPerMinute: 60, burst: 6 }))).allowed).toBe(true);
      // 6 requests at 60 per minute are paid back in 6 s; lowered to 1 per minute, they still count until then.
      expect(await admit(who, limits({ requestsPerMinute: 1, burst: 1 }))).toMatchObject({ allowed: false });
      s.clock.advance(5999);
      expect((await admit(who, limits({ requestsPerMinute: 1, burst: 1 }))).allowed).toBe(false);
      s.clock.advance(1);
      expect((await admit(who, limits({ requestsPerMinute: 1, burst: 1 }))).allowed).toBe(true);
    });

    it('counts each key on its own', async () => {
      const tenant = `t${randomUUID()}`;
      const a = subject(tenant);
      const b = subject(tenant);
      const rpm = limits({ requestsPerMinute: 1, burst: 1 });
      expect((await admit(a, rpm)).allowed).toBe(true);
      expect((await admit(a, rpm)).allowed).toBe(false);
      expect((await admit(b, rpm)).allowed).toBe(true);
    });

    it('holds a concurrency slot until it is released, and releasing twice or an unknown ticket does nothing', async () => {
      const who = subject();
      const two = limits({ maxConcurrent: 2 });
      const t1 = randomUUID();
      expect(await admit(who, two, t1)).toEqual({
        allowed: true,
        states: [{ type: 'concurrency', limit: 2, remaining: 1, resetMs: 0 }],
      });
      expect(await admit(who, two)).toMatchObject({ allowed: true, states: [{ remaining: 0 }] });
      const third = await admit(who, two);
      expect(third).toMatchObject({ allowed: false, limit: 'concurrency', retryAfterMs: 1000 });
      await s.store.release(who, t1);
      await s.store.release(who, t1);
      await s.store.release(who, randomUUID());
      expect((await admit(who, two)).allowed).toBe(true);
      expect((await admit(who, two)).allowed).toBe(false);
    });

    it('frees a slot whose release never came once its lease has expired (a replica died)', async () => {
      const who = subject();
      const one = limits({ maxConcurrent: 1 });
      expect((await admit(who, one)).allowed).toBe(true);
      s.clock.advance(s.leaseTtlMs - 1);
      expect((await admit(who, one)).allowed).toBe(false);
      s.clock.advance(1);
      expect((await admit(who, one)).allowed).toBe(true);
    });

    it('counts the daily quota per tenant across its keys, until midnight UTC', async () => {
      const tenant = `t${randomUUID()}`;
      const quota = limits({ dailyQuota: 3 });
      const keys = [subject(tenant), subject(tenant), subject(tenant)];
      const answers = [];
      for (const key of keys) answers.push(await admit(key, quota));
      expect(answers.map((a) => a.states[0]?.remaining)).toEqual([2, 1, 0]);
      const refused = await admit(subject(tenant), quota);
      const untilMidnight = Date.UTC(2026, 11, 2) - s.clock.ms;
      expect(refused).toEqual({
        allowed: false,
        limit: 'daily_quota',
        retryAfterMs: untilMidnight,
        states: [{ type: 'daily_quota', limit: 3, remaining: 0, resetMs: untilMidnight }],
      });
      // Another tenant is not affected.
      expect((await admit(subject(), quota)).allowed).toBe(true);
      s.clock.advance(untilMidnight - 1);
      expect((await admit(keys[0], quota)).allowed).toBe(false);
      s.clock.advance(1);
      expect(await admit(keys[0], quota)).toMatchObject({
        allowed: true,
        states: [{ remaining: 2 }],
      });
    });

    it('refuses everything under a quota of 0', async () => {
      expect(await admit(subject(), limits({ dailyQuota: 0 }))).toMatchObject({
        allowed: false,
        limit: 'daily_quota',
      });
    });

    it('is all or nothing: a request refused by one limit spends nothing from the others', async () => {
      const tenant = `t${randomUUID()}`;
      const who = subject(tenant);
      const l = limits({ requestsPerMinute: 2, burst: 2, maxConcurrent: 1, dailyQuota: 2 });
      const first = randomUUID();
      expect((await admit(who, l, first)).allowed).toBe(true);
      // Refused by concurrency: neither the per-minute bucket nor the quota may be charged.
      for (let i = 0; i < 5; i += 1) {
        expect(await admit(who, l)).toMatchObject({ allowed: false, limit: 'concurrency' });
      }
      await s.store.release(who, first);
      const second = await admit(who, l);
      expect(second.allowed).toBe(true);
      expect(Object.fromEntries(second.states.map((st) => [st.type, st.remaining]))).toEqual({
        requests_per_minute: 0,
        concurrency: 0,
        daily_quota: 0,
      });
    });

    it('names the refusal that frees last when several limits refuse', async () => {
      const who = subject();
      const l = limits({ requestsPerMinute: 1, burst: 1, dailyQuota: 1 });
      expect((await admit(who, l)).allowed).toBe(true);
      const refused = await admit(who, l);
      expect(refused).toMatchObject({ allowed: false, limit: 'daily_quota' });
      expect(refused.states.map((st) => st.type)).toEqual(['requests_per_minute', 'daily_quota']);
    });

    it('charges tokens after the fact and admits again as the bucket refills, once per ticket', async () => {
      const who = subject();
      const tpm = limits({ tokensPerMinute: 100 });
      expect(await admit(who, tpm)).toMatchObject({
        allowed: true,
        states: [{ type: 'tokens_per_minute', remaining: 100 }],
      });
      const ticket = randomUUID();
      await s.store.recordTokens(who, 40, 100, ticket);
      await s.store.recordTokens(who, 40, 100, ticket);
      expect(await admit(who, tpm)).toMatchObject({ allowed: true, states: [{ remaining: 60 }] });
      // Going over the limit is allowed once (the tokens were already spent); it is paid back before more.
      await s.store.recordTokens(who, 90, 100, randomUUID());
      const refused = await admit(who, tpm);
      expect(refused).toMatchObject({ allowed: false, limit: 'tokens_per_minute' });
      if (refused.allowed) throw new Error('unreachable');
      // 130 tokens owed, 100 fit in a minute: 30 over plus one, at 600 ms a token.
      expect(refused.retryAfterMs).toBe(31 * 600);
      s.clock.advance(refused.retryAfterMs);
      expect(await admit(who, tpm)).toMatchObject({ allowed: true, states: [{ remaining: 1 }] });
      await s.store.recordTokens(who, 0, 100, randomUUID());
      expect(await admit(who, tpm)).toMatchObject({ allowed: true, states: [{ remaining: 1 }] });
    });
  });
}
