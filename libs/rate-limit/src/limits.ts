/**
 * What the limiter decides about, and what it answers. Both stores (Redis and memory) implement the same
 * algorithms, pinned by one contract suite (`rate-limit-store.contract.ts`):
 *
 * - `requests_per_minute` (per key): a token bucket refilling at `requestsPerMinute / 60` per second and
 *   holding at most `burst` requests, so a key may spend its burst at once and then its rate;
 * - `concurrency` (per key): leases held while a request is in flight, each expiring after the lease TTL in
 *   case its replica dies before releasing it;
 * - `daily_quota` (per tenant): a counter per UTC day, so it resets at midnight UTC;
 * - `tokens_per_minute` (per tenant, the LLM path): a bucket charged after the fact with the tokens a
 *   request used; a request is admitted while the bucket is not empty.
 *
 * An admission is all or nothing: a request refused by one limit spends nothing from the others.
 */
export const LIMIT_TYPES = [
  'requests_per_minute',
  'concurrency',
  'daily_quota',
  'tokens_per_minute',
] as const;
export type LimitType = (typeof LIMIT_TYPES)[number];

/** Who a request counts against. */
export interface Subject {
  readonly keyId: string;
  readonly tenantId: string;
}

/** The limits that apply to one request; null means that limit is off. */
export interface Limits {
  readonly requestsPerMinute: number | null;
  /** The bucket size of `requestsPerMinute`: how many requests may come at once (at least 1). */
  readonly burst: number | null;
  readonly maxConcurrent: number | null;
  readonly dailyQuota: number | null;
  readonly tokensPerMinute: number | null;
}

export const NO_LIMITS: Limits = Object.freeze({
  requestsPerMinute: null,
  burst: null,
  maxConcurrent: null,
  dailyQuota: null,
  tokensPerMinute: null,
});

/** Where one limit stands after a decision, for the rate-limit headers and the gauges. */
export interface LimitState {
  readonly type: LimitType;
  /** The policy's size: requests per minute, concurrent requests, requests per UTC day, tokens per minute. */
  readonly limit: number;
  /** What is left after this request (0 when refused). */
  readonly remaining: number;
  /** Milliseconds until the limit is whole again (0 for concurrency: it frees when requests end). */
  readonly resetMs: number;
  /** `requests_per_minute` only: the bucket size the decision used. */
  readonly burst?: number;
}

export type Admission =
  | { readonly allowed: true; readonly states: readonly LimitState[] }
  | {
      readonly allowed: false;
      /** The refusing limit; when several refuse, the one that frees last. */
      readonly limit: LimitType;
      /** When a retry can succeed, as far as the refusing limit knows. */
      readonly retryAfterMs: number;
      readonly states: readonly LimitState[];
    };

export const MINUTE_MS = 60_000;
/**
 * Buckets hold their debt in units of 1/60 000 of a request (or token): one request costs 60 000 units, and
 * a limit of N per minute pays back N units per millisecond. Every quantity is then a whole number, so both
 * stores compute exactly the same thing (doubles are exact integers up to 2^53). Because the debt counts
 * requests rather than time, a changed limit applies at once: 1 request used of a new limit of 100 leaves 99.
 */
export const UNIT = MINUTE_MS;

/**
 * A bucket's debt after `elapsedMs` of paying back at `perMinute` units per ms, the stored debt first capped
 * at `capacity` (a lowered limit leaves at most one full bucket to pay back).
 */
export function decayed(debt: number, elapsedMs: number, perMinute: number, capacity = Infinity): number {
  return Math.max(0, Math.min(debt, capacity) - Math.max(0, elapsedMs) * perMinute);
}
export const DAY_MS = 86_400_000;
/** A refused concurrency slot frees when some request ends: retry after a second. */
export const CONCURRENCY_RETRY_MS = 1000;

/** True when at least one limit is on (otherwise a request needs no store at all). */
export function anyLimit(limits: Limits): boolean {
  return (
    limits.requestsPerMinute !== null ||
    limits.maxConcurrent !== null ||
    limits.dailyQuota !== null ||
    limits.tokensPerMinute !== null
  );
}

/** The bucket size of the per-minute limit: `burst` when set, else the per-minute limit itself. */
export function burstOf(limits: Limits): number {
  const rpm = limits.requestsPerMinute ?? 0;
  return Math.max(1, limits.burst ?? rpm);
}

/**
 * The limits one replica enforces on its own while the shared store is out of reach: each divided by the
 * number of replicas, rounded down so that the replicas together never exceed the limit, and at least 1
 * (a quota of 0 stays 0: it means "no requests").
 */
export function divideLimits(limits: Limits, replicas: number): Limits {
  if (replicas <= 1) return limits;
  const part = (value: number | null): number | null =>
    value === null ? null : value === 0 ? 0 : Math.max(1, Math.floor(value / replicas));
  return {
    requestsPerMinute: part(limits.requestsPerMinute),
    burst: part(limits.burst),
    maxConcurrent: part(limits.maxConcurrent),
    dailyQuota: part(limits.dailyQuota),
    tokensPerMinute: part(limits.tokensPerMinute),
  };
}

/** Keeps the refusal that frees last (ties: the first found). */
export function laterRefusal(
  current: { limit: LimitType; retryAfterMs: number } | null,
  limit: LimitType,
  retryAfterMs: number,
): { limit: LimitType; retryAfterMs: number } {
  return current === null || retryAfterMs > current.retryAfterMs ? { limit, retryAfterMs } : current;
}
