import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type AppConfig, LOG_LEVELS, loadConfig } from './app-config';
import { ConfigError, type Env, ENV_VARS } from './env-vars';

const CWD = resolve('/srv/vla-platform');
const PG_URL = 'postgres://app@db.internal:5432/platform';
/** A password that must never show up in an error message. */
const SECRET = 'hunter2-Pa55word';

const load = (env: Env): AppConfig => loadConfig(env, { cwd: CWD, version: '1.2.3' });

/** The ConfigError that `env` produces; fails the test if it loads or throws anything else. */
function configError(env: Env): ConfigError {
  try {
    load(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(Object.keys(env))}`);
}

/** Asserts that `env` is refused with a message naming `name` and not carrying `hidden`. */
function expectRefused(env: Env, name: string, hidden?: string): string {
  const { message } = configError(env);
  expect(message).toContain(name);
  if (hidden !== undefined) expect(message).not.toContain(hidden);
  return message;
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'vla-config-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

let fileCount = 0;
function secretFile(content: string): string {
  const file = join(tmp, `secret-${++fileCount}`);
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

/** The `<NAME>_FILE` behaviour every secret shares. */
function describeSecretFile<T>(
  name: string,
  value: string,
  read: (config: AppConfig) => T,
  expected: T,
): void {
  const fileVar = `${name}_FILE`;

  describe(fileVar, () => {
    it('reads the value from the file, without its trailing newline', () => {
      expect(read(load({ [fileVar]: secretFile(`${value}\n`) }))).toEqual(expected);
      expect(read(load({ [fileVar]: secretFile(`${value}\r\n`) }))).toEqual(expected);
      expect(read(load({ [fileVar]: secretFile(value) }))).toEqual(expected);
    });

    it(`takes the file when ${name} is set but empty`, () => {
      expect(read(load({ [name]: '', [fileVar]: secretFile(`${value}\n`) }))).toEqual(expected);
    });

    it(`treats an empty file as ${name} unset`, () => {
      expect(read(load({ [fileVar]: secretFile('') }))).toEqual(read(load({})));
    });

    it('refuses both set, naming both and echoing neither value', () => {
      const message = expectRefused({ [name]: value, [fileVar]: secretFile(value) }, name, value);
      expect(message).toContain(fileVar);
    });

    it(`refuses a file that cannot be read, naming ${fileVar}`, () => {
      expectRefused({ [fileVar]: join(tmp, 'does-not-exist') }, fileVar);
      const folder = join(tmp, `folder-${++fileCount}`);
      mkdirSync(folder);
      expectRefused({ [fileVar]: folder }, fileVar);
    });
  });
}

/**
 * One `describe` for an integer variable: its default, its bounds and a value between accepted, one past
 * each bound and non-integers refused with the message that names it. `base` is what else the variable
 * needs to be read (PostgreSQL settings need a PostgreSQL URL).
 */
function describeInteger(
  name: string,
  spec: { read: (c: AppConfig) => number; def: number; min: number; max: number; base?: Env },
): void {
  const base = spec.base ?? {};
  describe(name, () => {
    it(`defaults to ${spec.def}`, () => {
      expect(spec.read(load(base))).toBe(spec.def);
    });

    it.each([spec.min, Math.round((spec.min + spec.max) / 2), spec.max])('accepts %j', (value) => {
      expect(spec.read(load({ ...base, [name]: String(value) }))).toBe(value);
    });

    it.each([String(spec.min - 1), String(spec.max + 1), '1.5', '10s', 'ten'])('refuses %j', (value) => {
      expect(expectRefused({ ...base, [name]: value }, name)).toBe(
        `${name} must be an integer from ${spec.min} to ${spec.max}.`,
      );
    });
  });
}

describe('loadConfig', () => {
  it('applies every default to an empty environment', () => {
    expect(load({})).toEqual({
      version: '1.2.3',
      http: {
        host: '0.0.0.0',
        port: 8000,
        bodyLimitBytes: 8 * 1024 * 1024,
        keepAliveTimeoutMs: 65_000,
        requestTimeoutMs: 30_000,
        maxConnections: 1024,
        trustProxy: false,
      },
      database: { type: 'sqlite', path: resolve(CWD, 'data/platform.sqlite') },
      redis: null,
      log: { level: 'info' },
      metrics: { token: null, public: false, httpMetrics: true, tenantLabels: true, maxTenants: 100 },
      robots: { dir: resolve(CWD, 'config/robots') },
      models: { dir: resolve(CWD, 'models'), stallTimeoutMs: 30_000 },
      images: {
        maxPixels: 4096 * 4096,
        maxRequestPixels: 2 * 4096 * 4096,
        maxInflightPixels: 4 * 4096 * 4096,
      },
      usage: { flushIntervalMs: 1000, batchSize: 500, bufferMax: 10_000, overflowPolicy: 'reject' },
      shutdown: { drainDelayMs: 0, timeoutMs: 10_000 },
      auth: { pepper: null, cacheTtlMs: 5000, bootstrap: true, pepperCheck: true, failureLimitPerMinute: 60 },
      rateLimit: {
        defaults: { requestsPerMinute: null, maxConcurrent: null, dailyQuota: null, tokensPerMinute: null },
        burstSeconds: 60,
        failureMode: 'local',
        replicas: 1,
        redisTimeoutMs: 200,
        breakerThreshold: 5,
        breakerCooldownMs: 1000,
        leaseTtlMs: 600_000,
      },
      gpu: {
        pollIntervalMs: 5000,
        collectTimeoutMs: 3000,
        nvmlLibraryPath: 'libnvidia-ml.so.1',
        nvidiaSmiPath: 'nvidia-smi',
      },
    });
  });

  it('reads the rate-limit defaults and the failure behaviour', () => {
    const config = load({
      RATE_LIMIT_REQUESTS_PER_MINUTE: '120',
      RATE_LIMIT_MAX_CONCURRENT: '4',
      RATE_LIMIT_DAILY_QUOTA: '5000',
      RATE_LIMIT_TOKENS_PER_MINUTE: '90000',
      RATE_LIMIT_BURST_SECONDS: '10',
      RATE_LIMIT_FAILURE_MODE: 'CLOSED',
      RATE_LIMIT_REPLICAS: '3',
      RATE_LIMIT_REDIS_TIMEOUT_MS: '100',
      RATE_LIMIT_BREAKER_THRESHOLD: '2',
      RATE_LIMIT_BREAKER_COOLDOWN_MS: '500',
      RATE_LIMIT_LEASE_TTL_SECONDS: '30',
    });
    expect(config.rateLimit).toEqual({
      defaults: { requestsPerMinute: 120, maxConcurrent: 4, dailyQuota: 5000, tokensPerMinute: 90_000 },
      burstSeconds: 10,
      failureMode: 'closed',
      replicas: 3,
      redisTimeoutMs: 100,
      breakerThreshold: 2,
      breakerCooldownMs: 500,
      leaseTtlMs: 30_000,
    });
  });

  it.each(ENV_VARS.map((v) => [v.name, v.default] as const))(
    'applies the documented default of %s when it is unset',
    (name, documented) => {
      expect(load({ [name]: documented })).toEqual(load({}));
    },
  );

  it('treats an empty value as unset', () => {
    expect(load(Object.fromEntries(ENV_VARS.map((v) => [v.name, ''])))).toEqual(load({}));
  });

  it('reads `_FILE` only for secrets', () => {
    expect(load({ PORT_FILE: secretFile('1234\n') }).http.port).toBe(8000);
  });

  it('reports the version it was given, 0.0.0 otherwise', () => {
    expect(load({}).version).toBe('1.2.3');
    expect(loadConfig({}, { cwd: CWD }).version).toBe('0.0.0');
  });

  it('returns a deeply frozen object', () => {
    const config = load({ REDIS_URL: 'redis://cache:6379', METRICS_TOKEN: 'abcdefghijklmnopqrstuvwxyz' });
    const unfrozen: string[] = [];
    const walk = (value: object, path: string): void => {
      if (!Object.isFrozen(value)) unfrozen.push(path);
      for (const [key, child] of Object.entries(value)) {
        if (child !== null && typeof child === 'object') walk(child as object, `${path}.${key}`);
      }
    };
    walk(config, 'config');
    expect(unfrozen).toEqual([]);
    expect(() => {
      (config.http as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.http.port).toBe(8000);
  });

  describe('README', () => {
    const readmePath = resolve(__dirname, '../../../../README.md');
    const readme = existsSync(readmePath) ? readFileSync(readmePath, 'utf8') : undefined;
    const itWhenReadme = readme === undefined ? it.skip : it;

    itWhenReadme(
      readme === undefined
        ? 'lists every variable once in its configuration table (SKIPPED: README.md does not exist yet)'
        : 'lists every variable once in its configuration table',
      () => {
        // The first cell of a table row names the variable (`NAME` or `NAME` (or `NAME_FILE`)); a mention in
        // another column, such as the endpoint list, does not count.
        const firstCells = (readme ?? '')
          .split('\n')
          .filter((line) => line.trimStart().startsWith('|'))
          .map((line) => line.split('|')[1] ?? '');
        const rowsPerVariable = Object.fromEntries(
          ENV_VARS.map((v) => [v.name, firstCells.filter((cell) => cell.includes(`\`${v.name}\``)).length]),
        );
        expect(rowsPerVariable).toEqual(Object.fromEntries(ENV_VARS.map((v) => [v.name, 1])));
      },
    );
  });
});

