import { DataSource } from 'typeorm';
import { generateApiKey } from '../src/auth/api-key-format';
import {
  AdminApi,
  bootstrapKeyOf,
  type CreatedKey,
  flipOneChar,
  forgeKey,
  KEY_PATTERN,
  publicIdOf,
  KEY_VIEW_FIELDS,
} from './support/api-keys';
import {
  alongside,
  databaseTargets,
  dumpDatabase,
  selectWhere,
  startTestAppWith,
  type TestDatabase,
} from './support/app-with';
import { ChildServer } from './support/child-server';
import { eventually } from './support/eventually';
import { findSamples, parsePrometheusText, type Sample, sampleValue } from './support/prom-text';
import { parseRawResponse, rawHttp } from './support/raw-http';
import type { TestApp } from './support/test-app';

const ISO = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) as string;
const UNAUTHORIZED = 'A valid API key is required: send X-API-Key: <key> or Authorization: Bearer <key>.';
const FAILURES = 'vla_auth_failures_total';

function error(code: string, message: string, requestId: string = expect.any(String) as string) {
  return { error: { code, message, request_id: requestId } };
}

/** GET `path` with `key` in X-API-Key. */
async function get(t: TestApp, path: string, key: string, headers: Record<string, string> = {}) {
  return t.fetch(path, { headers: { 'x-api-key': key, ...headers } });
}

/** The status of an ops call with `key`: 200 while the key works. */
async function opsStatus(t: TestApp, key: string): Promise<number> {
  return (await get(t, '/health/detailed', key)).status;
}

async function scrape(t: TestApp, headers: Record<string, string>): Promise<Sample[]> {
  const res = await t.fetch('/monitoring/metrics', { headers });
  expect(res.status).toBe(200);
  return parsePrometheusText(res.text);
}

function failures(samples: readonly Sample[], reason: string): number {
  return sampleValue(samples, FAILURES, { reason }) ?? 0;
}

/** Headers of a response without the ones that legitimately differ from one response to the next. */
function stableHeaders(headers: Record<string, string>): Record<string, string> {
  const { date: _date, ...rest } = headers;
  return rest;
}

