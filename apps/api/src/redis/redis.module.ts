import {
  Global,
  Inject,
  Injectable,
  Module,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { ComponentHealth } from '@app/monitoring';
import { TerminusModule } from '@nestjs/terminus';
import Redis from 'ioredis';
import type { Logger } from 'pino';
import { APP_CONFIG, type AppConfig } from '../config';
import { ROOT_LOGGER } from '../logging/logging.constants';
import { REDIS_CLIENT } from './redis.constants';
import { RedisHealthIndicator } from './redis.health';

const QUIT_TIMEOUT_MS = 2000;
const ERROR_LOG_INTERVAL_MS = 30_000;

/**
 * Owns the Redis connection when one is configured: fails fast (no offline queue, a command timeout), so a
 * Redis outage shows up as errors callers can handle rather than requests that hang. Connection errors are
 * logged at most every 30 s, without the URL (it may carry a password).
 */
@Injectable()
export class RedisLifecycle implements OnModuleInit, OnApplicationShutdown {
  private lastErrorLog = 0;

  constructor(
    @Inject(REDIS_CLIENT) private readonly client: Redis | null,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    private readonly components: ComponentHealth,
  ) {}

  onModuleInit(): void {
    const client = this.client;
    if (client === null) return;
    client.on('error', (error: Error & { code?: string }) => {
      const now = Date.now();
      if (now - this.lastErrorLog < ERROR_LOG_INTERVAL_MS) return;
      this.lastErrorLog = now;
      this.logger.warn({ component: 'redis', code: error.code ?? 'unknown' }, 'redis connection error');
    });
    this.components.register('redis', async () => (await client.ping()) === 'PONG');
    // Connect in the background: an unreachable Redis must not stop the API from starting.
    client.connect().catch(() => undefined);
  }

  /** Closes last: runs after the HTTP server closed and buffers were flushed. */
  async onApplicationShutdown(): Promise<void> {
    const client = this.client;
    if (client === null || client.status === 'end') return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.quit(),
        new Promise((resolve) => {
          timer = setTimeout(resolve, QUIT_TIMEOUT_MS);
        }),
      ]);
    } catch {
      // Already disconnected: nothing to close politely.
    } finally {
      clearTimeout(timer);
      client.disconnect();
    }
  }
}

@Global()
@Module({
  imports: [TerminusModule],
  providers: [
    {
      provide: REDIS_CLIENT,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig): Redis | null =>
        config.redis === null
          ? null
          : new Redis(config.redis.url, {
              lazyConnect: true,
              enableOfflineQueue: false,
              commandTimeout: 1000,
              maxRetriesPerRequest: 1,
              connectionName: 'vla-platform',
              retryStrategy: (times) => Math.min(times * 200, 5000),
            }),
    },
    RedisLifecycle,
    RedisHealthIndicator,
  ],
  exports: [REDIS_CLIENT, RedisHealthIndicator],
})
export class RedisModule {}
