import { renderMetricsCatalogue } from '@app/monitoring';
import { register } from 'prom-client';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findSamples, parsePrometheusText, sampleValue, type Sample } from './support/prom-text';
import { startTestApp, type TestApp } from './support/test-app';

const TOKEN = 'metrics-token-for-e2e-tests-0001';
const METRICS_DOC = join(__dirname, '../../../docs/metrics.md');

async function scrape(t: TestApp, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) {
  const res = await t.fetch('/monitoring/metrics', { headers });
  expect(res.status).toBe(200);
  return { samples: parsePrometheusText(res.text), res };
}

const requests = (samples: Sample[], labels: Record<string, string>) =>
  sampleValue(samples, 'vla_http_requests_total', labels) ?? 0;

describe('/monitoring/metrics protection', () => {
  it('401 with instructions when no token is configured and the endpoint is not public', async () => {
    const t = await startTestApp();
    try {
      const res = await t.fetch('/monitoring/metrics');
      expect(res.status).toBe(401);
      const body = res.json() as { error: { code: string; message: string; request_id: string } };
      expect(body.error.code).toBe('unauthorized');
      expect(body.error.message).toContain('METRICS_TOKEN');
      expect(body.error.message).toContain('METRICS_PUBLIC=true');
      expect(body.error.request_id).toBe(res.headers['x-request-id']);
      // Even a guessed token gets nothing when none is configured.
      expect(
        (await t.fetch('/monitoring/metrics', { headers: { authorization: 'Bearer ' + 'x'.repeat(32) } }))
          .status,
      ).toBe(401);
    } finally {
      await t.close();
    }
  });

  it('serves everyone when METRICS_PUBLIC=true', async () => {
    const t = await startTestApp({ METRICS_PUBLIC: 'true' });
    try {
      const res = await t.fetch('/monitoring/metrics');
      expect(res.status).toBe(200);
      expect(res.text).toContain('vla_application_info');
    } finally {
      await t.close();
    }
  });

  describe('with METRICS_TOKEN', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp({ METRICS_TOKEN: TOKEN });
    });
    afterAll(async () => {
      await t.close();
    });

    it('accepts Authorization: Bearer and X-Admin-Token, as text/plain version 0.0.4', async () => {
      const ways: Record<string, string>[] = [
        { authorization: `Bearer ${TOKEN}` },
        { 'x-admin-token': TOKEN },
      ];
      for (const headers of ways) {
        const res = await t.fetch('/monitoring/metrics', { headers });
        expect(res.status).toBe(200);
        expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
      }
    });

    it('refuses a missing, a wrong same-length and a wrong other-length token with identical bodies', async () => {
      const attempts: Record<string, string>[] = [
        {},
        { authorization: `Bearer ${TOKEN.slice(0, -1)}X` },
        { authorization: 'Bearer short' },
        { 'x-admin-token': `${TOKEN}-longer` },
        { authorization: TOKEN },
      ];
      const bodies = new Set<string>();
      for (const headers of attempts) {
        const res = await t.fetch('/monitoring/metrics', {
          headers: { ...headers, 'x-request-id': 'same-id' },
        });
        expect(res.status).toBe(401);
        expect(res.headers['www-authenticate']).toBe('Bearer');
        bodies.add(res.text);
      }
      expect(bodies.size).toBe(1);
      expect([...bodies][0]).not.toContain(TOKEN);
    });

    it('labels HTTP metrics by route template, folds unknown URLs into one value, and counts sizes', async () => {
      const before = (await scrape(t)).samples;
      await t.fetch('/health');
      await t.fetch('/probe/items/abc-123');
      await t.fetch('/probe/items/def-456');
      await t.fetch('/random-path-9f8e7d/xyz');
      await t.fetch('/probe/echo', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{',
      });
      const after = (await scrape(t)).samples;
      const delta = (labels: Record<string, string>) => requests(after, labels) - requests(before, labels);

      expect(delta({ method: 'GET', route: '/health', status: '200' })).toBe(1);
      expect(delta({ method: 'GET', route: '/probe/items/:id', status: '200' })).toBe(2);
      expect(delta({ method: 'GET', route: 'unmatched', status: '404' })).toBe(1);
      // Failed in the body parser, before routing: still labelled with its template.
      expect(delta({ method: 'POST', route: '/probe/echo', status: '400' })).toBe(1);

      const allLabelValues = after.flatMap((s) => Object.values(s.labels)).join(' ');
      expect(allLabelValues).not.toMatch(/abc-123|def-456|random-path/);

      const durationCount = sampleValue(after, 'vla_http_request_duration_seconds_count', {
        method: 'GET',
        route: '/probe/items/:id',
      });
      expect(durationCount).toBe(2);
      const responseBytes = sampleValue(after, 'vla_http_response_size_bytes_sum', {
        method: 'GET',
        route: '/health',
      });
      expect(responseBytes).toBeGreaterThan(50);
      const requestBytes = sampleValue(after, 'vla_http_request_size_bytes_sum', {
        method: 'POST',
        route: '/probe/echo',
      });
      expect(requestBytes).toBe(1);
      // The scrape itself is in flight while it renders.
      expect(sampleValue(after, 'vla_http_connections_active')).toBe(1);
    });

    it('exports application info, uptime, component health and the process metrics', async () => {
      const { samples } = await scrape(t);
      expect(
        sampleValue(samples, 'vla_application_info', {
          version: '0.0.0-test',
          node_version: process.versions.node,
        }),
      ).toBe(1);
      expect(sampleValue(samples, 'vla_application_uptime_seconds')).toBeGreaterThan(0);
      expect(sampleValue(samples, 'vla_application_health', { component: 'database' })).toBe(1);
      expect(sampleValue(samples, 'vla_application_health', { component: 'lifecycle' })).toBe(1);
      expect(findSamples(samples, 'process_cpu_user_seconds_total')).toHaveLength(1);
      expect(findSamples(samples, 'nodejs_eventloop_lag_seconds')).toHaveLength(1);
    });

    it('docs/metrics.md is generated from the live registry and up to date', () => {
      const rendered = renderMetricsCatalogue(register);
      if (process.env.UPDATE_METRICS_DOCS === '1') writeFileSync(METRICS_DOC, rendered);
      const onDisk = readFileSync(METRICS_DOC, 'utf8');
      expect(onDisk).toBe(rendered);
    });
  });

  it('records no HTTP metrics when HTTP_METRICS_ENABLED=false (the benchmark switch)', async () => {
    const t = await startTestApp({ METRICS_TOKEN: TOKEN, HTTP_METRICS_ENABLED: 'false' });
    try {
      await t.fetch('/health');
      const { samples } = await scrape(t);
      expect(findSamples(samples, 'vla_http_requests_total')).toHaveLength(0);
      expect(
        sampleValue(samples, 'vla_application_info', {
          version: '0.0.0-test',
          node_version: process.versions.node,
        }),
      ).toBe(1);
    } finally {
      await t.close();
    }
  });
});
