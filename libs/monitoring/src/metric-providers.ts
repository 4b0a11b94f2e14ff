import type { Provider } from '@nestjs/common';
import {
  type MetricProviderInject,
  getToken,
  makeCounterProvider,
  makeGaugeProvider,
  makeHistogramProvider,
  makeSummaryProvider,
} from '@willsoto/nestjs-prometheus';
import type { Counter, Gauge, Histogram } from 'prom-client';
import {
  type TENANT_LABEL,
  TenantLabels,
  type TenantCounterConfiguration,
  type TenantGaugeConfiguration,
  type TenantHistogramConfiguration,
} from './tenant-labels.service';

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

/**
 * What `inject` and `collect` mean in the `make*Provider` functions: `collect` runs at scrape time with the
 * metric as `this` and the injected providers as its arguments.
 */
interface InjectableCollect<M> {
  readonly inject?: MetricProviderInject;
  readonly collect?: (this: M, ...injected: never[]) => void | Promise<void>;
}

type TenantCounterOptions<L extends string> = Omit<TenantCounterConfiguration<L>, 'collect'> &
  InjectableCollect<Counter<L | typeof TENANT_LABEL>>;
type TenantGaugeOptions<L extends string> = Omit<TenantGaugeConfiguration<L>, 'collect'> &
  InjectableCollect<Gauge<L | typeof TENANT_LABEL>>;
type TenantHistogramOptions<L extends string> = Omit<TenantHistogramConfiguration<L>, 'collect'> &
  InjectableCollect<Histogram<L | typeof TENANT_LABEL>>;

/**
 * A provider for a metric whose labels depend on the tenant label policy, which is only known when the
 * module is built: the metric is created by {@link TenantLabels} in the factory, not at declaration.
 */
function tenantMetricProvider<M, C extends { readonly name: string } & InjectableCollect<M>>(
  options: C,
  create: (
    policy: TenantLabels,
    config: Omit<C, 'inject' | 'collect'> & { collect?: (this: M) => void | Promise<void> },
  ) => M,
): Provider {
  claim(options.name);
  const { inject = [], collect, ...config } = options;
  return {
    provide: getToken(options.name),
    inject: [TenantLabels, ...inject],
    useFactory(policy: TenantLabels, ...injected: unknown[]): M {
      if (collect === undefined) return create(policy, config);
      return create(policy, {
        ...config,
        collect(this: M) {
          // `inject` and `collect`'s parameters are declared together by the caller, as in the adapter.
          return collect.call(this, ...(injected as never[]));
        },
      });
    },
  };
}

/**
 * Declares a counter with a `tenant` label governed by {@link TenantLabels}: `labelNames` lists the other
 * labels; `tenant` is added when tenant labels are on. Record with `inc(tenantLabels.labels(tenant, {...}))`.
 */
export function tenantCounterProvider<const L extends string = never>(
  options: TenantCounterOptions<L>,
): Provider {
  return tenantMetricProvider<Counter<L | typeof TENANT_LABEL>, TenantCounterOptions<L>>(
    options,
    (policy, config) => policy.counter<L>(config),
  );
}

/** Declares a gauge with a `tenant` label governed by {@link TenantLabels}; see {@link tenantCounterProvider}. */
export function tenantGaugeProvider<const L extends string = never>(
  options: TenantGaugeOptions<L>,
): Provider {
  return tenantMetricProvider<Gauge<L | typeof TENANT_LABEL>, TenantGaugeOptions<L>>(
    options,
    (policy, config) => policy.gauge<L>(config),
  );
}

/** Declares a histogram with a `tenant` label governed by {@link TenantLabels}; see {@link tenantCounterProvider}. */
export function tenantHistogramProvider<const L extends string = never>(
  options: TenantHistogramOptions<L>,
): Provider {
  return tenantMetricProvider<Histogram<L | typeof TENANT_LABEL>, TenantHistogramOptions<L>>(
    options,
    (policy, config) => policy.histogram<L>(config),
  );
}
