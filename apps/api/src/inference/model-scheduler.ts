import { performance } from 'node:perf_hooks';
import { AppError } from '../errors/app-error';
import type { ModelConfig } from './model-config';
import type { BatchResult } from './model-workers';
import type { WorkItem } from './tensor-prep';

/** The part of {@link ModelWorkers} the scheduler uses (a test can drive the scheduler with its own). */
export interface BatchRunner {
  readonly idle: number;
  readonly busy: number;
  run(items: readonly WorkItem[]): Promise<BatchResult>;
}

export interface SubmitOptions {
  readonly requestId: string;
  /** Fairness is per tenant: each gets its turn in every batch. */
  readonly tenant: string;
  readonly item: WorkItem;
  /** performance.now() time after which a request still waiting is answered 504 and never run. */
  readonly deadlineAt: number;
  /** Aborted when the client goes away: a waiting request is dropped from the queue. */
  readonly signal?: AbortSignal;
}

/** What one request got from its batch. */
export interface JobResult {
  readonly actions: Float32Array;
  readonly queueMs: number;
  readonly batchSize: number;
  /** The batch's `session.run` time. */
  readonly batchComputeMs: number;
  /** This request's share of it (batchComputeMs / batchSize): what its tenant is charged. */
  readonly computeMs: number;
  readonly taskMs: number;
}

/** Why a request left the queue without running. */
export type ShedReason = 'queue_full' | 'deadline_exceeded' | 'client_closed';

export interface SchedulerHooks {
  /** A request left the queue for a worker, or was dropped from it. */
  readonly onDequeue?: (waitedMs: number) => void;
  readonly onShed?: (reason: ShedReason) => void;
  readonly onBatch?: (size: number, result: BatchResult | undefined, error?: unknown) => void;
}

interface Job {
  readonly options: SubmitOptions;
  readonly enqueuedAt: number;
  readonly resolve: (result: JobResult) => void;
  readonly reject: (error: unknown) => void;
  timer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
}

/** Queue statistics for /queue/stats. */
export interface QueueSnapshot {
  readonly depth: number;
  readonly capacity: number;
  readonly utilization: number;
  readonly workersBusy: number;
  readonly oldestWaitMs: number;
  readonly tenantsWaiting: number;
  readonly rejected: Readonly<Record<ShedReason, number>>;
}

/**
 * One model's queue. Bounded: a full queue refuses at once (503 `queue_full`, with `Retry-After`) without
 * touching the model. Waiting requests are grouped per tenant and batches are filled round-robin across
 * tenants, so one tenant flooding the queue delays another by at most one request per batch. A batch goes
 * to an idle worker at once when no other batch runs; while one does, a partial batch waits at most
 * `batch_timeout_ms` for companions.
 * A request still waiting at its deadline gets 504 `deadline_exceeded` and never runs; a request whose
 * client disconnected is dropped.
 */
export class ModelScheduler {
  /** Waiting jobs per tenant, FIFO within a tenant. */
  private readonly waiting = new Map<string, Job[]>();
  /** Tenants with waiting jobs, in round-robin order. */
  private tenantOrder: string[] = [];
  private depthCount = 0;
  private batchTimer: NodeJS.Timeout | undefined;
  private readonly rejected: Record<ShedReason, number> = {
    queue_full: 0,
    deadline_exceeded: 0,
    client_closed: 0,
  };
  /** Last time work completed, or when work appeared after an idle spell: the stall clock. */
  private progressAt = performance.now();
  /** Mean batch wall time, for the Retry-After estimate. */
  private meanBatchMs = 0;
  private completed = 0;

  constructor(
    private readonly config: Pick<
      ModelConfig,
      'id' | 'maxBatchSize' | 'batchTimeoutMs' | 'queueCapacity' | 'workers'
    >,
    private readonly runner: BatchRunner,
    private readonly hooks: SchedulerHooks = {},
  ) {}

  get depth(): number {
    return this.depthCount;
  }

  get capacity(): number {
    return this.config.queueCapacity;
  }

  /** Batches completed (successfully or not) since start. */
  get completedBatches(): number {
    return this.completed;
  }

