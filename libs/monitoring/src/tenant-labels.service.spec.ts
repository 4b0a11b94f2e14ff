import { randomBytes } from 'node:crypto';
import { Counter, register } from 'prom-client';
import { OTHER_TENANT, TenantLabels } from './tenant-labels.service';

/** Every test builds its metrics under names of its own; the registry is cleared between tests anyway. */
const uniqueName = (what: string): string => `vla_test_${what}_${randomBytes(6).toString('hex')}`;

interface Series {
  readonly labels: Record<string, string | number | undefined>;
  readonly value: number;
}

/** The series of a metric as the registry exports them (histograms: only the `_count` samples). */
async function series(name: string): Promise<Series[]> {
  const metric = register.getSingleMetric(name);
  if (metric === undefined) throw new Error(`${name} is not registered`);
  const { values } = await metric.get();
  return values
    .filter((v) => !('metricName' in v) || v.metricName === undefined || v.metricName === `${name}_count`)
    .map((v) => ({ labels: { ...v.labels }, value: v.value }));
}

/** Value per `tenant` label value (summed over the other labels). */
async function perTenant(name: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of await series(name)) {
    const tenant = String(s.labels.tenant);
    out[tenant] = (out[tenant] ?? 0) + s.value;
  }
  return out;
}

beforeEach(() => {
  register.clear();
});
afterAll(() => {
  register.clear();
});

describe('TenantLabels, on', () => {
  it('gives the first maxTenants tenants series of their own and counts the rest under __other__', async () => {
    const policy = new TenantLabels({ tenantLabels: true, maxTenants: 2 });
    const name = uniqueName('requests_total');
    const counter = policy.counter({ name, help: 'test', labelNames: ['status'] });
    const requests: [string, string][] = [
      ['acme', 'ok'],
      ['globex', 'ok'],
      ['acme', 'error'],
      ['initech', 'ok'],
      ['umbrella', 'ok'],
      ['globex', 'ok'],
      ['initech', 'error'],
      ['acme', 'ok'],
    ];
    for (const [tenant, status] of requests) counter.inc(policy.labels(tenant, { status }));

    expect(await perTenant(name)).toEqual({ acme: 3, globex: 2, [OTHER_TENANT]: 3 });
    const total = (await series(name)).reduce((sum, s) => sum + s.value, 0);
    expect(total).toBe(requests.length);

    // The exposition text: names past the cap never reach the metric.
    const text = await register.getSingleMetricAsString(name);
    expect(text).toContain(`${name}{status="ok",tenant="__other__"} 2`);
    expect(text).toContain(`${name}{status="error",tenant="__other__"} 1`);
    expect(text).not.toMatch(/initech|umbrella/);
  });

  it('keeps the slots of the first tenants, whatever comes later', () => {
    const policy = new TenantLabels({ tenantLabels: true, maxTenants: 3 });
    expect(['a', 'b', 'c', 'd', 'e'].map((t) => policy.label(t))).toEqual([
      'a',
      'b',
      'c',
      OTHER_TENANT,
      OTHER_TENANT,
    ]);
    expect(['e', 'c', 'a', 'd', 'b'].map((t) => policy.label(t))).toEqual([
      OTHER_TENANT,
      'c',
      'a',
      OTHER_TENANT,
      'b',
    ]);
  });

  it('lets no tenant named __other__ take a slot', () => {
    const policy = new TenantLabels({ tenantLabels: true, maxTenants: 1 });
    expect(policy.label(OTHER_TENANT)).toBe(OTHER_TENANT);
    expect(policy.label('acme')).toBe('acme');
  });

  it('adds tenant to the label names and to the labels', () => {
    const policy = new TenantLabels({ tenantLabels: true, maxTenants: 5 });
    expect(policy.labelNames(['model', 'status'])).toEqual(['model', 'status', 'tenant']);
    expect(policy.labels('acme', { model: 'pi0' })).toEqual({ model: 'pi0', tenant: 'acme' });
  });

  it('defaults to on with 100 tenants', async () => {
    const policy = new TenantLabels({});
    expect(policy.enabled).toBe(true);
    expect(policy.maxTenants).toBe(100);
    const name = uniqueName('default_total');
    const counter = policy.counter({ name, help: 'test' });
    for (let i = 0; i < 150; i++) counter.inc(policy.labels(`tenant-${i}`, {}));
    const byTenant = await perTenant(name);
    expect(Object.keys(byTenant)).toHaveLength(101);
    expect(byTenant[OTHER_TENANT]).toBe(50);
    expect(byTenant['tenant-99']).toBe(1);
    expect(byTenant['tenant-100']).toBeUndefined();
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses maxTenants %j', (maxTenants) => {
    expect(() => new TenantLabels({ tenantLabels: true, maxTenants })).toThrow(
      'maxTenants must be a positive integer',
    );
  });
});

