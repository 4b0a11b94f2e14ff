import { DataSource } from 'typeorm';
import { LifecycleService } from '../src/lifecycle/lifecycle.service';
import { parsePrometheusText, sampleValue } from './support/prom-text';
import { startTestApp, type TestApp } from './support/test-app';

const METRICS_TOKEN = 'health-e2e-metrics-token-0001';

interface OpenApiDoc {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
}

describe('health, readiness and API documentation', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await startTestApp({ METRICS_TOKEN });
  });
  afterEach(async () => {
    await t.close();
  });

  it('GET /health: liveness with status, timestamp, uptime and version', async () => {
    const res = await t.fetch('/health');
    expect(res.status).toBe(200);
    const body = res.json() as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['status', 'timestamp', 'uptime_seconds', 'version']);
    expect(body.status).toBe('ok');
    expect(new Date(body.timestamp as string).toISOString()).toBe(body.timestamp);
    expect(body.uptime_seconds).toBeGreaterThan(0);
    expect(body.version).toBe('0.0.0-test');
  });

  it('GET /health/ready: 200 with the lifecycle and models checks up', async () => {
    const res = await t.fetch('/health/ready');
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({
      status: 'ok',
      checks: {
        lifecycle: { status: 'up', phase: 'ready' },
        models: {
          status: 'up',
          ready: ['demo-policy', 'demo-policy-slow'],
          unavailable: [],
          stalled: [],
        },
      },
    });
  });

  it('readiness turns 503 the moment draining begins while liveness stays 200', async () => {
    t.app.get(LifecycleService).beginDrain();
    const ready = await t.fetch('/health/ready');
    expect(ready.status).toBe(503);
    const body = ready.json() as { error: { code: string; message: string; details: { checks: unknown } } };
    expect(body.error.code).toBe('not_ready');
    expect(body.error.message).toContain('lifecycle');
    expect(body.error.details.checks).toMatchObject({ lifecycle: { status: 'down', phase: 'draining' } });
    expect((await t.fetch('/health')).status).toBe(200);
    const metrics = await t.fetch('/monitoring/metrics', { headers: { 'x-admin-token': METRICS_TOKEN } });
    expect(
      sampleValue(parsePrometheusText(metrics.text), 'vla_application_health', { component: 'lifecycle' }),
    ).toBe(0);
  });

  it('once intake stops, new requests get 503 shutting_down with Connection: close', async () => {
    t.app.get(LifecycleService).stopIntake();
    const res = await t.fetch('/health');
    expect(res.status).toBe(503);
    expect(res.headers.connection).toBe('close');
    expect((res.json() as { error: { code: string } }).error.code).toBe('shutting_down');
  });

  it('readiness stays 200 when the database is unreachable: cached keys still serve', async () => {
    await t.app.get(DataSource).destroy();
    const res = await t.fetch('/health/ready');
    expect(res.status).toBe(200);
    expect((res.json() as { checks: Record<string, unknown> }).checks).not.toHaveProperty('database');
  });

  it('GET /openapi.json documents every route with its schemas, and GET /docs serves the browsable page', async () => {
    const res = await t.fetch('/openapi.json');
    expect(res.status).toBe(200);
    const doc = res.json() as OpenApiDoc;
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/health', '/health/ready', '/monitoring/metrics', '/probe/echo']),
    );
    expect(doc.paths['/health/ready'].get.responses['503']).toBeDefined();
    expect(doc.paths['/monitoring/metrics'].get.responses['401']).toMatchObject({
      content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorEnvelope' } } },
    });
    expect(doc.components.securitySchemes).toMatchObject({
      'metrics-token': { type: 'http', scheme: 'bearer' },
      'metrics-admin-token': { type: 'apiKey', in: 'header', name: 'X-Admin-Token' },
    });
    expect(doc.components.schemas).toHaveProperty('Liveness');
    expect(doc.components.schemas).toHaveProperty('ErrorEnvelope');
    // The request schema comes from the same zod object that validates the body.
    const echo = JSON.stringify(doc.paths['/probe/echo']);
    expect(echo).toContain('"maxLength":50');

    const page = await t.fetch('/docs');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.text).toContain('swagger');
  });
});
