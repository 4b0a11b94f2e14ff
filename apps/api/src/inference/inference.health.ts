import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { ModelRegistry } from './model-registry.service';

/**
 * Models in `/health/ready` and `/health/detailed`. Down when no model serves (one unavailable model among
 * others that load is reported, not fatal), or when a model's pending work has completed nothing for
 * MODEL_STALL_TIMEOUT_MS (a wedged worker: taking the replica out of rotation is the cure).
 */
@Injectable()
export class ModelsHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly registry: ModelRegistry,
  ) {}

  check<const K extends string>(key: K) {
    const indicator = this.health.check(key);
    const models = this.registry.list();
    const ready = models.filter((m) => m.status === 'ready').map((m) => m.config.id);
    const unavailable = models
      .filter((m) => m.status !== 'ready')
      .map((m) => ({ model: m.config.id, status: m.status, reason: m.reason ?? null }));
    const stalled = this.registry.stalled();
    const details = { ready, unavailable, stalled };
    if (ready.length === 0) return indicator.down({ ...details, message: 'no model is loaded' });
    if (stalled.length > 0)
      return indicator.down({ ...details, message: 'a model has stopped making progress' });
    return indicator.up(details);
  }
}