describe('PORT', () => {
  it('defaults to 8000', () => {
    expect(load({}).http.port).toBe(8000);
  });

  it('accepts an integer port, surrounding spaces ignored', () => {
    expect(load({ PORT: '3000' }).http.port).toBe(3000);
    expect(load({ PORT: ' 65535 ' }).http.port).toBe(65535);
  });

  it.each(['http', '65536', '-80', '80.5', '8e3', '0x50', '99999999999999999999'])('refuses %j', (value) => {
    expect(expectRefused({ PORT: value }, 'PORT', value)).toMatch(
      /^PORT must be an integer from \d+ to 65535/,
    );
  });
});

describe('HOST', () => {
  it('defaults to 0.0.0.0', () => {
    expect(load({}).http.host).toBe('0.0.0.0');
  });

  it.each(['127.0.0.1', 'localhost', 'api.internal.example.com', '::1', '[::1]', 'my_host-1'])(
    'accepts %j',
    (host) => {
      expect(load({ HOST: host }).http.host).toBe(host);
    },
  );

  it.each(['exa mple.com', 'host/path', 'http://host', 'h'.repeat(254), 'ho$t'])('refuses %j', (value) => {
    expect(expectRefused({ HOST: value }, 'HOST', value)).toBe('HOST must be a host name or an IP address.');
  });
});

