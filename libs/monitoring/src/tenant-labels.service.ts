import { Inject, Injectable } from '@nestjs/common';
import {
  Counter,
  type CounterConfiguration,
  Gauge,
  type GaugeConfiguration,
  Histogram,
  type HistogramConfiguration,
  register,
} from 'prom-client';
import { MONITORING_OPTIONS, type MonitoringModuleOptions } from './monitoring.options';

/** The label every per-tenant metric carries (when tenant labels are on). */
export const TENANT_LABEL = 'tenant';
/** Where tenants past `maxTenants` are counted, so that sums over `tenant` stay exact. */
export const OTHER_TENANT = '__other__';

const DEFAULT_MAX_TENANTS = 100;

/** What a per-tenant metric declares besides `tenant`: the rest of its labels, in `labelNames`. */
export type TenantCounterConfiguration<L extends string> = Omit<
  CounterConfiguration<L | typeof TENANT_LABEL>,
  'labelNames' | 'registers'
> & { readonly labelNames?: readonly L[] };
export type TenantGaugeConfiguration<L extends string> = Omit<
  GaugeConfiguration<L | typeof TENANT_LABEL>,
  'labelNames' | 'registers'
> & { readonly labelNames?: readonly L[] };
export type TenantHistogramConfiguration<L extends string> = Omit<
  HistogramConfiguration<L | typeof TENANT_LABEL>,
  'labelNames' | 'registers'
> & { readonly labelNames?: readonly L[] };

type TenantMetric = Counter<string> | Gauge<string> | Histogram<string>;

/**
 * The tenant label policy (`METRICS_TENANT_LABELS`, `METRICS_MAX_TENANTS`), one per app. Every metric with a
 * tenant label is created here (directly, or through `tenantCounterProvider` and its siblings), so that:
 *
 * - with tenant labels off, those metrics have no `tenant` label at all, and {@link labels} leaves it out;
 * - with them on, the first `maxTenants` distinct tenants (in order of first use) get series of their own
 *   and every later one is counted under `tenant="__other__"`: sums stay exact, series stay bounded, and
 *   no metric ever sees the name of a tenant past the cap;
 * - {@link forget} removes every series of a tenant from every such metric and frees its slot.
 */
@Injectable()
export class TenantLabels {
  /** Whether metrics carry a `tenant` label. */
  readonly enabled: boolean;
  /** How many tenants may have series of their own. */
  readonly maxTenants: number;
  /** Tenants holding a slot, in order of first use; never more than `maxTenants`. */
  private readonly slots = new Set<string>();
  private readonly metrics = new Set<TenantMetric>();

  constructor(
    @Inject(MONITORING_OPTIONS) options: Pick<MonitoringModuleOptions, 'tenantLabels' | 'maxTenants'>,
  ) {
    this.enabled = options.tenantLabels ?? true;
    this.maxTenants = options.maxTenants ?? DEFAULT_MAX_TENANTS;
    if (!Number.isSafeInteger(this.maxTenants) || this.maxTenants < 1) {
      throw new Error(`maxTenants must be a positive integer (got ${String(options.maxTenants)}).`);
    }
  }

  /** `others` plus `tenant` when tenant labels are on: the `labelNames` of a per-tenant metric. */
  labelNames<const L extends string>(others: readonly L[] = []): (L | typeof TENANT_LABEL)[] {
    return this.enabled ? [...others, TENANT_LABEL] : [...others];
  }

  /**
   * The `tenant` label value for `tenant`: its own name while it holds one of the `maxTenants` slots (the
   * first use claims a free one), `__other__` otherwise. A tenant literally named `__other__` claims no slot.
   * With tenant labels off every tenant is `__other__` and no slot is claimed; use {@link labels} instead.
   */
  label(tenant: string): string {
    if (!this.enabled || tenant === OTHER_TENANT) return OTHER_TENANT;
    if (this.slots.has(tenant)) return tenant;
    if (this.slots.size >= this.maxTenants) return OTHER_TENANT;
    this.slots.add(tenant);
    return tenant;
  }

  /** A copy of `rest` with `tenant` set to {@link label}; without `tenant` when tenant labels are off. */
  labels<T extends object>(tenant: string, rest: T): T & { tenant?: string } {
    return this.enabled ? { ...rest, tenant: this.label(tenant) } : { ...rest };
  }