  /**
   * Queues one request. Rejects at once with `queue_full` when the queue is at capacity, later with
   * `deadline_exceeded` or `client_closed`, or with the batch's failure.
   */
  submit(options: SubmitOptions): Promise<JobResult> {
    if (options.signal?.aborted === true) {
      this.rejected.client_closed++;
      this.hooks.onShed?.('client_closed');
      return Promise.reject(new AppError('client_closed', undefined, { component: 'inference' }));
    }
    if (this.depthCount >= this.config.queueCapacity) {
      this.rejected.queue_full++;
      this.hooks.onShed?.('queue_full');
      return Promise.reject(
        new AppError('queue_full', `The queue of model ${this.config.id} is full; retry later.`, {
          retryAfterSeconds: this.retryAfterSeconds(),
          details: { model: this.config.id, queue_capacity: this.config.queueCapacity },
          component: 'inference',
        }),
      );
    }
    const now = performance.now();
    if (this.depthCount === 0 && this.runner.busy === 0) this.progressAt = now;
    return new Promise<JobResult>((resolve, reject) => {
      const job: Job = { options, enqueuedAt: now, resolve, reject, timer: undefined, onAbort: undefined };
      const remaining = options.deadlineAt - now;
      job.timer = setTimeout(() => this.shed(job, 'deadline_exceeded'), Math.max(0, remaining));
      if (options.signal !== undefined) {
        job.onAbort = () => this.shed(job, 'client_closed');
        options.signal.addEventListener('abort', job.onAbort, { once: true });
      }
      let queue = this.waiting.get(options.tenant);
      if (queue === undefined) {
        queue = [];
        this.waiting.set(options.tenant, queue);
        this.tenantOrder.push(options.tenant);
      }
      queue.push(job);
      this.depthCount++;
      this.pump();
    });
  }

  /**
   * Sends batches to idle workers. A partial batch waits up to `batch_timeout_ms` for companions only while
   * another worker of the model is busy (there is load, so more requests are coming); a model with no
   * batch running sends at once, so a lone request never pays the wait. Under load, requests that arrive
   * during a forward pass fill the next batch by themselves.
   */
  pump(): void {
    while (this.depthCount > 0 && this.runner.idle > 0) {
      const oldest = this.oldestEnqueuedAt();
      const waited = performance.now() - oldest;
      const full = this.depthCount >= this.config.maxBatchSize;
      if (!full && this.runner.busy > 0 && waited < this.config.batchTimeoutMs) {
        this.armBatchTimer(this.config.batchTimeoutMs - waited);
        return;
      }
      const batch = this.takeBatch();
      if (batch.length > 0) this.dispatch(batch);
    }
  }

  /** Whether pending work has made no progress for `stallMs` (a wedged or dead-slow worker). */
  stalledFor(stallMs: number, now = performance.now()): number | undefined {
    const pending = this.depthCount > 0 || this.runner.busy > 0;
    if (!pending) return undefined;
    const idleFor = now - this.progressAt;
    return idleFor > stallMs ? idleFor : undefined;
  }

  snapshot(now = performance.now()): QueueSnapshot {
    return {
      depth: this.depthCount,
      capacity: this.config.queueCapacity,
      utilization: this.depthCount / this.config.queueCapacity,
      workersBusy: this.runner.busy,
      oldestWaitMs: this.depthCount === 0 ? 0 : now - this.oldestEnqueuedAt(),
      tenantsWaiting: this.tenantOrder.length,
      rejected: { ...this.rejected },
    };
  }

  /** Seconds a refused client should wait: the time to work through the queue, at least 1. */
  retryAfterSeconds(): number {
    const batches = Math.ceil(this.depthCount / this.config.maxBatchSize);
    const ms = (batches * (this.meanBatchMs || 100)) / Math.max(1, this.config.workers);
    return Math.max(1, Math.ceil(ms / 1000));
  }

  private oldestEnqueuedAt(): number {
    let oldest = Infinity;
    for (const queue of this.waiting.values()) oldest = Math.min(oldest, queue[0]?.enqueuedAt ?? Infinity);
    return oldest;
  }

