/** The GPU lib: NVML over FFI with an nvidia-smi fallback, polled; per-batch GPU memory; metrics and health. */
export { GpuModule } from './gpu.module';
export { SAMPLE_TIMEOUT_MS, type GpuLogger, type GpuModuleOptions } from './gpu.options';
export {
  GpuTelemetry,
  deviceLabels,
  memoryPercent,
  type TelemetryState,
  type TelemetryStatus,
} from './gpu-telemetry.service';
export { GpuMemoryTracker } from './gpu-memory-tracker.service';
export { GpuHealthIndicator } from './gpu.health';
export { GPU_METRICS, DEVICE_LABELS, gpuMetricsIn, type GpuMetrics } from './gpu.metrics';
export {
  COLLECTION_ERROR_REASONS,
  CollectionError,
  type CollectionErrorReason,
  type CollectOptions,
  type GpuCollector,
} from './gpu-collector';
export {
  COMPUTE_MODES,
  GPU_SOURCES,
  type ComputeMode,
  type GpuDevice,
  type GpuProcess,
  type GpuSnapshot,
  type GpuSource,
  type ProcessGpuMemory,
} from './gpu-snapshot';
export { NvmlCollector, type NvmlCollectorOptions } from './nvml/nvml-collector';
export { NvidiaSmiCollector, nvidiaSmiAvailable } from './smi/nvidia-smi';
