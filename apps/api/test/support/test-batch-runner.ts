import type { BatchRunner } from '../../src/inference/model-scheduler';
import type { BatchResult } from '../../src/inference/model-workers';
import type { WorkItem } from '../../src/inference/tensor-prep';

/** A work item that carries only its request id (in state[0]), as the pretend Workers read it. */
export function workItem(id: number): WorkItem {
  return { images: [], state: Float32Array.of(id), tokens: null };
}

export function idOf(item: WorkItem): number {
  return item.state[0];
}

/** One batch the pool was given, and the switches that end it. */
export interface RunnerBatch {
  /** The request ids of its items, in order (each item's state[0]). */
  readonly ids: readonly number[];
  readonly items: readonly WorkItem[];
  /** The clock (the global `performance.now()`, which fake timers replace) when it was handed over. */
  readonly sentAt: number;
  settled: boolean;
  /** What `complete` resolved it with. */
  result?: BatchResult;
  /** Each item's actions are [id * 10]: a request can tell that it got its own row. */
  complete(computeMs?: number, taskMs?: number): void;
  fail(error: Error): void;
}

/**
 * A pool of `workers` pretend Workers whose batches finish when the test says so. Like ModelWorkers, a
 * finished batch frees its worker before the result is delivered and then calls `onAvailable` (the
 * registry wires that to `scheduler.pump()`), and a batch handed over with no worker idle is refused.
 */
export class TestRunner implements BatchRunner {
  readonly batches: RunnerBatch[] = [];
  onAvailable: () => void = () => undefined;
  /** Batches sent while no worker was idle: a scheduler must never do that. */
  overbooked = 0;
  private running = 0;

  constructor(private readonly workers: number) {}

  get idle(): number {
    return this.workers - this.running;
  }

  get busy(): number {
    return this.running;
  }

  get open(): RunnerBatch[] {
    return this.batches.filter((b) => !b.settled);
  }

  run(items: readonly WorkItem[]): Promise<BatchResult> {
    if (this.running >= this.workers) {
      this.overbooked++;
      return Promise.reject(new Error('no idle worker'));
    }
    this.running++;
    return new Promise<BatchResult>((resolve, reject) => {
      const end = (deliver: () => void): void => {
        if (batch.settled) throw new Error('batch already ended');
        batch.settled = true;
        this.running--;
        deliver();
        this.onAvailable();
      };
      const batch: RunnerBatch = {
        ids: items.map(idOf),
        items: [...items],
        sentAt: performance.now(),
        settled: false,
        complete: (computeMs = 8, taskMs = computeMs + 1) =>
          end(() => {
            const result = { actions: items.map((it) => Float32Array.of(idOf(it) * 10)), computeMs, taskMs };
            batch.result = result;
            resolve(result);
          }),
        fail: (error) => end(() => reject(error)),
      };
      this.batches.push(batch);
    });
  }
}
