import { CustomerMetrics, TenantLabels } from '@app/monitoring';
import { findSamples, parsePrometheusText, type Sample } from './support/prom-text';
import { startTestApp, type TestApp } from './support/test-app';

const TOKEN = 'metrics-token-for-tenant-labels-01';
const CUSTOMER_REQUESTS = 'vla_customer_requests_total';

async function scrape(t: TestApp): Promise<Sample[]> {
  const res = await t.fetch('/monitoring/metrics', { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return parsePrometheusText(res.text);
}

/** `vla_customer_requests_total` as `{ tenant: value }`. */
function perTenant(samples: readonly Sample[]): Record<string, number> {
  return Object.fromEntries(
    findSamples(samples, CUSTOMER_REQUESTS).map((s) => [s.labels.tenant ?? '(none)', s.value]),
  );
}

/** Requests per tenant: acme first, globex second, initech third (past a cap of 2). */
const TRAFFIC: Record<string, number> = { acme: 3, globex: 2, initech: 4 };
const TOTAL = Object.values(TRAFFIC).reduce((a, b) => a + b, 0);

function record(t: TestApp, traffic: Record<string, number>): void {
  const customers = t.app.get(CustomerMetrics);
  for (const [tenant, count] of Object.entries(traffic)) {
    for (let i = 0; i < count; i++) customers.request(tenant);
  }
}

describe('tenant labels on /monitoring/metrics', () => {
  describe('METRICS_MAX_TENANTS=2', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp({ METRICS_TOKEN: TOKEN, METRICS_MAX_TENANTS: '2' });
    });
    afterAll(async () => {
      await t.close();
    });

    it('gives the first two tenants series of their own and counts the third under __other__, exactly', async () => {
      record(t, TRAFFIC);
      const samples = await scrape(t);

      expect(perTenant(samples)).toEqual({ acme: 3, globex: 2, __other__: 4 });
      const sum = findSamples(samples, CUSTOMER_REQUESTS).reduce((s, x) => s + x.value, 0);
      expect(sum).toBe(TOTAL);
      // The tenant past the cap appears nowhere in the scrape.
      expect(samples.filter((s) => Object.values(s.labels).includes('initech'))).toEqual([]);
    });

    it('drops a forgotten tenant at once and gives its slot to the next tenant', async () => {
      await t.app.get(TenantLabels).forget('acme');
      let samples = await scrape(t);
      expect(perTenant(samples)).toEqual({ globex: 2, __other__: 4 });
      expect(samples.filter((s) => s.labels.tenant === 'acme')).toEqual([]);

      record(t, { umbrella: 1, hooli: 2 });
      samples = await scrape(t);
      expect(perTenant(samples)).toEqual({ globex: 2, umbrella: 1, __other__: 6 });
    });
  });

  it('has no tenant label anywhere with METRICS_TENANT_LABELS=off, and still the exact total', async () => {
    const t = await startTestApp({
      METRICS_TOKEN: TOKEN,
      METRICS_TENANT_LABELS: 'off',
      METRICS_MAX_TENANTS: '2',
    });
    try {
      record(t, TRAFFIC);
      const samples = await scrape(t);

      expect(samples.filter((s) => 'tenant' in s.labels)).toEqual([]);
      expect(findSamples(samples, CUSTOMER_REQUESTS)).toEqual([
        { name: CUSTOMER_REQUESTS, labels: {}, value: TOTAL },
      ]);
      const everyLabelValue = samples.flatMap((s) => Object.values(s.labels));
      for (const value of [...Object.keys(TRAFFIC), '__other__'])
        expect(everyLabelValue).not.toContain(value);
    } finally {
      await t.close();
    }
  });
});