describe('DATABASE_URL', () => {
  it('defaults to SQLite at data/platform.sqlite, resolved against the working directory', () => {
    expect(load({}).database).toEqual({ type: 'sqlite', path: resolve(CWD, 'data/platform.sqlite') });
  });

  it('resolves a relative SQLite path against cwd', () => {
    expect(load({ DATABASE_URL: 'sqlite:var/db/app.sqlite' }).database).toEqual({
      type: 'sqlite',
      path: join(CWD, 'var', 'db', 'app.sqlite'),
    });
    expect(loadConfig({ DATABASE_URL: 'sqlite:x.sqlite' }).database).toEqual({
      type: 'sqlite',
      path: resolve(process.cwd(), 'x.sqlite'),
    });
  });

  it('keeps an absolute SQLite path, with or without `//`', () => {
    expect(load({ DATABASE_URL: 'sqlite:/var/lib/vla/app.sqlite' }).database).toEqual({
      type: 'sqlite',
      path: '/var/lib/vla/app.sqlite',
    });
    expect(load({ DATABASE_URL: 'sqlite:///var/lib/vla/app.sqlite' }).database).toEqual({
      type: 'sqlite',
      path: '/var/lib/vla/app.sqlite',
    });
  });

  it('accepts an in-memory SQLite database', () => {
    expect(load({ DATABASE_URL: 'sqlite::memory:' }).database).toEqual({ type: 'sqlite', path: ':memory:' });
  });

  it.each(['postgres', 'postgresql'])('accepts a %s:// URL with the PostgreSQL defaults', (scheme) => {
    const url = `${scheme}://app:${SECRET}@db.internal:5432/platform?sslmode=require`;
    expect(load({ DATABASE_URL: url }).database).toEqual({
      type: 'postgres',
      url,
      schema: 'public',
      poolSize: 10,
      connectTimeoutMs: 5000,
      statementTimeoutMs: 5000,
    });
  });

  it.each([
    `mysql://root:${SECRET}@db/platform`,
    `postgres://app:${SECRET}@db:99999/platform`,
    `postgres://app:${SECRET}@/platform`,
    `postgres://app:${SECRET}@db:5432`,
    `postgres://app:${SECRET}@db:5432/`,
    `postgres://app:${SECRET}%zz@db:5432/platform`,
    `postgres://app%E0:${SECRET}@db:5432/platform`,
    `postgres://app:${SECRET}@db:5432/plat%form`,
    SECRET,
    'sqlite:',
  ])('refuses %j without echoing it', (value) => {
    expectRefused({ DATABASE_URL: value }, 'DATABASE_URL', SECRET);
  });

  it('refuses a malformed URL read from DATABASE_URL_FILE without echoing it', () => {
    const file = secretFile(`postgres://app:${SECRET}@db:99999/platform\n`);
    expectRefused({ DATABASE_URL_FILE: file }, 'DATABASE_URL', SECRET);
  });

  describeSecretFile(
    'DATABASE_URL',
    `postgres://app:${SECRET}@db.internal:5432/platform`,
    (c) => c.database,
    {
      type: 'postgres',
      url: `postgres://app:${SECRET}@db.internal:5432/platform`,
      schema: 'public',
      poolSize: 10,
      connectTimeoutMs: 5000,
      statementTimeoutMs: 5000,
    },
  );
});

