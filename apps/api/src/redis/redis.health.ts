import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import type Redis from 'ioredis';
import { REDIS_CLIENT } from './redis.constants';

const PING_TIMEOUT_MS = 1000;

/** Pings Redis for `/health/detailed`, when one is configured (`configured: false` otherwise). */
@Injectable()
export class RedisHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    @Inject(REDIS_CLIENT) private readonly client: Redis | null,
  ) {}

  get configured(): boolean {
    return this.client !== null;
  }

  async check<const K extends string>(key: K) {
    const indicator = this.health.check(key);
    const client = this.client;
    if (client === null) return indicator.up({ configured: false });
    let timer: NodeJS.Timeout | undefined;
    try {
      const pong = await Promise.race([
        client.ping(),
        new Promise<string>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), PING_TIMEOUT_MS);
        }),
      ]);
      return pong === 'PONG'
        ? indicator.up({ status_detail: client.status })
        : indicator.down({ message: 'no answer' });
    } catch {
      return indicator.down({ message: 'redis unreachable' });
    } finally {
      clearTimeout(timer);
    }
  }
}
