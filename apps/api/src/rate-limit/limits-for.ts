import type { Limits } from '@app/rate-limit';
import type { Principal } from '../auth/api-key-verifier.service';
import type { AppConfig } from '../config';

/**
 * The limits of one caller: the key's override, else its tenant's setting (the principal has already
 * merged those two), else the platform default from the configuration. The per-minute bucket holds
 * `RATE_LIMIT_BURST_SECONDS` worth of the key's rate.
 */
export function limitsFor(principal: Principal, config: AppConfig['rateLimit']): Limits {
  const requestsPerMinute = principal.requestsPerMinute ?? config.defaults.requestsPerMinute;
  return {
    requestsPerMinute,
    burst:
      requestsPerMinute === null
        ? null
        : Math.max(1, Math.round((requestsPerMinute * config.burstSeconds) / 60)),
    maxConcurrent: principal.maxConcurrent ?? config.defaults.maxConcurrent,
    dailyQuota: principal.dailyRequestQuota ?? config.defaults.dailyQuota,
    tokensPerMinute: principal.tokensPerMinute ?? config.defaults.tokensPerMinute,
  };
}
