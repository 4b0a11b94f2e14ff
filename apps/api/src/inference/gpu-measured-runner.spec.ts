import type { GpuMemoryTracker } from '@app/gpu';
import { GpuMeasuredRunner } from './gpu-measured-runner';
import { type JobResult, ModelScheduler } from './model-scheduler';
import { BatchFailedError } from './model-workers';
import { TestRunner, workItem } from '../../test/support/test-batch-runner';
// eslint-disable-next-line no-restricted-imports -- a test helper of the GPU lib, not its API
import { type Deferred, deferred } from '../../../../libs/gpu/test/deferred';

/**
 * GpuMeasuredRunner between the real ModelScheduler and a pool of pretend Workers whose batches end when
 * the test says, with a tracker whose before-sample arrives when the test says.
 */

type Begin = Pick<GpuMemoryTracker, 'begin'>['begin'];

/** A tracker whose every begin() waits for the test: `pending[i]` is the i-th call's answer. */
class Tracker {
  readonly pending: Deferred<(() => void) | undefined>[] = [];
  readonly models: string[] = [];
  readonly begin: Begin = (model) => {
    this.models.push(model);
    const answer = deferred<(() => void) | undefined>();
    this.pending.push(answer);
    return answer.promise;
  };
}

/** Lets every pending promise reaction run. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

function setup(workers = 1) {
  const pool = new TestRunner(workers);
  const tracker = new Tracker();
  const runner = new GpuMeasuredRunner(pool, tracker, 'demo');
  const scheduler = new ModelScheduler(
    { id: 'demo', maxBatchSize: 1, batchTimeoutMs: 0, queueCapacity: 16, workers },
    runner,
  );
  pool.onAvailable = () => scheduler.pump();
  const submit = (id: number) => {
    const outcome: { result?: JobResult; error?: unknown } = {};
    scheduler
      .submit({
        requestId: `req-${id}`,
        tenant: 'a',
        item: workItem(id),
        deadlineAt: performance.now() + 60_000,
      })
      .then(
        (result) => {
          outcome.result = result;
        },
        (error: unknown) => {
          outcome.error = error;
        },
      );
    return outcome;
  };
  /** Answers every sample and ends every batch until the queue is empty (no deadline timer left behind). */
  const drain = async (): Promise<void> => {
    for (let round = 0; round < 100 && (scheduler.depth > 0 || runner.busy > 0); round++) {
      for (const answer of tracker.pending) answer.resolve(undefined);
      await flush();
      for (const batch of pool.batches) if (!batch.settled) batch.complete();
      await flush();
    }
  };
  drains.push(drain);
  return { pool, tracker, runner, scheduler, submit };
}

const drains: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const drain of drains.splice(0)) await drain();
});

describe('GpuMeasuredRunner', () => {
  it('holds the Worker while the before-sample is taken, so no second batch is dispatched meanwhile', async () => {
    const { pool, tracker, runner, scheduler, submit } = setup(1);
    const first = submit(1);
    const second = submit(2);
    await flush();

    expect(tracker.models).toEqual(['demo']);
    expect(runner.idle).toBe(0);
    expect(runner.busy).toBe(1);
    expect(pool.batches).toHaveLength(0);
    expect(scheduler.depth).toBe(1);

    const end = jest.fn();
    tracker.pending[0].resolve(end);
    await flush();
    expect(pool.batches.map((b) => b.ids)).toEqual([[1]]);
    expect(runner.idle).toBe(0);
    expect(runner.busy).toBe(1);
    expect(tracker.pending).toHaveLength(1);
    expect(end).not.toHaveBeenCalled();

    pool.batches[0].complete();
    await flush();
    expect(end).toHaveBeenCalledTimes(1);
    expect(first.result?.actions).toEqual(Float32Array.of(10));
    // Only now does the second batch start, with its own before-sample.
    expect(tracker.pending).toHaveLength(2);
    expect(pool.batches).toHaveLength(1);
    expect(second.result).toBeUndefined();
    tracker.pending[1].resolve(undefined);
    await flush();
    pool.batches[1].complete();
    await flush();
    expect(second.result?.actions).toEqual(Float32Array.of(20));
    expect(pool.overbooked).toBe(0);
    expect(runner.idle).toBe(1);
    expect(runner.busy).toBe(0);
  });

  it('counts each batch waiting for its sample against the idle Workers', async () => {
    const { pool, tracker, runner, submit } = setup(2);
    submit(1);
    submit(2);
    submit(3);
    await flush();
    expect(tracker.pending).toHaveLength(2);
    expect(runner.idle).toBe(0);
    expect(runner.busy).toBe(2);
    tracker.pending[0].resolve(undefined);
    await flush();
    expect(pool.batches).toHaveLength(1);
    expect(runner.idle).toBe(0);
    expect(runner.busy).toBe(2);
    expect(tracker.pending).toHaveLength(2);
    expect(pool.overbooked).toBe(0);
  });

  it('ends the measurement after the batch fails, and passes the failure on', async () => {
    const { pool, tracker, submit } = setup(1);
    const job = submit(1);
    await flush();
    const end = jest.fn();
    tracker.pending[0].resolve(end);
    await flush();
    expect(end).not.toHaveBeenCalled();
    const failure = new BatchFailedError('bad tensor');
    pool.batches[0].fail(failure);
    await flush();
    expect(end).toHaveBeenCalledTimes(1);
    expect(job.error).toBe(failure);
  });

  it('passes the batch result through unchanged, and ends after it', async () => {
    const pool = new TestRunner(1);
    const tracker = new Tracker();
    const runner = new GpuMeasuredRunner(pool, tracker, 'demo');
    const order: string[] = [];
    const running = runner.run([workItem(7)]).then((result) => {
      order.push('result');
      return result;
    });
    await flush();
    tracker.pending[0].resolve(() => order.push('end'));
    await flush();
    pool.batches[0].complete();
    expect(await running).toBe(pool.batches[0].result);
    expect(order).toEqual(['end', 'result']);
  });

  it('runs an unmeasured batch (begin resolves undefined) all the same', async () => {
    const { pool, tracker, submit } = setup(1);
    const job = submit(3);
    await flush();
    tracker.pending[0].resolve(undefined);
    await flush();
    pool.batches[0].complete();
    await flush();
    expect(job.result).toMatchObject({ actions: Float32Array.of(30), batchSize: 1, batchComputeMs: 8 });
  });

  it('frees the Worker it held when the before-sample rejects', async () => {
    const pool = new TestRunner(1);
    const tracker = new Tracker();
    const runner = new GpuMeasuredRunner(pool, tracker, 'demo');
    const running = runner.run([workItem(1)]);
    expect(runner.idle).toBe(0);
    tracker.pending[0].reject(new Error('sample failed'));
    await expect(running).rejects.toThrow('sample failed');
    expect(runner.idle).toBe(1);
    expect(runner.busy).toBe(0);
    expect(pool.batches).toHaveLength(0);
  });
});
