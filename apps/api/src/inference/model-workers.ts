import { extname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import type { ModelConfig } from './model-config';
import { ModelLoadError } from './model-interface';
import type { WorkItem } from './tensor-prep';
import type { ControlMessage, FromWorker, ToWorker, WorkerInit } from './worker-protocol';

/** What loading a model measured (the first Worker's numbers). */
export interface LoadInfo {
  readonly loadMs: number;
  readonly memoryBytes: number;
}

/** One batch's answer. */
export interface BatchResult {
  readonly actions: readonly Float32Array[];
  /** `session.run` wall time, for the whole batch. */
  readonly computeMs: number;
  /** The Worker's whole task: packing, run, unpacking. */
  readonly taskMs: number;
}

/** The model failed to run this batch (a bad tensor, an ONNX Runtime error): the Worker lives on. */
export class BatchFailedError extends Error {
  constructor(readonly reason: string) {
    super(`the model failed on this batch: ${reason}`);
    this.name = 'BatchFailedError';
  }
}

/** The Worker died while running this batch; it is being replaced. */
export class WorkerCrashedError extends Error {
  constructor(readonly reason: string) {
    super(`the worker running this batch crashed: ${reason}`);
    this.name = 'WorkerCrashedError';
  }
}

export interface ModelWorkersOptions {
  readonly executionProviders: readonly string[];
  readonly warmUp?: boolean;
  /** Called when a Worker died unexpectedly (counted and logged by the caller). */
  readonly onCrash?: (reason: string) => void;
  /** Called whenever a Worker becomes free (finished a batch, or a replacement is ready). */
  readonly onAvailable?: () => void;
  /** Worker entry file; tests may point at another. Default: onnx-worker next to this file. */
  readonly workerFile?: string;
}

interface Slot {
  worker: Worker;
  control: MessagePort;
  ready: boolean;
  busy: { batchId: number; resolve: (r: BatchResult) => void; reject: (e: Error) => void } | null;
  /** When the current batch was sent (for utilisation). */
  busySince: number;
}

/**
 * The Worker threads of one model, each with its own ONNX Runtime session. `run` sends a batch to an idle
 * Worker, transferring the request buffers. A Worker that dies is replaced; its batch fails with
 * {@link WorkerCrashedError}.
 */
export class ModelWorkers {
  private readonly slots: Slot[] = [];
  private nextBatchId = 1;
  private closing = false;
  private busyMsTotal = 0;
  private loadInfo: LoadInfo | undefined;

  constructor(
    private readonly config: ModelConfig,
    private readonly options: ModelWorkersOptions,
  ) {}

  /**
   * Starts every Worker; resolves when all have loaded the model, rejects with the first load failure: a
   * {@link ModelLoadError} when the Worker could say why, an `Error` when it died while loading.
   */
  async start(): Promise<LoadInfo> {
    const results = await Promise.allSettled(
      Array.from({ length: this.config.workers }, () => this.spawn(this.options.warmUp ?? true)),
    );
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      await this.close();
      throw failed.reason;
    }
    this.loadInfo = (results[0] as PromiseFulfilledResult<LoadInfo>).value;
    return this.loadInfo;
  }

  get size(): number {
    return this.config.workers;
  }

  /** Workers alive and loaded. */
  get active(): number {
    return this.slots.filter((s) => s.ready).length;
  }

  get busy(): number {
    return this.slots.filter((s) => s.busy !== null).length;
  }

  get idle(): number {
    return this.slots.filter((s) => s.ready && s.busy === null).length;
  }

  /** Milliseconds Workers have spent on batches so far, the running ones included up to now. */
  busyMs(now = performance.now()): number {
    let running = 0;
    for (const s of this.slots) if (s.busy !== null) running += now - s.busySince;
    return this.busyMsTotal + running;
  }

  /** Runs one batch on an idle Worker. Throws if none is idle (the scheduler checks `idle` first). */
  run(items: readonly WorkItem[]): Promise<BatchResult> {
    const slot = this.slots.find((s) => s.ready && s.busy === null);
    if (slot === undefined) return Promise.reject(new Error('no idle worker'));
    const batchId = this.nextBatchId++;
    return new Promise<BatchResult>((resolve, reject) => {
      slot.busy = { batchId, resolve, reject };
      slot.busySince = performance.now();
      const message: ToWorker = { type: 'run', batchId, items };
      slot.worker.postMessage(message, transferList(items));
    });
  }

  /**
   * Ends every Worker after its running batch (if any) is answered; one that does not exit within
   * `graceMs` is terminated. Never terminates a Worker mid-run while it answers: ONNX Runtime completes a
   * run on its own threads, and a Worker torn down under it aborts the process.
   */
  async close(graceMs = 30_000): Promise<void> {
    this.closing = true;
    const slots = this.slots.splice(0);
    await Promise.all(
      slots.map(async (slot) => {
        const exited = new Promise<void>((resolve) => slot.worker.once('exit', () => resolve()));
        slot.control.postMessage({ type: 'exit' } satisfies ControlMessage);
        const timer = setTimeout(() => void slot.worker.terminate(), graceMs);
        await exited;
        clearTimeout(timer);
        slot.busy?.reject(new WorkerCrashedError('the model is shutting down'));
      }),
    );
  }

  /**
   * Fault injection (tests, operators): makes one Worker die as a crash would, the busy one first. It dies
   * at the end of its current forward pass without answering it, so that batch fails as in a real crash.
   */
  crashOne(): void {
    const slot = this.slots.find((s) => s.busy !== null) ?? this.slots[0];
    slot?.control.postMessage({ type: 'crash' } satisfies ControlMessage);
  }

  private spawn(warmUp: boolean): Promise<LoadInfo> {
    const file = this.options.workerFile ?? join(__dirname, `onnx-worker${extname(__filename)}`);
    const channel = new MessageChannel();
    const init: WorkerInit = {
      config: this.config,
      executionProviders: this.options.executionProviders,
      warmUp,
      control: channel.port2,
    };
    const worker = new Worker(file, {
      workerData: init,
      transferList: [channel.port2],
      // Under ts-node-like runners (tests, `npm run cli`) the Worker needs the same TypeScript loader.
      execArgv: file.endsWith('.ts') ? ['--require', '@swc-node/register'] : [],
      stdout: false,
      stderr: false,
    });
    const slot: Slot = { worker, control: channel.port1, ready: false, busy: null, busySince: 0 };
    worker.once('exit', () => channel.port1.close());
    this.slots.push(slot);
    return new Promise<LoadInfo>((resolve, reject) => {
      let settled = false;
      worker.on('message', (message: FromWorker) => {
        switch (message.type) {
          case 'ready':
            slot.ready = true;
            settled = true;
            resolve({ loadMs: message.loadMs, memoryBytes: message.memoryBytes });
            this.options.onAvailable?.();
            return;
          case 'load_failed':
            settled = true;
            reject(new ModelLoadError(message.stage, message.reason, message.problems));
            void worker.terminate();
            return;
          case 'result':
          case 'run_failed': {
            const busy = slot.busy;
            if (busy === null || busy.batchId !== message.batchId) return;
            this.busyMsTotal += performance.now() - slot.busySince;
            slot.busy = null;
            if (message.type === 'result') {
              busy.resolve({
                actions: message.actions,
                computeMs: message.computeMs,
                taskMs: message.taskMs,
              });
            } else {
              busy.reject(new BatchFailedError(message.reason));
            }
            this.options.onAvailable?.();
            return;
          }
        }
      });
      // @types/node 24 types the listener's argument as `any`: a Worker may throw anything.
      worker.on('error', (thrown: unknown) => {
        const error = thrown instanceof Error ? thrown : new Error(String(thrown));
        if (!settled) {
          settled = true;
          reject(error);
        }
        this.onDeath(slot, error.message);
      });
      worker.on('exit', (code) => {
        if (!settled) {
          settled = true;
          reject(new Error(`the worker exited with code ${code} while loading`));
        }
        this.onDeath(slot, `exit code ${code}`);
      });
    });
  }

  private onDeath(slot: Slot, reason: string): void {
    const index = this.slots.indexOf(slot);
    if (index === -1) return;
    this.slots.splice(index, 1);
    const wasReady = slot.ready;
    slot.ready = false;
    if (slot.busy !== null) {
      this.busyMsTotal += performance.now() - slot.busySince;
      slot.busy.reject(new WorkerCrashedError(reason));
      slot.busy = null;
    }
    if (this.closing || !wasReady) return;
    this.options.onCrash?.(reason);
    // The replacement loads in the background; until it is ready the other Workers (if any) serve.
    this.spawn(false).catch((error: unknown) => {
      this.options.onCrash?.(`replacement failed to load: ${(error as Error).message}`);
    });
  }
}

/** The buffers to transfer with a batch: each must own its whole ArrayBuffer, or it is copied instead. */
function transferList(items: readonly WorkItem[]): ArrayBuffer[] {
  const list = new Set<ArrayBuffer>();
  const add = (view: ArrayBufferView | null) => {
    if (view === null) return;
    const buffer = view.buffer;
    if (buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === buffer.byteLength) {
      list.add(buffer);
    }
  };
  for (const item of items) {
    item.images.forEach(add);
    add(item.state);
    add(item.tokens);
  }
  return [...list];
}
