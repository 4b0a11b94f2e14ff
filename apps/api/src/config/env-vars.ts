import { readFileSync } from 'node:fs';

/**
 * The catalogue of environment variables: one entry each, with the default a user sees and a description.
 * The README's configuration table is checked against this list by a test, so the two cannot drift.
 */
export interface EnvVarSpec {
  readonly name: string;
  /** The default as a user would write it, or '' when unset means "off" or "none". */
  readonly default: string;
  readonly description: string;
  /** Secrets may also come from `<NAME>_FILE` (Docker and Kubernetes secrets) and are never echoed. */
  readonly secret?: boolean;
}

export const ENV_VARS = [
  {
    name: 'PORT',
    default: '8000',
    description: 'TCP port the API listens on (0-65535; 0 picks a free port).',
  },
  { name: 'HOST', default: '0.0.0.0', description: 'Address the API binds to.' },
  {
    name: 'DATABASE_URL',
    default: 'sqlite:data/platform.sqlite',
    description:
      '`sqlite:<path>` (file and folder created if missing) or `postgres://user:pass@host:5432/db`. Migrations run at start.',
    secret: true,
  },
  {
    name: 'DATABASE_SCHEMA',
    default: 'public',
    description: 'PostgreSQL schema holding the platform tables (ignored for SQLite).',
  },
  { name: 'DATABASE_POOL_SIZE', default: '10', description: 'PostgreSQL connection pool size (1-200).' },
  {
    name: 'DATABASE_CONNECT_TIMEOUT_MS',
    default: '5000',
    description: 'How long to wait for a PostgreSQL connection before failing.',
  },
  {
    name: 'DATABASE_STATEMENT_TIMEOUT_MS',
    default: '5000',
    description:
      'PostgreSQL: the longest one query may run (`statement_timeout`); the client gives up on a connection that has not answered by then plus 1 s, and drops it (100-600000).',
  },
  {
    name: 'REDIS_URL',
    default: '',
    description: '`redis://[:password@]host:6379[/db]`. Unset: no Redis (limits in memory).',
    secret: true,
  },
  {
    name: 'LOG_LEVEL',
    default: 'info',
    description: 'One of `trace`, `debug`, `info`, `warn`, `error`, `fatal`, `silent`. Logs are JSON lines.',
  },
  {
    name: 'METRICS_TOKEN',
    default: '',
    description:
      'Token for `/monitoring/metrics` (`Authorization: Bearer` or `X-Admin-Token`); at least 16 characters.',
    secret: true,
  },
  {
    name: 'METRICS_PUBLIC',
    default: 'false',
    description: '`true` serves `/monitoring/metrics` without a token (only where the network gates it).',
  },
  {
    name: 'METRICS_TENANT_LABELS',
    default: 'on',
    description:
      '`off` drops the `tenant` label from every metric that has one (fewer series; no per-tenant breakdown).',
  },
  {
    name: 'METRICS_MAX_TENANTS',
    default: '100',
    description:
      'Tenants with series of their own (1-100000), in order of first use; the rest count under `tenant="__other__"`.',
  },
  {
    name: 'HTTP_METRICS_ENABLED',
    default: 'true',
    description: 'Record the `vla_http_*` metrics for every request (the benchmark switches it off).',
  },
  {
    name: 'HTTP_BODY_LIMIT_BYTES',
    default: '8388608',
    description: 'Largest accepted request body in bytes (8 MiB fits several base64 camera images).',
  },
  {
    name: 'HTTP_KEEP_ALIVE_TIMEOUT_MS',
    default: '65000',
    description: 'Idle keep-alive timeout; keep it above the load balancer idle timeout.',
  },
  {
    name: 'HTTP_REQUEST_TIMEOUT_MS',
    default: '30000',
    description: 'How long a client may take to send a whole request (headers and body); then 408.',
  },
  {
    name: 'HTTP_MAX_CONNECTIONS',
    default: '1024',
    description:
      'Most client connections open at once (1-1000000); a connection past it is closed at once and counted. Idle keep-alive connections close after `HTTP_KEEP_ALIVE_TIMEOUT_MS`.',
  },
  {
    name: 'HTTP_TRUST_PROXY',
    default: 'off',
    description:
      'Which proxies in front of the API to believe about the client address (`X-Forwarded-For`): `off`, a number of hops (1-10), or a comma-separated list of addresses, CIDR ranges, `loopback`, `linklocal`, `uniquelocal`.',
  },
  {
    name: 'API_KEY_PEPPER',
    default: '',
    description:
      'Secret that keys the HMAC of stored API-key secrets (16+ characters). Changing it invalidates every key.',
    secret: true,
  },
  {
    name: 'API_KEY_PEPPER_CHECK',
    default: 'on',
    description:
      '`on`: refuse to start when `API_KEY_PEPPER` differs from the one the stored keys were made with (a marker of it, never the pepper, is kept in the database). `off`: start anyway and record the new pepper (every existing key stops working).',
  },
  {
    name: 'API_KEY_CACHE_TTL_MS',
    default: '5000',
    description:
      'How long a verified key is trusted without the database: the longest a revoked key keeps working on another replica.',
  },
  {
    name: 'AUTH_FAILURE_LIMIT_PER_MINUTE',
    default: '60',
    description:
      'Failed authentications per minute per client address before keys not already verified are answered 429 without a database look-up (0-1000000; 0: no limit).',
  },
  {
    name: 'BOOTSTRAP_KEY',
    default: 'on',
    description:
      '`on`: a first start with no keys creates tenant `default` and prints one admin key, once. `off`: never.',
  },
  {
    name: 'ROBOTS_DIR',
    default: 'config/robots',
    description:
      'Folder of robot profiles (`<robot_type>.yaml`: limits for the safety checks), relative to the working directory. Start-up fails if one is invalid.',
  },
  {
    name: 'MODELS_DIR',
    default: 'models',
    description:
      'Folder of models (`<id>/model.yaml` next to its `.onnx` file), relative to the working directory. A model that fails to load is listed as unavailable.',
  },
  {
    name: 'MODEL_STALL_TIMEOUT_MS',
    default: '30000',
    description:
      'A model with queued or running work that completes nothing for this long is unhealthy (readiness 503): the stalled-worker case.',
  },
  {
    name: 'IMAGE_MAX_PIXELS',
    default: '16777216',
    description:
      'Largest image, in pixels (width × height, read from its header before decoding; 4096 × 4096 by default); larger gets 422 `image_too_large`.',
  },
  {
    name: 'IMAGE_MAX_REQUEST_PIXELS',
    default: '33554432',
    description: 'Most pixels of all the images of one request together; more gets 422 `image_too_large`.',
  },
  {
    name: 'IMAGE_MAX_INFLIGHT_PIXELS',
    default: '67108864',
    description:
      'Most pixels this process decodes at once, across requests; a request whose images do not fit waits (within its deadline) for others to finish. Bounds decoding memory.',
  },
  {
    name: 'USAGE_FLUSH_INTERVAL_MS',
    default: '1000',
    description: 'How often buffered usage records are written to the database, in batches.',
  },
  {
    name: 'USAGE_BATCH_SIZE',
    default: '500',
    description: 'Most usage records written in one insert (1-5000).',
  },
  {
    name: 'USAGE_BUFFER_MAX',
    default: '10000',
    description:
      'Most usage records held in memory while the database is slow or down; see `USAGE_OVERFLOW_POLICY` for what happens beyond.',
  },
  {
    name: 'USAGE_OVERFLOW_POLICY',
    default: 'reject',
    description:
      '`reject`: a full usage buffer answers new inference 503 `usage_unavailable` (billable work is never unrecorded). `drop`: serve anyway, and count and log every record dropped.',
  },
  {
    name: 'RATE_LIMIT_REQUESTS_PER_MINUTE',
    default: '',
    description:
      'Requests per minute per key when neither the key nor its tenant sets `requests_per_minute`. Unset: no limit.',
  },
  {
    name: 'RATE_LIMIT_BURST_SECONDS',
    default: '60',
    description:
      "How many seconds' worth of a key's per-minute rate it may send at once (1-3600): 60 lets a whole minute's requests come together, 6 a tenth of them.",
  },
  {
    name: 'RATE_LIMIT_MAX_CONCURRENT',
    default: '',
    description: 'In-flight requests per key when the key sets no `max_concurrent`. Unset: no limit.',
  },
  {
    name: 'RATE_LIMIT_DAILY_QUOTA',
    default: '',
    description:
      'Requests per tenant per UTC day when the tenant sets no `daily_request_quota`. Unset: no quota.',
  },
  {
    name: 'RATE_LIMIT_TOKENS_PER_MINUTE',
    default: '',
    description:
      'LLM tokens per tenant per minute when the tenant sets no `tokens_per_minute`. Unset: no limit.',
  },
  {
    name: 'RATE_LIMIT_FAILURE_MODE',
    default: 'local',
    description:
      'While Redis is out of reach: `local` enforces each limit in this process at limit / `RATE_LIMIT_REPLICAS`, `open` admits every request (counted), `closed` answers 503 `rate_limit_unavailable`.',
  },
  {
    name: 'RATE_LIMIT_REPLICAS',
    default: '1',
    description: 'How many replicas share the limits: `local` mode divides each limit by it (1-10000).',
  },
  {
    name: 'RATE_LIMIT_REDIS_TIMEOUT_MS',
    default: '200',
    description:
      'The longest a request waits on Redis for a limit check (10-5000); past it, the failure mode decides.',
  },
  {
    name: 'RATE_LIMIT_BREAKER_THRESHOLD',
    default: '5',
    description:
      'Consecutive Redis failures after which checks stop touching Redis until a probe succeeds (1-1000).',
  },
  {
    name: 'RATE_LIMIT_BREAKER_COOLDOWN_MS',
    default: '1000',
    description: 'How often an open circuit probes Redis with a PING (50-600000).',
  },
  {
    name: 'RATE_LIMIT_LEASE_TTL_SECONDS',
    default: '600',
    description:
      'How long a concurrency slot lives if its request never releases it (a replica died); keep it above the longest request (1-86400).',
  },
  {
    name: 'GPU_METRICS_POLL_INTERVAL_SECONDS',
    default: '5',
    description:
      'How often GPU telemetry is collected, in seconds (decimals allowed, 0.05-3600); `0` turns it off. Collections never overlap; while they fail the interval doubles up to 60 s.',
  },
  {
    name: 'GPU_COLLECT_TIMEOUT_SECONDS',
    default: '3',
    description:
      'The longest one GPU collection may take (0.05-60, decimals allowed); past it the collection counts as failed (`timeout`) and the next waits for it to end.',
  },
  {
    name: 'NVML_LIBRARY_PATH',
    default: 'libnvidia-ml.so.1',
    description:
      'The NVML library: a file path, or a name the dynamic loader searches for. When it cannot be loaded, `nvidia-smi` is used.',
  },
  {
    name: 'NVIDIA_SMI_PATH',
    default: 'nvidia-smi',
    description:
      'The `nvidia-smi` command, the fallback when NVML cannot be loaded (a path, or a name on `PATH`). With neither, GPU telemetry is off and the server runs.',
  },
  {
    name: 'SHUTDOWN_DRAIN_DELAY_MS',
    default: '0',
    description:
      'After SIGTERM, how long requests keep being served while readiness is 503 (the load balancer lag).',
  },
  {
    name: 'SHUTDOWN_TIMEOUT_MS',
    default: '10000',
    description: 'How long in-flight requests may take to finish once intake has stopped.',
  },
] as const satisfies readonly EnvVarSpec[];

