import {
  counterProvider,
  gaugeProvider,
  histogramProvider,
  tenantCounterProvider,
  tenantGaugeProvider,
} from '@app/monitoring';

/** The rate-limit and Redis metrics (seed 003 names, plus the fallback and breaker state). */
export const RATE_LIMIT_METRICS = {
  hits: 'vla_rate_limit_hits_total',
  remaining: 'vla_rate_limit_tokens_remaining',
  quotaUsage: 'vla_quota_usage_percent',
  fallback: 'vla_rate_limit_store_fallback_total',
  backend: 'vla_rate_limit_backend',
  failureMode: 'vla_rate_limit_failure_mode',
  circuit: 'vla_dependency_circuit_state',
  redisOperations: 'vla_redis_operations_total',
  redisDuration: 'vla_redis_operation_duration_seconds',
} as const;

/** What decided a request: Redis, this process's memory, or nothing (admitted unchecked). */
export const BACKENDS = ['redis', 'memory', 'open', 'closed'] as const;
export type Backend = (typeof BACKENDS)[number];
export const REDIS_OPERATIONS = ['admit', 'release', 'void', 'record_tokens', 'probe'] as const;
export type RedisOperation = (typeof REDIS_OPERATIONS)[number];
export const REDIS_STATUSES = ['ok', 'error', 'timeout'] as const;
/** `vla_dependency_circuit_state`: 0 closed (using the dependency), 1 open (not touching it), 2 half-open (probing). */
export const CIRCUIT_STATE_VALUES = { closed: 0, open: 1, half_open: 2 } as const;

/** A loopback round trip is ~0.1 ms; a timeout is the command timeout (~0.2 s). */
const REDIS_BUCKETS_SECONDS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];

export const rateLimitMetricProviders = [
  tenantCounterProvider({
    name: RATE_LIMIT_METRICS.hits,
    help: 'Requests refused by a limit (429), by limit type (requests_per_minute, concurrency, daily_quota, tokens_per_minute).',
    labelNames: ['limit_type'],
  }),
  tenantGaugeProvider({
    name: RATE_LIMIT_METRICS.remaining,
    help: 'What a limit had left after the last decision on it (requests, slots or tokens), by limit type; last seen per tenant.',
    labelNames: ['limit_type'],
  }),
  tenantGaugeProvider({
    name: RATE_LIMIT_METRICS.quotaUsage,
    help: "Share of the tenant's daily request quota used today (UTC), 0-100; last seen.",
  }),
  counterProvider({
    name: RATE_LIMIT_METRICS.fallback,
    help: 'Limit decisions made without Redis because it failed or its circuit was open, by failure mode (local, open, closed).',
    labelNames: ['mode'],
  }),
  gaugeProvider({
    name: RATE_LIMIT_METRICS.backend,
    help: 'Where limits are decided now: 1 for the active backend (redis, memory, open: admitted unchecked, closed: refused with 503).',
    labelNames: ['backend'],
  }),
  gaugeProvider({
    name: RATE_LIMIT_METRICS.failureMode,
    help: 'The configured behaviour while Redis is out of reach (RATE_LIMIT_FAILURE_MODE): 1 for the configured mode.',
    labelNames: ['mode'],
  }),
  gaugeProvider({
    name: RATE_LIMIT_METRICS.circuit,
    help: 'Circuit breaker state per dependency: 0 closed (in use), 1 open (not touched), 2 half-open (probing).',
    labelNames: ['dependency'],
  }),
  counterProvider({
    name: RATE_LIMIT_METRICS.redisOperations,
    help: 'Redis commands of the rate limiter, by operation and status (ok, error, timeout).',
    labelNames: ['operation', 'status'],
  }),
  histogramProvider({
    name: RATE_LIMIT_METRICS.redisDuration,
    help: 'Time of one Redis command of the rate limiter, in seconds, including failures.',
    labelNames: ['operation'],
    buckets: REDIS_BUCKETS_SECONDS,
  }),
];
