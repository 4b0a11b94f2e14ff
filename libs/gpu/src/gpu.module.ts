import { type DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { GpuHealthIndicator } from './gpu.health';
import { gpuMetricProviders } from './gpu.metrics';
import { GPU_OPTIONS, type GpuModuleOptions } from './gpu.options';
import { GpuMemoryTracker } from './gpu-memory-tracker.service';
import { GpuTelemetry } from './gpu-telemetry.service';

/**
 * GPU telemetry ({@link GpuTelemetry}: NVML, or nvidia-smi, polled off the request path), per-batch GPU
 * memory ({@link GpuMemoryTracker}), their metrics and health indicator. Needs `MonitoringModule`.
 */
@Module({})
export class GpuModule {
  static forRoot(options: GpuModuleOptions): DynamicModule {
    return {
      module: GpuModule,
      global: true,
      imports: [TerminusModule],
      providers: [
        { provide: GPU_OPTIONS, useValue: options },
        ...gpuMetricProviders,
        GpuTelemetry,
        GpuMemoryTracker,
        GpuHealthIndicator,
      ],
      exports: [GpuTelemetry, GpuMemoryTracker, GpuHealthIndicator],
    };
  }
}
