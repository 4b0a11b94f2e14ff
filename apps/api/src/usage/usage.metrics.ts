import { counterProvider, gaugeProvider, histogramProvider, LATENCY_BUCKETS_SECONDS } from '@app/monitoring';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The usage writer's metrics, registered by UsageModule. */
export const USAGE_METRICS = {
  backlog: 'vla_usage_write_backlog',
  written: 'vla_usage_records_written_total',
  failures: 'vla_usage_write_failures_total',
  dropped: 'vla_usage_records_dropped_total',
  flushDuration: 'vla_usage_flush_duration_seconds',
} as const;

/**
 * `transient` and `database`: one per failed INSERT (its rows are kept and retried); `conflict`: one per row
 * whose request id was already stored (ignored, not written twice); `invalid_row`: one per row the database
 * refused on its own (dropped).
 */
export const USAGE_FAILURE_REASONS = ['transient', 'database', 'conflict', 'invalid_row'] as const;
export type UsageFailureReason = (typeof USAGE_FAILURE_REASONS)[number];

/**
 * `overflow`: the buffer was full (USAGE_OVERFLOW_POLICY=drop, or a caller that recorded without asking
 * `accepting()`); `invalid_row`: refused by the database; `shutdown`: not written by the shutdown deadline,
 * or recorded after it.
 */
export const USAGE_DROP_REASONS = ['overflow', 'invalid_row', 'shutdown'] as const;
export type UsageDropReason = (typeof USAGE_DROP_REASONS)[number];

/** Anything that can say how many records are buffered. */
export interface UsageBacklog {
  readonly backlog: number;
}

/** Each metric's declaration, once: the providers and {@link usageMetricsIn} both use them. */
const DECLARATIONS = {
  backlog: {
    name: USAGE_METRICS.backlog,
    help: 'Usage records buffered in memory and not yet stored, the batch being written included.',
  },
  written: {
    name: USAGE_METRICS.written,
    help: 'Usage records stored in the database (a request id already stored is not counted again).',
  },
  failures: {
    name: USAGE_METRICS.failures,
    help: 'Usage write failures by reason: transient and database (per failed INSERT, rows kept and retried), conflict (per row already stored, ignored), invalid_row (per row refused by the database, dropped).',
    labelNames: ['reason'],
  },
  dropped: {
    name: USAGE_METRICS.dropped,
    help: 'Usage records that will never be stored, by reason (overflow: buffer full; invalid_row: refused by the database; shutdown: not written by the shutdown deadline). 0 in normal operation.',
    labelNames: ['reason'],
  },
  flushDuration: {
    name: USAGE_METRICS.flushDuration,
    help: 'Time of one flush of the usage buffer (every batch it wrote, retries of single rows included), in seconds.',
    buckets: LATENCY_BUCKETS_SECONDS,
  },
} as const;

/** Read at scrape time from the writer; a collect must never throw. */
function collectBacklog(gauge: Gauge, source: UsageBacklog | undefined): void {
  try {
    gauge.set(source?.backlog ?? 0);
  } catch {
    // A failing gauge must not fail the scrape.
  }
}

/** The providers UsageModule registers; the backlog gauge reads `UsageWriter` (passed in to avoid a cycle). */
export function usageMetricProviders(writerToken: abstract new (...args: never[]) => UsageBacklog) {
  return [
    gaugeProvider({
      ...DECLARATIONS.backlog,
      inject: [writerToken],
      collect(this: Gauge, writer: UsageBacklog) {
        collectBacklog(this, writer);
      },
    }),
    counterProvider({ ...DECLARATIONS.written }),
    counterProvider({ ...DECLARATIONS.failures, labelNames: [...DECLARATIONS.failures.labelNames] }),
    counterProvider({ ...DECLARATIONS.dropped, labelNames: [...DECLARATIONS.dropped.labelNames] }),
    histogramProvider({ ...DECLARATIONS.flushDuration, buckets: [...DECLARATIONS.flushDuration.buckets] }),
  ];
}

/** The usage metrics, as UsageWriter takes them (the backlog gauge reads the writer, it is not written to). */
export interface UsageMetrics {
  readonly written: Counter;
  readonly failures: Counter<'reason'>;
  readonly dropped: Counter<'reason'>;
  readonly flushDuration: Histogram;
}

/**
 * The same metrics in a registry of the caller's, outside Nest (tests, tools); `source` is read by the
 * backlog gauge at scrape time.
 */
export function usageMetricsIn(registry: Registry, source: () => UsageBacklog | undefined): UsageMetrics {
  const registers = [registry];
  new Gauge({
    ...DECLARATIONS.backlog,
    registers,
    collect(this: Gauge) {
      collectBacklog(this, source());
    },
  });
  return {
    written: new Counter({ ...DECLARATIONS.written, registers }),
    failures: new Counter({
      ...DECLARATIONS.failures,
      labelNames: [...DECLARATIONS.failures.labelNames],
      registers,
    }),
    dropped: new Counter({
      ...DECLARATIONS.dropped,
      labelNames: [...DECLARATIONS.dropped.labelNames],
      registers,
    }),
    flushDuration: new Histogram({
      ...DECLARATIONS.flushDuration,
      buckets: [...DECLARATIONS.flushDuration.buckets],
      registers,
    }),
  };
}
