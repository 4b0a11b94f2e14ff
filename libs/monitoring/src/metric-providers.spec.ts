import { randomBytes } from 'node:crypto';
import { Test } from '@nestjs/testing';
import { type Gauge, register } from 'prom-client';
import {
  DuplicateMetricError,
  counterProvider,
  declaredMetricNames,
  gaugeProvider,
  histogramProvider,
  summaryProvider,
  tenantCounterProvider,
  tenantGaugeProvider,
  tenantHistogramProvider,
} from './metric-providers';
import { MONITORING_OPTIONS } from './monitoring.options';
import { TenantLabels } from './tenant-labels.service';

/** Names are claimed process-wide, so every test uses its own. */
const uniqueName = (what: string): string => `vla_test_${what}_${randomBytes(6).toString('hex')}`;

describe('metric providers', () => {
  it.each([
    ['counter', counterProvider],
    ['gauge', gaugeProvider],
    ['histogram', histogramProvider],
    ['summary', summaryProvider],
    ['tenant counter', tenantCounterProvider],
    ['tenant gauge', tenantGaugeProvider],
    ['tenant histogram', tenantHistogramProvider],
  ] as const)('refuses a second %s of the same name', (_kind, declare) => {
    const name = uniqueName('dup');
    declare({ name, help: 'first' });
    expect(() => declare({ name, help: 'second' })).toThrow(DuplicateMetricError);
    expect(() => declare({ name, help: 'third' })).toThrow(
      `Metric ${name} is declared twice; each name belongs to exactly one declaration.`,
    );
  });

  it.each([
    ['a counter and a tenant counter', counterProvider, tenantCounterProvider],
    ['a tenant gauge and a histogram', tenantGaugeProvider, histogramProvider],
  ] as const)('refuses the same name for %s', (_kinds, first, second) => {
    const name = uniqueName('dup_tenant');
    first({ name, help: 'first' });
    expect(() => second({ name, help: 'second' })).toThrow(DuplicateMetricError);
  });

  it('refuses the same name across metric types', () => {
    const name = uniqueName('dup_cross');
    counterProvider({ name, help: 'a counter' });
    let thrown: unknown;
    try {
      gaugeProvider({ name, help: 'a gauge' });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(DuplicateMetricError);
    expect((thrown as DuplicateMetricError).metricName).toBe(name);
  });

  it.each([
    ['no vla_ prefix', 'http_requests_total'],
    ['another prefix', 'vlax_http_requests_total'],
    ['a colon', 'vla_http:requests_total'],
    ['upper case', 'vla_HTTP_requests_total'],
    ['a dash', 'vla_http-requests_total'],
    ['nothing after the prefix', 'vla_'],
    ['a digit after the prefix', 'vla_2xx_total'],
    ['a space', 'vla_http requests'],
  ])('refuses a name with %s', (_why, name) => {
    let thrown: unknown;
    try {
      counterProvider({ name, help: 'bad name' });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(Error);
    expect(thrown).not.toBeInstanceOf(DuplicateMetricError);
    expect((thrown as Error).message).toBe(
      `Metric name ${name} must match ^vla_[a-z][a-z0-9_]*$ (vla_<area>_<what>_<unit>).`,
    );
    expect(declaredMetricNames()).not.toContain(name);
  });

  it('lists the declared names, sorted', () => {
    const names = [uniqueName('list_c'), uniqueName('list_a'), uniqueName('list_b')];
    counterProvider({ name: names[0], help: 'c' });
    histogramProvider({ name: names[1], help: 'a', buckets: [1, 2] });
    gaugeProvider({ name: names[2], help: 'b' });

    const declared = declaredMetricNames();
    expect(declared).toEqual(expect.arrayContaining(names));
    expect(declared).toEqual([...declared].sort());
    expect(new Set(declared).size).toBe(declared.length);
  });

  it('keeps a refused duplicate from being listed twice', () => {
    const name = uniqueName('list_dup');
    summaryProvider({ name, help: 'once' });
    expect(() => summaryProvider({ name, help: 'twice' })).toThrow(DuplicateMetricError);
    expect(declaredMetricNames().filter((n) => n === name)).toEqual([name]);
  });
});

describe('tenant metric providers', () => {
  afterEach(() => {
    register.clear();
  });

  /** A provider a collect() reads from, as a feature's state would be. */
  class QueueDepth {
    readonly byTenant = new Map<string, number>();
  }

  async function build(tenantLabels: boolean, name: string) {
    register.clear();
    const moduleRef = await Test.createTestingModule({
      providers: [
        { provide: MONITORING_OPTIONS, useValue: { tenantLabels, maxTenants: 1 } },
        TenantLabels,
        QueueDepth,
        tenantGaugeProvider({
          name,
          help: 'queued requests',
          labelNames: ['model'],
          inject: [QueueDepth, TenantLabels],
          collect(this: Gauge<'model' | 'tenant'>, depth: QueueDepth, policy: TenantLabels) {
            this.reset();
            for (const [tenant, n] of depth.byTenant) this.inc(policy.labels(tenant, { model: 'pi0' }), n);
          },
        }),
      ],
    }).compile();
    const depth = moduleRef.get(QueueDepth);
    depth.byTenant.set('acme', 2).set('globex', 3);
    return register.getSingleMetricAsString(name);
  }

  it('builds the metric with the policy and runs collect() with the injected providers', async () => {
    const name = uniqueName('queued');
    expect(await build(true, name)).toContain(
      [`${name}{model="pi0",tenant="acme"} 2`, `${name}{model="pi0",tenant="__other__"} 3`].join('\n'),
    );
  });

  it('builds the metric without tenant when tenant labels are off', async () => {
    const name = uniqueName('queued');
    const text = await build(false, name);
    expect(text).toContain(`${name}{model="pi0"} 5`);
    expect(text).not.toContain('tenant');
  });
});
