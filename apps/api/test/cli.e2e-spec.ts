import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { API_KEY_PATTERN } from '../src/auth/api-key-format';
import type { CreatedKey, KeyView, TenantView } from '../src/auth/access.schemas';
import { KEY_VIEW_FIELDS } from './support/api-keys';
import { eventually } from './support/eventually';
import { postgresTestUrl, uniqueSchema } from './support/services';
import { startTestApp, type TestApp } from './support/test-app';

const REPO = join(__dirname, '../../..');
const PEPPER = 'cli-e2e-pepper-0123456789abcdef';

interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI as an operator would (`npm run cli -- ...`), in a child process with only `env` set. */
function runCli(args: string[], env: Record<string, string>): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-r', '@swc-node/register', 'apps/api/src/cli/main.ts', ...args], {
      cwd: REPO,
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function ok<T>(args: string[], env: Record<string, string>): Promise<T> {
  const run = await runCli([...args, '--json'], env);
  if (run.code !== 0) throw new Error(`cli ${args.join(' ')} exited ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

const detailedStatus = async (t: TestApp, key: string) =>
  (await t.fetch('/health/detailed', { headers: { 'x-api-key': key } })).status;

describe('CLI on SQLite, with the server on the same database file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vla-cli-e2e-'));
  const env = { DATABASE_URL: `sqlite:${join(dir, 'platform.sqlite')}`, API_KEY_PEPPER: PEPPER };
  let t: TestApp | undefined;
  let created: CreatedKey;

  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a tenant and an inference+ops key without a server; the server then accepts the key', async () => {
    const tenant = await ok<TenantView>(['tenants', 'create', 'acme', '--requests-per-minute', '120'], env);
    expect(tenant).toMatchObject({ name: 'acme', disabled: false, requests_per_minute: 120 });

    const run = await runCli(['keys', 'create', '--tenant', 'acme', '--scopes', 'inference,ops', '--json'], {
      ...env,
      BOOTSTRAP_KEY: 'on',
    });
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('store it now; it is not shown again');
    expect(run.stderr).not.toContain('vla_');
    created = JSON.parse(run.stdout) as CreatedKey;
    expect(created).toMatchObject({ tenant: 'acme', scopes: ['inference', 'ops'], revoked_at: null });
    expect(created.key).toMatch(API_KEY_PATTERN);
    expect(created.key).toContain(created.id);

    t = await startTestApp({
      ...env,
      BOOTSTRAP_KEY: 'off',
      API_KEY_CACHE_TTL_MS: '500',
    });
    const res = await t.fetch('/health/detailed', { headers: { 'x-api-key': created.key } });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ok' });
    expect(
      (await t.fetch('/health/detailed', { headers: { authorization: `Bearer ${created.key}` } })).status,
    ).toBe(200);
    expect((await t.fetch('/health/detailed')).status).toBe(401);
  });

  it('creates keys while the server runs; an inference-only key gets 403 on an ops route', async () => {
    const inference = await ok<CreatedKey>(
      ['keys', 'create', '--tenant', 'acme', '--scopes', 'inference', '--name', 'robot'],
      env,
    );
    expect(await detailedStatus(t!, inference.key)).toBe(403);
  });

  it('a key hashed under another pepper does not verify: the CLI must share the server configuration', async () => {
    const other = await ok<CreatedKey>(['keys', 'create', '--tenant', 'acme', '--scopes', 'ops'], {
      ...env,
      API_KEY_PEPPER: 'a-different-pepper-0123456789',
    });
    expect(await detailedStatus(t!, other.key)).toBe(401);
  });

  it('lists keys as JSON with no secret and no hash', async () => {
    const run = await runCli(['keys', 'list', '--tenant', 'acme', '--json'], env);
    expect(run.code).toBe(0);
    const keys = JSON.parse(run.stdout) as KeyView[];
    expect(keys.map((k) => k.id)).toContain(created.id);
    for (const key of keys) {
      expect(Object.keys(key).sort()).toEqual([...KEY_VIEW_FIELDS].sort());
    }
    expect(run.stdout).not.toContain(created.key);
    expect(run.stdout).not.toContain(created.key.slice(`vla_${created.id}_`.length));
    expect(run.stdout).not.toMatch(/[0-9a-f]{64}/);
    const text = await runCli(['keys', 'list'], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(created.id);
    expect(text.stdout).not.toContain(created.key);
  });

  it('revokes a key; the running server refuses it within API_KEY_CACHE_TTL_MS', async () => {
    expect(await detailedStatus(t!, created.key)).toBe(200); // cached as valid
    const revoked = await ok<KeyView>(['keys', 'revoke', created.id], env);
    expect(revoked.revoked_at).not.toBeNull();
    await eventually(async () => (await detailedStatus(t!, created.key)) === 401);
  });

  it('disables a tenant; its keys get 403', async () => {
    const fresh = await ok<CreatedKey>(['keys', 'create', '--tenant', 'acme', '--scopes', 'ops'], env);
    expect(await detailedStatus(t!, fresh.key)).toBe(200);
    expect(await ok<TenantView>(['tenants', 'disable', 'acme'], env)).toMatchObject({ disabled: true });
    await eventually(async () => (await detailedStatus(t!, fresh.key)) === 403);
    await ok<TenantView>(['tenants', 'enable', 'acme'], env);
    await eventually(async () => (await detailedStatus(t!, fresh.key)) === 200);
  });

  it('updates tenant and key limits, `none` clearing them; the server reads what the CLI wrote', async () => {
    const tenant = await ok<TenantView>(
      ['tenants', 'update', 'acme', '--tokens-per-minute', '90000', '--daily-request-quota', '5000'],
      env,
    );
    expect(tenant).toMatchObject({
      name: 'acme',
      daily_request_quota: 5000,
      requests_per_minute: 120,
      tokens_per_minute: 90_000,
    });
    const admin = await ok<CreatedKey>(['keys', 'create', '--tenant', 'acme', '--scopes', 'admin'], env);
    const adminGet = async (path: string) =>
      (await t!.fetch(path, { headers: { 'x-api-key': admin.key } })).json();
    expect(await adminGet('/admin/tenants')).toEqual([tenant]);

    const cleared = await ok<TenantView>(
      ['tenants', 'update', 'acme', '--tokens-per-minute', 'none', '--requests-per-minute', 'none'],
      env,
    );
    expect(cleared).toEqual({ ...tenant, requests_per_minute: null, tokens_per_minute: null });
    expect(await adminGet('/admin/tenants')).toEqual([cleared]);

    const key = await ok<CreatedKey>(
      ['keys', 'create', '--tenant', 'acme', '--scopes', 'ops', '--requests-per-minute', '10'],
      env,
    );
    const updated = await ok<KeyView>(
      ['keys', 'update', key.id, '--requests-per-minute', 'none', '--max-concurrent', '3'],
      env,
    );
    const { key: _clear, ...view } = key;
    expect(updated).toEqual({ ...view, requests_per_minute: null, max_concurrent: 3 });
    expect(await adminGet('/admin/keys?tenant=acme')).toContainEqual(
      expect.objectContaining({ id: key.id, requests_per_minute: null, max_concurrent: 3 }),
    );
  });

  it.each([
    [['tenants', 'create', 'Bad Name!'], 'invalid_request'],
    [['tenants', 'create', 'acme'], 'conflict'],
    [['tenants', 'update', 'acme', '--tokens-per-minute', '0'], 'invalid_request'],
    [['tenants', 'update', 'acme', '--tokens-per-minute', 'x'], 'invalid_request'],
    [['tenants', 'update', 'acme'], 'invalid_request'],
    [['tenants', 'update', 'nobody', '--tokens-per-minute', '5'], 'not_found'],
    [['keys', 'update', 'nokey', '--max-concurrent', '2'], 'not_found'],
    [['keys', 'create', '--tenant', 'nobody', '--scopes', 'inference'], 'not_found'],
    [['keys', 'revoke', 'nokey'], 'not_found'],
  ])('refuses %j: exit status 1, `error %s` on stderr', async (args, code) => {
    const run = await runCli(args, env);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(new RegExp(`^error ${code}: \\S`));
  });

  it('exits 2 on a usage error', async () => {
    const run = await runCli(['keys', 'create', '--tenant', 'acme'], env);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^error invalid_request: required option '--scopes <list>' not specified/);
  });

  it('exits 3 naming DATABASE_URL when it is invalid, without printing it', async () => {
    const run = await runCli(['keys', 'list'], { DATABASE_URL: 'mysql://x' });
    expect(run.code).toBe(3);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^error invalid_configuration: invalid configuration: DATABASE_URL must be/);
    expect(run.stderr).not.toContain('mysql://x');
  });
});

const pgUrl = postgresTestUrl();
const describePg = pgUrl === undefined ? describe.skip : describe;

describePg(
  `CLI on PostgreSQL (DATABASE_URL_TEST${pgUrl === undefined ? ' unset: set it to run' : ''})`,
  () => {
    const schema = uniqueSchema('cli');
    const env = { DATABASE_URL: pgUrl!, DATABASE_SCHEMA: schema, API_KEY_PEPPER: PEPPER };
    let t: TestApp | undefined;

    afterAll(async () => {
      await t?.close();
      const client = new pg.Client({ connectionString: pgUrl });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
    });

    it('creates a tenant and a key that the server on the same schema accepts, then revokes it', async () => {
      await ok<TenantView>(['tenants', 'create', 'acme'], env);
      const created = await ok<CreatedKey>(
        ['keys', 'create', '--tenant', 'acme', '--scopes', 'inference,ops'],
        env,
      );
      t = await startTestApp({ ...env, BOOTSTRAP_KEY: 'off', API_KEY_CACHE_TTL_MS: '500' });
      expect(await detailedStatus(t, created.key)).toBe(200);

      const listed = await ok<KeyView[]>(['keys', 'list'], env);
      expect(listed.map((k) => k.id)).toEqual([created.id]);
      expect(JSON.stringify(listed)).not.toContain(created.key);

      await ok<KeyView>(['keys', 'revoke', created.id], env);
      await eventually(async () => (await detailedStatus(t!, created.key)) === 401);
    });

    it('updates tenant and key limits on the same schema; `none` clears them', async () => {
      const tenant = await ok<TenantView>(
        ['tenants', 'update', 'acme', '--tokens-per-minute', '1000000000'],
        env,
      );
      expect(tenant).toMatchObject({ name: 'acme', tokens_per_minute: 1_000_000_000 });
      expect(await ok<TenantView[]>(['tenants', 'list'], env)).toEqual([tenant]);
      expect(await ok<TenantView>(['tenants', 'update', 'acme', '--tokens-per-minute', 'none'], env)).toEqual(
        {
          ...tenant,
          tokens_per_minute: null,
        },
      );

      const key = await ok<CreatedKey>(['keys', 'create', '--tenant', 'acme', '--scopes', 'ops'], env);
      expect(await ok<KeyView>(['keys', 'update', key.id, '--max-concurrent', '2'], env)).toMatchObject({
        max_concurrent: 2,
      });
      expect(await ok<KeyView>(['keys', 'update', key.id, '--max-concurrent', 'none'], env)).toMatchObject({
        max_concurrent: null,
        requests_per_minute: null,
      });
    });
  },
);
