import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_KEY_PATTERN, parseApiKey, secretMatches } from '../auth/api-key-format';
import type { CreatedKey, KeyView, TenantView } from '../auth/access.schemas';
import { loadConfig } from '../config';
import { buildDataSourceOptions } from '../database/database-options';
import { openDataSource } from '../database/open-data-source';
import { type AdminSession, openAdminSession } from './admin-session';
import { KEY_SHOWN_ONCE, runCli } from './cli';

const PEPPER = 'cli-spec-pepper-0123456789';

interface Run {
  code: number;
  out: string;
  err: string;
  json<T>(): T;
}

let dir: string;
let dbUrl: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vla-cli-'));
  dbUrl = `sqlite:${join(dir, 'platform.sqlite')}`;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function cli(
  args: string[],
  env: Record<string, string> = {},
  openSession?: (config: Parameters<typeof openAdminSession>[0]) => Promise<AdminSession>,
): Promise<Run> {
  let out = '';
  let err = '';
  const code = await runCli(args, {
    env: { DATABASE_URL: dbUrl, API_KEY_PEPPER: PEPPER, ...env },
    version: '1.2.3',
    io: { out: (t) => (out += t), err: (t) => (err += t) },
    openSession,
  });
  return { code, out, err, json: <T>() => JSON.parse(out) as T };
}

