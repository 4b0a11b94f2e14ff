import type { LimitState, LimitType } from './limits';

/**
 * The rate-limit header fields of draft-ietf-httpapi-ratelimit-headers-09 (the current draft), as
 * Structured Field lists with one item per limit that applies to the request:
 *
 *   RateLimit-Policy: "requests_per_minute";q=60;w=60, "concurrency";q=4;qu="concurrent-requests", "daily_quota";q=10000;w=86400
 *   RateLimit: "requests_per_minute";r=59;t=1, "concurrency";r=3, "daily_quota";r=9876;t=40321
 *
 * `q` is the policy's size, `w` its window in seconds, `r` what is left and `t` the seconds until the limit
 * is whole again. With a bucket smaller than a minute's rate (`RATE_LIMIT_BURST_SECONDS` under 60) the
 * per-minute policy is advertised as what it allows: `burst` requests per the seconds the rate takes to
 * refill them. The tokens-per-minute limit is not advertised: the draft has no unit for tokens.
 */
export interface RateLimitHeaders {
  readonly 'RateLimit-Policy': string;
  readonly RateLimit: string;
}

const WINDOW_SECONDS: Partial<Record<LimitType, number>> = {
  requests_per_minute: 60,
  daily_quota: 86_400,
};

export function rateLimitHeaders(states: readonly LimitState[]): RateLimitHeaders | null {
  const policies: string[] = [];
  const current: string[] = [];
  for (const state of states) {
    if (state.type === 'tokens_per_minute') continue;
    const window = WINDOW_SECONDS[state.type];
    const burst = state.burst;
    if (burst !== undefined && burst !== state.limit && state.limit > 0) {
      // A bucket of another size than a minute's worth: `burst` requests per the time the rate takes to
      // refill them.
      policies.push(`"${state.type}";q=${burst};w=${Math.max(1, Math.round((burst * 60) / state.limit))}`);
      current.push(`"${state.type}";r=${state.remaining};t=${Math.ceil(state.resetMs / 1000)}`);
    } else if (window === undefined) {
      policies.push(`"${state.type}";q=${state.limit};qu="concurrent-requests"`);
      current.push(`"${state.type}";r=${state.remaining}`);
    } else {
      policies.push(`"${state.type}";q=${state.limit};w=${window}`);
      current.push(`"${state.type}";r=${state.remaining};t=${Math.ceil(state.resetMs / 1000)}`);
    }
  }
  if (policies.length === 0) return null;
  return { 'RateLimit-Policy': policies.join(', '), RateLimit: current.join(', ') };
}

/** Seconds for `Retry-After`: whole seconds, at least 1. */
export function retryAfterSeconds(retryAfterMs: number): number {
  return Math.max(1, Math.ceil(retryAfterMs / 1000));
}
