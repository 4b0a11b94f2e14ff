import {
  type DynamicModule,
  Inject,
  Injectable,
  Module,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
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

/** Connects the limiter's own Redis client in the background and closes it last. */
@Injectable()
class LimiterConnection implements OnModuleInit, OnApplicationShutdown {
  constructor(@Inject(RATE_LIMIT_REDIS) private readonly client: Redis | null) {}

  onModuleInit(): void {
    const client = this.client;
    if (client === null) return;
    // Errors surface through the limiter (metrics, one log line per outage); without a listener ioredis
    // would print each reconnect failure.
    client.on('error', () => undefined);
    client.connect().catch(() => undefined);
  }

  async onApplicationShutdown(): Promise<void> {
    const client = this.client;
    if (client === null || client.status === 'end') return;
    await Promise.race([
      client.quit().catch(() => undefined),
      new Promise((resolve) => setTimeout(resolve, 1000).unref()),
    ]);
    client.disconnect();
  }
}

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
        LimiterConnection,
        ...rateLimitMetricProviders,
        RateLimiter,
        RateLimitHealthIndicator,
      ],
      exports: [RateLimiter, RateLimitHealthIndicator],
    };
  }
}