describe('tenants', () => {
  it('creates a tenant with limits and lists it, as JSON and as a table', async () => {
    const created = await cli([
      'tenants',
      'create',
      'acme',
      '--daily-request-quota',
      '1000',
      '--requests-per-minute',
      '60',
      '--tokens-per-minute',
      '90000',
      '--json',
    ]);
    expect(created).toMatchObject({ code: 0, err: '' });
    const tenant = created.json<TenantView>();
    expect(tenant).toEqual({
      id: expect.any(String) as string,
      name: 'acme',
      disabled: false,
      daily_request_quota: 1000,
      requests_per_minute: 60,
      tokens_per_minute: 90_000,
      created_at: expect.any(String) as string,
    });

    const list = await cli(['tenants', 'list', '--json']);
    expect(list.json()).toEqual([tenant]);

    const text = await cli(['tenants', 'list']);
    expect(text.code).toBe(0);
    const lines = text.out.trimEnd().split('\n');
    expect(lines[0].split(/\s+/)).toEqual([
      'NAME',
      'ID',
      'STATUS',
      'DAILY_QUOTA',
      'REQUESTS_PER_MINUTE',
      'TOKENS_PER_MINUTE',
      'CREATED_AT',
    ]);
    expect(lines[1].split(/\s+/)).toEqual([
      'acme',
      tenant.id,
      'enabled',
      '1000',
      '60',
      '90000',
      tenant.created_at,
    ]);
  });

  it('updates the limits of a tenant by name; `none` clears one, the others stay', async () => {
    await cli(['tenants', 'create', 'acme', '--requests-per-minute', '60']);
    const updated = await cli([
      'tenants',
      'update',
      'acme',
      '--daily-request-quota',
      '0',
      '--tokens-per-minute',
      '1000000000',
      '--json',
    ]);
    expect(updated).toMatchObject({ code: 0, err: '' });
    expect(updated.json()).toMatchObject({
      name: 'acme',
      disabled: false,
      daily_request_quota: 0,
      requests_per_minute: 60,
      tokens_per_minute: 1_000_000_000,
    });

    const cleared = await cli([
      'tenants',
      'update',
      'acme',
      '--requests-per-minute',
      'none',
      '--tokens-per-minute',
      'none',
    ]);
    expect(cleared.code).toBe(0);
    const lines = cleared.out.trimEnd().split('\n');
    expect(lines[0]).toBe('updated tenant acme');
    expect(Object.fromEntries(lines.slice(1).map((l) => l.split(/ +/)))).toMatchObject({
      name: 'acme',
      daily_request_quota: '0',
      requests_per_minute: '-',
      tokens_per_minute: '-',
    });
    expect((await cli(['tenants', 'list', '--json'])).json()).toMatchObject([
      { daily_request_quota: 0, requests_per_minute: null, tokens_per_minute: null },
    ]);
  });

  it('says so when there are no tenants', async () => {
    expect(await cli(['tenants', 'list'])).toMatchObject({ code: 0, out: 'no tenants\n' });
    expect((await cli(['tenants', 'list', '--json'])).json()).toEqual([]);
  });

  it('disables and enables a tenant by name', async () => {
    await cli(['tenants', 'create', 'acme']);
    const disabled = await cli(['tenants', 'disable', 'acme', '--json']);
    expect(disabled.code).toBe(0);
    expect(disabled.json()).toMatchObject({ name: 'acme', disabled: true });
    expect((await cli(['tenants', 'list', '--json'])).json()).toMatchObject([{ disabled: true }]);

    const enabled = await cli(['tenants', 'enable', 'acme']);
    expect(enabled).toMatchObject({ code: 0, out: 'tenant acme is enabled\n' });
    expect((await cli(['tenants', 'list', '--json'])).json()).toMatchObject([{ disabled: false }]);
  });

  it.each([
    [['tenants', 'create', 'Bad Name!'], 'invalid_request', '<name>: lower-case letters'],
    [
      ['tenants', 'create', 'acme', '--requests-per-minute', '0'],
      'invalid_request',
      '--requests-per-minute:',
    ],
    [
      ['tenants', 'create', 'acme', '--daily-request-quota', 'lots'],
      'invalid_request',
      '--daily-request-quota: must be an integer.',
    ],
    [['tenants', 'create', 'acme', '--tokens-per-minute', '0'], 'invalid_request', '--tokens-per-minute:'],
    [
      ['tenants', 'create', 'acme', '--tokens-per-minute', 'none'],
      'invalid_request',
      '--tokens-per-minute: must be an integer.',
    ],
    [['tenants', 'disable', 'nobody'], 'not_found', 'No tenant named nobody.'],
    [['tenants', 'update', 'nobody', '--tokens-per-minute', '5'], 'not_found', 'No tenant named nobody.'],
  ])('refuses %j with exit status 1 and `error %s`', async (args, code, message) => {
    const run = await cli(args);
    expect(run.code).toBe(1);
    expect(run.out).toBe('');
    expect(run.err).toMatch(new RegExp(`^error ${code}: .*${escape(message)}`));
  });

  it.each([
    [['--tokens-per-minute', '0'], '--tokens-per-minute:'],
    [['--tokens-per-minute', '1000000001'], '--tokens-per-minute:'],
    [['--tokens-per-minute', '1.5'], '--tokens-per-minute: must be an integer or none.'],
    [['--tokens-per-minute', 'x'], '--tokens-per-minute: must be an integer or none.'],
    [['--requests-per-minute', '-1'], '--requests-per-minute:'],
    [['--daily-request-quota', 'lots'], '--daily-request-quota: must be an integer or none.'],
    [
      [],
      'Nothing to change: give at least one of --daily-request-quota, --requests-per-minute, --tokens-per-minute.',
    ],
  ])('`tenants update acme %j` fails with invalid_request and changes nothing', async (options, message) => {
    const before = (
      await cli(['tenants', 'create', 'acme', '--tokens-per-minute', '500', '--json'])
    ).json<TenantView>();
    const run = await cli(['tenants', 'update', 'acme', ...options]);
    expect(run).toMatchObject({ code: 1, out: '' });
    expect(run.err).toMatch(new RegExp(`^error invalid_request: .*${escape(message)}`));
    expect((await cli(['tenants', 'list', '--json'])).json()).toEqual([before]);
  });

  it('refuses a duplicate tenant name with conflict', async () => {
    expect((await cli(['tenants', 'create', 'acme'])).code).toBe(0);
    const run = await cli(['tenants', 'create', 'acme']);
    expect(run).toMatchObject({
      code: 1,
      out: '',
      err: 'error conflict: A tenant named acme already exists.\n',
    });
  });
});

