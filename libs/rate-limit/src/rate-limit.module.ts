import { type DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import Redis from 'ioredis';
import { rateLimitMetricProviders } from './rate-limit.metrics';
import { RateLimitHealthIndicator } from './rate-limit.health';
import {
  limiterRedisOptions,
  RATE_LIMIT_OPTIONS,
  RATE_LIMIT_REDIS,
  type RateLimitModuleOptions,
} from './rate-limit.options';
import { RateLimiter } from './rate-limiter.service';

/**
 * Per-key and per-tenant limits and quotas ({@link RateLimiter}), counted in Redis when `redisUrl` is set
 * (shared by every replica) and in memory otherwise, with the limiter's metrics and health indicator.
 * Needs `MonitoringModule` (the registry and the tenant label policy).
 */
@Module({})
export class RateLimitModule {
  static forRoot(options: RateLimitModuleOptions): DynamicModule {
    return {
      module: RateLimitModule,
      global: true,
      imports: [TerminusModule],
      providers: [
        { provide: RATE_LIMIT_OPTIONS, useValue: options },
        {
          provide: RATE_LIMIT_REDIS,
          useFactory: (): Redis | null =>
            options.redisUrl === null
              ? null
              : new Redis(options.redisUrl, limiterRedisOptions(options.redisTimeoutMs)),
        },
        ...rateLimitMetricProviders,
        RateLimiter,
        RateLimitHealthIndicator,
      ],
      exports: [RateLimiter, RateLimitHealthIndicator],
    };
  }
}
