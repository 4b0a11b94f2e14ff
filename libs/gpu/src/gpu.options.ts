import type { GpuCollector } from './gpu-collector';

/** The structured logger telemetry reports to (pino's shape). */
export interface GpuLogger {
  error(object: Record<string, unknown>, message: string): void;
  warn(object: Record<string, unknown>, message: string): void;
  info(object: Record<string, unknown>, message: string): void;
}

export interface GpuModuleOptions {
  /** `GPU_METRICS_POLL_INTERVAL_SECONDS` in milliseconds; 0 turns GPU telemetry off. */
  readonly pollIntervalMs: number;
  /** The longest one collection may take before it counts as failed (`timeout`) and the poll moves on. */
  readonly collectTimeoutMs: number;
  /** `NVML_LIBRARY_PATH`. */
  readonly nvmlLibraryPath: string;
  /** `NVIDIA_SMI_PATH`. */
  readonly nvidiaSmiPath: string;
  /** The longest wait between polls while collections fail, and between probes of a lost device. */
  readonly maxBackoffMs?: number;
  /** How long application start waits for the first collection (the rest continues in the background). */
  readonly startWaitMs?: number;
  readonly logger?: GpuLogger;
  /** The process whose GPU memory is tracked: this one. */
  readonly pid?: number;
  /**
   * Tests: the collectors to try, in order, instead of NVML then nvidia-smi. Each returns a collector,
   * or a reason why it is not available.
   */
  readonly collectors?: readonly (() => Promise<GpuCollector | string>)[];
}

export const GPU_OPTIONS = Symbol('GPU_OPTIONS');

/**
 * The longest a batch waits for its before-sample. NVML answers in well under a millisecond; a sample
 * that takes longer (the collector is busy with a poll of many GPUs, or sick) is given up and the batch
 * runs unmeasured. A poll running longer than this makes batches skip their samples altogether.
 */
export const SAMPLE_TIMEOUT_MS = 100;