describe.each(databaseTargets().map((target) => [target.name, target] as const))(
  'API keys on %s',
  (_name, target) => {
    /** Every clear key issued against this database, for the leak checks at the end. */
    const issued: string[] = [];
    let db: TestDatabase;
    let t: TestApp;
    let admin: AdminApi;
    let adminKey: string;
    let expiring: CreatedKey;

    const remember = (k: CreatedKey): CreatedKey => {
      issued.push(k.key);
      return k;
    };

    beforeAll(async () => {
      db = target.create();
      // A short TTL: instance B (A7) must see a revocation within it.
      t = await startTestAppWith({ ...db.env, API_KEY_CACHE_TTL_MS: '500' });
      adminKey = bootstrapKeyOf(t);
      issued.push(adminKey);
      admin = new AdminApi(t, adminKey);
      await admin.createTenant('acme');
      // Expires while the tests before A3 run; A3 polls until it has.
      expiring = remember(
        await admin.createKey('acme', ['ops'], { expires_at: new Date(Date.now() + 1500).toISOString() }),
      );
    });
    afterAll(async () => {
      await t?.close();
      await db?.drop();
    });

    describe('bootstrap', () => {
      it('the first start prints exactly one line with an admin key, which works on the admin API', async () => {
        const lines = t.logs.records().filter((r) => 'bootstrap_admin_key' in r);
        expect(lines).toEqual([
          expect.objectContaining({
            level: 'info',
            bootstrap_admin_key: adminKey,
            key_id: publicIdOf(adminKey),
            tenant: 'default',
          }),
        ]);
        expect(adminKey).toMatch(KEY_PATTERN);
        expect(t.logs.lines.filter((l) => l.includes(adminKey))).toHaveLength(1);

        const res = await get(t, '/admin/keys?tenant=default', adminKey);
        expect(res.status).toBe(200);
        expect(res.json()).toEqual([
          {
            id: publicIdOf(adminKey),
            tenant: 'default',
            name: 'bootstrap admin',
            scopes: ['admin'],
            requests_per_minute: null,
            max_concurrent: null,
            created_at: ISO,
            last_used_at: null,
            expires_at: null,
            revoked_at: null,
          },
        ]);
      });

      it('a second start on the same database prints no bootstrap line and creates no key', async () => {
        const keyIds = async () => (await dumpDatabase(t, db)).api_keys.map((row) => row[0]).sort();
        const tenants = async () => (await dumpDatabase(t, db)).tenants.length;
        const [idsBefore, tenantsBefore] = [await keyIds(), await tenants()];
        await alongside(db.env, async (second) => {
          expect(second.logs.records().filter((r) => 'bootstrap_admin_key' in r)).toEqual([]);
          expect(second.logs.text()).not.toContain('bootstrap');
          expect((await get(second, '/admin/keys', adminKey)).status).toBe(200);
        });
        expect([await keyIds(), await tenants()]).toEqual([idsBefore, tenantsBefore]);
      });
    });

    describe('admin API', () => {
      it('creates a tenant (201, stored), refuses a duplicate name (409) and read-only fields (400)', async () => {
        const res = await admin.call('POST', '/admin/tenants', {
          name: 'globex',
          daily_request_quota: 1000,
          requests_per_minute: 60,
        });
        expect(res.status).toBe(201);
        const tenant = res.json() as { id: string };
        expect(tenant).toEqual({
          id: expect.stringMatching(/^[0-9a-f-]{36}$/) as string,
          name: 'globex',
          disabled: false,
          daily_request_quota: 1000,
          requests_per_minute: 60,
          tokens_per_minute: null,
          created_at: ISO,
        });
        const rows = await selectWhere(
          t,
          db,
          'tenants',
          ['name', 'daily_request_quota', 'requests_per_minute'],
          {
            column: 'id',
            value: tenant.id,
          },
        );
        expect(rows).toEqual([{ name: 'globex', daily_request_quota: 1000, requests_per_minute: 60 }]);

        const dup = await admin.call('POST', '/admin/tenants', { name: 'globex' });
        expect(dup.status).toBe(409);
        expect(dup.json()).toEqual(error('conflict', 'A tenant named globex already exists.'));

        for (const field of ['id', 'name', 'created_at', 'revoked_at']) {
          const patch = await admin.call('PATCH', `/admin/tenants/${tenant.id}`, { [field]: 'x' });
          expect(patch.status).toBe(400);
          expect(patch.json()).toEqual({
            error: {
              code: 'invalid_request',
              message: expect.any(String) as string,
              request_id: expect.any(String) as string,
              fields: [{ path: '', message: expect.stringContaining(field) as string }],
            },
          });
        }
        const listed = await admin.call('GET', '/admin/tenants');
        expect(listed.json()).toContainEqual({ ...tenant });
      });

      it('tokens_per_minute round-trips through POST, PATCH and GET /admin/tenants and is stored', async () => {
        const created = await admin.call('POST', '/admin/tenants', {
          name: 'tokens',
          tokens_per_minute: 50_000,
        });
        expect(created.status).toBe(201);
        const tenant = created.json() as { id: string; tokens_per_minute: number | null };
        expect(tenant).toMatchObject({
          name: 'tokens',
          tokens_per_minute: 50_000,
          requests_per_minute: null,
        });
        const stored = async () =>
          selectWhere(t, db, 'tenants', ['tokens_per_minute'], { column: 'id', value: tenant.id });
        expect(await stored()).toEqual([{ tokens_per_minute: 50_000 }]);

        const listed = async () =>
          ((await admin.call('GET', '/admin/tenants')).json() as { id: string }[]).find(
            (x) => x.id === tenant.id,
          );
        expect(await listed()).toEqual(tenant);

        // A PATCH of another field leaves it alone; then it changes, then null clears it.
        const other = await admin.call('PATCH', `/admin/tenants/${tenant.id}`, { requests_per_minute: 30 });
        expect(other.status).toBe(200);
        expect(other.json()).toEqual({ ...tenant, requests_per_minute: 30 });
        const patched = await admin.call('PATCH', `/admin/tenants/${tenant.id}`, {
          tokens_per_minute: 1_000_000_000,
        });
        expect(patched.status).toBe(200);
        expect(patched.json()).toEqual({
          ...tenant,
          requests_per_minute: 30,
          tokens_per_minute: 1_000_000_000,
        });
        expect(await listed()).toEqual(patched.json());
        expect(await stored()).toEqual([{ tokens_per_minute: 1_000_000_000 }]);

        const cleared = await admin.call('PATCH', `/admin/tenants/${tenant.id}`, { tokens_per_minute: null });
        expect(cleared.status).toBe(200);
        expect(cleared.json()).toMatchObject({ tokens_per_minute: null, requests_per_minute: 30 });
        expect(await stored()).toEqual([{ tokens_per_minute: null }]);

        // An empty PATCH changes nothing and answers the tenant.
        const empty = await admin.call('PATCH', `/admin/tenants/${tenant.id}`, {});
        expect(empty.status).toBe(200);
        expect(empty.json()).toEqual(cleared.json());
      });

      it('refuses a tokens_per_minute that is not an integer from 1 to 1e9 with 400 invalid_request', async () => {
        const tenant = await admin.createTenant('tokens-invalid', { tokens_per_minute: 100 });
        for (const value of [0, -1, 1.5, 'x', 1_000_000_001, true]) {
          const created = await admin.call('POST', '/admin/tenants', {
            name: 'tokens-never',
            tokens_per_minute: value,
          });
          const patched = await admin.call('PATCH', `/admin/tenants/${tenant.id}`, {
            tokens_per_minute: value,
          });
          for (const [label, res] of [
            ['POST', created],
            ['PATCH', patched],
          ] as const) {
            expect([label, value, res.status, res.json()]).toEqual([
              label,
              value,
              400,
              {
                error: {
                  code: 'invalid_request',
                  message: expect.any(String) as string,
                  request_id: expect.any(String) as string,
                  fields: [{ path: 'tokens_per_minute', message: expect.any(String) as string }],
                },
              },
            ]);
          }
        }
        const tenants = (await admin.call('GET', '/admin/tenants')).json() as { name: string }[];
        expect(tenants.map((x) => x.name)).not.toContain('tokens-never');
        expect(tenants).toContainEqual(expect.objectContaining({ id: tenant.id, tokens_per_minute: 100 }));
      });

      it("PATCH /admin/keys/:id changes a key's limits only: null clears them, anything else is a 400", async () => {
        await admin.createTenant('patch-keys');
        const key = await admin.createKey('patch-keys', ['inference'], { requests_per_minute: 10 });
        const changed = await admin.call('PATCH', `/admin/keys/${key.id}`, {
          requests_per_minute: 600,
          max_concurrent: 3,
        });
        expect(changed.status).toBe(200);
        expect(changed.json()).toMatchObject({ id: key.id, requests_per_minute: 600, max_concurrent: 3 });
        expect(changed.json()).not.toHaveProperty('key');
        const cleared = await admin.call('PATCH', `/admin/keys/${key.id}`, { max_concurrent: null });
        expect(cleared.json()).toMatchObject({ requests_per_minute: 600, max_concurrent: null });
        for (const body of [
          { scopes: ['admin'] },
          { expires_at: null },
          { max_concurrent: 0 },
          { requests_per_minute: 'x' },
        ]) {
          const refused = await admin.call('PATCH', `/admin/keys/${key.id}`, body);
          expect(refused.status).toBe(400);
          expect((refused.json() as { error: { code: string } }).error.code).toBe('invalid_request');
        }
        expect((await admin.call('PATCH', '/admin/keys/nosuchkey1234', { max_concurrent: 2 })).status).toBe(
          404,
        );
        const listed = (await admin.call('GET', '/admin/keys?tenant=patch-keys')).json() as {
          id: string;
          scopes: string[];
        }[];
        expect(listed).toEqual([
          expect.objectContaining({ id: key.id, scopes: ['inference'], requests_per_minute: 600 }),
        ]);
      });

      it('creates a key: 201 with its id and the clear key once; the database holds its hash only', async () => {
        const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
        const res = await admin.call('POST', '/admin/keys', {
          tenant: 'globex',
          name: 'robot fleet',
          scopes: ['inference', 'ops'],
          requests_per_minute: 120,
          max_concurrent: 4,
          expires_at: expiresAt,
        });
        expect(res.status).toBe(201);
        const created = remember(res.json() as CreatedKey);
        expect(created).toEqual({
          id: expect.stringMatching(/^[0-9A-Za-z]{12}$/) as string,
          key: expect.stringMatching(KEY_PATTERN) as string,
          tenant: 'globex',
          name: 'robot fleet',
          scopes: ['inference', 'ops'],
          requests_per_minute: 120,
          max_concurrent: 4,
          created_at: ISO,
          last_used_at: null,
          expires_at: expiresAt,
          revoked_at: null,
        });
        expect(publicIdOf(created.key)).toBe(created.id);
        expect(await opsStatus(t, created.key)).toBe(200);

        const rows = await selectWhere(t, db, 'api_keys', ['id', 'secret_hash'], {
          column: 'id',
          value: created.id,
        });
        expect(rows).toEqual([
          { id: created.id, secret_hash: expect.stringMatching(/^[0-9a-f]{64}$/) as string },
        ]);
      });

      it('lists keys without the key, its secret or any hash', async () => {
        const res = await admin.call('GET', '/admin/keys');
        expect(res.status).toBe(200);
        const keys = res.json() as Record<string, unknown>[];
        expect(keys.length).toBeGreaterThanOrEqual(3);
        for (const k of keys) {
          expect(Object.keys(k).sort()).toEqual(KEY_VIEW_FIELDS);
          for (const value of Object.values(k)) expect(String(value)).not.toMatch(/[0-9a-f]{32}/i);
        }
        for (const key of issued) {
          expect(res.text).not.toContain(key);
          expect(res.text).not.toContain(key.slice(17, 41));
        }
        const globex = await admin.call('GET', '/admin/keys?tenant=globex');
        expect((globex.json() as { name: string }[]).map((k) => k.name)).toEqual(['robot fleet']);
      });

      it('answers 404 for an unknown tenant or key, and 400 for an unknown field', async () => {
        const created = await admin.call('POST', '/admin/keys', {
          tenant: 'nope',
          name: 'n',
          scopes: ['ops'],
        });
        expect(created.status).toBe(404);
        expect(created.json()).toEqual(error('not_found', 'No tenant named nope.'));
        const listed = await admin.call('GET', '/admin/keys?tenant=nope');
        expect(listed.status).toBe(404);
        expect(listed.json()).toEqual(error('not_found', 'No tenant named nope.'));
        const revoked = await admin.call('DELETE', '/admin/keys/NoSuchKey123');
        expect(revoked.status).toBe(404);
        expect(revoked.json()).toEqual(error('not_found', 'No key with id NoSuchKey123.'));
        const unknownField = await admin.call('POST', '/admin/keys', {
          tenant: 'acme',
          name: 'n',
          scopes: ['ops'],
          secret_hash: 'x',
        });
        expect(unknownField.status).toBe(400);
        expect((unknownField.json() as { error: { code: string } }).error.code).toBe('invalid_request');
      });

      it('revokes a key: 200 with revoked_at, stored, and the key gets 401 at once', async () => {
        const k = remember(await admin.createKey('acme', ['ops']));
        expect(await opsStatus(t, k.key)).toBe(200);
        const res = await admin.call('DELETE', `/admin/keys/${k.id}`);
        expect(res.status).toBe(200);
        const { key: _key, last_used_at: _unused, ...view } = k;
        const { last_used_at: _written, ...revokedView } = res.json() as Record<string, unknown>;
        expect(revokedView).toEqual({ ...view, revoked_at: ISO });
        const rows = await selectWhere(t, db, 'api_keys', ['revoked_at'], { column: 'id', value: k.id });
        expect(rows[0]?.revoked_at).not.toBeNull();
        const refused = await get(t, '/health/detailed', k.key);
        expect(refused.status).toBe(401);
        expect(refused.json()).toEqual(error('unauthorized', UNAUTHORIZED));
        // Idempotent.
        expect((await admin.call('DELETE', `/admin/keys/${k.id}`)).status).toBe(200);
      });
    });

    describe('A3: every bad credential gets the same 401', () => {
      it('missing, malformed, bad checksum, unknown id, wrong secret, revoked, expired, 10 KB, two keys', async () => {
        const real = remember(await admin.createKey('acme', ['ops']));
        const other = remember(await admin.createKey('acme', ['ops']));
        const revoked = remember(await admin.createKey('acme', ['ops']));
        expect(await opsStatus(t, real.key)).toBe(200);
        expect(await opsStatus(t, revoked.key)).toBe(200);
        await admin.revoke(revoked.id);
        await eventually(async () => (await opsStatus(t, expiring.key)) === 401, 10_000);

        const before = await scrape(t, { 'x-api-key': adminKey });
        const cases: [string, Record<string, string>][] = [
          ['missing', {}],
          ['malformed', { 'x-api-key': 'not-a-key' }],
          ['bad checksum', { 'x-api-key': flipOneChar(real.key) }],
          ['unknown id', { 'x-api-key': generateApiKey().key }],
          ['wrong secret', { 'x-api-key': forgeKey(real.id) }],
          ['revoked', { 'x-api-key': revoked.key }],
          ['expired', { authorization: `Bearer ${expiring.key}` }],
          ['10 KB header', { 'x-api-key': 'k'.repeat(10_240) }],
          ['two different keys', { 'x-api-key': real.key, authorization: `Bearer ${other.key}` }],
        ];
        const answers = [];
        for (const [label, headers] of cases) {
          const res = await t.fetch('/admin/keys', { headers: { 'x-request-id': 'a3-same-id', ...headers } });
          answers.push({ label, status: res.status, body: res.text, headers: stableHeaders(res.headers) });
        }
        const expected = {
          status: 401,
          body: JSON.stringify(error('unauthorized', UNAUTHORIZED, 'a3-same-id')),
          headers: stableHeaders(
            (await t.fetch('/admin/keys', { headers: { 'x-request-id': 'a3-same-id' } })).headers,
          ),
        };
        expect(expected.headers['www-authenticate']).toBe('Bearer');
        expect(answers).toEqual(cases.map(([label]) => ({ label, ...expected })));

        // The reasons are counted (internally only); the extra missing one is the reference request.
        const after = await scrape(t, { 'x-api-key': adminKey });
        const moved = Object.fromEntries(
          ['missing', 'malformed', 'unknown', 'wrong_secret', 'revoked', 'expired', 'conflicting'].map(
            (r) => [r, failures(after, r) - failures(before, r)],
          ),
        );
        expect(moved).toEqual({
          missing: 2,
          malformed: 3,
          unknown: 1,
          wrong_secret: 1,
          revoked: 1,
          expired: 1,
          conflicting: 1,
        });
        for (const s of findSamples(after, FAILURES))
          for (const key of issued) expect(s.labels.reason).not.toContain(key.slice(4, 16));
      });
    });

    describe('A7: revocation reaches another instance', () => {
      it('a key revoked through A fails on A at once and on B within the cache TTL', async () => {
        const k = remember(await admin.createKey('acme', ['ops']));
        await alongside({ ...db.env, BOOTSTRAP_KEY: 'off', API_KEY_CACHE_TTL_MS: '500' }, async (b) => {
          expect(await opsStatus(t, k.key)).toBe(200);
          expect(await opsStatus(b, k.key)).toBe(200);
          await admin.revoke(k.id);
          expect(await opsStatus(t, k.key)).toBe(401);
          await eventually(async () => (await opsStatus(b, k.key)) === 401, 500 + 5000);
          const res = await get(b, '/health/detailed', k.key);
          expect(res.status).toBe(401);
          expect(res.json()).toEqual(error('unauthorized', UNAUTHORIZED));
        });
      });
    });

    // These fail until the source is fixed: a check-then-insert without a unique-violation mapping, and a
    // bootstrap that is not atomic across replicas. See the report for file, line and fix.
    describe('concurrent creation is atomic', () => {
      it('duplicate tenant names sent at once: one 201, every other one 409 conflict (never 500)', async () => {
        for (let round = 0; round < 5; round++) {
          const name = `race-${round}`;
          const answers = await Promise.all(
            [1, 2, 3, 4].map(() => admin.call('POST', '/admin/tenants', { name })),
          );
          expect(answers.map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
          for (const r of answers.filter((a) => a.status === 409))
            expect(r.json()).toEqual(error('conflict', `A tenant named ${name} already exists.`));
        }
      });

      it('replicas starting together on a fresh database: all start, one bootstrap key, printed once', async () => {
        const fresh = target.create();
        try {
          // Migrated first, so that only the bootstrap races.
          await (await startTestAppWith({ ...fresh.env, BOOTSTRAP_KEY: 'off' })).close();
          const replicas = [0, 1, 2].map(() =>
            ChildServer.spawn('apps/api/test/support/serve-with-probes.ts', { ...fresh.env }),
          );
          try {
            const started = await Promise.allSettled(replicas.map((r) => r.waitUntilListening()));
            const outcome = started.map((s) =>
              s.status === 'fulfilled' ? 'listening' : String(s.reason).slice(0, 200),
            );
            expect(outcome).toEqual(['listening', 'listening', 'listening']);
            const printed = replicas.flatMap((r) => r.records().filter((l) => 'bootstrap_admin_key' in l));
            expect(printed).toHaveLength(1);
          } finally {
            await Promise.all(replicas.map((r) => r.dispose()));
          }
          const check = await startTestAppWith({ ...fresh.env, BOOTSTRAP_KEY: 'off' });
          try {
            const dump = await dumpDatabase(check, fresh);
            expect([dump.api_keys.length, dump.tenants.length]).toEqual([1, 1]);
          } finally {
            await check.close();
          }
        } finally {
          await fresh.drop();
        }
      });
    });

    describe('no clear key is stored or logged', () => {
      it('no column of any table holds an issued key or its secret', async () => {
        const dump = await dumpDatabase(t, db);
        expect(Object.keys(dump)).toEqual(expect.arrayContaining(['api_keys', 'tenants']));
        const ids = dump.api_keys.flat();
        for (const key of issued) expect(ids).toContain(publicIdOf(key));
        const values = Object.values(dump).flat(2);
        for (const key of issued)
          for (const part of [key, key.slice(17), key.slice(17, 41)])
            expect(values.filter((v) => v.includes(part))).toEqual([]);
      });

      it('only the bootstrap line ever logged a key', () => {
        const leaks = issued.flatMap((key) =>
          t.logs.lines.filter((l) => l.includes(key.slice(17, 41))).map((l) => ({ key, l })),
        );
        expect(leaks).toEqual([
          { key: adminKey, l: expect.stringContaining('bootstrap_admin_key') as string },
        ]);
      });
    });
  },
);

describe('BOOTSTRAP_KEY=off', () => {
  it('creates no tenant and no key, and prints nothing about a key', async () => {
    const t = await startTestAppWith({ BOOTSTRAP_KEY: 'off' });
    try {
      expect(t.logs.records().filter((r) => 'bootstrap_admin_key' in r)).toEqual([]);
      const ds = t.app.get(DataSource);
      expect(await ds.query('SELECT COUNT(*) AS n FROM api_keys')).toEqual([{ n: 0 }]);
      expect(await ds.query('SELECT COUNT(*) AS n FROM tenants')).toEqual([{ n: 0 }]);
    } finally {
      await t.close();
    }
  });
});

describe('scopes, tenants and the metrics endpoint (SQLite)', () => {
  const METRICS_TOKEN = 'auth-e2e-metrics-token-0001';
  let t: TestApp;
  let admin: AdminApi;
  let inference: CreatedKey;
  let ops: CreatedKey;
  const byToken = { authorization: `Bearer ${METRICS_TOKEN}` };

  beforeAll(async () => {
    t = await startTestAppWith({ METRICS_TOKEN });
    admin = new AdminApi(t, bootstrapKeyOf(t));
    await admin.createTenant('acme');
    inference = await admin.createKey('acme', ['inference']);
    ops = await admin.createKey('acme', ['ops']);
  });
  afterAll(async () => {
    await t?.close();
  });

  describe('403 for a valid key without the scope (A8)', () => {
    it('an inference key on the admin API and /health/detailed', async () => {
      for (const [path, scope] of [
        ['/admin/keys', 'admin'],
        ['/admin/tenants', 'admin'],
        ['/health/detailed', 'ops'],
      ]) {
        const res = await get(t, path, inference.key, { 'x-request-id': 'scope-check' });
        expect([path, res.status, res.json()]).toEqual([
          path,
          403,
          error('forbidden', `This key lacks the ${scope} scope.`, 'scope-check'),
        ]);
      }
    });

    it('an ops key on every admin route', async () => {
      const calls: [string, string, unknown][] = [
        ['GET', '/admin/keys', undefined],
        ['GET', '/admin/tenants', undefined],
        ['POST', '/admin/tenants', { name: 'by-ops' }],
        ['POST', '/admin/keys', { tenant: 'acme', name: 'by ops', scopes: ['admin'] }],
        ['PATCH', `/admin/tenants/x`, { disabled: true }],
        ['DELETE', `/admin/keys/${inference.id}`, undefined],
      ];
      for (const [method, path, body] of calls) {
        const res = await new AdminApi(t, ops.key).call(method, path, body);
        expect([method, path, res.status, res.json()]).toEqual([
          method,
          path,
          403,
          error('forbidden', 'This key lacks the admin scope.'),
        ]);
      }
      expect((await get(t, '/health/detailed', inference.key)).status).toBe(403);
      expect((await admin.call('GET', `/admin/keys?tenant=acme`)).json()).toContainEqual(
        expect.objectContaining({ id: inference.id, revoked_at: null }),
      );
    });

    it('a disabled tenant: 403 even for its admin key, until it is enabled again', async () => {
      const tenant = await admin.createTenant('suspended');
      const tenantAdmin = await admin.createKey('suspended', ['admin']);
      expect((await get(t, '/admin/keys', tenantAdmin.key)).status).toBe(200);
      await admin.setDisabled(tenant.id, true);
      for (const path of ['/admin/keys', '/health/detailed']) {
        const res = await get(t, path, tenantAdmin.key);
        expect([path, res.status, res.json()]).toEqual([
          path,
          403,
          error('forbidden', 'This tenant is disabled.'),
        ]);
      }
      await admin.setDisabled(tenant.id, false);
      expect((await get(t, '/admin/keys', tenantAdmin.key)).status).toBe(200);
    });
  });

  describe('A2: path and Host confusion never reaches an admin handler', () => {
    const raw = async (path: string, headers: string[] = []) => {
      const host = headers.some((h) => h.startsWith('Host:')) ? [] : ['Host: 127.0.0.1'];
      const head = [`GET ${path} HTTP/1.1`, ...host, ...headers, `X-API-Key: ${inference.key}`];
      return parseRawResponse(await rawHttp(t.url, [...head, 'Connection: close', '', ''].join('\r\n')));
    };

    it.each([
      ['Host: admin.evil', '/admin/keys', ['Host: admin.evil']],
      ['double slash', '//admin/keys', []],
      ['upper case', '/ADMIN/keys', []],
      ['trailing slash', '/admin/keys/', []],
      ['dot segments', '/health/../admin/keys', []],
      ['encoded slash', '/admin%2Fkeys', []],
      ['X-Original-URL on a 404', '/nothing-here', ['X-Original-URL: /admin/keys']],
      ['X-Original-URL on an ops route', '/health/detailed', ['X-Original-URL: /admin/keys']],
      ['X-Rewrite-URL', '/nothing-here', ['X-Rewrite-URL: /admin/keys']],
      ['X-Forwarded-Prefix', '/keys', ['X-Forwarded-Prefix: /admin']],
    ])('%s: 401, 403 or 404 with an error body', async (_label, path, headers) => {
      const res = await raw(path, headers);
      expect([401, 403, 404]).toContain(res.status);
      const body = JSON.parse(res.body) as { error: { code: string } };
      expect(['unauthorized', 'forbidden', 'not_found']).toContain(body.error.code);
      expect(Object.keys(body)).toEqual(['error']);
    });

    it('X-Forwarded-Prefix on a public route serves that route, not the admin one', async () => {
      const res = await raw('/health/ready', ['X-Forwarded-Prefix: /admin/keys']);
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ status: 'ok' });
    });

    it('counts the refusals as reason="scope"', async () => {
      const before = failures(await scrape(t, byToken), 'scope');
      const res = await raw('/ADMIN/keys');
      expect(res.status).toBe(403);
      expect(failures(await scrape(t, byToken), 'scope') - before).toBe(1);
    });
  });

  describe('A4: a key in the URL', () => {
    it('GET /admin/keys?api_key=<valid admin key> is 401 and the key is logged nowhere', async () => {
      const key = (await admin.createKey('acme', ['admin'])).key;
      for (const path of [`/admin/keys?api_key=${key}`, `/admin/keys?key=${key}&x-api-key=${key}`]) {
        const res = await t.fetch(path, { headers: { 'x-request-id': 'a4' } });
        expect(res.status).toBe(401);
        expect(res.json()).toEqual(error('unauthorized', UNAUTHORIZED, 'a4'));
      }
      expect(t.logs.accessLines().filter((r) => r.request_id === 'a4')).toEqual([
        expect.objectContaining({ route: '/admin/keys', status: 401 }),
        expect.objectContaining({ route: '/admin/keys', status: 401 }),
      ]);
      expect(t.logs.lines.filter((l) => l.includes(key.slice(17, 41)))).toEqual([]);
      expect((await t.fetch('/monitoring/metrics', { headers: byToken })).text).not.toContain(
        key.slice(17, 41),
      );
    });
  });

  describe('A6: /monitoring/metrics', () => {
    it('200 for the token and an ops key, 403 for an inference key', async () => {
      expect((await t.fetch('/monitoring/metrics', { headers: byToken })).status).toBe(200);
      const opsHeaders: Record<string, string>[] = [
        { 'x-api-key': ops.key },
        { authorization: `Bearer ${ops.key}` },
      ];
      for (const headers of opsHeaders) {
        const res = await t.fetch('/monitoring/metrics', { headers });
        expect(res.status).toBe(200);
        expect(findSamples(parsePrometheusText(res.text), FAILURES).length).toBeGreaterThan(0);
      }
      const res = await t.fetch('/monitoring/metrics', {
        headers: { 'x-api-key': inference.key, 'x-request-id': 'a6' },
      });
      expect(res.status).toBe(403);
      expect(res.json()).toEqual(error('forbidden', 'This key lacks the ops scope.', 'a6'));
    });

    it('no credential, wrong tokens and bad keys all get the same 401', async () => {
      const wrongSameLength = METRICS_TOKEN.replace(/.$/, 'X');
      const cases: Record<string, string>[] = [
        {},
        { authorization: `Bearer ${wrongSameLength}` },
        { authorization: 'Bearer short' },
        { 'x-admin-token': wrongSameLength },
        { 'x-api-key': generateApiKey().key },
        { 'x-api-key': 'garbage' },
      ];
      const answers: { status: number; body: string; headers: Record<string, string> }[] = [];
      for (const headers of cases) {
        const res = await t.fetch('/monitoring/metrics', {
          headers: { 'x-request-id': 'a6-401', ...headers },
        });
        answers.push({ status: res.status, body: res.text, headers: stableHeaders(res.headers) });
      }
      expect(answers[0].status).toBe(401);
      expect(JSON.parse(answers[0].body)).toEqual({
        error: { code: 'unauthorized', message: expect.any(String) as string, request_id: 'a6-401' },
      });
      expect(answers).toEqual(cases.map(() => answers[0]));
    });
  });

  describe('tenant metrics', () => {
    it('counts authenticated requests per tenant and drops a disabled tenant at once', async () => {
      const globex = await admin.createTenant('globex');
      const globexOps = await admin.createKey('globex', ['ops']);
      const perTenant = async () =>
        Object.fromEntries(
          findSamples(await scrape(t, byToken), 'vla_customer_requests_total').map((s) => [
            s.labels.tenant,
            s.value,
          ]),
        );
      const start = await perTenant();
      for (let i = 0; i < 3; i++) expect(await opsStatus(t, ops.key)).toBe(200);
      for (let i = 0; i < 2; i++) expect(await opsStatus(t, globexOps.key)).toBe(200);
      // Refused requests are not customer requests.
      expect(await opsStatus(t, inference.key)).toBe(403);

      const counted = await perTenant();
      expect(counted.acme - (start.acme ?? 0)).toBe(3);
      expect(counted.globex).toBe(2);

      await admin.setDisabled(globex.id, true);
      const { globex: _gone, ...rest } = counted;
      const afterDisable = await perTenant();
      // The PATCH itself was a request of tenant "default" (the bootstrap admin).
      expect(afterDisable).toEqual({ ...rest, default: rest.default + 1 });
      expect(await opsStatus(t, globexOps.key)).toBe(403);
      expect(await perTenant()).toEqual(afterDisable);
    });
  });

  describe('/health/detailed', () => {
    it('with an ops key: every indicator', async () => {
      const res = await get(t, '/health/detailed', ops.key);
      expect(res.status).toBe(200);
      expect(res.json()).toEqual({
        status: 'ok',
        checks: {
          lifecycle: { status: 'up', phase: 'ready' },
          database: { status: 'up', type: 'better-sqlite3' },
          redis: { status: 'up', configured: false },
          rate_limit: { status: 'up', backend: 'memory', failure_mode: 'local', redis_circuit: 'none' },
          models: {
            status: 'up',
            ready: ['demo-policy', 'demo-policy-slow'],
            unavailable: [],
            stalled: [],
          },
          // No GPU on this machine: telemetry reports itself off, and up.
          gpu: expect.objectContaining({ status: 'up', telemetry: 'disabled', devices: 0 }) as unknown,
        },
      });
    });
  });
});