describe('keys', () => {
  beforeEach(async () => {
    expect((await cli(['tenants', 'create', 'acme'])).code).toBe(0);
  });

  it('creates a key whose hash was made with the configured pepper, and shows the clear key only then', async () => {
    const run = await cli([
      'keys',
      'create',
      '--tenant',
      'acme',
      '--scopes',
      'inference, ops',
      '--name',
      'robot 7',
      '--requests-per-minute',
      '30',
      '--max-concurrent',
      '2',
      '--expires-at',
      '2999-01-01T00:00:00Z',
      '--json',
    ]);
    expect(run.code).toBe(0);
    expect(run.err).toBe(`${KEY_SHOWN_ONCE}\n`);
    const created = run.json<CreatedKey>();
    expect(created).toEqual({
      id: expect.any(String) as string,
      key: expect.stringMatching(API_KEY_PATTERN) as string,
      tenant: 'acme',
      name: 'robot 7',
      scopes: ['inference', 'ops'],
      requests_per_minute: 30,
      max_concurrent: 2,
      created_at: expect.any(String) as string,
      last_used_at: null,
      expires_at: '2999-01-01T00:00:00.000Z',
      revoked_at: null,
    });

    // The row holds the HMAC under this pepper: the server, configured alike, verifies the key.
    const parsed = parseApiKey(created.key)!;
    expect(parsed.publicId).toBe(created.id);
    const ds = await openDataSource(
      buildDataSourceOptions(loadConfig({ DATABASE_URL: dbUrl }, { cwd: dir }).database),
    );
    try {
      const [row] = await ds.query<{ secret_hash: string }[]>(
        'SELECT secret_hash FROM api_keys WHERE id = ?',
        [created.id],
      );
      expect(secretMatches(parsed, row.secret_hash, PEPPER)).toBe(true);
      expect(secretMatches(parsed, row.secret_hash, null)).toBe(false);
    } finally {
      await ds.destroy();
    }

    const list = await cli(['keys', 'list', '--json']);
    const { key: _key, ...view } = created;
    expect(list.json()).toEqual([view]);
    expect(list.out).not.toContain(parsed.secret);
    expect(list.out).not.toMatch(/hash|secret/i);
  });

  it('prints the key first in the human form, with the warning on stderr', async () => {
    const run = await cli(['keys', 'create', '--tenant', 'acme', '--scopes', 'inference']);
    expect(run.code).toBe(0);
    expect(run.err).toBe(`${KEY_SHOWN_ONCE}\n`);
    const [first, ...rest] = run.out.trimEnd().split('\n');
    expect(first).toMatch(/^key +vla_[0-9A-Za-z]{12}_[0-9A-Za-z]{30}$/);
    expect(rest.map((l) => l.split(/ +/)[0])).toEqual([
      'id',
      'tenant',
      'name',
      'scopes',
      'status',
      'requests_per_minute',
      'max_concurrent',
      'created_at',
      'expires_at',
      'revoked_at',
    ]);
    expect(rest.find((l) => l.startsWith('name'))).toBe('name                 cli');
  });

  it('lists keys as a table, filtered by tenant, and revokes one (idempotently)', async () => {
    await cli(['tenants', 'create', 'other']);
    const a = (
      await cli(['keys', 'create', '--tenant', 'acme', '--scopes', 'ops', '--json'])
    ).json<CreatedKey>();
    const b = (
      await cli(['keys', 'create', '--tenant', 'other', '--scopes', 'admin', '--json'])
    ).json<CreatedKey>();

    expect(
      (await cli(['keys', 'list', '--tenant', 'other', '--json'])).json<KeyView[]>().map((k) => k.id),
    ).toEqual([b.id]);

    const revoked = await cli(['keys', 'revoke', a.id, '--json']);
    expect(revoked.code).toBe(0);
    const view = revoked.json<KeyView>();
    expect(view).toMatchObject({ id: a.id, tenant: 'acme' });
    expect(view.revoked_at).not.toBeNull();
    const again = await cli(['keys', 'revoke', a.id, '--json']);
    expect(again.json<KeyView>().revoked_at).toBe(view.revoked_at);

    const table = await cli(['keys', 'list']);
    const rows = table.out
      .trimEnd()
      .split('\n')
      .map((l) => l.split(/ +/));
    expect(rows[0]).toEqual([
      'ID',
      'TENANT',
      'NAME',
      'SCOPES',
      'STATUS',
      'CREATED_AT',
      'LAST_USED_AT',
      'EXPIRES_AT',
    ]);
    const byId = (x: string[], y: string[]) => x[0].localeCompare(y[0]);
    expect(
      rows
        .slice(1)
        .map((r) => [r[0], r[1], r[3], r[4]])
        .sort(byId),
    ).toEqual(
      [
        [a.id, 'acme', 'ops', 'revoked'],
        [b.id, 'other', 'admin', 'active'],
      ].sort(byId),
    );
    expect(table.out).not.toContain(a.key);
  });

  it('updates the limits of a key by id; `none` clears one, the other stays', async () => {
    const created = (
      await cli(['keys', 'create', '--tenant', 'acme', '--scopes', 'inference', '--json'])
    ).json<CreatedKey>();
    const { key: _key, ...view } = created;
    expect(view).toMatchObject({ requests_per_minute: null, max_concurrent: null });

    const updated = await cli([
      'keys',
      'update',
      created.id,
      '--requests-per-minute',
      '30',
      '--max-concurrent',
      '2',
      '--json',
    ]);
    expect(updated).toMatchObject({ code: 0, err: '' });
    expect(updated.json()).toEqual({ ...view, requests_per_minute: 30, max_concurrent: 2 });
    expect(updated.out).not.toContain(created.key);

    const cleared = await cli(['keys', 'update', created.id, '--max-concurrent', 'none']);
    expect(cleared.code).toBe(0);
    const lines = cleared.out.trimEnd().split('\n');
    expect(lines[0]).toBe(`updated key ${created.id}`);
    expect(Object.fromEntries(lines.slice(1).map((l) => l.split(/ +/)))).toMatchObject({
      id: created.id,
      requests_per_minute: '30',
      max_concurrent: '-',
    });
    expect((await cli(['keys', 'list', '--json'])).json()).toEqual([
      { ...view, requests_per_minute: 30, max_concurrent: null },
    ]);
  });

  it.each([
    [['--requests-per-minute', '0'], 'invalid_request', '--requests-per-minute:'],
    [['--max-concurrent', '100001'], 'invalid_request', '--max-concurrent:'],
    [['--max-concurrent', '1.5'], 'invalid_request', '--max-concurrent: must be an integer or none.'],
    [
      [],
      'invalid_request',
      'Nothing to change: give at least one of --requests-per-minute, --max-concurrent.',
    ],
  ])('`keys update <id> %j` fails with %s and changes nothing', async (options, code, message) => {
    const created = (
      await cli(['keys', 'create', '--tenant', 'acme', '--scopes', 'ops', '--max-concurrent', '4', '--json'])
    ).json<CreatedKey>();
    const run = await cli(['keys', 'update', created.id, ...options]);
    expect(run).toMatchObject({ code: 1, out: '' });
    expect(run.err).toMatch(new RegExp(`^error ${code}: .*${escape(message)}`));
    expect((await cli(['keys', 'list', '--json'])).json()).toMatchObject([
      { id: created.id, requests_per_minute: null, max_concurrent: 4 },
    ]);
  });

  it.each([
    [['keys', 'create', '--tenant', 'nobody', '--scopes', 'ops'], 'not_found', 'No tenant named nobody.'],
    [['keys', 'create', '--tenant', 'acme', '--scopes', 'ops,root'], 'invalid_request', '--scopes:'],
    [
      ['keys', 'create', '--tenant', 'acme', '--scopes', 'ops,ops'],
      'invalid_request',
      '--scopes: scopes must not repeat',
    ],
    [['keys', 'create', '--tenant', 'acme', '--scopes', ','], 'invalid_request', '--scopes:'],
    [
      ['keys', 'create', '--tenant', 'acme', '--scopes', 'ops', '--expires-at', '2001-01-01T00:00:00Z'],
      'invalid_request',
      '--expires-at: expires_at must be in the future',
    ],
    [
      ['keys', 'create', '--tenant', 'acme', '--scopes', 'ops', '--max-concurrent', '1.5'],
      'invalid_request',
      '--max-concurrent: must be an integer.',
    ],
    [['keys', 'list', '--tenant', 'nobody'], 'not_found', 'No tenant named nobody.'],
    [['keys', 'revoke', 'nokey'], 'not_found', 'No key with id nokey.'],
    [['keys', 'update', 'nokey', '--max-concurrent', '2'], 'not_found', 'No key with id nokey.'],
  ])('refuses %j with exit status 1 and `error %s`', async (args, code, message) => {
    const run = await cli(args);
    expect(run.code).toBe(1);
    expect(run.out).toBe('');
    expect(run.err).toMatch(new RegExp(`^error ${code}: .*${escape(message)}`));
    expect((await cli(['keys', 'list', '--json'])).json()).toEqual([]);
  });
});

