import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import { InjectMetric } from '@app/monitoring';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Counter, Histogram } from 'prom-client';
import { APP_CONFIG, type AppConfig } from '../config';
import { ROOT_LOGGER } from '../logging/logging.constants';
import { RecordQueue } from './record-queue';
import type { UsageRecord } from './usage-record';
import {
  MAX_ROWS_PER_INSERT,
  USAGE_INSERT_OPERATIONS,
  UsageRecordsRepository,
} from './usage-records.repository';
import { classifyWriteError, describeWriteError, type WriteErrorKind } from './usage-write-errors';
import {
  USAGE_DROP_REASONS,
  USAGE_FAILURE_REASONS,
  USAGE_METRICS,
  type UsageBacklog,
  type UsageDropReason,
  type UsageMetrics,
} from './usage.metrics';

/** Milliseconds: the first retry after a failed write; each further failure doubles it, up to the cap. */
const BACKOFF_FIRST_MS = 100;
const BACKOFF_CAP_MS = 30_000;
/**
 * Milliseconds the shutdown flush may take. It runs after the HTTP server closed and before the database
 * closes, inside the 5 s graceful-shutdown budget for closing (lifecycle/graceful-shutdown.ts).
 */
export const SHUTDOWN_FLUSH_DEADLINE_MS = 4000;
/**
 * Under `reject`, records of requests admitted before the buffer filled are still kept, up to this many
 * times USAGE_BUFFER_MAX in all; past it (only a caller that records without asking `accepting()` gets
 * there) records are dropped and counted, so memory stays bounded whatever the callers do.
 */
const REJECT_HEADROOM_FACTOR = 2;

/** What the writer takes from the configuration. */
export type UsageWriterConfig = Pick<AppConfig, 'usage'>;

/**
 * Usage rows, written off the request path. `record` appends to a bounded in-memory buffer; every
 * USAGE_FLUSH_INTERVAL_MS the buffer is written in batches of USAGE_BATCH_SIZE, one multi-row INSERT each,
 * that skips request ids already stored, so a retried batch never stores a request twice.
 *
 * Failures: a transient error (connection, pool, timeout, busy) or one of the database itself (missing
 * table, permissions, read-only) keeps the batch at the head of the buffer, in order, and retries it with
 * exponential backoff and jitter (100 ms doubling to 30 s); flushes never overlap. A batch refused for its
 * data is written again row by row: a row refused on its own is dropped, counted and logged with its
 * request id, and the others are stored.
 *
 * A full buffer (records in flight count too): with USAGE_OVERFLOW_POLICY=`reject`, {@link accepting} turns
 * false and the caller refuses new billable work (503 `usage_unavailable`); with `drop`, the newest record
 * (the one being recorded) is dropped: the oldest may be in an INSERT already sent, and dropping the new
 * one keeps the buffer's order. Drops are counted in `vla_usage_records_dropped_total` and logged once per
 * flush interval with their count.
 *
 * At shutdown (`beforeApplicationShutdown`: the HTTP server has closed, the DataSource closes later) the
 * buffer is flushed within {@link SHUTDOWN_FLUSH_DEADLINE_MS}; what is left is logged and counted as
 * dropped (`reason="shutdown"`).
 */
@Injectable()
export class UsageWriter implements OnModuleInit, OnModuleDestroy, BeforeApplicationShutdown, UsageBacklog {
  private readonly queue = new RecordQueue<UsageRecord>();
  /** The batch being written, or waiting for its retry: oldest records, ahead of the queue. */
  private inFlight: UsageRecord[] = [];
  /** Serialises flushes: each waits for the previous one. */
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private consecutiveFailures = 0;
  /** Monotonic ms before which the timer does not retry after a failure. */
  private retryAt = 0;
  private readonly unloggedDrops = new Map<UsageDropReason, number>();
  /** The timer is stopped for good (module destroyed, or the shutdown flush has begun). */
  private stopping = false;
  /** The shutdown flush is over: nothing more is written; later records are counted as dropped. */
  private closed = false;
  private lateDropLogged = false;
  private readonly options: AppConfig['usage'];
  private readonly batchSize: number;
  private readonly metrics: UsageMetrics;
  private shutdownDeadlineMs = SHUTDOWN_FLUSH_DEADLINE_MS;

  constructor(
    @Inject(APP_CONFIG) config: UsageWriterConfig,
    private readonly repo: UsageRecordsRepository,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    @InjectMetric(USAGE_METRICS.written) written: Counter,
    @InjectMetric(USAGE_METRICS.failures) failures: Counter<'reason'>,
    @InjectMetric(USAGE_METRICS.dropped) dropped: Counter<'reason'>,
    @InjectMetric(USAGE_METRICS.flushDuration) flushDuration: Histogram,
  ) {
    this.options = config.usage;
    this.batchSize = Math.min(config.usage.batchSize, MAX_ROWS_PER_INSERT);
    this.metrics = { written, failures, dropped, flushDuration };
    // Every reason exists from the start, so a rate over it is defined before the first event.
    for (const reason of USAGE_FAILURE_REASONS) failures.inc({ reason }, 0);
    for (const reason of USAGE_DROP_REASONS) dropped.inc({ reason }, 0);
  }

