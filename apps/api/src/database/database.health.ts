import { Injectable, type OnModuleInit } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { InjectDataSource } from '@nestjs/typeorm';
import { ComponentHealth } from '@app/monitoring';
import type { DataSource } from 'typeorm';

const PING_TIMEOUT_MS = 2000;

/** Pings the database (`SELECT 1`, bounded by a timeout) for readiness and `vla_application_health`. */
@Injectable()
export class DatabaseHealthIndicator implements OnModuleInit {
  constructor(
    private readonly health: HealthIndicatorService,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly components: ComponentHealth,
  ) {}

  onModuleInit(): void {
    this.components.register('database', () => this.ping());
  }

  async ping(timeoutMs = PING_TIMEOUT_MS): Promise<boolean> {
    if (!this.dataSource.isInitialized) return false;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.dataSource.query('SELECT 1').then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), timeoutMs);
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
