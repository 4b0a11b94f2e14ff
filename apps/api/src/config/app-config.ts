import { Inject } from '@nestjs/common';
import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import {
  ConfigError,
  type Env,
  type EnvVarName,
  booleanVar,
  decimalVar,
  enumVar,
  integerVar,
  readVar,
} from './env-vars';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type DatabaseConfig =
  | { readonly type: 'sqlite'; readonly path: string }
  | {
      readonly type: 'postgres';
      readonly url: string;
      readonly schema: string;
      readonly poolSize: number;
      readonly connectTimeoutMs: number;
      /** Server-side `statement_timeout`; the client drops a connection silent for this plus a margin. */
      readonly statementTimeoutMs: number;
    };

/** The whole configuration, built once at start from the environment; frozen. */
export interface AppConfig {
  readonly version: string;
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly bodyLimitBytes: number;
    readonly keepAliveTimeoutMs: number;
    readonly requestTimeoutMs: number;
    readonly maxConnections: number;
    /** Express's `trust proxy`: false, a hop count, or addresses and ranges (`HTTP_TRUST_PROXY`). */
    readonly trustProxy: false | number | readonly string[];
  };
  readonly database: DatabaseConfig;
  readonly redis: { readonly url: string } | null;
  readonly log: { readonly level: LogLevel };
  readonly metrics: {
    /** null when unset: then only METRICS_PUBLIC opens the endpoint. */
    readonly token: string | null;
    readonly public: boolean;
    readonly httpMetrics: boolean;
    /** Whether metrics carry a `tenant` label at all (`METRICS_TENANT_LABELS`). */
    readonly tenantLabels: boolean;
    /** Tenants with series of their own; the rest count under `__other__` (`METRICS_MAX_TENANTS`). */
    readonly maxTenants: number;
  };
  readonly shutdown: { readonly drainDelayMs: number; readonly timeoutMs: number };
  /** Robot profiles (`<robot_type>.yaml`) for the safety checks: an absolute folder path. */
  readonly robots: { readonly dir: string };
  readonly models: {
    /** Folder of `<id>/model.yaml`: an absolute path. */
    readonly dir: string;
    /** Pending work that completes nothing for this long marks the model stalled. */
    readonly stallTimeoutMs: number;
  };
  readonly usage: {
    readonly flushIntervalMs: number;
    readonly batchSize: number;
    readonly bufferMax: number;
    /** What a full buffer does: refuse new billable work (`reject`) or drop records, counted (`drop`). */
    readonly overflowPolicy: 'reject' | 'drop';
  };
  readonly rateLimit: {
    /** Platform defaults, used where neither the key nor its tenant sets a limit; null: no limit. */
    readonly defaults: {
      readonly requestsPerMinute: number | null;
      readonly maxConcurrent: number | null;
      readonly dailyQuota: number | null;
      readonly tokensPerMinute: number | null;
    };
    readonly burstSeconds: number;
    readonly failureMode: 'local' | 'open' | 'closed';
    readonly replicas: number;
    readonly redisTimeoutMs: number;
    readonly breakerThreshold: number;
    readonly breakerCooldownMs: number;
    readonly leaseTtlMs: number;
  };
  readonly gpu: {
    /** 0: telemetry off. */
    readonly pollIntervalMs: number;
    readonly collectTimeoutMs: number;
    readonly nvmlLibraryPath: string;
    readonly nvidiaSmiPath: string;
  };
  readonly auth: {
    /** null when unset: a fixed domain key is used. */
    readonly pepper: string | null;
    readonly cacheTtlMs: number;
    readonly bootstrap: boolean;
    /** Refuse to start when the pepper differs from the stored marker's (`API_KEY_PEPPER_CHECK`). */
    readonly pepperCheck: boolean;
    /** Failed authentications per minute per client address; 0: no limit. */
    readonly failureLimitPerMinute: number;
  };
  readonly images: {
    /** Pixels of one image (from its header, before decoding). */
    readonly maxPixels: number;
    /** Pixels of all the images of one request. */
    readonly maxRequestPixels: number;
    /** Pixels being decoded at once in this process. */
    readonly maxInflightPixels: number;
  };
}

export const APP_CONFIG = Symbol('APP_CONFIG');
/** Injects the frozen {@link AppConfig}. */
export const InjectConfig = (): ParameterDecorator => Inject(APP_CONFIG);