describe('DATABASE_SCHEMA', () => {
  it('defaults to public', () => {
    expect(load({ DATABASE_URL: PG_URL }).database).toMatchObject({ schema: 'public' });
  });

  it.each(['platform', 'tenant_data_2', '_private', 'a'.repeat(63)])('accepts %j', (schema) => {
    expect(load({ DATABASE_URL: PG_URL, DATABASE_SCHEMA: schema }).database).toMatchObject({ schema });
  });

  it.each(['Platform', '2fast', 'my-schema', 'x";drop schema public', 'a'.repeat(64), 'café'])(
    'refuses %j',
    (value) => {
      expectRefused({ DATABASE_URL: PG_URL, DATABASE_SCHEMA: value }, 'DATABASE_SCHEMA', value);
    },
  );
});

describeInteger('DATABASE_POOL_SIZE', {
  read: (c) => (c.database.type === 'postgres' ? c.database.poolSize : NaN),
  def: 10,
  min: 1,
  max: 200,
  base: { DATABASE_URL: PG_URL },
});

describeInteger('DATABASE_CONNECT_TIMEOUT_MS', {
  read: (c) => (c.database.type === 'postgres' ? c.database.connectTimeoutMs : NaN),
  def: 5000,
  min: 100,
  max: 600_000,
  base: { DATABASE_URL: PG_URL },
});

describe('REDIS_URL', () => {
  it('defaults to no Redis', () => {
    expect(load({}).redis).toBeNull();
  });

  it.each([
    `redis://:${SECRET}@cache:6379/0`,
    'redis://cache:6379',
    `rediss://user:${SECRET}@cache.example:6380`,
  ])('accepts %j', (url) => {
    expect(load({ REDIS_URL: url }).redis).toEqual({ url });
  });

  it.each([
    `http://:${SECRET}@cache:6379`,
    `redis://:${SECRET}@cache:99999`,
    `${SECRET}@cache:6379`,
    `cache:6379/${SECRET}`,
    `redis://:${SECRET}@`,
    'redis://',
  ])('refuses %j without echoing it', (value) => {
    expect(expectRefused({ REDIS_URL: value }, 'REDIS_URL', SECRET)).toBe(
      'REDIS_URL must be a redis:// or rediss:// URL.',
    );
  });

  describeSecretFile('REDIS_URL', `redis://:${SECRET}@cache:6379/0`, (c) => c.redis, {
    url: `redis://:${SECRET}@cache:6379/0`,
  });
});

describe('LOG_LEVEL', () => {
  it('defaults to info', () => {
    expect(load({}).log.level).toBe('info');
  });

  it.each(LOG_LEVELS)('accepts %j', (level) => {
    expect(load({ LOG_LEVEL: level }).log.level).toBe(level);
  });

  it('ignores case and surrounding spaces', () => {
    expect(load({ LOG_LEVEL: ' WARN ' }).log.level).toBe('warn');
  });

  it.each(['verbose', 'information', '3'])('refuses %j, listing the accepted levels', (value) => {
    expect(expectRefused({ LOG_LEVEL: value }, 'LOG_LEVEL', value)).toBe(
      'LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent.',
    );
  });
});

describe('METRICS_TOKEN', () => {
  const token = 'mt_0123456789abcdefXYZ';

  it('defaults to none', () => {
    expect(load({}).metrics.token).toBeNull();
  });

  it('accepts a token of 16 characters or more', () => {
    expect(load({ METRICS_TOKEN: token }).metrics.token).toBe(token);
    expect(load({ METRICS_TOKEN: 'x'.repeat(16) }).metrics.token).toBe('x'.repeat(16));
  });

  it('refuses a short token without echoing it', () => {
    const short = 'sh0rt-Secret-15';
    expect(short).toHaveLength(15);
    expect(expectRefused({ METRICS_TOKEN: short }, 'METRICS_TOKEN', short)).toBe(
      'METRICS_TOKEN must be at least 16 characters long.',
    );
  });

  it.each([`${token} more`, `${token}\t`, `${token}\u0007`, `${token}\n`])(
    'refuses whitespace or control characters in %j without echoing it',
    (value) => {
      expectRefused({ METRICS_TOKEN: value }, 'METRICS_TOKEN', token);
    },
  );

  it('strips only one trailing newline from METRICS_TOKEN_FILE', () => {
    expectRefused({ METRICS_TOKEN_FILE: secretFile(`${token}\n\n`) }, 'METRICS_TOKEN', token);
  });

  it('refuses a short token read from METRICS_TOKEN_FILE without echoing it', () => {
    expectRefused({ METRICS_TOKEN_FILE: secretFile('tiny-secret\n') }, 'METRICS_TOKEN', 'tiny-secret');
  });

  describeSecretFile('METRICS_TOKEN', token, (c) => c.metrics.token, token);
});

