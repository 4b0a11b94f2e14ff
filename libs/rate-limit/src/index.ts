/** The rate-limit lib: per-key and per-tenant limits and quotas, on Redis (shared) or in memory. */
export { RateLimitModule } from './rate-limit.module';
export {
  FAILURE_MODES,
  limiterRedisOptions,
  type FailureMode,
  type RateLimitLogger,
  type RateLimitModuleOptions,
} from './rate-limit.options';
/** `admit(subject, limits)` decides one request; `release()` on the decision frees its slot. */
export {
  RateLimiter,
  RateLimitUnavailableError,
  type Decision,
  type LimitedSubject,
} from './rate-limiter.service';
export { RateLimitHealthIndicator } from './rate-limit.health';
export { rateLimitHeaders, retryAfterSeconds, type RateLimitHeaders } from './rate-limit-headers';
export {
  LIMIT_TYPES,
  NO_LIMITS,
  divideLimits,
  type Admission,
  type Limits,
  type LimitState,
  type LimitType,
  type Subject,
} from './limits';
export type { RateLimitStore } from './rate-limit-store';
export { MemoryRateLimitStore, type MemoryStoreOptions } from './memory-store';
export { RedisRateLimitStore, redisKeys, type RedisStoreOptions } from './redis-store';
export { CircuitBreaker, type CircuitState } from './circuit-breaker';
export { RATE_LIMIT_METRICS, BACKENDS, type Backend, CIRCUIT_STATE_VALUES } from './rate-limit.metrics';
