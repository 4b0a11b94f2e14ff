import {
  type Admission,
  burstOf,
  CONCURRENCY_RETRY_MS,
  DAY_MS,
  decayed,
  laterRefusal,
  type Limits,
  type LimitState,
  type LimitType,
  MINUTE_MS,
  type Subject,
  UNIT,
} from './limits';
import type { RateLimitStore } from './rate-limit-store';

export interface MemoryStoreOptions {
  /** Wall-clock milliseconds (the quota day is a UTC day); tests pass their own. */
  readonly now?: () => number;
  /** How long a concurrency lease lives if it is never released. */
  readonly leaseTtlMs: number;
  /** How often idle entries are swept; one timer per store, never one per request. */
  readonly sweepIntervalMs?: number;
}

interface Bucket {
  readonly debt: number;
  readonly at: number;
  /** When the debt is paid back at the rate it was written with: the sweep drops it then. */
  readonly until: number;
}

/** A bucket holding `debt`, paid back at `perMinute` from `now`. */
function bucket(debt: number, now: number, perMinute: number): Bucket {
  return { debt, at: now, until: now + Math.ceil(debt / perMinute) };
}

/**
 * A bucket's debt now. It is forgotten once it would have been paid back at the rate it was written with,
 * as Redis expires the key then: after a limit is lowered, the old debt lasts at most that long.
 */
function debtOf(b: Bucket | undefined, now: number, perMinute: number, capacity?: number): number {
  return b === undefined || now >= b.until ? 0 : decayed(b.debt, now - b.at, perMinute, capacity);
}

interface QuotaCount {
  readonly day: number;
  used: number;
}

