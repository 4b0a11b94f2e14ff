import { counterProvider, gaugeProvider, histogramProvider } from '@app/monitoring';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The GPU metrics: seed 003's per-device gauges, what an operator adds to them, and collector health. */
export const GPU_METRICS = {
  utilization: 'vla_gpu_utilization_percent',
  memoryCopyUtilization: 'vla_gpu_memory_copy_utilization_percent',
  memoryUsed: 'vla_gpu_memory_used_bytes',
  memoryTotal: 'vla_gpu_memory_total_bytes',
  memoryUtilization: 'vla_gpu_memory_utilization_percent',
  temperature: 'vla_gpu_temperature_celsius',
  power: 'vla_gpu_power_watts',
  powerLimit: 'vla_gpu_power_limit_watts',
  energy: 'vla_gpu_energy_joules_total',
  computeMode: 'vla_gpu_compute_mode',
  clock: 'vla_gpu_clock_hertz',
  processMemory: 'vla_gpu_process_memory_bytes',
  deviceHealthy: 'vla_gpu_device_healthy',
  info: 'vla_gpu_info',
  collectorUp: 'vla_gpu_collector_up',
  collectionErrors: 'vla_gpu_collection_errors_total',
  lastSuccess: 'vla_gpu_last_collection_timestamp_seconds',
  collectionDuration: 'vla_gpu_collection_duration_seconds',
  inferenceMemoryDelta: 'vla_inference_gpu_memory_delta_bytes',
} as const;

/** Every per-device series carries these: the NVML index, the UUID (stable across reboots) and the model name. */
export const DEVICE_LABELS = ['gpu', 'uuid', 'name'] as const;

const MIB = 1024 * 1024;
/** A batch's memory change: usually 0 once the arena is warm; arena growth is in MiB to GiB steps. */
const DELTA_BUCKETS_BYTES = [
  -1024 * MIB,
  -64 * MIB,
  -MIB,
  0,
  MIB,
  16 * MIB,
  64 * MIB,
  256 * MIB,
  1024 * MIB,
  4096 * MIB,
];
/** NVML answers in milliseconds; nvidia-smi takes tens to hundreds. */
const COLLECTION_BUCKETS_SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Kind = 'gauge' | 'counter' | 'histogram';
interface Declaration {
  readonly kind: Kind;
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly buckets?: readonly number[];
}

const device = (name: string, help: string, extra: readonly string[] = []): Declaration => ({
  kind: 'gauge',
  name,
  help,
  labelNames: [...DEVICE_LABELS, ...extra],
});