describe('database outage (SQLite)', () => {
  it('a verified key keeps working from the cache; a key that cannot be checked gets 503, not 401', async () => {
    const t = await startTestAppWith({ API_KEY_CACHE_TTL_MS: '60000' });
    try {
      const admin = new AdminApi(t, bootstrapKeyOf(t));
      await admin.createTenant('acme');
      const verified = await admin.createKey('acme', ['ops']);
      const unseen = await admin.createKey('acme', ['ops']);
      const inference = await admin.createKey('acme', ['inference']);
      expect(await opsStatus(t, verified.key)).toBe(200);
      expect(await opsStatus(t, inference.key)).toBe(403);

      await t.app.get(DataSource).destroy();

      const res = await get(t, '/health/detailed', verified.key);
      expect(res.status).toBe(200);
      expect(res.json()).toEqual({
        status: 'error',
        checks: {
          lifecycle: { status: 'up', phase: 'ready' },
          database: expect.objectContaining({ status: 'down' }) as unknown,
          redis: { status: 'up', configured: false },
          rate_limit: { status: 'up', backend: 'memory', failure_mode: 'local', redis_circuit: 'none' },
          models: {
            status: 'up',
            ready: ['demo-policy', 'demo-policy-slow'],
            unavailable: [],
            stalled: [],
          },
          // No GPU on this machine: telemetry reports itself off, and up.
          gpu: expect.objectContaining({ status: 'up', telemetry: 'disabled', devices: 0 }) as unknown,
        },
      });
      // Still the scope of the cached key: no more than it had.
      expect(await opsStatus(t, inference.key)).toBe(403);

      for (const key of [unseen.key, generateApiKey().key]) {
        const refused = await get(t, '/health/detailed', key, { 'x-request-id': 'outage' });
        expect(refused.status).toBe(503);
        expect(refused.headers['retry-after']).toBe('5');
        expect(refused.json()).toEqual(
          error(
            'dependency_unavailable',
            'The key could not be checked: the database is unavailable.',
            'outage',
          ),
        );
      }
      // Garbage never needed the database: still the plain 401.
      expect((await get(t, '/health/detailed', 'garbage')).status).toBe(401);
    } finally {
      await t.close();
    }
  });

  it('a cached key past its TTL is still served from the stale entry while the database is down', async () => {
    const t = await startTestAppWith({ API_KEY_CACHE_TTL_MS: '200' });
    try {
      const admin = new AdminApi(t, bootstrapKeyOf(t));
      await admin.createTenant('acme');
      const stale = await admin.createKey('acme', ['ops']);
      const witness = await admin.createKey('acme', ['ops']);
      expect(await opsStatus(t, stale.key)).toBe(200);
      expect(await opsStatus(t, witness.key)).toBe(200);
      // Revoked behind the app's back (no event): the witness fails only once its cache entry, younger than
      // the stale key's, has expired and the database was asked again.
      const ds = t.app.get(DataSource);
      await ds.query('UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE id = ?', [witness.id]);
      await eventually(async () => (await opsStatus(t, witness.key)) === 401, 5000);

      await ds.destroy();
      expect(await opsStatus(t, stale.key)).toBe(200);
      // The revoked witness stays refused: its stale row says revoked.
      expect(await opsStatus(t, witness.key)).toBe(401);
    } finally {
      await t.close();
    }
  });
});
