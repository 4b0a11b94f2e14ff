import type { ModelConfig } from './model-config';
import type { WorkItem } from './tensor-prep';

/** What a Worker is started with (structured-cloned once). */
export interface WorkerInit {
  readonly config: ModelConfig;
  /** Execution providers to ask ONNX Runtime for, in order (`cuda` first when usable, then `cpu`). */
  readonly executionProviders: readonly string[];
  /** Run one zero-filled batch after loading, so the first request does not pay the warm-up. */
  readonly warmUp: boolean;
}

/** Main thread -> Worker. */
export type ToWorker = {
  readonly type: 'run';
  readonly batchId: number;
  readonly items: readonly WorkItem[];
};

/** Worker -> main thread. */
export type FromWorker =
  | {
      readonly type: 'ready';
      readonly loadMs: number;
      /** Resident memory the Worker's process grew by while loading (all threads share one process). */
      readonly memoryBytes: number;
      readonly inputNames: readonly string[];
      readonly outputNames: readonly string[];
    }
  | { readonly type: 'load_failed'; readonly reason: string }
  | {
      readonly type: 'result';
      readonly batchId: number;
      /** Wall time of `session.run` alone. */
      readonly computeMs: number;
      /** Time in the Worker from receiving the batch to posting this (packing, run, unpacking). */
      readonly taskMs: number;
      readonly actions: readonly Float32Array[];
    }
  | { readonly type: 'run_failed'; readonly batchId: number; readonly reason: string };
