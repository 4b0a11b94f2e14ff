import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { RateLimiter } from './rate-limiter.service';

/**
 * The limiter's state for `/health/detailed`: which backend decides now, the configured failure mode and
 * the Redis circuit. Down only when requests are being refused for it (`closed` mode with Redis out of
 * reach), which is also the only case in which it belongs in readiness.
 */
@Injectable()
export class RateLimitHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly limiter: RateLimiter,
  ) {}

  /** Whether readiness should include this indicator: only in `closed` mode with a Redis configured. */
  get gatesReadiness(): boolean {
    return this.limiter.redis !== null && this.limiter.failureMode === 'closed';
  }

  check<const K extends string>(key: K) {
    const indicator = this.health.check(key);
    const backend = this.limiter.backend;
    const details = {
      backend,
      failure_mode: this.limiter.failureMode,
      redis_circuit: this.limiter.circuit ?? 'none',
    };
    return backend === 'closed' ? indicator.down(details) : indicator.up(details);
  }
}
