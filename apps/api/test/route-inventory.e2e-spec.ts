import { Controller, Get, Module, Param, Post } from '@nestjs/common';
import { Public } from '../src/auth/auth.decorators';
import { AdminApi, bootstrapKeyOf } from './support/api-keys';
import { startTestAppWith } from './support/app-with';
import { ProbeModule } from './support/probe.module';
import { parsePrometheusText, sampleValue } from './support/prom-text';
import type { TestApp } from './support/test-app';

const METRICS_TOKEN = 'route-inventory-metrics-token-01';

/**
 * The only routes reachable without a key (A1). Adding a public route means adding it here, on purpose.
 * The /docs entries are what @nestjs/swagger registers for the browsable page (its init script twice, the
 * second under a doubled prefix); its static assets are middleware, not routes.
 */
const PUBLIC_ROUTES = [
  'GET /health',
  'GET /health/ready',
  'GET /openapi.json',
  'GET /docs',
  'GET /docs/',
  'GET /docs/index.html',
  'GET /docs/LICENSE',
  'GET /docs/swagger-ui-init.js',
  'GET /docs/docs/swagger-ui-init.js',
  // The test-only probe routes, @Public on purpose.
  'POST /probe/echo',
  'GET /probe/items/:id',
  'GET /probe/boom',
  'GET /probe/slow',
].sort();

interface RouteLayer {
  route?: { path?: unknown; methods?: Record<string, boolean> };
}

/** Every `METHOD /path` the Express router holds (HEAD added for GET routes, which Express serves too). */
function registeredRoutes(t: TestApp): string[] {
  const stack = (t.app.getHttpAdapter().getInstance() as { router: { stack: RouteLayer[] } }).router.stack;
  const routes = new Set<string>();
  for (const layer of stack) {
    const path = layer.route?.path;
    if (typeof path !== 'string') continue;
    for (const [method, on] of Object.entries(layer.route?.methods ?? {})) {
      if (!on) continue;
      if (method === '_all') throw new Error(`${path} answers every method: list them explicitly`);
      routes.add(`${method.toUpperCase()} ${path}`);
      if (method === 'get') routes.add(`HEAD ${path}`);
    }
  }
  return [...routes].sort();
}

/** `:param` and `*splat` segments replaced by a dummy value. */
function concrete(path: string): string {
  return path.replace(/[:*][A-Za-z0-9_]+/g, 'dummy1');
}

/** Calls every route with no credentials; returns the ones that did not answer 401, by status. */
async function reachableWithoutKey(t: TestApp): Promise<{ open: string[]; refused: number }> {
  const open: string[] = [];
  let refused = 0;
  for (const route of registeredRoutes(t)) {
    const [method, path] = route.split(' ');
    const res = await t.fetch(concrete(path), {
      method,
      ...(method === 'GET' || method === 'HEAD' || method === 'DELETE'
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: '{}' }),
    });
    if (res.status === 401) refused++;
    else open.push(route);
  }
  return { open: open.sort(), refused };
}

@Controller('test-undecorated')
class UndecoratedController {
  @Get()
  list(): { ok: true } {
    return { ok: true };
  }

  @Post(':id')
  act(@Param('id') id: string): { id: string } {
    return { id };
  }
}

@Module({ controllers: [UndecoratedController] })
class UndecoratedModule {}

@Public()
@Controller('sneaky')
class SneakyPublicController {
  @Get()
  open(): { open: true } {
    return { open: true };
  }
}

@Module({ controllers: [SneakyPublicController] })
class SneakyPublicModule {}

describe('A1: deny by default', () => {
  let t: TestApp;
  let admin: AdminApi;

  beforeAll(async () => {
    t = await startTestAppWith({ METRICS_TOKEN }, [ProbeModule, UndecoratedModule]);
    admin = new AdminApi(t, bootstrapKeyOf(t));
  });
  afterAll(async () => {
    await t?.close();
  });

  it('every registered route answers 401 without a key, except the public list', async () => {
    const routes = registeredRoutes(t);
    // The inventory found the routes that matter (a broken walk would pass vacuously).
    expect(routes).toEqual(
      expect.arrayContaining([
        'GET /admin/keys',
        'POST /admin/keys',
        'DELETE /admin/keys/:id',
        'PATCH /admin/tenants/:id',
        'GET /health/detailed',
        'GET /monitoring/metrics',
        'GET /test-undecorated',
        'POST /test-undecorated/:id',
        ...PUBLIC_ROUTES,
      ]),
    );

    const before = parsePrometheusText(
      (await t.fetch('/monitoring/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text,
    );
    const { open, refused } = await reachableWithoutKey(t);
    const openWithHead = PUBLIC_ROUTES.flatMap((r) =>
      r.startsWith('GET ') ? [r, r.replace(/^GET/, 'HEAD')] : [r],
    ).sort();
    expect(open).toEqual(openWithHead);

    // Each refusal by the API-key guard is counted as reason="missing" (the metrics endpoint has its own).
    const after = parsePrometheusText(
      (await t.fetch('/monitoring/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text,
    );
    const missing = (s: typeof before) =>
      sampleValue(s, 'vla_auth_failures_total', { reason: 'missing' }) ?? 0;
    const metricsRoutes = routes.filter((r) => r.endsWith(' /monitoring/metrics')).length;
    expect(missing(after) - missing(before)).toBe(refused - metricsRoutes);
  });

  it('/monitoring/metrics is 401 without the token', async () => {
    const res = await t.fetch('/monitoring/metrics');
    expect(res.status).toBe(401);
    expect((res.json() as { error: { code: string } }).error.code).toBe('unauthorized');
  });

  it('a controller without any auth decorator needs an admin key', async () => {
    await admin.createTenant('acme');
    const inference = await admin.createKey('acme', ['inference']);
    const ops = await admin.createKey('acme', ['ops']);
    const tenantAdmin = await admin.createKey('acme', ['admin']);
    const call = (method: string, path: string, key?: string) =>
      t.fetch(path, { method, headers: key === undefined ? {} : { 'x-api-key': key } });

    for (const [method, path] of [
      ['GET', '/test-undecorated'],
      ['POST', '/test-undecorated/7'],
    ]) {
      const anonymous = await call(method, path);
      expect([method, path, anonymous.status]).toEqual([method, path, 401]);
      for (const key of [inference.key, ops.key]) {
        const res = await call(method, path, key);
        expect([method, path, res.status, res.json()]).toEqual([
          method,
          path,
          403,
          {
            error: {
              code: 'forbidden',
              message: 'This key lacks the admin scope.',
              request_id: expect.any(String) as string,
            },
          },
        ]);
      }
    }
    const allowed = await call('POST', '/test-undecorated/7', tenantAdmin.key);
    expect([allowed.status, allowed.json()]).toEqual([201, { id: '7' }]);
  });
});

describe('A1: the inventory catches a new public route', () => {
  it('reports a @Public route missing from the allowlist', async () => {
    const t = await startTestAppWith({ METRICS_TOKEN }, [ProbeModule, SneakyPublicModule]);
    try {
      const { open } = await reachableWithoutKey(t);
      const unexpected = open.filter((r) => !PUBLIC_ROUTES.includes(r.replace(/^HEAD/, 'GET')));
      expect(unexpected).toEqual(['GET /sneaky', 'HEAD /sneaky']);
    } finally {
      await t.close();
    }
  });
});
