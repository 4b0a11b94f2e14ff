/** Where a snapshot came from: NVML through FFI, or the `nvidia-smi` command when NVML cannot be loaded. */
export const GPU_SOURCES = ['nvml', 'nvidia-smi'] as const;
export type GpuSource = (typeof GPU_SOURCES)[number];

/** NVML's `nvmlComputeMode_t`, by value (nvidia-smi prints the same modes by name). */
export const COMPUTE_MODES = ['default', 'exclusive_thread', 'prohibited', 'exclusive_process'] as const;
export type ComputeMode = (typeof COMPUTE_MODES)[number];

/** A process holding memory on a device (NVML's running compute processes). */
export interface GpuProcess {
  readonly pid: number;
  /** Absent when the driver cannot tell (NVML_VALUE_NOT_AVAILABLE, `[N/A]`). */
  readonly usedMemoryBytes?: number;
}

/**
 * One device at one moment. Every reading is optional: a field the device does not support
 * (NVML_ERROR_NOT_SUPPORTED, `[Not Supported]`, `[N/A]`) is absent, never 0. A device that cannot be
 * read at all (NVML_ERROR_GPU_IS_LOST, a reset required) has `healthy: false` and an `error`.
 */
export interface GpuDevice {
  /** NVML index (the order `nvidia-smi` lists devices in). */
  readonly index: number;
  readonly uuid?: string;
  readonly name?: string;
  /** Domain:bus:device.function, e.g. `00000000:17:00.0`. */
  readonly pciBusId?: string;
  readonly healthy: boolean;
  /** Why the device is unhealthy (`gpu_is_lost: GPU is lost`), or why its last reading failed. */
  readonly error?: string;
  /** Share of the last sample period in which a kernel ran, 0-100. */
  readonly utilizationGpuPercent?: number;
  /** Share of the last sample period in which device memory was read or written, 0-100. */
  readonly utilizationMemoryPercent?: number;
  readonly memoryTotalBytes?: number;
  readonly memoryUsedBytes?: number;
  readonly memoryFreeBytes?: number;
  readonly temperatureCelsius?: number;
  readonly powerWatts?: number;
  /** The power limit the driver enforces. */
  readonly powerLimitWatts?: number;
  readonly computeMode?: ComputeMode;
  readonly smClockMhz?: number;
  readonly memoryClockMhz?: number;
  /** Energy used since the driver was loaded, in joules (monotonic). */
  readonly energyJoules?: number;
  /** Compute processes on this device; absent when the list cannot be read. */
  readonly processes?: readonly GpuProcess[];
  /**
   * Readings that failed with an error other than NOT_SUPPORTED, by field name (e.g.
   * `{ temperatureCelsius: 'no_permission: Insufficient Permissions' }`); the field itself is absent.
   */
  readonly fieldErrors?: Readonly<Record<string, string>>;
}

/** Everything one collection read. */
export interface GpuSnapshot {
  readonly source: GpuSource;
  /** Date.now() when the collection finished. */
  readonly collectedAt: number;
  readonly durationMs: number;
  readonly driverVersion?: string;
  /** CUDA version the driver supports, `major.minor` (e.g. `12.4`). */
  readonly cudaDriverVersion?: string;
  readonly nvmlVersion?: string;
  readonly devices: readonly GpuDevice[];
}

/** This process's GPU memory, per device index, from the running-process lists. */
export interface ProcessGpuMemory {
  /** Bytes on each device where this process is listed; devices where it is not are absent. */
  readonly perDevice: Readonly<Record<number, number>>;
  readonly totalBytes: number;
}