describe('METRICS_PUBLIC', () => {
  it('defaults to false', () => {
    expect(load({}).metrics.public).toBe(false);
  });

  it.each(['true', 'TRUE', '1', 'yes', 'on', ' On '])('reads %j as true', (value) => {
    expect(load({ METRICS_PUBLIC: value }).metrics.public).toBe(true);
  });

  it.each(['false', 'False', '0', 'no', 'off'])('reads %j as false', (value) => {
    expect(load({ METRICS_PUBLIC: value }).metrics.public).toBe(false);
  });

  it.each(['maybe', 'enabled', '2'])('refuses %j', (value) => {
    expect(expectRefused({ METRICS_PUBLIC: value }, 'METRICS_PUBLIC', value)).toBe(
      'METRICS_PUBLIC must be true or false.',
    );
  });
});

describe('HTTP_METRICS_ENABLED', () => {
  it('defaults to true', () => {
    expect(load({}).metrics.httpMetrics).toBe(true);
  });

  it('can be switched off', () => {
    expect(load({ HTTP_METRICS_ENABLED: 'false' }).metrics.httpMetrics).toBe(false);
    expect(load({ HTTP_METRICS_ENABLED: '0' }).metrics.httpMetrics).toBe(false);
    expect(load({ HTTP_METRICS_ENABLED: 'yes' }).metrics.httpMetrics).toBe(true);
  });

  it.each(['nope', 'disabled'])('refuses %j', (value) => {
    expect(expectRefused({ HTTP_METRICS_ENABLED: value }, 'HTTP_METRICS_ENABLED', value)).toBe(
      'HTTP_METRICS_ENABLED must be true or false.',
    );
  });
});

describe('METRICS_TENANT_LABELS', () => {
  it('defaults to on', () => {
    expect(load({}).metrics.tenantLabels).toBe(true);
  });

  it.each(['on', 'ON', ' On ', 'true', '1', 'yes'])('reads %j as on', (value) => {
    expect(load({ METRICS_TENANT_LABELS: value }).metrics.tenantLabels).toBe(true);
  });

  it.each(['off', 'OFF', 'false', '0', 'no'])('reads %j as off', (value) => {
    expect(load({ METRICS_TENANT_LABELS: value }).metrics.tenantLabels).toBe(false);
  });

  it.each(['maybe', 'disabled', '2'])('refuses %j', (value) => {
    expect(expectRefused({ METRICS_TENANT_LABELS: value }, 'METRICS_TENANT_LABELS', value)).toBe(
      'METRICS_TENANT_LABELS must be on or off.',
    );
  });
});

describeInteger('METRICS_MAX_TENANTS', {
  read: (c) => c.metrics.maxTenants,
  def: 100,
  min: 1,
  max: 100_000,
});

describeInteger('HTTP_BODY_LIMIT_BYTES', {
  read: (c) => c.http.bodyLimitBytes,
  def: 8_388_608,
  min: 1024,
  max: 1_073_741_824,
});

describeInteger('HTTP_KEEP_ALIVE_TIMEOUT_MS', {
  read: (c) => c.http.keepAliveTimeoutMs,
  def: 65_000,
  min: 1000,
  max: 3_600_000,
});

describeInteger('HTTP_REQUEST_TIMEOUT_MS', {
  read: (c) => c.http.requestTimeoutMs,
  def: 30_000,
  min: 1000,
  max: 3_600_000,
});

describeInteger('SHUTDOWN_DRAIN_DELAY_MS', {
  read: (c) => c.shutdown.drainDelayMs,
  def: 0,
  min: 0,
  max: 600_000,
});

describeInteger('SHUTDOWN_TIMEOUT_MS', {
  read: (c) => c.shutdown.timeoutMs,
  def: 10_000,
  min: 0,
  max: 600_000,
});

