import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { LifecycleService } from './lifecycle.service';

/** Up only while the process is `ready`: 503 while starting and from the first shutdown signal on. */
@Injectable()
export class LifecycleHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly lifecycle: LifecycleService,
  ) {}

  check<const K extends string>(key: K) {
    const indicator = this.health.check(key);
    const phase = this.lifecycle.phase;
    return this.lifecycle.isReady ? indicator.up({ phase }) : indicator.down({ phase });
  }
}
