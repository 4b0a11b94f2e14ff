import { Injectable, type OnModuleInit } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { InjectDataSource } from '@nestjs/typeorm';
import { ComponentHealth } from '@app/monitoring';
import { performance } from 'node:perf_hooks';
import type { DataSource } from 'typeorm';

const PING_TIMEOUT_MS = 2000;
/** Monotonic milliseconds a ping's answer is reused. */
const PING_CACHE_MS = 1000;

/** Pings the database (`SELECT 1`, bounded by a timeout) for readiness and `vla_application_health`. */
@Injectable()
export class DatabaseHealthIndicator implements OnModuleInit {
  private pending: Promise<boolean> | undefined;
  private last: { readonly at: number; readonly up: boolean } | undefined;

  constructor(
    private readonly health: HealthIndicatorService,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly components: ComponentHealth,
  ) {}

  onModuleInit(): void {
    this.components.register('database', () => this.ping());
  }

  /**
   * Whether `SELECT 1` answers within the timeout. Public probes call this on every request, so one ping
   * is shared by concurrent callers and its answer is reused for a second: anonymous traffic can hold at
   * most one connection of the pool.
   */
  ping(): Promise<boolean> {
    if (!this.dataSource.isInitialized) return Promise.resolve(false);
    if (this.last !== undefined && performance.now() - this.last.at < PING_CACHE_MS) {
      return Promise.resolve(this.last.up);
    }
    this.pending ??= this.pingOnce().then((up) => {
      this.last = { at: performance.now(), up };
      this.pending = undefined;
      return up;
    });
    return this.pending;
  }

  private async pingOnce(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.dataSource.query('SELECT 1').then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS);
        }),
      ]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  async check<const K extends string>(key: K) {
    const indicator = this.health.check(key);
    const type = this.dataSource.options.type;
    return (await this.ping())
      ? indicator.up({ type })
      : indicator.down({ type, message: 'database unreachable' });
  }
}