  private armBatchTimer(ms: number): void {
    if (this.batchTimer !== undefined) return;
    this.batchTimer = setTimeout(
      () => {
        this.batchTimer = undefined;
        this.pump();
      },
      Math.max(0, ms),
    );
  }

  /**
   * Up to maxBatchSize jobs, one per tenant per round, starting where the last batch stopped. A job whose
   * deadline has passed (its timer may not have run yet) is answered 504 here instead of being run.
   */
  private takeBatch(): Job[] {
    const batch: Job[] = [];
    const expired: Job[] = [];
    const now = performance.now();
    while (batch.length < this.config.maxBatchSize && this.tenantOrder.length > 0) {
      const tenant = this.tenantOrder.shift() as string;
      const queue = this.waiting.get(tenant) as Job[];
      const job = queue.shift() as Job;
      if (job.options.deadlineAt <= now) expired.push(job);
      else batch.push(job);
      if (queue.length === 0) this.waiting.delete(tenant);
      else this.tenantOrder.push(tenant);
    }
    for (const job of batch) this.leave(job);
    for (const job of expired) {
      this.leave(job);
      this.rejectShed(job, 'deadline_exceeded');
    }
    return batch;
  }

  private dispatch(batch: Job[]): void {
    if (this.batchTimer !== undefined) {
      clearTimeout(this.batchTimer);
      this.batchTimer = undefined;
    }
    const sentAt = performance.now();
    for (const job of batch) this.hooks.onDequeue?.(sentAt - job.enqueuedAt);
    this.runner.run(batch.map((job) => job.options.item)).then(
      (result) => {
        this.finished(sentAt);
        this.hooks.onBatch?.(batch.length, result);
        const share = result.computeMs / batch.length;
        batch.forEach((job, i) =>
          job.resolve({
            actions: result.actions[i],
            queueMs: sentAt - job.enqueuedAt,
            batchSize: batch.length,
            batchComputeMs: result.computeMs,
            computeMs: share,
            taskMs: result.taskMs,
          }),
        );
        this.pump();
      },
      (error: unknown) => {
        this.finished(sentAt);
        this.hooks.onBatch?.(batch.length, undefined, error);
        for (const job of batch) job.reject(error);
        this.pump();
      },
    );
  }

  private finished(sentAt: number): void {
    const now = performance.now();
    this.completed++;
    this.progressAt = now;
    const ms = now - sentAt;
    this.meanBatchMs = this.meanBatchMs === 0 ? ms : this.meanBatchMs * 0.8 + ms * 0.2;
  }

  /** Drops a waiting job (deadline or disconnect); a job already sent to a worker is left alone. */
  private shed(job: Job, reason: 'deadline_exceeded' | 'client_closed'): void {
    const queue = this.waiting.get(job.options.tenant);
    const index = queue?.indexOf(job) ?? -1;
    if (queue === undefined || index === -1) return;
    queue.splice(index, 1);
    if (queue.length === 0) {
      this.waiting.delete(job.options.tenant);
      this.tenantOrder = this.tenantOrder.filter((t) => t !== job.options.tenant);
    }
    this.leave(job);
    this.rejectShed(job, reason);
  }

  private rejectShed(job: Job, reason: 'deadline_exceeded' | 'client_closed'): void {
    this.rejected[reason]++;
    this.hooks.onShed?.(reason);
    this.hooks.onDequeue?.(performance.now() - job.enqueuedAt);
    job.reject(
      reason === 'deadline_exceeded'
        ? new AppError(
            'deadline_exceeded',
            'The request waited in the queue past its deadline and was not run.',
            {
              component: 'inference',
              details: { model: this.config.id },
            },
          )
        : new AppError('client_closed', undefined, { component: 'inference' }),
    );
  }

  /** Bookkeeping when a job leaves the waiting set, either way. */
  private leave(job: Job): void {
    this.depthCount--;
    if (job.timer !== undefined) clearTimeout(job.timer);
    if (job.onAbort !== undefined) job.options.signal?.removeEventListener('abort', job.onAbort);
  }
}