describe('usage', () => {
  it.each([
    [['bogus'], "unknown command 'bogus'"],
    [['tenants'], 'Usage: vla-cli tenants'],
    [['tenants', 'create'], "missing required argument 'name'"],
    [['keys', 'create', '--tenant', 'acme'], "required option '--scopes <list>' not specified"],
    [['keys', 'list', '--nope'], "unknown option '--nope'"],
    [['keys', 'list', 'extra'], 'too many arguments'],
    [['tenants', 'update', '--tokens-per-minute', '5'], "missing required argument 'name'"],
    [['keys', 'update', '--max-concurrent', '5'], "missing required argument 'id'"],
    [['keys', 'update', 'AbCdEf012345', '--scopes', 'ops'], "unknown option '--scopes'"],
  ])('exits 2 on %j', async (args, message) => {
    const run = await cli(args);
    expect(run.code).toBe(2);
    expect(run.out).toBe('');
    expect(run.err).toContain(message);
  });

  it('prints `error invalid_request:` for a usage error', async () => {
    expect((await cli(['bogus'])).err).toMatch(/^error invalid_request: unknown command 'bogus'\n/);
  });

  it('prints help and the version on stdout with exit status 0, without touching the database', async () => {
    const env = { DATABASE_URL: 'mysql://not-even-valid' };
    const help = await cli(['keys', 'create', '--help'], env);
    expect(help).toMatchObject({ code: 0, err: '' });
    expect(help.out).toContain('--scopes <list>');
    expect(help.out).toContain('--json');
    expect(await cli(['--version'], env)).toMatchObject({ code: 0, out: '1.2.3\n' });
  });
});

