import { Injectable, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Inject } from '@nestjs/common';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../logging/logging.constants';
import { AccessRepository } from './access.repository';

const FLUSH_INTERVAL_MS = 10_000;

/**
 * `last_used_at` in batches: a request only notes the time in memory; every 10 s (and at shutdown, after
 * the last request) the notes are written, so the key table is never written once per request. A failed
 * write keeps its notes for the next flush.
 */
@Injectable()
export class LastUsedWriter implements OnModuleInit, BeforeApplicationShutdown {
  private pending = new Map<string, Date>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly repo: AccessRepository,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {}

  onModuleInit(): void {
    this.timer = setInterval(() => void this.flush(), FLUSH_INTERVAL_MS);
    this.timer.unref();
  }

  touch(keyId: string): void {
    this.pending.set(keyId, new Date());
  }

  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    try {
      await this.repo.touchKeys(batch);
    } catch {
      for (const [id, at] of batch) if (!this.pending.has(id)) this.pending.set(id, at);
      this.logger.warn({ component: 'auth', keys: batch.size }, 'last_used_at not written; will retry');
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