/** Each metric's declaration, once: the providers below register them, {@link gpuMetricsIn} too. */
const DECLARATIONS: Record<keyof typeof GPU_METRICS, Declaration> = {
  utilization: device(
    GPU_METRICS.utilization,
    'Share of the last sample period in which a kernel ran on the GPU, 0-100.',
  ),
  memoryCopyUtilization: device(
    GPU_METRICS.memoryCopyUtilization,
    'Share of the last sample period in which device memory was read or written, 0-100 (NVML utilization.memory).',
  ),
  memoryUsed: device(GPU_METRICS.memoryUsed, 'Device memory in use, in bytes.'),
  memoryTotal: device(GPU_METRICS.memoryTotal, 'Device memory installed, in bytes.'),
  memoryUtilization: device(
    GPU_METRICS.memoryUtilization,
    'Device memory in use as a share of the total, 0-100.',
  ),
  temperature: device(GPU_METRICS.temperature, 'GPU core temperature, in degrees Celsius.'),
  power: device(GPU_METRICS.power, 'Power drawn by the board, in watts.'),
  powerLimit: device(GPU_METRICS.powerLimit, 'Power limit the driver enforces, in watts.'),
  energy: {
    kind: 'counter',
    name: GPU_METRICS.energy,
    help: 'Energy used by the board since the driver was loaded, in joules (NVML total energy consumption).',
    labelNames: DEVICE_LABELS,
  },
  computeMode: device(
    GPU_METRICS.computeMode,
    'Compute mode: 0 default, 1 exclusive thread, 2 prohibited, 3 exclusive process (NVML nvmlComputeMode_t).',
  ),
  clock: device(GPU_METRICS.clock, 'Current clock, in hertz, by clock (sm, memory).', ['clock']),
  processMemory: device(
    GPU_METRICS.processMemory,
    'Device memory this API process holds, in bytes, from the running-process list (absent where it holds none).',
  ),
  deviceHealthy: device(
    GPU_METRICS.deviceHealthy,
    'Whether the device answers: 1, or 0 after NVML_ERROR_GPU_IS_LOST or a reset required (its other series are removed).',
  ),
  info: {
    kind: 'gauge',
    name: GPU_METRICS.info,
    help: 'One series per device with its identity and the driver: always 1.',
    labelNames: [...DEVICE_LABELS, 'pci_bus_id', 'driver_version', 'cuda_driver_version', 'source'],
  },
  collectorUp: {
    kind: 'gauge',
    name: GPU_METRICS.collectorUp,
    help: 'Whether the last GPU collection succeeded, by source (nvml, nvidia-smi; none: telemetry is off or no GPU was found, always 0).',
    labelNames: ['source'],
  },
  collectionErrors: {
    kind: 'counter',
    name: GPU_METRICS.collectionErrors,
    help: 'GPU collections that failed, by source and reason (timeout, init_failed, nvml_error, command_failed, parse_error, collector_exited), and devices lost (gpu_lost).',
    labelNames: ['source', 'reason'],
  },
  lastSuccess: {
    kind: 'gauge',
    name: GPU_METRICS.lastSuccess,
    help: 'Unix time of the last successful GPU collection, in seconds, by source.',
    labelNames: ['source'],
  },
  collectionDuration: {
    kind: 'histogram',
    name: GPU_METRICS.collectionDuration,
    help: 'Time one GPU collection took, in seconds, by source, including failures.',
    labelNames: ['source'],
    buckets: COLLECTION_BUCKETS_SECONDS,
  },
  inferenceMemoryDelta: {
    kind: 'histogram',
    name: GPU_METRICS.inferenceMemoryDelta,
    help: "Change of this process's GPU memory over one inference batch (after minus before), in bytes, by model; measured for models on a GPU with NVML telemetry up.",
    labelNames: ['model'],
    buckets: DELTA_BUCKETS_BYTES,
  },
};

export const gpuMetricProviders = Object.values(DECLARATIONS).map((d) => {
  const options = { name: d.name, help: d.help, labelNames: [...d.labelNames] };
  if (d.kind === 'gauge') return gaugeProvider(options);
  if (d.kind === 'counter') return counterProvider(options);
  return histogramProvider({ ...options, buckets: [...(d.buckets ?? [])] });
});

/** The GPU metrics as prom-client objects, by {@link GPU_METRICS} key. */
export interface GpuMetrics {
  readonly utilization: Gauge<string>;
  readonly memoryCopyUtilization: Gauge<string>;
  readonly memoryUsed: Gauge<string>;
  readonly memoryTotal: Gauge<string>;
  readonly memoryUtilization: Gauge<string>;
  readonly temperature: Gauge<string>;
  readonly power: Gauge<string>;
  readonly powerLimit: Gauge<string>;
  readonly energy: Counter<string>;
  readonly computeMode: Gauge<string>;
  readonly clock: Gauge<string>;
  readonly processMemory: Gauge<string>;
  readonly deviceHealthy: Gauge<string>;
  readonly info: Gauge<string>;
  readonly collectorUp: Gauge<string>;
  readonly collectionErrors: Counter<string>;
  readonly lastSuccess: Gauge<string>;
  readonly collectionDuration: Histogram<string>;
  readonly inferenceMemoryDelta: Histogram<string>;
}

/** The same metrics registered in `registry` instead of through Nest (benchmarks, tests). */
export function gpuMetricsIn(registry: Registry): GpuMetrics {
  const registers = [registry];
  const build = (d: Declaration) => {
    const options = { name: d.name, help: d.help, labelNames: [...d.labelNames], registers };
    if (d.kind === 'gauge') return new Gauge(options);
    if (d.kind === 'counter') return new Counter(options);
    return new Histogram({ ...options, buckets: [...(d.buckets ?? [])] });
  };
  // Each key's declaration has the kind its field in GpuMetrics names.
  return Object.fromEntries(
    Object.entries(DECLARATIONS).map(([key, d]) => [key, build(d)]),
  ) as unknown as GpuMetrics;
}