describe('configuration and database', () => {
  it.each([
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL must be'],
    [{ API_KEY_PEPPER: 'short' }, 'API_KEY_PEPPER must be at least 16 characters'],
    [{ DATABASE_SCHEMA: 'Bad-Schema' }, 'DATABASE_SCHEMA must be'],
  ])('exits 3 naming the variable for %j', async (env, message) => {
    const run = await cli(['keys', 'list'], env);
    expect(run.code).toBe(3);
    expect(run.out).toBe('');
    expect(run.err).toMatch(
      new RegExp(`^error invalid_configuration: invalid configuration: ${escape(message)}`),
    );
    if ('API_KEY_PEPPER' in env) expect(run.err).not.toContain('short');
  });

  it('exits 3 with dependency_unavailable when the database cannot be opened', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const run = await cli(['tenants', 'list'], {
      DATABASE_URL: `sqlite:${join(file, 'db', 'platform.sqlite')}`,
    });
    expect(run.code).toBe(3);
    expect(run.err).toMatch(/^error dependency_unavailable: The sqlite database could not be opened: /);
  });

  it('never prints the PostgreSQL password of an unreachable database', async () => {
    const run = await cli(['keys', 'list'], {
      DATABASE_URL: 'postgres://admin:pw-Very-Secret@127.0.0.1:1/platform_test',
      DATABASE_CONNECT_TIMEOUT_MS: '1000',
    });
    expect(run.code).toBe(3);
    expect(run.err).toMatch(/^error dependency_unavailable: The postgres database could not be opened/);
    expect(run.err).not.toContain('pw-Very-Secret');
  });

  it('closes the database after a command, whether it succeeded or failed', async () => {
    let closed = 0;
    const tracking = async (config: Parameters<typeof openAdminSession>[0]): Promise<AdminSession> => {
      const session = await openAdminSession(config);
      return {
        admin: session.admin,
        close: async () => {
          closed++;
          await session.close();
        },
      };
    };
    expect((await cli(['tenants', 'create', 'acme'], {}, tracking)).code).toBe(0);
    expect((await cli(['tenants', 'create', 'acme'], {}, tracking)).code).toBe(1);
    expect((await cli(['keys', 'revoke', 'nokey'], {}, tracking)).code).toBe(1);
    expect(closed).toBe(3);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
