import type { RedisOptions } from 'ioredis';

export const FAILURE_MODES = ['local', 'open', 'closed'] as const;
/**
 * What the limiter does while Redis is out of reach: `local` enforces each limit in this process at
 * limit / replicas, `open` admits every request (counted), `closed` refuses with 503.
 */
export type FailureMode = (typeof FAILURE_MODES)[number];

/** The structured logger the limiter reports outages to (pino's shape). */
export interface RateLimitLogger {
  warn(object: Record<string, unknown>, message: string): void;
  info(object: Record<string, unknown>, message: string): void;
}

export interface RateLimitModuleOptions {
  /** Unset: limits are counted in this process only. */
  readonly redisUrl: string | null;
  readonly failureMode: FailureMode;
  /** How many replicas share the limits (`local` mode divides each limit by it). */
  readonly replicas: number;
  /** The longest any request waits on Redis. */
  readonly redisTimeoutMs: number;
  /** Consecutive Redis failures that open the circuit. */
  readonly breakerThreshold: number;
  /** How long an open circuit waits between probes. */
  readonly breakerCooldownMs: number;
  /** How long a concurrency slot lives if its request never releases it (a replica died). */
  readonly leaseTtlMs: number;
  readonly keyPrefix?: string;
  readonly logger?: RateLimitLogger;
  /** Tests: a clock for both stores (unset: the Redis server's clock, and Date.now in memory). */
  readonly now?: () => number;
}

export const RATE_LIMIT_OPTIONS = Symbol('RATE_LIMIT_OPTIONS');
export const RATE_LIMIT_REDIS = Symbol('RATE_LIMIT_REDIS');

/**
 * The limiter's own Redis connection: no offline queue (a command while disconnected fails at once), one
 * retry, a command timeout, and no resending of commands whose reply was lost (the caller has already
 * given up and decided without Redis; the admission script is idempotent per ticket anyway).
 */
export function limiterRedisOptions(timeoutMs: number): RedisOptions {
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: timeoutMs,
    connectTimeout: Math.max(timeoutMs, 1000),
    autoResendUnfulfilledCommands: false,
    connectionName: 'vla-rate-limit',
    retryStrategy: (times: number) => Math.min(times * 100, 2000),
  };
}