export type EnvVarName = (typeof ENV_VARS)[number]['name'];

/** Thrown for an invalid environment; the message names the variable and never carries its value. */
export class ConfigError extends Error {
  readonly code = 'invalid_configuration';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export type Env = Readonly<Record<string, string | undefined>>;

const SECRETS: ReadonlySet<string> = new Set(
  ENV_VARS.filter((v) => 'secret' in v && v.secret).map((v) => v.name),
);

/**
 * Reads one variable. Secrets may come from `<NAME>_FILE`; an empty value counts as unset.
 * File contents lose one trailing newline (what `echo` and most secret tools add).
 */
export function readVar(env: Env, name: EnvVarName): string | undefined {
  const direct = env[name];
  const fileVar = `${name}_FILE`;
  const file = SECRETS.has(name) ? env[fileVar] : undefined;
  if (file !== undefined && file !== '') {
    if (direct !== undefined && direct !== '') {
      throw new ConfigError(`Set ${name} or ${fileVar}, not both.`);
    }
    let content: string;
    try {
      content = readFileSync(file, 'utf8');
    } catch {
      throw new ConfigError(`${fileVar} must name a readable file.`);
    }
    const value = content.replace(/\r?\n$/, '');
    return value === '' ? undefined : value;
  }
  return direct === '' ? undefined : direct;
}

export function integerVar(env: Env, name: EnvVarName, def: number, min: number, max: number): number {
  const raw = readVar(env, name)?.trim();
  if (raw === undefined) return def;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(`${name} must be an integer from ${min} to ${max}.`);
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}.`);
  }
  return value;
}

/** A decimal number from `min` to `max` (`0.5`, `5`), or `def` when unset. */
export function decimalVar(env: Env, name: EnvVarName, def: number, min: number, max: number): number {
  const raw = readVar(env, name)?.trim();
  if (raw === undefined) return def;
  const value = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= min && value <= max))
    throw new ConfigError(`${name} must be a number from ${min} to ${max}.`);
  return value;
}

/** `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`; `expects` is how the refusal spells the two values. */
export function booleanVar(
  env: Env,
  name: EnvVarName,
  def: boolean,
  expects: 'true or false' | 'on or off' = 'true or false',
): boolean {
  const raw = readVar(env, name)?.trim().toLowerCase();
  if (raw === undefined) return def;
  if (['true', '1', 'yes', 'on'].includes(raw)) return true;
  if (['false', '0', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(`${name} must be ${expects}.`);
}

export function enumVar<const T extends string>(env: Env, name: EnvVarName, values: readonly T[], def: T): T {
  const raw = readVar(env, name)?.trim().toLowerCase();
  if (raw === undefined) return def;
  const found = values.find((v) => v === raw);
  if (found === undefined) throw new ConfigError(`${name} must be one of ${values.join(', ')}.`);
  return found;
}