  /**
   * A writer outside Nest (tests, tools), recording into `metrics` ({@link usageMetricsIn}). Its timer
   * starts with `onModuleInit()`; `shutdownDeadlineMs` overrides {@link SHUTDOWN_FLUSH_DEADLINE_MS}.
   */
  static create(deps: {
    readonly config: UsageWriterConfig;
    readonly repo: UsageRecordsRepository;
    readonly logger: Logger;
    readonly metrics: UsageMetrics;
    readonly shutdownDeadlineMs?: number;
  }): UsageWriter {
    const { written, failures, dropped, flushDuration } = deps.metrics;
    const writer = new UsageWriter(
      deps.config,
      deps.repo,
      deps.logger,
      written,
      failures,
      dropped,
      flushDuration,
    );
    if (deps.shutdownDeadlineMs !== undefined) writer.shutdownDeadlineMs = deps.shutdownDeadlineMs;
    return writer;
  }

  onModuleInit(): void {
    this.schedule(this.options.flushIntervalMs);
  }

  onModuleDestroy(): void {
    // Nest calls this before `beforeApplicationShutdown`: the timer stops, the final flush still runs.
    this.stopTimer();
  }

  /** Records buffered and not yet stored, the batch in flight included. */
  get backlog(): number {
    return this.queue.length + this.inFlight.length;
  }

  /**
   * Whether new billable work may start: false when the buffer is full under the `reject` policy (answer
   * 503 `usage_unavailable` before doing the work), and after the shutdown flush. Always true under `drop`
   * until shutdown. Call it before the work, then {@link record} the request's row whatever its outcome.
   */
  accepting(): boolean {
    if (this.closed) return false;
    return this.options.overflowPolicy === 'drop' || this.backlog < this.options.bufferMax;
  }

  /**
   * Buffers one request's row: synchronous, O(1), never touches the database, never throws. The writer
   * keeps the object: do not change it afterwards. A full buffer drops it under `drop` (counted); under
   * `reject` it is kept (the request was admitted before the buffer filled) up to a hard ceiling.
   */
  record(row: UsageRecord): void {
    try {
      if (this.closed) {
        this.drop('shutdown');
        return;
      }
      const size = this.backlog;
      if (size >= this.options.bufferMax) {
        const ceiling =
          this.options.overflowPolicy === 'drop'
            ? this.options.bufferMax
            : this.options.bufferMax * REJECT_HEADROOM_FACTOR;
        if (size >= ceiling) {
          this.drop('overflow');
          return;
        }
      }
      this.queue.push(row);
    } catch {
      // Never on the request path: counting a drop cannot fail in practice, and a failure must not either.
    }
  }

  /**
   * Writes everything buffered now, in batches, after any flush already running (flushes never overlap).
   * Resolves when the buffer is empty or a write failed (then the timer retries after the backoff); never
   * rejects. Unlike the timer, it does not wait for a backoff to pass.
   */
  flushNow(): Promise<void> {
    const run = this.chain.then(() => this.drain());
    this.chain = run;
    return run;
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopTimer();
    const pending = this.backlog;
    const deadline = new AbortController();
    const timedOut = sleep(this.shutdownDeadlineMs, true, { signal: deadline.signal }).catch(() => false);
    await Promise.race([this.flushUntilEmpty(deadline.signal), timedOut]);
    deadline.abort();
    this.closed = true;
    const left = this.backlog;
    this.queue.clear();
    this.inFlight = [];
    if (left > 0) {
      this.metrics.dropped.inc({ reason: 'shutdown' }, left);
      this.logger.error(
        { component: 'usage', records: left, deadline_ms: this.shutdownDeadlineMs },
        'usage records not written by the shutdown deadline: counted as dropped',
      );
    } else if (pending > 0) {
      this.logger.info({ component: 'usage', records: pending }, 'usage buffer flushed at shutdown');
    }
    this.logDrops();
  }

