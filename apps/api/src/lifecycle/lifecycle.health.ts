import { ComponentHealth } from '@app/monitoring';
import { Injectable, type OnModuleInit } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { LifecycleService } from './lifecycle.service';

/**
 * Up only while the process is `ready`: 503 while starting and from the first shutdown signal on. Also
 * `vla_application_health{component="lifecycle"}`, so a scrape shows a draining replica.
 */
@Injectable()
export class LifecycleHealthIndicator implements OnModuleInit {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly lifecycle: LifecycleService,
    private readonly components: ComponentHealth,
  ) {}

  onModuleInit(): void {
    this.components.register('lifecycle', () => this.lifecycle.isReady);
  }

  check<const K extends string>(key: K) {
    const indicator = this.health.check(key);
    const phase = this.lifecycle.phase;
    return this.lifecycle.isReady ? indicator.up({ phase }) : indicator.down({ phase });
  }
}
