import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { GpuTelemetry } from './gpu-telemetry.service';

/**
 * GPU telemetry for `/health/detailed` (never readiness: a replica serving on CPU, or one whose
 * telemetry fails, still serves). Down while collections fail or a device is lost; up when telemetry is
 * disabled (no GPU here), with the reason.
 */
@Injectable()
export class GpuHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly telemetry: GpuTelemetry,
  ) {}

  check<const K extends string>(key: K) {
    const indicator = this.health.check(key);
    const status = this.telemetry.status();
    const devices = status.snapshot?.devices ?? [];
    const unhealthy = devices.filter((d) => !d.healthy).map((d) => d.index);
    const details = {
      telemetry: status.state,
      source: status.source ?? 'none',
      devices: devices.length,
      unhealthy_devices: unhealthy,
      last_success_at: status.lastSuccessAt === null ? null : new Date(status.lastSuccessAt).toISOString(),
      ...(status.reason === null ? {} : { reason: status.reason }),
    };
    return status.state === 'failing' || unhealthy.length > 0
      ? indicator.down(details)
      : indicator.up(details);
  }
}