  private async flushUntilEmpty(signal: AbortSignal): Promise<void> {
    while (this.backlog > 0 && !signal.aborted) {
      await this.flushNow();
      if (this.backlog === 0 || signal.aborted) return;
      // The write failed: wait out the backoff (the deadline cuts it short), then try again.
      const wait = Math.max(1, this.retryAt - performance.now());
      await sleep(wait, undefined, { signal }).catch(() => undefined);
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => void this.tick(), delayMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    this.stopping = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    this.logDrops();
    await this.flushNow();
    const delay =
      this.consecutiveFailures > 0
        ? Math.max(0, this.retryAt - performance.now())
        : this.options.flushIntervalMs;
    this.schedule(delay);
  }

  /** Writes batches until the buffer is empty or a write fails. Never throws. */
  private async drain(): Promise<void> {
    if (this.backlog === 0 || this.closed) return;
    const end = this.metrics.flushDuration.startTimer();
    try {
      while (!this.closed) {
        if (this.inFlight.length === 0) this.inFlight = this.queue.take(this.batchSize);
        if (this.inFlight.length === 0) return;
        if (!(await this.writeInFlight())) return;
      }
    } catch (error) {
      // Not expected (every database error is handled below); the rows stay buffered for the next flush.
      this.logger.error({ component: 'usage', err: describeWriteError(error) }, 'usage flush failed');
    } finally {
      end();
    }
  }

  /** Writes the batch in flight. True: it is settled (stored, ignored or dropped); false: retry later. */
  private async writeInFlight(): Promise<boolean> {
    const batch = this.inFlight;
    let inserted: number;
    try {
      inserted = await this.repo.insertNew(batch, USAGE_INSERT_OPERATIONS.batch);
    } catch (error) {
      if (this.inFlight !== batch) return false; // discarded by the shutdown deadline meanwhile
      const kind = classifyWriteError(error);
      // A database that refuses every write would refuse each row too: retry the batch later.
      if (kind !== 'row') return this.failed(kind, error);
      return this.writeRowByRow();
    }
    if (this.inFlight !== batch) return false;
    this.stored(batch.length, inserted);
    this.inFlight = [];
    this.recovered();
    return true;
  }

  /** After a batch was refused for its data: each row alone, so one bad row never sinks the others. */
  private async writeRowByRow(): Promise<boolean> {
    const batch = this.inFlight;
    for (let i = 0; i < batch.length; i++) {
      const row = batch[i];
      try {
        this.stored(1, await this.repo.insertNew([row], USAGE_INSERT_OPERATIONS.row));
      } catch (error) {
        if (this.inFlight !== batch) return false;
        const kind = classifyWriteError(error);
        if (kind !== 'row') {
          this.inFlight = batch.slice(i);
          return this.failed(kind, error);
        }
        this.metrics.failures.inc({ reason: 'invalid_row' });
        this.metrics.dropped.inc({ reason: 'invalid_row' });
        this.logger.error(
          { component: 'usage', request_id: row.requestId, err: describeWriteError(error) },
          'usage record refused by the database: dropped',
        );
      }
      if (this.inFlight !== batch) return false;
    }
    this.inFlight = [];
    this.recovered();
    return true;
  }

  private stored(rows: number, inserted: number): void {
    this.metrics.written.inc(inserted);
    if (inserted < rows) this.metrics.failures.inc({ reason: 'conflict' }, rows - inserted);
  }

  /** Counts the failure and sets the backoff; returns false (the batch stays for a retry). */
  private failed(kind: Exclude<WriteErrorKind, 'row'>, error: unknown): false {
    this.metrics.failures.inc({ reason: kind });
    this.consecutiveFailures++;
    const ceiling = Math.min(
      BACKOFF_CAP_MS,
      BACKOFF_FIRST_MS * 2 ** Math.min(this.consecutiveFailures - 1, 20),
    );
    // "Equal jitter": half the delay fixed, half random, so replicas that failed together spread out.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.retryAt = performance.now() + delay;
    // Logged on failures 1, 2, 4, 8, ...: an outage is visible at once without a line per retry.
    if ((this.consecutiveFailures & (this.consecutiveFailures - 1)) === 0) {
      this.logger.warn(
        {
          component: 'usage',
          kind,
          err: describeWriteError(error),
          backlog: this.backlog,
          failures: this.consecutiveFailures,
          retry_in_ms: Math.round(delay),
        },
        'usage records not written: kept and retried',
      );
    }
    return false;
  }

  private recovered(): void {
    if (this.consecutiveFailures > 0) {
      this.logger.info(
        { component: 'usage', failures: this.consecutiveFailures, backlog: this.backlog },
        'usage writes resumed',
      );
    }
    this.consecutiveFailures = 0;
    this.retryAt = 0;
  }

  private drop(reason: UsageDropReason): void {
    this.metrics.dropped.inc({ reason });
    this.unloggedDrops.set(reason, (this.unloggedDrops.get(reason) ?? 0) + 1);
    // After shutdown no timer logs them: the first such drop is logged at once, later ones only counted.
    if (this.closed && !this.lateDropLogged) {
      this.lateDropLogged = true;
      this.logDrops();
    }
  }

  /** One line per reason with the count since the last line (called once per flush interval). */
  private logDrops(): void {
    for (const [reason, count] of this.unloggedDrops) {
      if (count === 0) continue;
      this.logger.warn(
        { component: 'usage', reason, dropped: count, policy: this.options.overflowPolicy },
        'usage records dropped',
      );
    }
    this.unloggedDrops.clear();
  }
}