describe('API_KEY_PEPPER', () => {
  it('defaults to none', () => {
    expect(load({}).auth.pepper).toBeNull();
  });

  it('accepts 16 characters or more, also from API_KEY_PEPPER_FILE', () => {
    expect(load({ API_KEY_PEPPER: SECRET + SECRET }).auth.pepper).toBe(SECRET + SECRET);
    expect(load({ API_KEY_PEPPER_FILE: secretFile(`${SECRET}${SECRET}\n`) }).auth.pepper).toBe(
      SECRET + SECRET,
    );
  });

  it('refuses a short pepper without echoing it', () => {
    expect(expectRefused({ API_KEY_PEPPER: 'short-pepper' }, 'API_KEY_PEPPER', 'short-pepper')).toBe(
      'API_KEY_PEPPER must be at least 16 characters long.',
    );
  });
});

describe('API_KEY_PEPPER_CHECK', () => {
  it('defaults to on', () => {
    expect(load({}).auth.pepperCheck).toBe(true);
  });

  it('reads off', () => {
    expect(load({ API_KEY_PEPPER_CHECK: 'off' }).auth.pepperCheck).toBe(false);
  });

  it('refuses anything else, naming the variable', () => {
    expect(expectRefused({ API_KEY_PEPPER_CHECK: 'skip' }, 'API_KEY_PEPPER_CHECK')).toBe(
      'API_KEY_PEPPER_CHECK must be on or off.',
    );
  });
});

describeInteger('AUTH_FAILURE_LIMIT_PER_MINUTE', {
  read: (c) => c.auth.failureLimitPerMinute,
  def: 60,
  min: 0,
  max: 1_000_000,
});

describeInteger('HTTP_MAX_CONNECTIONS', {
  read: (c) => c.http.maxConnections,
  def: 1024,
  min: 1,
  max: 1_000_000,
});

describe('HTTP_TRUST_PROXY', () => {
  it.each(['off', 'false', '0'])('reads %j as off', (raw) => {
    expect(load({ HTTP_TRUST_PROXY: raw }).http.trustProxy).toBe(false);
  });

  it('reads a hop count', () => {
    expect(load({ HTTP_TRUST_PROXY: '2' }).http.trustProxy).toBe(2);
  });

  it('reads addresses, CIDR ranges and the named ranges', () => {
    expect(
      load({ HTTP_TRUST_PROXY: 'loopback, 10.0.0.0/8,192.168.1.7, fd00::/8, uniquelocal' }).http.trustProxy,
    ).toEqual(['loopback', '10.0.0.0/8', '192.168.1.7', 'fd00::/8', 'uniquelocal']);
  });

  it.each(['11', 'everyone', '10.0.0.0/33', '::1/129', '10.0.0.1/8/1', 'true', '10.0.0', ''])(
    'refuses %j, naming the variable',
    (raw) => {
      if (raw === '') {
        expect(load({ HTTP_TRUST_PROXY: raw }).http.trustProxy).toBe(false);
        return;
      }
      expectRefused({ HTTP_TRUST_PROXY: raw }, 'HTTP_TRUST_PROXY');
    },
  );
});

describeInteger('DATABASE_STATEMENT_TIMEOUT_MS', {
  read: (c) => (c.database.type === 'postgres' ? c.database.statementTimeoutMs : NaN),
  def: 5000,
  min: 100,
  max: 600_000,
  base: { DATABASE_URL: PG_URL },
});

describeInteger('IMAGE_MAX_PIXELS', {
  read: (c) => c.images.maxPixels,
  def: 4096 * 4096,
  min: 1,
  max: 2 ** 30,
  base: { IMAGE_MAX_REQUEST_PIXELS: String(2 ** 30), IMAGE_MAX_INFLIGHT_PIXELS: String(2 ** 30) },
});

describe('IMAGE_MAX_REQUEST_PIXELS and IMAGE_MAX_INFLIGHT_PIXELS', () => {
  it('read pixel counts', () => {
    expect(
      load({ IMAGE_MAX_PIXELS: '100', IMAGE_MAX_REQUEST_PIXELS: '200', IMAGE_MAX_INFLIGHT_PIXELS: '300' })
        .images,
    ).toEqual({ maxPixels: 100, maxRequestPixels: 200, maxInflightPixels: 300 });
  });

  it('refuse a request bound below the per-image bound, and a process bound below the request bound', () => {
    expect(expectRefused({ IMAGE_MAX_REQUEST_PIXELS: '1000' }, 'IMAGE_MAX_REQUEST_PIXELS')).toBe(
      'IMAGE_MAX_REQUEST_PIXELS must be at least IMAGE_MAX_PIXELS.',
    );
    expect(expectRefused({ IMAGE_MAX_INFLIGHT_PIXELS: '1000' }, 'IMAGE_MAX_INFLIGHT_PIXELS')).toBe(
      'IMAGE_MAX_INFLIGHT_PIXELS must be at least IMAGE_MAX_REQUEST_PIXELS.',
    );
  });

  it.each(['IMAGE_MAX_REQUEST_PIXELS', 'IMAGE_MAX_INFLIGHT_PIXELS'])('%s refuses a non-integer', (name) => {
    expect(expectRefused({ [name]: 'many' }, name)).toBe(`${name} must be an integer from 1 to ${2 ** 30}.`);
  });
});

