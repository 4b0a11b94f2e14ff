import fc from 'fast-check';
import * as perfHooks from 'node:perf_hooks';
import { AppError } from '../errors/app-error';
import { type JobResult, ModelScheduler, type SchedulerHooks } from './model-scheduler';
import { BatchFailedError } from './model-workers';
import { TestRunner, workItem } from '../../test/support/test-batch-runner';

/**
 * The scheduler driven through its {@link BatchRunner} seam by a pool of N pretend workers whose batches
 * finish when the test says so. Time is Jest's fake clock: the scheduler reads `performance.now()` from
 * node:perf_hooks, which the fake timers leave alone (they replace only the global `performance`), so that
 * one method is routed to the faked global clock in `beforeEach`.
 */

type SchedulerConfig = ConstructorParameters<typeof ModelScheduler>[0];

/** A submitted request and what became of it. */
interface Tracked {
  readonly id: number;
  readonly tenant: string;
  readonly deadlineAt: number;
  settles: number;
  result?: JobResult;
  error?: unknown;
}

function config(overrides: Partial<SchedulerConfig> = {}): SchedulerConfig {
  return { id: 'demo', maxBatchSize: 8, batchTimeoutMs: 0, queueCapacity: 64, workers: 1, ...overrides };
}

function setup(overrides: Partial<SchedulerConfig> = {}, hooks: SchedulerHooks = {}) {
  const cfg = config(overrides);
  const runner = new TestRunner(cfg.workers);
  const scheduler = new ModelScheduler(cfg, runner, hooks);
  runner.onAvailable = () => scheduler.pump();
  const submit = (
    id: number,
    options: { tenant?: string; deadlineMs?: number; signal?: AbortSignal } = {},
  ): Tracked => {
    const deadlineAt = performance.now() + (options.deadlineMs ?? 60_000);
    const tracked: Tracked = { id, tenant: options.tenant ?? 'a', deadlineAt, settles: 0 };
    scheduler
      .submit({
        requestId: `req-${id}`,
        tenant: tracked.tenant,
        item: workItem(id),
        deadlineAt,
        signal: options.signal,
      })
      .then(
        (result) => {
          tracked.settles++;
          tracked.result = result;
        },
        (error: unknown) => {
          tracked.settles++;
          tracked.error = error;
        },
      );
    return tracked;
  };
  return { scheduler, runner, submit };
}

/** Lets promise callbacks (batch results, rejections) run; never moves the clock. */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

async function advance(ms: number): Promise<void> {
  await jest.advanceTimersByTimeAsync(ms);
  await flush();
}

function expectCode(tracked: Tracked, code: string): AppError {
  expect(tracked.error).toBeInstanceOf(AppError);
  const error = tracked.error as AppError;
  expect(error.code).toBe(code);
  return error;
}

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

beforeEach(() => {
  jest.useFakeTimers();
  jest.spyOn(perfHooks.performance, 'now').mockImplementation(() => globalThis.performance.now());
});

afterEach(() => {
  jest.clearAllTimers();
  jest.restoreAllMocks();
  jest.useRealTimers();
});

