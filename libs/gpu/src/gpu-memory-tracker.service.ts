import { Injectable } from '@nestjs/common';
import { InjectMetric } from '@app/monitoring';
import { performance } from 'node:perf_hooks';
import type { Histogram } from 'prom-client';
import type { GpuCollector } from './gpu-collector';
import { GPU_METRICS } from './gpu.metrics';
import { SAMPLE_TIMEOUT_MS } from './gpu.options';
import { GpuTelemetry } from './gpu-telemetry.service';

/** How old the previous batch's after-sample may be to serve as the next batch's before-sample. */
export const REUSE_MAX_AGE_MS = 100;

/**
 * Per-batch GPU memory: this process's memory on every device, from NVML's running-process lists, before
 * and after a batch; the difference goes to `vla_inference_gpu_memory_delta_bytes{model}`. Measured only
 * while NVML telemetry is up (nvidia-smi is far too slow to run per batch). Batches that overlap on
 * several Workers share the process's memory, so each one's delta includes the others' allocations.
 */
@Injectable()
export class GpuMemoryTracker {
  /** Measured batches running now, in every model (the memory is the process's). */
  private running = 0;
  /** The after-sample of the last batch to end, when no batch has started since: the next one's before. */
  private idleSample: { readonly bytes: Promise<number | undefined>; readonly at: number } | undefined;

  constructor(
    private readonly telemetry: GpuTelemetry,
    @InjectMetric(GPU_METRICS.inferenceMemoryDelta) private readonly delta: Histogram<string>,
  ) {}

  /** Whether a batch started now would be measured. */
  get active(): boolean {
    return this.telemetry.nvml !== undefined;
  }

  /**
   * Takes the before-sample of one batch of `model`. Resolves to the function to call once the batch has
   * finished (it samples again off the request path and records the delta), or undefined when this batch
   * is not measured. Never rejects. When no batch ran since the previous one ended, that one's
   * after-sample is this one's before: back-to-back batches pay for one sample each, not two.
   */
  async begin(model: string): Promise<(() => void) | undefined> {
    const collector = this.telemetry.nvml;
    if (collector === undefined) {
      this.idleSample = undefined; // This batch runs unmeasured and may allocate: no reuse past it.
      return undefined;
    }
    // Reused only when fresh: memory may change between batches (a model loading, a Worker replaced).
    const idle = this.idleSample;
    const reused =
      this.running === 0 && idle !== undefined && performance.now() - idle.at <= REUSE_MAX_AGE_MS
        ? idle.bytes
        : undefined;
    this.idleSample = undefined;
    this.running++;
    const before = (reused === undefined ? undefined : await reused) ?? (await this.sample(collector));
    if (before === undefined) {
      this.running--;
      return undefined;
    }
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.running--;
      const after = this.sample(collector);
      if (this.running === 0) this.idleSample = { bytes: after, at: performance.now() };
      void after.then((bytes) => {
        if (bytes !== undefined) this.delta.observe({ model }, bytes - before);
      });
    };
  }

  private async sample(collector: GpuCollector): Promise<number | undefined> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const memory = await Promise.race([
        collector.processMemory(this.telemetry.trackedPid),
        new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), SAMPLE_TIMEOUT_MS);
        }),
      ]);
      return memory?.totalBytes;
    } catch {
      return undefined; // The poll reports collector failures; a batch just goes unmeasured.
    } finally {
      clearTimeout(timer);
    }
  }
}