describeInteger('API_KEY_CACHE_TTL_MS', { read: (c) => c.auth.cacheTtlMs, def: 5000, min: 0, max: 300_000 });

describe('ROBOTS_DIR', () => {
  it('defaults to config/robots, resolved against the working directory', () => {
    expect(load({}).robots.dir).toBe(resolve(CWD, 'config/robots'));
  });

  it('resolves a relative folder against cwd and keeps an absolute one', () => {
    expect(load({ ROBOTS_DIR: 'etc/robots' }).robots.dir).toBe(join(CWD, 'etc', 'robots'));
    expect(load({ ROBOTS_DIR: '/etc/vla/robots' }).robots.dir).toBe('/etc/vla/robots');
  });

  it('refuses a path with control characters', () => {
    expect(expectRefused({ ROBOTS_DIR: 'config/\nrobots' }, 'ROBOTS_DIR')).toBe(
      'ROBOTS_DIR must be a folder path.',
    );
  });
});

describe('MODELS_DIR', () => {
  it('defaults to models, resolved against the working directory', () => {
    expect(load({}).models.dir).toBe(resolve(CWD, 'models'));
  });

  it('resolves a relative folder against cwd and keeps an absolute one', () => {
    expect(load({ MODELS_DIR: 'etc/models' }).models.dir).toBe(join(CWD, 'etc', 'models'));
    expect(load({ MODELS_DIR: '/srv/models' }).models.dir).toBe('/srv/models');
  });

  it('refuses a path with control characters', () => {
    expect(expectRefused({ MODELS_DIR: 'mod\u0000els' }, 'MODELS_DIR')).toBe(
      'MODELS_DIR must be a folder path.',
    );
  });
});

describeInteger('MODEL_STALL_TIMEOUT_MS', {
  read: (c) => c.models.stallTimeoutMs,
  def: 30_000,
  min: 100,
  max: 3_600_000,
});
describeInteger('USAGE_FLUSH_INTERVAL_MS', {
  read: (c) => c.usage.flushIntervalMs,
  def: 1000,
  min: 10,
  max: 600_000,
});
describeInteger('USAGE_BATCH_SIZE', { read: (c) => c.usage.batchSize, def: 500, min: 1, max: 5000 });
describeInteger('USAGE_BUFFER_MAX', { read: (c) => c.usage.bufferMax, def: 10_000, min: 1, max: 10_000_000 });

describe('USAGE_OVERFLOW_POLICY', () => {
  it('defaults to reject (billable work is never unrecorded)', () => {
    expect(load({}).usage.overflowPolicy).toBe('reject');
  });

  it('accepts drop', () => {
    expect(load({ USAGE_OVERFLOW_POLICY: 'drop' }).usage.overflowPolicy).toBe('drop');
  });

  it('refuses anything else, naming the variable', () => {
    expect(expectRefused({ USAGE_OVERFLOW_POLICY: 'ignore' }, 'USAGE_OVERFLOW_POLICY')).toContain(
      'USAGE_OVERFLOW_POLICY must be one of',
    );
  });
});

describeInteger('RATE_LIMIT_BURST_SECONDS', {
  read: (c) => c.rateLimit.burstSeconds,
  def: 60,
  min: 1,
  max: 3600,
});
describeInteger('RATE_LIMIT_REPLICAS', { read: (c) => c.rateLimit.replicas, def: 1, min: 1, max: 10_000 });
describeInteger('RATE_LIMIT_REDIS_TIMEOUT_MS', {
  read: (c) => c.rateLimit.redisTimeoutMs,
  def: 200,
  min: 10,
  max: 5000,
});
describeInteger('RATE_LIMIT_BREAKER_THRESHOLD', {
  read: (c) => c.rateLimit.breakerThreshold,
  def: 5,
  min: 1,
  max: 1000,
});
describeInteger('RATE_LIMIT_BREAKER_COOLDOWN_MS', {
  read: (c) => c.rateLimit.breakerCooldownMs,
  def: 1000,
  min: 50,
  max: 600_000,
});

