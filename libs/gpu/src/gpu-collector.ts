import type { GpuSnapshot, GpuSource, ProcessGpuMemory } from './gpu-snapshot';

/** Why a collection failed, as `vla_gpu_collection_errors_total{reason}` counts it. */
export const COLLECTION_ERROR_REASONS = [
  /** The collector did not answer within its timeout (a hung driver, a stuck `nvidia-smi`). */
  'timeout',
  /** NVML could not start (nvmlInit failed, the driver is not loaded). */
  'init_failed',
  /** An NVML call that every collection needs (the device count) failed. */
  'nvml_error',
  /** `nvidia-smi` exited with an error, could not be started, or printed nothing usable. */
  'command_failed',
  /** `nvidia-smi` printed something this parser does not understand. */
  'parse_error',
  /** The collector process died (or `nvidia-smi` could not be reached any more). */
  'collector_exited',
  /** A device stopped answering (NVML_ERROR_GPU_IS_LOST and the like): counted once per device loss. */
  'gpu_lost',
] as const;
export type CollectionErrorReason = (typeof COLLECTION_ERROR_REASONS)[number];

/** A collection that produced no snapshot. The message says what failed, never anything secret. */
export class CollectionError extends Error {
  constructor(
    readonly reason: CollectionErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'CollectionError';
  }
}

export interface CollectOptions {
  /** Device indexes not to read this time (lost devices waiting for their next probe). */
  readonly skipDevices?: ReadonlySet<number>;
}

/** One way of reading the GPUs: NVML or `nvidia-smi`. Calls are never overlapped by the caller. */
export interface GpuCollector {
  readonly source: GpuSource;
  /** Reads every device; rejects with {@link CollectionError}. */
  collect(options?: CollectOptions): Promise<GpuSnapshot>;
  /** This process's GPU memory from the running-process lists; rejects with {@link CollectionError}. */
  processMemory(pid: number): Promise<ProcessGpuMemory>;
  /** Releases the collector (nvmlShutdown, its process). */
  close(): Promise<void>;
}