describe('TenantLabels, off', () => {
  it('declares no tenant label and records every tenant in the same series', async () => {
    const policy = new TenantLabels({ tenantLabels: false, maxTenants: 2 });
    const name = uniqueName('requests_total');
    const plain = uniqueName('plain_total');
    const withStatus = policy.counter({ name, help: 'test', labelNames: ['status'] });
    const bare = policy.counter({ name: plain, help: 'test' });
    for (const tenant of ['acme', 'globex', 'initech', 'acme']) {
      withStatus.inc(policy.labels(tenant, { status: 'ok' }));
      bare.inc(policy.labels(tenant, {}));
    }

    expect(await series(name)).toEqual([{ labels: { status: 'ok' }, value: 4 }]);
    expect(await series(plain)).toEqual([{ labels: {}, value: 4 }]);
    const text =
      (await register.getSingleMetricAsString(name)) + (await register.getSingleMetricAsString(plain));
    expect(text).not.toContain('tenant');
    expect(text).not.toMatch(/acme|globex|initech/);
  });

  it('leaves tenant out of the label names and the labels', () => {
    const policy = new TenantLabels({ tenantLabels: false, maxTenants: 2 });
    expect(policy.enabled).toBe(false);
    expect(policy.labelNames(['status'])).toEqual(['status']);
    expect(policy.labels('acme', { status: 'ok' })).toEqual({ status: 'ok' });
  });
});

describe('TenantLabels.forget', () => {
  it('removes every series of the tenant from every metric, and frees its slot', async () => {
    const policy = new TenantLabels({ tenantLabels: true, maxTenants: 2 });
    const requests = uniqueName('requests_total');
    const latency = uniqueName('latency_seconds');
    const queued = uniqueName('queued');
    const counter = policy.counter({ name: requests, help: 'test', labelNames: ['status'] });
    const histogram = policy.histogram({ name: latency, help: 'test', labelNames: ['model'], buckets: [1] });
    const gauge = policy.gauge({ name: queued, help: 'test' });
    for (const tenant of ['acme', 'globex', 'initech']) {
      counter.inc(policy.labels(tenant, { status: 'ok' }));
      counter.inc(policy.labels(tenant, { status: 'error' }));
      histogram.observe(policy.labels(tenant, { model: 'pi0' }), 0.5);
      histogram.observe(policy.labels(tenant, { model: 'act' }), 2);
      gauge.set(policy.labels(tenant, {}), 7);
    }

    await policy.forget('acme');

    expect(await perTenant(requests)).toEqual({ globex: 2, [OTHER_TENANT]: 2 });
    expect(await perTenant(latency)).toEqual({ globex: 2, [OTHER_TENANT]: 2 });
    expect(await perTenant(queued)).toEqual({ globex: 7, [OTHER_TENANT]: 7 });
    const text = (await register.metrics()).split('\n').filter((l) => l.includes('tenant="acme"'));
    expect(text).toEqual([]);

    // The freed slot goes to the next tenant seen; initech had been folded into __other__ and now has one.
    counter.inc(policy.labels('initech', { status: 'ok' }));
    counter.inc(policy.labels('umbrella', { status: 'ok' }));
    expect(await perTenant(requests)).toEqual({ globex: 2, initech: 1, [OTHER_TENANT]: 3 });
  });

  it('leaves __other__ alone and frees no slot for a tenant that never had one', async () => {
    const policy = new TenantLabels({ tenantLabels: true, maxTenants: 1 });
    const name = uniqueName('requests_total');
    const counter = policy.counter({ name, help: 'test' });
    for (const tenant of ['acme', 'globex', 'initech']) counter.inc(policy.labels(tenant, {}));

    await policy.forget('globex');
    await policy.forget(OTHER_TENANT);
    counter.inc(policy.labels('umbrella', {}));

    expect(await perTenant(name)).toEqual({ acme: 1, [OTHER_TENANT]: 3 });
  });

  it('is a no-op with tenant labels off', async () => {
    const policy = new TenantLabels({ tenantLabels: false, maxTenants: 1 });
    const name = uniqueName('requests_total');
    const counter = policy.counter({ name, help: 'test' });
    counter.inc(policy.labels('acme', {}));
    await policy.forget('acme');
    expect(await series(name)).toEqual([{ labels: {}, value: 1 }]);
  });
});

describe('TenantLabels metric creation', () => {
  it('creates a fresh metric after the registry was cleared, and reuses a registered one otherwise', () => {
    const name = uniqueName('requests_total');
    const first = new TenantLabels({ tenantLabels: true, maxTenants: 2 }).counter({ name, help: 'test' });
    const again = new TenantLabels({ tenantLabels: true, maxTenants: 2 }).counter({ name, help: 'test' });
    expect(again).toBe(first);

    register.clear();
    const fresh = new TenantLabels({ tenantLabels: false, maxTenants: 2 }).counter({ name, help: 'test' });
    expect(fresh).not.toBe(first);
    expect(register.getSingleMetric(name)).toBe(fresh);
  });

  it('refuses a registered metric with other labels or of another type', () => {
    const name = uniqueName('requests_total');
    new TenantLabels({ tenantLabels: true, maxTenants: 2 }).counter({ name, help: 'test' });
    const off = new TenantLabels({ tenantLabels: false, maxTenants: 2 });
    expect(() => off.counter({ name, help: 'test' })).toThrow(`Metric ${name} is already registered`);

    const other = uniqueName('plain_total');
    new Counter({ name: other, help: 'test', labelNames: ['tenant'] });
    const on = new TenantLabels({ tenantLabels: true, maxTenants: 2 });
    expect(() => on.gauge({ name: other, help: 'test' })).toThrow(`Metric ${other} is already registered`);
  });

  it('refuses tenant among the other label names', () => {
    const policy = new TenantLabels({ tenantLabels: true, maxTenants: 2 });
    const name = uniqueName('requests_total');
    expect(() => policy.counter({ name, help: 'test', labelNames: ['tenant'] })).toThrow(
      'leave tenant out of labelNames',
    );
    expect(register.getSingleMetric(name)).toBeUndefined();
  });
});