describe.each([
  ['RATE_LIMIT_REQUESTS_PER_MINUTE', (c: AppConfig) => c.rateLimit.defaults.requestsPerMinute, 1_000_000],
  ['RATE_LIMIT_MAX_CONCURRENT', (c: AppConfig) => c.rateLimit.defaults.maxConcurrent, 100_000],
  ['RATE_LIMIT_DAILY_QUOTA', (c: AppConfig) => c.rateLimit.defaults.dailyQuota, 1_000_000_000],
  ['RATE_LIMIT_TOKENS_PER_MINUTE', (c: AppConfig) => c.rateLimit.defaults.tokensPerMinute, 1_000_000_000],
] as const)('%s', (name, read, max) => {
  it('is no limit when unset', () => {
    expect(read(load({}))).toBeNull();
  });

  it.each([1, max])('accepts %j', (value) => {
    expect(read(load({ [name]: String(value) }))).toBe(value);
  });

  it.each(['0', String(max + 1), '-5', '1.5', 'lots'])('refuses %j, naming the variable', (value) => {
    expect(expectRefused({ [name]: value }, name)).toBe(`${name} must be an integer from 1 to ${max}.`);
  });
});

describe('RATE_LIMIT_LEASE_TTL_SECONDS', () => {
  it('defaults to 600 s and is kept in milliseconds', () => {
    expect(load({}).rateLimit.leaseTtlMs).toBe(600_000);
    expect(load({ RATE_LIMIT_LEASE_TTL_SECONDS: '5' }).rateLimit.leaseTtlMs).toBe(5000);
  });

  it('refuses 0', () => {
    expect(expectRefused({ RATE_LIMIT_LEASE_TTL_SECONDS: '0' }, 'RATE_LIMIT_LEASE_TTL_SECONDS')).toContain(
      'from 1 to 86400',
    );
  });
});

describe('RATE_LIMIT_FAILURE_MODE', () => {
  it.each(['local', 'open', 'closed'])('accepts %s', (mode) => {
    expect(load({ RATE_LIMIT_FAILURE_MODE: mode }).rateLimit.failureMode).toBe(mode);
  });

  it('refuses anything else, naming the variable', () => {
    expect(expectRefused({ RATE_LIMIT_FAILURE_MODE: 'fail-open' }, 'RATE_LIMIT_FAILURE_MODE')).toBe(
      'RATE_LIMIT_FAILURE_MODE must be one of local, open, closed.',
    );
  });
});

describe('BOOTSTRAP_KEY', () => {
  it('defaults to on', () => {
    expect(load({}).auth.bootstrap).toBe(true);
  });

  it.each([
    ['off', false],
    ['false', false],
    ['on', true],
  ])('reads %j as %j', (raw, expected) => {
    expect(load({ BOOTSTRAP_KEY: raw }).auth.bootstrap).toBe(expected);
  });

  it('refuses anything else, naming the variable', () => {
    expect(expectRefused({ BOOTSTRAP_KEY: 'maybe' }, 'BOOTSTRAP_KEY')).toBe(
      'BOOTSTRAP_KEY must be on or off.',
    );
  });
});

describe('GPU telemetry variables', () => {
  it('reads the poll interval and the collection timeout in seconds, decimals allowed, kept in milliseconds', () => {
    const config = load({
      GPU_METRICS_POLL_INTERVAL_SECONDS: '0.25',
      GPU_COLLECT_TIMEOUT_SECONDS: '1.5',
      NVML_LIBRARY_PATH: ' /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 ',
      NVIDIA_SMI_PATH: '/usr/bin/nvidia-smi',
    });
    expect(config.gpu).toEqual({
      pollIntervalMs: 250,
      collectTimeoutMs: 1500,
      nvmlLibraryPath: '/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1',
      nvidiaSmiPath: '/usr/bin/nvidia-smi',
    });
  });

  it('0 turns telemetry off', () => {
    expect(load({ GPU_METRICS_POLL_INTERVAL_SECONDS: '0' }).gpu.pollIntervalMs).toBe(0);
  });

  it.each(['-1', '3601', '0.01', 'fast', '1e3', '5s'])(
    'refuses a poll interval of %j, naming the variable',
    (value) => {
      expectRefused({ GPU_METRICS_POLL_INTERVAL_SECONDS: value }, 'GPU_METRICS_POLL_INTERVAL_SECONDS');
    },
  );

  it.each(['0', '0.01', '61', 'soon'])('refuses a collection timeout of %j, naming the variable', (value) => {
    expect(expectRefused({ GPU_COLLECT_TIMEOUT_SECONDS: value }, 'GPU_COLLECT_TIMEOUT_SECONDS')).toBe(
      'GPU_COLLECT_TIMEOUT_SECONDS must be a number from 0.05 to 60.',
    );
  });
});
