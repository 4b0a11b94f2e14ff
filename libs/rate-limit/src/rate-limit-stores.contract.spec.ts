import Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { MemoryRateLimitStore } from './memory-store';
import { RedisRateLimitStore } from './redis-store';
import { NOON, storeContract, TestClock } from '../test/store-contract';

const memories: MemoryRateLimitStore[] = [];
storeContract(
  'memory',
  (leaseTtlMs) => {
    const clock = new TestClock(NOON);
    const store = new MemoryRateLimitStore({ leaseTtlMs, now: clock.now });
    memories.push(store);
    return Promise.resolve({ store, clock, leaseTtlMs });
  },
  () => {
    for (const m of memories) m.close();
    return Promise.resolve();
  },
);

const redisUrl = process.env.REDIS_URL_TEST;
if (redisUrl === undefined || redisUrl === '') {
  describe('redis store contract', () => {
    it.skip('needs REDIS_URL_TEST (CI sets it)', () => undefined);
  });
} else {
  const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const prefix = `test:rl:${randomUUID()}:`;
  storeContract(
    'redis',
    async (leaseTtlMs) => {
      if (client.status === 'wait') await client.connect();
      const clock = new TestClock(NOON);
      return {
        store: new RedisRateLimitStore(client, { leaseTtlMs, prefix, now: clock.now }),
        clock,
        leaseTtlMs,
      };
    },
    async () => {
      const keys = await client.keys(`${prefix}*`);
      if (keys.length > 0) await client.del(...keys);
      await client.quit();
    },
  );
}
