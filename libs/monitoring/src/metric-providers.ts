import type { Provider } from '@nestjs/common';
import {
  makeCounterProvider,
  makeGaugeProvider,
  makeHistogramProvider,
  makeSummaryProvider,
} from '@willsoto/nestjs-prometheus';

/** Raised when two declarations claim one metric name (prom-client would silently share the first). */
export class DuplicateMetricError extends Error {
  constructor(readonly metricName: string) {
    super(`Metric ${metricName} is declared twice; each name belongs to exactly one declaration.`);
    this.name = 'DuplicateMetricError';
  }
}

const VALID_NAME = /^vla_[a-z][a-z0-9_]*$/;
const claimed = new Set<string>();

/**
 * Records that `name` is declared here. Declarations run once, when their module file is loaded, so a
 * second declaration of the same name anywhere in the process fails at start instead of sharing series.
 */
function claim(name: string): void {
  if (!VALID_NAME.test(name)) {
    throw new Error(`Metric name ${name} must match ${VALID_NAME.source} (vla_<area>_<what>_<unit>).`);
  }
  if (claimed.has(name)) throw new DuplicateMetricError(name);
  claimed.add(name);
}

/** Names declared so far in this process, sorted. */
export function declaredMetricNames(): string[] {
  return [...claimed].sort();
}

type CounterOptions = Parameters<typeof makeCounterProvider>[0];
type GaugeOptions = Parameters<typeof makeGaugeProvider>[0];
type HistogramOptions = Parameters<typeof makeHistogramProvider>[0];
type SummaryOptions = Parameters<typeof makeSummaryProvider>[0];

/** Declares a counter next to the code that records it; inject it with `@InjectMetric(name)`. */
export function counterProvider(options: CounterOptions): Provider {
  claim(options.name);
  return makeCounterProvider(options);
}

/**
 * Declares a gauge. Prefer `collect()` reading live state at scrape time; a `collect()` must catch its
 * own errors, because one that throws fails the whole scrape.
 */
export function gaugeProvider(options: GaugeOptions): Provider {
  claim(options.name);
  return makeGaugeProvider(options);
}

/** Declares a histogram; buckets in base units (seconds, bytes). */
export function histogramProvider(options: HistogramOptions): Provider {
  claim(options.name);
  return makeHistogramProvider(options);
}

/** Declares a summary. Prefer histograms: summaries cannot be aggregated across replicas. */
export function summaryProvider(options: SummaryOptions): Provider {
  claim(options.name);
  return makeSummaryProvider(options);
}