describe('ModelScheduler', () => {
  describe('capacity', () => {
    it('refuses beyond capacity at once with queue_full and Retry-After, never running those; the queued run later', async () => {
      const { scheduler, runner, submit } = setup({ queueCapacity: 4, maxBatchSize: 8 });
      const blocker = submit(0);
      expect(runner.busy).toBe(1);

      const queued = range(1, 4).map((id) => submit(id));
      const refused = range(5, 12).map((id) => submit(id));
      await flush();

      expect(scheduler.depth).toBe(4);
      for (const r of refused) {
        const error = expectCode(r, 'queue_full');
        expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(1);
        expect(error.details).toEqual({ model: 'demo', queue_capacity: 4 });
      }
      expect(queued.every((q) => q.settles === 0)).toBe(true);
      expect(runner.batches.map((b) => b.ids)).toEqual([[0]]);

      runner.batches[0].complete();
      await flush();
      expect(blocker.result?.actions).toEqual(Float32Array.of(0));
      expect(runner.batches.map((b) => b.ids)).toEqual([[0], [1, 2, 3, 4]]);
      runner.batches[1].complete();
      await flush();

      expect(queued.map((q) => Array.from(q.result?.actions ?? []))).toEqual([[10], [20], [30], [40]]);
      expect(runner.batches.flatMap((b) => b.ids)).not.toEqual(expect.arrayContaining([5]));
      expect(scheduler.snapshot().rejected.queue_full).toBe(8);
      expect(runner.overbooked).toBe(0);
    });

    it('accepts again once queued requests have left for a worker', async () => {
      const { scheduler, runner, submit } = setup({ queueCapacity: 2, maxBatchSize: 2 });
      submit(0);
      submit(1);
      submit(2);
      const refused = submit(3);
      await flush();
      expectCode(refused, 'queue_full');

      runner.batches[0].complete();
      await flush();
      expect(scheduler.depth).toBe(0);
      const accepted = submit(4);
      await flush();

      expect(accepted.settles).toBe(0);
      expect(scheduler.depth).toBe(1);
    });

    it('Retry-After is the time to work through the queue at the measured batch time', async () => {
      const { runner, submit } = setup({ queueCapacity: 4, maxBatchSize: 2, workers: 1 });
      submit(0);
      await advance(3000);
      runner.batches[0].complete(); // one batch took 3 s
      await flush();
      submit(1);
      range(2, 5).forEach((id) => submit(id));
      const refused = submit(6);
      await flush();

      // Batch [1] runs; 4 wait = 2 batches of 2 at 3 s each on 1 worker.
      expect(expectCode(refused, 'queue_full').retryAfterSeconds).toBe(6);
    });
  });

  describe('batching', () => {
    it('an idle model sends a lone request at once, whatever batchTimeoutMs says', () => {
      const { runner, submit } = setup({ maxBatchSize: 8, batchTimeoutMs: 5 });
      submit(1);
      expect(runner.batches.map((b) => b.ids)).toEqual([[1]]);
    });

    it('while a batch runs, three requests wait for the timer and go as one batch of 3', async () => {
      const { runner, submit } = setup({ maxBatchSize: 8, batchTimeoutMs: 5, workers: 2 });
      submit(0);
      range(1, 3).forEach((id) => submit(id));

      await advance(4);
      expect(runner.batches.map((b) => b.ids)).toEqual([[0]]);
      await advance(1);
      expect(runner.batches.map((b) => b.ids)).toEqual([[0], [1, 2, 3]]);
    });

    it('the batch timeout runs from the oldest waiting request, not the newest', async () => {
      const { runner, submit } = setup({ maxBatchSize: 8, batchTimeoutMs: 5, workers: 2 });
      submit(0);
      submit(1);
      await advance(3);
      submit(2);
      await advance(2);

      expect(runner.batches.map((b) => b.ids)).toEqual([[0], [1, 2]]);
    });

    it('while a batch runs, 10 requests: a full batch of 8 goes at once, the other 2 after the timeout', async () => {
      const { runner, submit } = setup({ maxBatchSize: 8, batchTimeoutMs: 5, workers: 3 });
      submit(0);
      range(1, 10).forEach((id) => submit(id));
      expect(runner.batches.map((b) => b.ids)).toEqual([[0], range(1, 8)]);

      await advance(4);
      expect(runner.batches).toHaveLength(2);
      await advance(1);
      expect(runner.batches.map((b) => b.ids)).toEqual([[0], range(1, 8), [9, 10]]);
    });

    it('with two idle workers: the first request goes alone at once, then a full batch, the rest waits', () => {
      const { scheduler, runner, submit } = setup({ maxBatchSize: 8, batchTimeoutMs: 5, workers: 2 });
      range(1, 10).forEach((id) => submit(id));

      expect(runner.batches.map((b) => b.ids)).toEqual([[1], range(2, 9)]);
      expect(runner.busy).toBe(2);
      expect(scheduler.depth).toBe(1);
    });

    it('batchTimeoutMs 0 dispatches each request at once', () => {
      const { runner, submit } = setup({ maxBatchSize: 8, batchTimeoutMs: 0, workers: 3 });
      submit(1);
      expect(runner.batches.map((b) => b.ids)).toEqual([[1]]);
      submit(2);
      submit(3);
      expect(runner.batches.map((b) => b.ids)).toEqual([[1], [2], [3]]);
    });

    it('requests that waited for a busy worker go together when it frees, up to maxBatchSize', async () => {
      const { runner, submit } = setup({ maxBatchSize: 3, batchTimeoutMs: 0 });
      submit(0);
      range(1, 5).forEach((id) => submit(id));

      runner.batches[0].complete();
      await flush();
      expect(runner.batches.map((b) => b.ids)).toEqual([[0], [1, 2, 3]]);
      runner.batches[1].complete();
      await flush();
      expect(runner.batches.map((b) => b.ids)).toEqual([[0], [1, 2, 3], [4, 5]]);
    });
  });

  describe('results', () => {
    it('each request gets its own row, the batch size, its share of the compute time and its queue time', async () => {
      const { runner, submit } = setup({ maxBatchSize: 8, batchTimeoutMs: 5, workers: 2 });
      submit(0); // keeps one worker busy, so the next requests wait to be batched
      const jobs = [submit(1)];
      await advance(1);
      jobs.push(submit(2));
      await advance(1);
      jobs.push(submit(3));
      await advance(3); // the timer fires 5 ms after the first
      runner.batches[1].complete(12, 15);
      await flush();

      expect(jobs.map((j) => Array.from(j.result?.actions ?? []))).toEqual([[10], [20], [30]]);
      for (const j of jobs) {
        expect(j.result).toMatchObject({ batchSize: 3, batchComputeMs: 12, computeMs: 4, taskMs: 15 });
        expect(j.result?.queueMs).toBeGreaterThanOrEqual(0);
      }
      expect(jobs.map((j) => j.result?.queueMs)).toEqual(
        [5, 4, 3].map((ms) => expect.closeTo(ms, 6) as number),
      );
    });

    it('queueMs counts only the wait for a worker, not the run', async () => {
      const { runner, submit } = setup();
      const first = submit(1);
      const second = submit(2);
      await advance(40);
      runner.batches[0].complete();
      await advance(10);
      runner.batches[1].complete();
      await flush();

      expect(first.result?.queueMs).toBeCloseTo(0, 6);
      expect(second.result?.queueMs).toBeCloseTo(40, 6);
    });
  });

  describe('fairness', () => {
    it('a tenant flooding the queue delays another by one request per batch, not by all of its own', async () => {
      const { runner, submit } = setup({ maxBatchSize: 2, queueCapacity: 64 });
      submit(0, { tenant: 'z' });
      range(1, 30).forEach((id) => submit(id, { tenant: 'A' }));
      const b = [submit(101, { tenant: 'B' }), submit(102, { tenant: 'B' })];

      for (let i = 0; i < 3; i++) {
        runner.open[0].complete();
        await flush();
      }

      expect(runner.batches.slice(1, 3).map((batch) => batch.ids)).toEqual([
        [1, 101],
        [2, 102],
      ]);
      expect(b.every((job) => job.result !== undefined)).toBe(true);
      expect(runner.batches[3].ids).toEqual([3, 4]);
    });

    it('with a batch of 8, the light tenant interleaves with the heavy one in the first batch', async () => {
      const { runner, submit } = setup({ maxBatchSize: 8 });
      submit(0, { tenant: 'z' });
      range(1, 30).forEach((id) => submit(id, { tenant: 'A' }));
      submit(101, { tenant: 'B' });
      submit(102, { tenant: 'B' });
      runner.batches[0].complete();
      await flush();

      expect(runner.batches[1].ids).toEqual([1, 101, 2, 102, 3, 4, 5, 6]);
    });

    it('three tenants with plenty waiting: a batch of 6 takes 2 from each, FIFO within each', async () => {
      const { runner, submit } = setup({ maxBatchSize: 6 });
      submit(0, { tenant: 'z' });
      for (const [tenant, base] of [
        ['A', 100],
        ['B', 200],
        ['C', 300],
      ] as const) {
        range(1, 5).forEach((n) => submit(base + n, { tenant }));
      }
      runner.batches[0].complete();
      await flush();
      runner.batches[1].complete();
      await flush();

      expect(runner.batches[1].ids).toEqual([101, 201, 301, 102, 202, 302]);
      expect(runner.batches[2].ids).toEqual([103, 203, 303, 104, 204, 304]);
    });

    it('the next batch starts with the tenant after the one the last batch ended on', async () => {
      const { runner, submit } = setup({ maxBatchSize: 3 });
      submit(0, { tenant: 'z' });
      range(1, 5).forEach((n) => submit(100 + n, { tenant: 'A' }));
      range(1, 5).forEach((n) => submit(200 + n, { tenant: 'B' }));
      runner.batches[0].complete();
      await flush();
      runner.batches[1].complete();
      await flush();

      expect(runner.batches[1].ids).toEqual([101, 201, 102]);
      expect(runner.batches[2].ids).toEqual([202, 103, 203]);
    });
  });

  describe('deadline', () => {
    it('a request still waiting at its deadline is rejected deadline_exceeded and never runs', async () => {
      const { scheduler, runner, submit } = setup();
      submit(0);
      const late = submit(1, { deadlineMs: 100 });
      const patient = submit(2, { deadlineMs: 10_000 });

      await advance(99);
      expect(late.settles).toBe(0);
      await advance(1);

      const error = expectCode(late, 'deadline_exceeded');
      expect(error.details).toEqual({ model: 'demo' });
      expect(scheduler.depth).toBe(1);
      runner.batches[0].complete();
      await flush();
      expect(runner.batches.map((b) => b.ids)).toEqual([[0], [2]]);
      expect(patient.settles).toBe(0);
      expect(scheduler.snapshot().rejected.deadline_exceeded).toBe(1);
    });

    it('a request already sent to a worker is not affected by its deadline', async () => {
      const { runner, submit } = setup();
      const job = submit(1, { deadlineMs: 50 });
      expect(runner.batches).toHaveLength(1);

      await advance(500);
      expect(job.settles).toBe(0);
      runner.batches[0].complete();
      await flush();

      expect(job.error).toBeUndefined();
      expect(job.result?.actions).toEqual(Float32Array.of(10));
    });

    // submit() pumps synchronously, before the deadline timer could fire: dispatch itself checks deadlines.
    it('a request whose deadline passed before it was submitted never reaches the worker', async () => {
      const { runner, submit } = setup({ batchTimeoutMs: 0 });
      const job = submit(1, { deadlineMs: -5 });
      await advance(0);

      expect(runner.batches).toHaveLength(0);
      expectCode(job, 'deadline_exceeded');
    });
  });

  describe('abort', () => {
    it('an abort while waiting rejects client_closed, drops the request at once and it never runs', async () => {
      const { scheduler, runner, submit } = setup();
      submit(0);
      const controller = new AbortController();
      const gone = submit(1, { signal: controller.signal });
      const stays = submit(2);
      expect(scheduler.depth).toBe(2);

      controller.abort();
      expect(scheduler.depth).toBe(1);
      await flush();

      expectCode(gone, 'client_closed');
      runner.batches[0].complete();
      await flush();
      expect(runner.batches.map((b) => b.ids)).toEqual([[0], [2]]);
      expect(stays.settles).toBe(0);
      expect(scheduler.snapshot().rejected.client_closed).toBe(1);
    });

    it('an already-aborted signal is rejected client_closed at submit and never queued', async () => {
      const { scheduler, runner, submit } = setup();
      const job = submit(1, { signal: AbortSignal.abort() });
      expect(scheduler.depth).toBe(0);
      await advance(10);

      expectCode(job, 'client_closed');
      expect(runner.batches).toHaveLength(0);
    });

    it('an abort after the request went to a worker changes nothing', async () => {
      const { scheduler, runner, submit } = setup();
      const controller = new AbortController();
      const job = submit(1, { signal: controller.signal });
      expect(runner.batches).toHaveLength(1);

      controller.abort();
      await flush();
      expect(job.settles).toBe(0);
      runner.batches[0].complete();
      await flush();

      expect(job.result?.actions).toEqual(Float32Array.of(10));
      expect(scheduler.snapshot().rejected.client_closed).toBe(0);
    });

    it('the last waiting request of a tenant aborted takes the tenant out of the rotation', async () => {
      const { scheduler, runner, submit } = setup({ maxBatchSize: 4 });
      submit(0);
      const controller = new AbortController();
      submit(1, { tenant: 'A' });
      submit(2, { tenant: 'B', signal: controller.signal });
      submit(3, { tenant: 'A' });
      controller.abort();
      expect(scheduler.snapshot().tenantsWaiting).toBe(1);

      runner.batches[0].complete();
      await flush();
      expect(runner.batches[1].ids).toEqual([1, 3]);
    });
  });

  describe('batch failure', () => {
    it("every request of a failed batch rejects with the runner's error, and the next batch still runs", async () => {
      const { scheduler, runner, submit } = setup({ maxBatchSize: 2 });
      submit(0);
      const jobs = range(1, 4).map((id) => submit(id));
      runner.batches[0].complete();
      await flush();
      expect(runner.batches[1].ids).toEqual([1, 2]);

      const failure = new BatchFailedError('input image: got float, expected uint8');
      runner.batches[1].fail(failure);
      await flush();

      expect(jobs[0].error).toBe(failure);
      expect(jobs[1].error).toBe(failure);
      expect(runner.batches[2].ids).toEqual([3, 4]);
      runner.batches[2].complete();
      await flush();
      expect(jobs.slice(2).map((j) => Array.from(j.result?.actions ?? []))).toEqual([[30], [40]]);
      expect(scheduler.completedBatches).toBe(3);
      expect(scheduler.depth).toBe(0);
    });
  });

  describe('snapshot', () => {
    it('reports depth, capacity, utilization, busy workers, the oldest wait, tenants and refusals per reason', async () => {
      const { scheduler, submit } = setup({ queueCapacity: 4 });
      expect(scheduler.snapshot()).toEqual({
        depth: 0,
        capacity: 4,
        utilization: 0,
        workersBusy: 0,
        oldestWaitMs: 0,
        tenantsWaiting: 0,
        rejected: { queue_full: 0, deadline_exceeded: 0, client_closed: 0 },
      });

      submit(0);
      submit(1, { tenant: 'A', deadlineMs: 10 });
      await advance(20); // 1 misses its deadline
      submit(2, { tenant: 'A' });
      await advance(5);
      submit(3, { tenant: 'B' });
      const controller = new AbortController();
      submit(4, { tenant: 'B', signal: controller.signal });
      submit(5, { tenant: 'C' });
      controller.abort(); // 4 leaves
      submit(6, { tenant: 'C' });
      submit(7, { tenant: 'C' }); // refused: 2, 3, 5 and 6 wait
      await advance(10);

      expect(scheduler.snapshot()).toEqual({
        depth: 4,
        capacity: 4,
        utilization: 1,
        workersBusy: 1,
        oldestWaitMs: expect.closeTo(15, 6) as number,
        tenantsWaiting: 3,
        rejected: { queue_full: 1, deadline_exceeded: 1, client_closed: 1 },
      });
      expect(scheduler.snapshot(performance.now() + 100).oldestWaitMs).toBeCloseTo(115, 6);
    });

    it('utilization is depth over capacity', () => {
      const { scheduler, submit } = setup({ queueCapacity: 8 });
      range(0, 2).forEach((id) => submit(id));

      expect(scheduler.snapshot().utilization).toBe(2 / 8);
    });
  });

  describe('stalledFor', () => {
    it('is undefined while idle, however long', async () => {
      const { scheduler } = setup();
      await advance(60_000);

      expect(scheduler.stalledFor(1000)).toBeUndefined();
    });

    it('counts from when work appeared after an idle spell, reports beyond the threshold, clears on completion', async () => {
      const { scheduler, runner, submit } = setup();
      await advance(10_000); // an idle spell is not a stall
      submit(1);
      submit(2);
      expect(scheduler.stalledFor(1000)).toBeUndefined();

      await advance(1000);
      expect(scheduler.stalledFor(1000)).toBeUndefined();
      await advance(1);
      expect(scheduler.stalledFor(1000)).toBeCloseTo(1001, 6);
      expect(scheduler.stalledFor(1000, performance.now() + 500)).toBeCloseTo(1501, 6);

      runner.batches[0].complete();
      await flush();
      // Request 2 is now running: pending, but progress was just made.
      expect(runner.busy).toBe(1);
      expect(scheduler.stalledFor(1000)).toBeUndefined();
      await advance(1500);
      expect(scheduler.stalledFor(1000)).toBeCloseTo(1500, 6);

      runner.batches[1].fail(new Error('worker crashed'));
      await flush();
      expect(scheduler.stalledFor(1000)).toBeUndefined();
    });

    it('counts requests waiting behind a wedged worker as pending work', async () => {
      const { scheduler, submit } = setup({ workers: 1 });
      submit(1);
      submit(2);
      await advance(5000);

      expect(scheduler.stalledFor(2000)).toBeCloseTo(5000, 6);
    });
  });

  describe('hooks', () => {
    it('onShed gets each reason, onBatch each size (and the error), onDequeue once per request that left', async () => {
      const shed: string[] = [];
      const sizes: number[] = [];
      const batchErrors: unknown[] = [];
      const waited: number[] = [];
      const { runner, submit } = setup(
        { queueCapacity: 3, maxBatchSize: 2 },
        {
          onShed: (reason) => shed.push(reason),
          onBatch: (size, result, error) => {
            sizes.push(size);
            if (result === undefined) batchErrors.push(error);
          },
          onDequeue: (ms) => waited.push(ms),
        },
      );
      submit(0);
      const controller = new AbortController();
      submit(1, { deadlineMs: 5 });
      submit(2, { signal: controller.signal });
      submit(3);
      submit(4); // refused: 3 waiting
      await advance(5); // 1 misses its deadline
      controller.abort(); // 2 leaves
      submit(5);
      submit(6);
      await advance(10);

      expect(shed).toEqual(['queue_full', 'deadline_exceeded', 'client_closed']);
      expect(waited).toEqual([0, 5, 5].map((ms) => expect.closeTo(ms, 6) as number));

      const failure = new Error('bad tensor');
      runner.batches[0].complete();
      await flush();
      runner.batches[1].fail(failure); // [3, 5]
      await flush();
      runner.batches[2].complete(); // [6]
      await flush();

      expect(runner.batches.map((b) => b.ids)).toEqual([[0], [3, 5], [6]]);
      expect(sizes).toEqual([1, 2, 1]);
      expect(batchErrors).toEqual([failure]);
      // 0 at once, 1 and 2 shed at 5 ms, 3 after 15 ms, 5 and 6 after 10 ms: one call each, refused 4 none.
      expect(waited).toEqual([0, 5, 5, 15, 10, 10].map((ms) => expect.closeTo(ms, 6) as number));
    });
  });

  describe('property: random interleavings', () => {
    type Op =
      | {
          readonly kind: 'submit';
          readonly tenant: number;
          readonly deadlineMs: number;
          readonly abortable: boolean;
        }
      | { readonly kind: 'complete' | 'fail' | 'abort'; readonly pick: number }
      | { readonly kind: 'advance'; readonly ms: number };

    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({
          kind: fc.constant('submit' as const),
          tenant: fc.integer({ min: 0, max: 3 }),
          deadlineMs: fc.integer({ min: 1, max: 200 }),
          abortable: fc.boolean(),
        }),
      },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('complete' as const), pick: fc.nat() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('fail' as const), pick: fc.nat() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('abort' as const), pick: fc.nat() }) },
      {
        weight: 2,
        arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 60 }) }),
      },
    );

    const configArb = fc.record({
      maxBatchSize: fc.integer({ min: 1, max: 5 }),
      batchTimeoutMs: fc.integer({ min: 0, max: 10 }),
      queueCapacity: fc.integer({ min: 1, max: 8 }),
      workers: fc.integer({ min: 1, max: 3 }),
    });

    it('never loses a request, never exceeds capacity, keeps batches within 1..maxBatchSize and tenants FIFO', async () => {
      await fc.assert(
        fc.asyncProperty(configArb, fc.array(op, { maxLength: 60 }), async (overrides, ops) => {
          jest.clearAllTimers();
          let dequeued = 0;
          const { scheduler, runner, submit } = setup(overrides, { onDequeue: () => dequeued++ });
          const jobs: Tracked[] = [];
          const controllers: AbortController[] = [];
          const failures = new Map<number, unknown>();
          const check = (): void => {
            expect(scheduler.depth).toBeGreaterThanOrEqual(0);
            expect(scheduler.depth).toBeLessThanOrEqual(overrides.queueCapacity);
          };

          for (const o of ops) {
            switch (o.kind) {
              case 'submit': {
                const controller = o.abortable ? new AbortController() : undefined;
                if (controller !== undefined) controllers.push(controller);
                jobs.push(
                  submit(jobs.length, {
                    tenant: `t${o.tenant}`,
                    deadlineMs: o.deadlineMs,
                    signal: controller?.signal,
                  }),
                );
                break;
              }
              case 'complete':
              case 'fail': {
                const open = runner.open;
                if (open.length === 0) break;
                const batch = open[o.pick % open.length];
                if (o.kind === 'complete') batch.complete();
                else {
                  const error = new BatchFailedError(`batch of ${batch.ids.join(',')}`);
                  for (const id of batch.ids) failures.set(id, error);
                  batch.fail(error);
                }
                break;
              }
              case 'abort':
                if (controllers.length > 0) controllers[o.pick % controllers.length].abort();
                break;
              case 'advance':
                await jest.advanceTimersByTimeAsync(o.ms);
                break;
            }
            check();
            await flush();
            check();
          }

          // Drain: finish whatever runs and let every deadline pass.
          for (let round = 0; round < 200 && jobs.some((j) => j.settles === 0); round++) {
            for (const batch of runner.open) batch.complete();
            await flush();
            check();
            if (runner.open.length === 0) await advance(250);
            check();
          }

          expect(jobs.filter((j) => j.settles !== 1)).toEqual([]);
          expect(scheduler.depth).toBe(0);
          expect(runner.open).toEqual([]);
          expect(runner.overbooked).toBe(0);

          const allIds = runner.batches.flatMap((b) => b.ids);
          expect(new Set(allIds).size).toBe(allIds.length); // no request ran twice
          for (const batch of runner.batches) {
            expect(batch.ids.length).toBeGreaterThanOrEqual(1);
            expect(batch.ids.length).toBeLessThanOrEqual(overrides.maxBatchSize);
          }

          const ran = new Set(allIds);
          const sentAt = new Map(runner.batches.flatMap((b) => b.ids.map((id) => [id, b.sentAt] as const)));
          for (const job of jobs) {
            if (ran.has(job.id)) {
              // It ran: it got its own row, or its batch's failure, and it was sent no later than its deadline.
              if (failures.has(job.id)) expect(job.error).toBe(failures.get(job.id));
              else expect(Array.from(job.result?.actions ?? [])).toEqual([job.id * 10]);
              expect(sentAt.get(job.id)).toBeLessThanOrEqual(job.deadlineAt + 1e-6);
            } else {
              const code = job.error instanceof AppError ? job.error.code : undefined;
              expect(['queue_full', 'deadline_exceeded', 'client_closed']).toContain(code);
            }
          }
          // Every signal is fresh at submit, so every request not refused entered the queue and left it once.
          const s = scheduler.snapshot();
          expect(dequeued).toBe(jobs.length - s.rejected.queue_full);
          expect(
            s.rejected.queue_full + s.rejected.deadline_exceeded + s.rejected.client_closed + ran.size,
          ).toBe(jobs.length);

          // FIFO within each tenant: a tenant's requests reach workers in submit order.
          for (const tenant of new Set(jobs.map((j) => j.tenant))) {
            const order = allIds.filter((id) => jobs[id].tenant === tenant);
            expect(order).toEqual([...order].sort((x, y) => x - y));
          }
        }),
        { numRuns: 300 },
      );
    });
  });
});