const METRICS_TOKEN_MIN_LENGTH = 16;
const HOSTNAME = /^[A-Za-z0-9.:[\]_-]{1,253}$/;

function databaseConfig(env: Env, cwd: string): DatabaseConfig {
  const url = readVar(env, 'DATABASE_URL') ?? 'sqlite:data/platform.sqlite';
  const schema = readVar(env, 'DATABASE_SCHEMA') ?? 'public';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new ConfigError('DATABASE_SCHEMA must be a lower-case SQL identifier (letters, digits, _).');
  }
  const poolSize = integerVar(env, 'DATABASE_POOL_SIZE', 10, 1, 200);
  const connectTimeoutMs = integerVar(env, 'DATABASE_CONNECT_TIMEOUT_MS', 5000, 100, 600_000);
  const statementTimeoutMs = integerVar(env, 'DATABASE_STATEMENT_TIMEOUT_MS', 5000, 100, 600_000);
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '') throw new ConfigError('DATABASE_URL must be sqlite:<path> or postgres://...');
    return {
      type: 'sqlite',
      path: path === ':memory:' ? path : isAbsolute(path) ? path : resolve(cwd, path),
    };
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError('DATABASE_URL must be a valid postgres://user:pass@host:5432/db URL.');
    }
    try {
      decodeURIComponent(parsed.username);
      decodeURIComponent(parsed.password);
      decodeURIComponent(parsed.pathname);
    } catch {
      throw new ConfigError(
        'DATABASE_URL has invalid percent-encoding in its user, password or database name.',
      );
    }
    if (parsed.hostname === '' || parsed.pathname.length <= 1) {
      throw new ConfigError(
        'DATABASE_URL must name a host and a database: postgres://user:pass@host:5432/db.',
      );
    }
    return { type: 'postgres', url, schema, poolSize, connectTimeoutMs, statementTimeoutMs };
  }
  throw new ConfigError('DATABASE_URL must be sqlite:<path> or postgres://user:pass@host:5432/db.');
}

function redisConfig(env: Env): AppConfig['redis'] {
  const url = readVar(env, 'REDIS_URL');
  if (url === undefined) return null;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError('REDIS_URL must be a redis:// or rediss:// URL.');
  }
  if ((parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') || parsed.hostname === '') {
    throw new ConfigError('REDIS_URL must be a redis:// or rediss:// URL.');
  }
  return { url };
}

function metricsConfig(env: Env): AppConfig['metrics'] {
  const token = readVar(env, 'METRICS_TOKEN') ?? null;
  if (token !== null && token.length < METRICS_TOKEN_MIN_LENGTH) {
    throw new ConfigError(`METRICS_TOKEN must be at least ${METRICS_TOKEN_MIN_LENGTH} characters long.`);
  }
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this refuses
  if (token !== null && /[\s\u0000-\u001f\u007f]/.test(token)) {
    throw new ConfigError('METRICS_TOKEN must not contain whitespace or control characters.');
  }
  return {
    token,
    public: booleanVar(env, 'METRICS_PUBLIC', false),
    httpMetrics: booleanVar(env, 'HTTP_METRICS_ENABLED', true),
    tenantLabels: booleanVar(env, 'METRICS_TENANT_LABELS', true, 'on or off'),
    maxTenants: integerVar(env, 'METRICS_MAX_TENANTS', 100, 1, 100_000),
  };
}

function authConfig(env: Env): AppConfig['auth'] {
  const pepper = readVar(env, 'API_KEY_PEPPER') ?? null;
  if (pepper !== null && pepper.length < 16)
    throw new ConfigError('API_KEY_PEPPER must be at least 16 characters long.');
  return {
    pepper,
    cacheTtlMs: integerVar(env, 'API_KEY_CACHE_TTL_MS', 5000, 0, 300_000),
    bootstrap: booleanVar(env, 'BOOTSTRAP_KEY', true, 'on or off'),
    pepperCheck: booleanVar(env, 'API_KEY_PEPPER_CHECK', true, 'on or off'),
    failureLimitPerMinute: integerVar(env, 'AUTH_FAILURE_LIMIT_PER_MINUTE', 60, 0, 1_000_000),
  };
}