  /**
   * Removes every series labelled `tenant` from every metric created through this policy, and frees the
   * tenant's slot for the next new tenant. For a deleted or disabled tenant. Counts the tenant made under
   * `__other__` (before it had a slot, or while it had none) stay there: they are part of the totals.
   */
  async forget(tenant: string): Promise<void> {
    if (!this.enabled || tenant === OTHER_TENANT) return;
    // Series are read from the metrics themselves rather than from a record of what was handed out, so
    // series created any way at all (a pre-created zero, a collect()) go too; reading runs a gauge's
    // collect() as a scrape would. Read everything first, then remove and free the slot in one synchronous
    // step.
    const snapshots = await Promise.all(
      [...this.metrics].map(async (metric) => ({ metric, values: (await metric.get()).values })),
    );
    for (const { metric, values } of snapshots) {
      const names = labelNamesOf(metric);
      for (const { labels } of values) {
        if (labels[TENANT_LABEL] !== tenant) continue;
        // Histogram samples carry `le`, which is no label of the metric: keep only the declared ones.
        metric.remove(Object.fromEntries(Object.entries(labels).filter(([k]) => names.includes(k))));
      }
    }
    this.slots.delete(tenant);
  }

  /** A counter whose labels are `config.labelNames` plus `tenant` (when on), in the default registry. */
  counter<const L extends string = never>(
    config: TenantCounterConfiguration<L>,
  ): Counter<L | typeof TENANT_LABEL> {
    return this.create(
      config,
      Counter,
      (labelNames) => new Counter<L | typeof TENANT_LABEL>({ ...config, labelNames }),
    );
  }

  /** A gauge whose labels are `config.labelNames` plus `tenant` (when on), in the default registry. */
  gauge<const L extends string = never>(config: TenantGaugeConfiguration<L>): Gauge<L | typeof TENANT_LABEL> {
    return this.create(
      config,
      Gauge,
      (labelNames) => new Gauge<L | typeof TENANT_LABEL>({ ...config, labelNames }),
    );
  }

  /** A histogram whose labels are `config.labelNames` plus `tenant` (when on), in the default registry. */
  histogram<const L extends string = never>(
    config: TenantHistogramConfiguration<L>,
  ): Histogram<L | typeof TENANT_LABEL> {
    return this.create(
      config,
      Histogram,
      (labelNames) => new Histogram<L | typeof TENANT_LABEL>({ ...config, labelNames }),
    );
  }

  /**
   * Creates the metric, or takes the one already registered under that name (as the Nest adapter does, so
   * a registry cleared between test apps gets a fresh metric and an uncleared one keeps its series), and
   * tracks it for {@link forget}. A registered metric of another type or with other labels is refused:
   * sharing it would silently break the policy.
   */
  private create<const L extends string, M extends TenantMetric>(
    config: { readonly name: string; readonly labelNames?: readonly L[] },
    type: abstract new (...args: never[]) => M,
    make: (labelNames: (L | typeof TENANT_LABEL)[]) => M,
  ): M {
    if ((config.labelNames as readonly string[] | undefined)?.includes(TENANT_LABEL)) {
      throw new Error(`Metric ${config.name}: leave ${TENANT_LABEL} out of labelNames; the policy adds it.`);
    }
    const labelNames = this.labelNames(config.labelNames ?? []);
    const existing = register.getSingleMetric(config.name);
    let metric: M;
    if (existing === undefined) {
      metric = make(labelNames);
    } else {
      const had = labelNamesOf(existing);
      const same = had.length === labelNames.length && had.every((l, i) => l === labelNames[i]);
      if (!(existing instanceof type) || !same) {
        throw new Error(
          `Metric ${config.name} is already registered with other labels or another type; clear the ` +
            'registry before building an app with other tenant-label settings.',
        );
      }
      metric = existing;
    }
    this.metrics.add(metric);
    return metric;
  }
}

/** prom-client keeps a metric's label names on the instance but leaves them out of its types. */
function labelNamesOf(metric: object): readonly string[] {
  return (metric as { labelNames?: readonly string[] }).labelNames ?? [];
}
