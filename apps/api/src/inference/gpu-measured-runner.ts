import type { GpuMemoryTracker } from '@app/gpu';
import type { BatchRunner } from './model-scheduler';
import type { BatchResult } from './model-workers';
import type { WorkItem } from './tensor-prep';

/**
 * A model's Workers with each batch's GPU memory measured: the before-sample is taken, then the batch
 * runs, then the after-sample is taken off the request path ({@link GpuMemoryTracker}). While a batch
 * waits for its before-sample it holds a Worker, so the scheduler never dispatches more batches than
 * there are Workers to run them.
 */
export class GpuMeasuredRunner implements BatchRunner {
  private starting = 0;

  constructor(
    private readonly inner: BatchRunner,
    private readonly tracker: Pick<GpuMemoryTracker, 'begin'>,
    private readonly model: string,
  ) {}

  get idle(): number {
    return Math.max(0, this.inner.idle - this.starting);
  }

  get busy(): number {
    return this.inner.busy + this.starting;
  }

  async run(items: readonly WorkItem[]): Promise<BatchResult> {
    this.starting++;
    let end: (() => void) | undefined;
    try {
      end = await this.tracker.begin(this.model);
    } finally {
      this.starting--;
    }
    try {
      return await this.inner.run(items);
    } finally {
      end?.();
    }
  }
}