const TRUST_PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** `HTTP_TRUST_PROXY`: off, a hop count, or a list of addresses, CIDR ranges and Express's range names. */
function trustProxyVar(env: Env): AppConfig['http']['trustProxy'] {
  const raw = readVar(env, 'HTTP_TRUST_PROXY')?.trim();
  if (raw === undefined || ['off', 'false', 'no', '0'].includes(raw.toLowerCase())) return false;
  if (/^\d+$/.test(raw)) {
    const hops = Number(raw);
    if (hops > 10)
      throw new ConfigError('HTTP_TRUST_PROXY must be off, a number of hops from 1 to 10, or addresses.');
    return hops;
  }
  const entries = raw.split(',').map((e) => e.trim());
  for (const entry of entries) {
    if (!isTrustedProxyEntry(entry)) {
      throw new ConfigError(
        'HTTP_TRUST_PROXY must be off, a number of hops from 1 to 10, or a comma-separated list of addresses, CIDR ranges, loopback, linklocal or uniquelocal.',
      );
    }
  }
  return entries;
}

function isTrustedProxyEntry(entry: string): boolean {
  if (TRUST_PROXY_NAMES.has(entry)) return true;
  const [address, prefix, ...rest] = entry.split('/');
  if (rest.length > 0 || address === undefined) return false;
  const family = isIP(address);
  if (family === 0) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

/** A folder variable, resolved against `cwd` when relative. */
function folderVar(env: Env, name: 'ROBOTS_DIR' | 'MODELS_DIR', def: string, cwd: string): string {
  const dir = readVar(env, name) ?? def;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this refuses
  if (/[\u0000-\u001f\u007f]/.test(dir)) throw new ConfigError(`${name} must be a folder path.`);
  return isAbsolute(dir) ? dir : resolve(cwd, dir);
}

export const USAGE_OVERFLOW_POLICIES = ['reject', 'drop'] as const;
export const RATE_LIMIT_FAILURE_MODES = ['local', 'open', 'closed'] as const;

/** An optional limit: unset is null (no limit). */
function limitVar(env: Env, name: EnvVarName, max: number): number | null {
  return readVar(env, name) === undefined ? null : integerVar(env, name, 0, 1, max);
}

const MAX_PIXELS_CAP = 2 ** 30;

function imagesConfig(env: Env): AppConfig['images'] {
  const maxPixels = integerVar(env, 'IMAGE_MAX_PIXELS', 4096 * 4096, 1, MAX_PIXELS_CAP);
  const maxRequestPixels = integerVar(env, 'IMAGE_MAX_REQUEST_PIXELS', 2 * 4096 * 4096, 1, MAX_PIXELS_CAP);
  const maxInflightPixels = integerVar(env, 'IMAGE_MAX_INFLIGHT_PIXELS', 4 * 4096 * 4096, 1, MAX_PIXELS_CAP);
  if (maxRequestPixels < maxPixels)
    throw new ConfigError('IMAGE_MAX_REQUEST_PIXELS must be at least IMAGE_MAX_PIXELS.');
  if (maxInflightPixels < maxRequestPixels)
    throw new ConfigError('IMAGE_MAX_INFLIGHT_PIXELS must be at least IMAGE_MAX_REQUEST_PIXELS.');
  return { maxPixels, maxRequestPixels, maxInflightPixels };
}

function gpuConfig(env: Env): AppConfig['gpu'] {
  const interval = decimalVar(env, 'GPU_METRICS_POLL_INTERVAL_SECONDS', 5, 0, 3600);
  if (interval > 0 && interval < 0.05) {
    throw new ConfigError('GPU_METRICS_POLL_INTERVAL_SECONDS must be 0 (off) or a number from 0.05 to 3600.');
  }
  return {
    pollIntervalMs: Math.round(interval * 1000),
    collectTimeoutMs: Math.round(decimalVar(env, 'GPU_COLLECT_TIMEOUT_SECONDS', 3, 0.05, 60) * 1000),
    nvmlLibraryPath: readVar(env, 'NVML_LIBRARY_PATH')?.trim() || 'libnvidia-ml.so.1',
    nvidiaSmiPath: readVar(env, 'NVIDIA_SMI_PATH')?.trim() || 'nvidia-smi',
  };
}

function rateLimitConfig(env: Env): AppConfig['rateLimit'] {
  return {
    defaults: {
      requestsPerMinute: limitVar(env, 'RATE_LIMIT_REQUESTS_PER_MINUTE', 1_000_000),
      maxConcurrent: limitVar(env, 'RATE_LIMIT_MAX_CONCURRENT', 100_000),
      dailyQuota: limitVar(env, 'RATE_LIMIT_DAILY_QUOTA', 1_000_000_000),
      tokensPerMinute: limitVar(env, 'RATE_LIMIT_TOKENS_PER_MINUTE', 1_000_000_000),
    },
    burstSeconds: integerVar(env, 'RATE_LIMIT_BURST_SECONDS', 60, 1, 3600),
    failureMode: enumVar(env, 'RATE_LIMIT_FAILURE_MODE', RATE_LIMIT_FAILURE_MODES, 'local'),
    replicas: integerVar(env, 'RATE_LIMIT_REPLICAS', 1, 1, 10_000),
    redisTimeoutMs: integerVar(env, 'RATE_LIMIT_REDIS_TIMEOUT_MS', 200, 10, 5000),
    breakerThreshold: integerVar(env, 'RATE_LIMIT_BREAKER_THRESHOLD', 5, 1, 1000),
    breakerCooldownMs: integerVar(env, 'RATE_LIMIT_BREAKER_COOLDOWN_MS', 1000, 50, 600_000),
    leaseTtlMs: integerVar(env, 'RATE_LIMIT_LEASE_TTL_SECONDS', 600, 1, 86_400) * 1000,
  };
}

/**
 * Builds the configuration from an environment. Pure apart from reading `*_FILE` secrets; throws
 * {@link ConfigError} naming the first invalid variable.
 */
export function loadConfig(env: Env, options: { cwd?: string; version?: string } = {}): AppConfig {
  const host = readVar(env, 'HOST') ?? '0.0.0.0';
  if (!HOSTNAME.test(host)) throw new ConfigError('HOST must be a host name or an IP address.');
  const config: AppConfig = {
    version: options.version ?? '0.0.0',
    http: {
      host,
      port: integerVar(env, 'PORT', 8000, 0, 65535),
      bodyLimitBytes: integerVar(env, 'HTTP_BODY_LIMIT_BYTES', 8 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
      keepAliveTimeoutMs: integerVar(env, 'HTTP_KEEP_ALIVE_TIMEOUT_MS', 65_000, 1000, 3_600_000),
      requestTimeoutMs: integerVar(env, 'HTTP_REQUEST_TIMEOUT_MS', 30_000, 1000, 3_600_000),
      maxConnections: integerVar(env, 'HTTP_MAX_CONNECTIONS', 1024, 1, 1_000_000),
      trustProxy: trustProxyVar(env),
    },
    database: databaseConfig(env, options.cwd ?? process.cwd()),
    redis: redisConfig(env),
    log: { level: enumVar(env, 'LOG_LEVEL', LOG_LEVELS, 'info') },
    metrics: metricsConfig(env),
    auth: authConfig(env),
    rateLimit: rateLimitConfig(env),
    gpu: gpuConfig(env),
    robots: { dir: folderVar(env, 'ROBOTS_DIR', 'config/robots', options.cwd ?? process.cwd()) },
    models: {
      dir: folderVar(env, 'MODELS_DIR', 'models', options.cwd ?? process.cwd()),
      stallTimeoutMs: integerVar(env, 'MODEL_STALL_TIMEOUT_MS', 30_000, 100, 3_600_000),
    },
    images: imagesConfig(env),
    usage: {
      flushIntervalMs: integerVar(env, 'USAGE_FLUSH_INTERVAL_MS', 1000, 10, 600_000),
      batchSize: integerVar(env, 'USAGE_BATCH_SIZE', 500, 1, 5000),
      bufferMax: integerVar(env, 'USAGE_BUFFER_MAX', 10_000, 1, 10_000_000),
      overflowPolicy: enumVar(env, 'USAGE_OVERFLOW_POLICY', USAGE_OVERFLOW_POLICIES, 'reject'),
    },
    shutdown: {
      drainDelayMs: integerVar(env, 'SHUTDOWN_DRAIN_DELAY_MS', 0, 0, 600_000),
      timeoutMs: integerVar(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    },
  };
  return deepFreeze(config);
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (child !== null && typeof child === 'object') deepFreeze(child as object);
  }
  return Object.freeze(value);
}