/**
 * The limits counted in this process: the default when no Redis is configured, and the local fallback
 * while Redis is out of reach. The same algorithms as the Redis script, on Maps; every operation is
 * synchronous, so each admission is atomic by construction. Idle entries are swept by one unref'd timer.
 * State is lost on restart (the README says so): a quota starts again from zero.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  readonly kind = 'memory' as const;
  private readonly now: () => number;
  private readonly leaseTtlMs: number;
  /** Per key and per tenant: a bucket's debt in {@link UNIT}s and when it was last written (ms). */
  private readonly requestDebt = new Map<string, Bucket>();
  private readonly tokenDebt = new Map<string, Bucket>();
  /** Per key: ticket → expiry (ms). */
  private readonly leases = new Map<string, Map<string, number>>();
  /** Per `<tenant>:<UTC day number>`, as the Redis keys. */
  private readonly quotas = new Map<string, QuotaCount>();
  private readonly charged = new Map<string, number>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: MemoryStoreOptions) {
    this.now = options.now ?? Date.now;
    this.leaseTtlMs = options.leaseTtlMs;
    this.sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? MINUTE_MS);
    this.sweeper.unref();
  }

  admit(subject: Subject, limits: Limits, ticket: string): Promise<Admission> {
    return Promise.resolve(this.admitNow(subject, limits, ticket));
  }

  /** {@link admit} without the promise, for callers on the hot path. */
  admitNow(subject: Subject, limits: Limits, ticket: string): Admission {
    const now = this.now();
    const states: LimitState[] = [];
    /** The states this request would spend from: they get their unit back when another limit refuses. */
    const charged: number[] = [];
    let refusal: { limit: LimitType; retryAfterMs: number } | null = null;

    let nextDebt: number | null = null;
    const rpm = limits.requestsPerMinute;
    if (rpm !== null && rpm <= 0) {
      refusal = laterRefusal(refusal, 'requests_per_minute', MINUTE_MS);
      states.push({ type: 'requests_per_minute', limit: 0, remaining: 0, resetMs: 0 });
    } else if (rpm !== null) {
      const burst = burstOf(limits);
      const capacity = burst * UNIT;
      const debt = debtOf(this.requestDebt.get(subject.keyId), now, rpm, capacity);
      if (debt + UNIT > capacity) {
        refusal = laterRefusal(refusal, 'requests_per_minute', Math.ceil((debt + UNIT - capacity) / rpm));
        states.push({
          type: 'requests_per_minute',
          limit: rpm,
          remaining: 0,
          resetMs: Math.ceil(debt / rpm),
          burst,
        });
      } else {
        nextDebt = debt + UNIT;
        charged.push(states.length);
        states.push({
          type: 'requests_per_minute',
          limit: rpm,
          remaining: Math.floor((capacity - nextDebt) / UNIT),
          resetMs: Math.ceil(nextDebt / rpm),
          burst,
        });
      }
    }

    let leases: Map<string, number> | undefined;
    const maxConcurrent = limits.maxConcurrent;
    if (maxConcurrent !== null) {
      leases = this.leases.get(subject.keyId);
      if (leases !== undefined) for (const [t, expiry] of leases) if (expiry <= now) leases.delete(t);
      const inFlight = leases?.size ?? 0;
      if (inFlight >= maxConcurrent) {
        refusal = laterRefusal(refusal, 'concurrency', CONCURRENCY_RETRY_MS);
        states.push({ type: 'concurrency', limit: maxConcurrent, remaining: 0, resetMs: 0 });
      } else {
        charged.push(states.length);
        states.push({
          type: 'concurrency',
          limit: maxConcurrent,
          remaining: maxConcurrent - inFlight - 1,
          resetMs: 0,
        });
      }
    }

    const day = Math.floor(now / DAY_MS);
    const untilMidnight = (day + 1) * DAY_MS - now;
    let quota: QuotaCount | undefined;
    const dailyQuota = limits.dailyQuota;
    if (dailyQuota !== null) {
      quota = this.quotas.get(`${subject.tenantId}:${day}`) ?? { day, used: 0 };
      if (quota.used >= dailyQuota) {
        refusal = laterRefusal(refusal, 'daily_quota', untilMidnight);
        states.push({ type: 'daily_quota', limit: dailyQuota, remaining: 0, resetMs: untilMidnight });
      } else {
        charged.push(states.length);
        states.push({
          type: 'daily_quota',
          limit: dailyQuota,
          remaining: dailyQuota - quota.used - 1,
          resetMs: untilMidnight,
        });
      }
    }

    const tpm = limits.tokensPerMinute;
    if (tpm !== null && tpm <= 0) {
      refusal = laterRefusal(refusal, 'tokens_per_minute', MINUTE_MS);
      states.push({ type: 'tokens_per_minute', limit: 0, remaining: 0, resetMs: 0 });
    } else if (tpm !== null) {
      const capacity = tpm * UNIT;
      const debt = debtOf(this.tokenDebt.get(subject.tenantId), now, tpm);
      const available = Math.floor((capacity - debt) / UNIT);
      const resetMs = Math.ceil(debt / tpm);
      if (available <= 0) {
        refusal = laterRefusal(refusal, 'tokens_per_minute', Math.ceil((debt + UNIT - capacity) / tpm));
        states.push({ type: 'tokens_per_minute', limit: tpm, remaining: 0, resetMs });
      } else {
        states.push({ type: 'tokens_per_minute', limit: tpm, remaining: available, resetMs });
      }
    }

    if (refusal !== null) {
      const unspent = states.map((st, i) =>
        charged.includes(i) ? { ...st, remaining: st.remaining + 1 } : st,
      );
      return { allowed: false, ...refusal, states: unspent };
    }

    if (nextDebt !== null && rpm !== null) this.requestDebt.set(subject.keyId, bucket(nextDebt, now, rpm));
    if (maxConcurrent !== null) {
      if (leases === undefined) this.leases.set(subject.keyId, (leases = new Map<string, number>()));
      leases.set(ticket, now + this.leaseTtlMs);
    }
    if (quota !== undefined) {
      quota.used += 1;
      this.quotas.set(`${subject.tenantId}:${day}`, quota);
    }
    return { allowed: true, states };
  }

  release(subject: Subject, ticket: string): Promise<void> {
    this.releaseNow(subject, ticket);
    return Promise.resolve();
  }

  releaseNow(subject: Subject, ticket: string): void {
    const leases = this.leases.get(subject.keyId);
    if (leases === undefined) return;
    leases.delete(ticket);
    if (leases.size === 0) this.leases.delete(subject.keyId);
  }

  recordTokens(subject: Subject, tokens: number, tokensPerMinute: number, ticket: string): Promise<void> {
    const now = this.now();
    if (this.charged.has(ticket) || tokens <= 0 || tokensPerMinute <= 0) return Promise.resolve();
    this.charged.set(ticket, now + MINUTE_MS);
    const debt = debtOf(this.tokenDebt.get(subject.tenantId), now, tokensPerMinute);
    // Tokens already spent are charged in full, past the bucket's size: the overdraft is paid back first.
    this.tokenDebt.set(subject.tenantId, bucket(debt + tokens * UNIT, now, tokensPerMinute));
    return Promise.resolve();
  }

  /** In-flight leases of a key (tests, stats). */
  inFlight(keyId: string): number {
    const now = this.now();
    let n = 0;
    for (const expiry of this.leases.get(keyId)?.values() ?? []) if (expiry > now) n += 1;
    return n;
  }

  /** Drops what no longer limits anything: full buckets, expired leases, past days, old tickets. */
  sweep(): void {
    const now = this.now();
    for (const [key, b] of this.requestDebt) if (b.until <= now) this.requestDebt.delete(key);
    for (const [key, b] of this.tokenDebt) if (b.until <= now) this.tokenDebt.delete(key);
    for (const [key, leases] of this.leases) {
      for (const [t, expiry] of leases) if (expiry <= now) leases.delete(t);
      if (leases.size === 0) this.leases.delete(key);
    }
    const day = Math.floor(now / DAY_MS);
    // Past days only (as Redis expires them): a clock set back finds its day's count again.
    for (const [key, quota] of this.quotas) if (quota.day < day - 1) this.quotas.delete(key);
    for (const [t, until] of this.charged) if (until <= now) this.charged.delete(t);
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}
