import type { MessagePort } from 'node:worker_threads';
import type { ModelConfig } from './model-config';
import type { InterfaceProblem, LoadStage } from './model-interface';
import type { WorkItem } from './tensor-prep';

/** What a Worker is started with (structured-cloned once). */
export interface WorkerInit {
  readonly config: ModelConfig;
  /** Execution providers to ask ONNX Runtime for, in order (`cuda` first when usable, then `cpu`). */
  readonly executionProviders: readonly string[];
  /** Run one zero-filled batch after loading, so the first request does not pay the warm-up. */
  readonly warmUp: boolean;
  /**
   * Where `exit` and `crash` arrive. A port of its own, so the Worker can read them synchronously right
   * after a forward pass (`session.run` holds the Worker's thread; a message on the main port would only
   * be seen after the batch was answered).
   */
  readonly control: MessagePort;
}

/** Main thread -> Worker, on the control port. */
export type ControlMessage = { readonly type: 'exit' } | { readonly type: 'crash' };

/**
 * Main thread -> Worker, on the Worker's own port. (On the control port: `exit` ends the Worker once no
 * forward pass is running, since terminating a Worker inside `session.run` aborts the whole process;
 * `crash` does the same with exit code 1 and without answering the running batch: fault injection for
 * tests and operators, indistinguishable from a Worker dying mid-batch.)
 */
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
  | {
      readonly type: 'load_failed';
      readonly stage: LoadStage;
      /** Path-free. */
      readonly reason: string;
      /** Every mismatch between model.yaml and the file, for stage `interface`. */
      readonly problems: readonly InterfaceProblem[];
    }
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
