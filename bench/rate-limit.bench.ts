// `npm run bench:rate-limit` (builds the API first): what a rate-limit check adds to POST /v1/inference,
// with the limits in memory (the default without REDIS_URL) and on a Redis over loopback, as ratios against
// the same route with no limit on, every arm in the same run; and the limiter alone, in-process, in µs per
// admission on each store. Writes bench/results/<YYYY-MM-DD>-<hostname>-rate-limit.{json,md}.
//
// It has its own round loop (on the harness's server processes, load generator, pinning and interference
// meter), as the inference bench does: its arms need a concurrency of their own (1 and 8), a route that
// answers 400 on purpose, per-run scrapes of the API's Redis counters, and an in-process part.
//
//   HTTP  POST /v1/inference, demo-policy, raw pixels (policyBody() of the e2e tests) → 200; and the same
//         route with a body the controller refuses right after the guard ({"model":"demo-policy"} → 400
//         invalid_request): the guard's work without the model's noise around it. Concurrency 1 and 8.
//         Arms: no limit on (no REDIS_URL), limits in memory (no REDIS_URL), limits on Redis, Redis with
//         requests_per_minute only (no concurrency slot, so no ZREM), and a control: the no-limit key on the
//         Redis-configured process (so that Redis / no limits can also be read inside one process).
//   micro The limiter in this process, no HTTP: MemoryRateLimitStore.admitNow, RateLimiter.admit on each
//         backend, RedisRateLimitStore.admit (one EVALSHA) and release (one ZREM), a PING as the floor.
import { Test } from '@nestjs/testing';
import { MonitoringModule } from '@app/monitoring';
import {
  type Limits,
  MemoryRateLimitStore,
  NO_LIMITS,
  RateLimiter,
  RateLimitModule,
  type RateLimitModuleOptions,
  type RedisRateLimitStore,
} from '@app/rate-limit';
import Redis from 'ioredis';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';
import { register } from 'prom-client';
import { policyBody } from '../apps/api/test/support/inference-client';
import { parsePrometheusText, sampleValue } from '../apps/api/test/support/prom-text';
import {
  apiServer,
  killAllServers,
  measure,
  type Pinning,
  pinLoadGenerator,
  readSettings,
  REPO_ROOT,
  type RequestSpec,
  type Sample,
  secondsSince,
  ServerProcess,
  runEntryPoint,
} from './harness';
import { type Interference, startInterferenceMeter } from './interference';
import { machineInfo, type MachineInfo, machineRows } from './report';
import { ratios, summarize, type Summary } from './stats';

/** Short rounds by default: the whole run stays near 5 minutes on a 2-core machine. */
const settings = readSettings({
  BENCH_ROUNDS: '4',
  BENCH_DURATION_S: '2',
  BENCH_WARMUP_S: '1',
  BENCH_INITIAL_WARMUP_S: '1',
  ...process.env,
});
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** The URL as results and errors show it: never its user or password. */
const SHOWN_REDIS_URL = ((): string => {
  try {
    const url = new URL(REDIS_URL);
    url.username = '';
    url.password = '';
    return url.toString();
  } catch {
    return 'redis://(unparsable BENCH_REDIS_URL)';
  }
})();
/** The in-process part: rounds, and milliseconds per arm and round. */
const MICRO_ROUNDS = positiveInteger('BENCH_MICRO_ROUNDS', 7);
const MICRO_ROUND_MS = positiveInteger('BENCH_ROUND_MS', 300);
const CONCURRENCIES = [1, 8] as const;
/** In-flight admissions of the concurrent in-process Redis arm (as many as the HTTP arms' connections). */
const MICRO_CONCURRENCY = 8;

/** The limits of the limited arms: high enough never to refuse during the run, so every check admits. */
const HIGH = { requestsPerMinute: 1_000_000, maxConcurrent: 1000, dailyQuota: 1_000_000_000 } as const;
const FULL_LIMITS: Limits = {
  ...NO_LIMITS,
  requestsPerMinute: HIGH.requestsPerMinute,
  // What limitsFor() makes of it with the default RATE_LIMIT_BURST_SECONDS=60.
  burst: HIGH.requestsPerMinute,
  maxConcurrent: HIGH.maxConcurrent,
  dailyQuota: HIGH.dailyQuota,
};
const RPM_LIMITS: Limits = {
  ...NO_LIMITS,
  requestsPerMinute: HIGH.requestsPerMinute,
  burst: HIGH.requestsPerMinute,
};

const BOOTSTRAP_KEY_LINE = /"bootstrap_admin_key":"(vla_[0-9A-Za-z_]+)"/;
const INFERENCE_BODY = JSON.stringify(policyBody());
/** Valid JSON the schema refuses: the guard has admitted it (and holds a slot) when the controller says 400. */
const REFUSED_BODY = JSON.stringify({ model: 'demo-policy' });

const log = (line: string): void => void process.stderr.write(`${line}\n`);

function positiveInteger(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[1-9][0-9]*$/.test(raw)) throw new Error(`${name} must be a positive integer.`);
  return Number(raw);
}

// ---------------------------------------------------------------------------------------------------------
// CPU of a process, and what Redis says about itself

let ticksPerSecond = 100;

/** utime + stime of a process in seconds (NaN where /proc is missing or the process is gone). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / ticksPerSecond;
  } catch {
    return Number.NaN;
  }
}

/** `INFO commandstats`: calls and µs spent per command, inside Redis. */
async function commandStats(redis: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const text = await redis.info('commandstats');
  const stats = new Map<string, { calls: number; usec: number }>();
  for (const match of text.matchAll(/^cmdstat_([a-z|_-]+):calls=(\d+),usec=(\d+)/gm)) {
    stats.set(match[1], { calls: Number(match[2]), usec: Number(match[3]) });
  }
  return stats;
}

/** µs per call of `command` inside Redis between two snapshots (every client's calls: Redis is shared). */
function usecPerCall(
  before: Map<string, { calls: number; usec: number }>,
  after: Map<string, { calls: number; usec: number }>,
  command: string,
): { calls: number; usecPerCall: number } | null {
  const a = after.get(command);
  if (a === undefined) return null;
  const b = before.get(command) ?? { calls: 0, usec: 0 };
  const calls = a.calls - b.calls;
  return calls > 0 ? { calls, usecPerCall: (a.usec - b.usec) / calls } : null;
}

/** Deletes every key matching `pattern` (SCAN, never KEYS: the Redis is shared). */
async function deleteKeys(redis: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

async function countKeys(redis: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let count = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    count += keys.length;
  } while (cursor !== '0');
  return count;
}

// ---------------------------------------------------------------------------------------------------------
// API set-up: tenants and keys through the admin API, with the key the API printed on its first start

async function json<T>(response: Response, what: string): Promise<T> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${what}: ${response.status} ${text.slice(0, 400)}`);
  return JSON.parse(text) as T;
}

function bootstrapKey(server: ServerProcess): string {
  const admin = server.startupLines.map((l) => BOOTSTRAP_KEY_LINE.exec(l)?.[1]).find((k) => k !== undefined);
  if (admin === undefined) throw new Error(`${server.name}: no "bootstrap_admin_key" line at start-up`);
  return admin;
}

type LimitsKind = 'none' | 'full' | 'rpm';

interface Caller {
  key: string;
  keyId: string;
  tenantId: string;
  tenant: string;
}

/** A tenant and an inference key carrying `kind`'s limits (none: nothing on the key, tenant or default). */
async function createCaller(server: ServerProcess, admin: string, kind: LimitsKind): Promise<Caller> {
  const post = async <T>(route: string, body: unknown): Promise<T> =>
    json<T>(
      await fetch(new URL(route, server.origin), {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': admin },
        body: JSON.stringify(body),
      }),
      `${server.name} POST ${route}`,
    );
  const tenant = `bench-rl-${kind}`;
  const created = await post<{ id: string }>('/admin/tenants', {
    name: tenant,
    ...(kind === 'full' ? { daily_request_quota: HIGH.dailyQuota } : {}),
  });
  const key = await post<{ id: string; key: string }>('/admin/keys', {
    tenant,
    name: `${tenant} bench`,
    scopes: ['inference'],
    ...(kind === 'none' ? {} : { requests_per_minute: HIGH.requestsPerMinute }),
    ...(kind === 'full' ? { max_concurrent: HIGH.maxConcurrent } : {}),
  });
  return { key: key.key, keyId: key.id, tenantId: created.id, tenant };
}

async function untilReady(server: ServerProcess): Promise<void> {
  const until = performance.now() + 60_000;
  for (;;) {
    const response = await fetch(new URL('/health/ready', server.origin));
    await response.text();
    if (response.ok) return;
    if (performance.now() > until) throw new Error(`${server.name}: not ready within 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function rateLimitBackend(server: ServerProcess, admin: string): Promise<string> {
  const detailed = await json<{ checks?: { rate_limit?: { backend?: string } } }>(
    await fetch(new URL('/health/detailed', server.origin), { headers: { 'x-api-key': admin } }),
    `${server.name} GET /health/detailed`,
  );
  return detailed.checks?.rate_limit?.backend ?? 'unknown';
}

/** The API's own counters of its Redis commands and fallbacks, from /monitoring/metrics (ops key). */
interface LimiterCounters {
  admitOk: number;
  admitFailed: number;
  releaseOk: number;
  releaseFailed: number;
  fallbacks: number;
  admitSecondsSum: number;
  admitCount: number;
}

async function limiterCounters(server: ServerProcess, admin: string): Promise<LimiterCounters> {
  const response = await fetch(new URL('/monitoring/metrics', server.origin), {
    headers: { 'x-api-key': admin },
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${server.name} GET /monitoring/metrics: ${response.status}`);
  const samples = parsePrometheusText(text);
  const value = (name: string, labels: Record<string, string>): number =>
    sampleValue(samples, name, labels) ?? 0;
  const ops = 'vla_redis_operations_total';
  return {
    admitOk: value(ops, { operation: 'admit', status: 'ok' }),
    admitFailed:
      value(ops, { operation: 'admit', status: 'error' }) +
      value(ops, { operation: 'admit', status: 'timeout' }),
    releaseOk: value(ops, { operation: 'release', status: 'ok' }),
    releaseFailed:
      value(ops, { operation: 'release', status: 'error' }) +
      value(ops, { operation: 'release', status: 'timeout' }),
    fallbacks: ['local', 'open', 'closed'].reduce(
      (sum, mode) => sum + value('vla_rate_limit_store_fallback_total', { mode }),
      0,
    ),
    admitSecondsSum: value('vla_redis_operation_duration_seconds_sum', { operation: 'admit' }),
    admitCount: value('vla_redis_operation_duration_seconds_count', { operation: 'admit' }),
  };
}

// ---------------------------------------------------------------------------------------------------------
// HTTP arms

type Route = 'inference' | 'refused';
type ArmKind = 'none' | 'memory' | 'redis' | 'redis-rpm' | 'none-redis-process';

const KIND_TEXT: Record<ArmKind, string> = {
  none: 'no limit on (key, tenant and defaults unset; no REDIS_URL): the guard admits without a store',
  memory: `limits in memory (no REDIS_URL): key requests_per_minute ${HIGH.requestsPerMinute}, max_concurrent ${HIGH.maxConcurrent}, tenant daily_request_quota ${HIGH.dailyQuota}`,
  redis: `limits on Redis (REDIS_URL=${SHOWN_REDIS_URL}), the same limits as memory: one EVALSHA to admit, one ZREM at close`,
  'redis-rpm': `Redis, key requests_per_minute ${HIGH.requestsPerMinute} only (no concurrency slot: no ZREM; no quota)`,
  'none-redis-process': 'control: the no-limit key on the Redis-configured process (no store touched)',
};

interface HttpArm {
  name: string;
  group: string;
  route: Route;
  kind: ArmKind;
  connections: number;
  description: string;
  server: ServerProcess;
  admin: string;
  onRedisProcess: boolean;
  request: RequestSpec;
  expectStatus: number;
}

interface HttpSample extends Sample {
  /** Server CPU per answered request over the measured run (whole process, ms). */
  cpuMsPerRequest?: number;
  /** Redis server CPU per answered request over the same run (ms); Redis is shared, so others' use counts. */
  redisCpuMsPerRequest?: number;
  /** On the Redis-configured process: the API's Redis counters over the measured run, per request. */
  admitsPerRequest?: number;
  releasesPerRequest?: number;
  /** The raw counts behind them. */
  admits?: number;
  releases?: number;
  failedRedisOps?: number;
  fallbacks?: number;
  /** Mean of vla_redis_operation_duration_seconds{operation="admit"} over the run: the API's wait, ms. */
  admitWaitMs?: number;
  /** INFO commandstats over the run: µs inside Redis per EVALSHA. */
  evalshaUsec?: number;
}

interface ArmResult {
  name: string;
  group: string;
  route: Route;
  kind: ArmKind;
  connections: number;
  description: string;
  rounds: HttpSample[];
  reqPerSec: Summary;
  p50Ms: Summary;
  p99Ms: Summary;
  cpuMsPerRequest?: Summary;
  redisCpuMsPerRequest?: Summary;
  admitWaitMs?: Summary;
  evalshaUsec?: Summary;
  admitsPerRequest?: Summary;
  releasesPerRequest?: Summary;
  failedRedisOps: number;
  fallbacks: number;
}

interface Comparison {
  name: string;
  group: string;
  candidate: string;
  baseline: string;
}

interface ComparisonResult extends Comparison {
  reqPerSecRatio: Summary;
  p50Ratio: Summary;
  p99Ratio: Summary;
  p50DifferenceMs: Summary;
  cpuDifferenceMs?: Summary;
  perRound: { reqPerSec: number[]; p50: number[]; p99: number[] };
}

async function runArm(
  arm: HttpArm,
  durationS: number,
  measured: boolean,
  redis: Redis,
  redisPid: number | null,
): Promise<HttpSample> {
  const { server } = arm;
  if (!server.alive) throw new Error(server.describeExit());
  const counters = measured && arm.onRedisProcess ? await limiterCounters(server, arm.admin) : null;
  const stats = measured && arm.onRedisProcess ? await commandStats(redis) : null;
  const cpu = measured && server.pid !== undefined ? cpuSeconds(server.pid) : Number.NaN;
  const redisCpu = measured && redisPid !== null ? cpuSeconds(redisPid) : Number.NaN;
  let sample: HttpSample;
  try {
    sample = await measure(server.origin, arm.request, durationS, arm.connections, arm.expectStatus);
  } catch (error) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (!server.alive) throw new Error(`${arm.name}: ${server.describeExit()}`, { cause: error });
    throw error;
  }
  if (!measured) return sample;
  if (sample.requests === 0) throw new Error(`${arm.name}: no answer at all in ${durationS} s`);
  const cpuAfter = server.pid !== undefined ? cpuSeconds(server.pid) : Number.NaN;
  const redisCpuAfter = redisPid !== null ? cpuSeconds(redisPid) : Number.NaN;
  const perRequest = (seconds: number): number | undefined =>
    Number.isFinite(seconds) ? (seconds * 1000) / sample.requests : undefined;
  sample.cpuMsPerRequest = perRequest(cpuAfter - cpu);
  sample.redisCpuMsPerRequest = perRequest(redisCpuAfter - redisCpu);
  if (counters !== null && stats !== null) {
    const after = await limiterCounters(server, arm.admin);
    const statsAfter = await commandStats(redis);
    // Requests still in flight when autocannon stopped are counted by the API, not by autocannon.
    sample.admits = after.admitOk - counters.admitOk;
    sample.releases = after.releaseOk - counters.releaseOk;
    sample.admitsPerRequest = sample.admits / sample.requests;
    sample.releasesPerRequest = sample.releases / sample.requests;
    sample.failedRedisOps =
      after.admitFailed - counters.admitFailed + (after.releaseFailed - counters.releaseFailed);
    sample.fallbacks = after.fallbacks - counters.fallbacks;
    const admits = after.admitCount - counters.admitCount;
    if (admits > 0) sample.admitWaitMs = ((after.admitSecondsSum - counters.admitSecondsSum) * 1000) / admits;
    const evalsha = usecPerCall(stats, statsAfter, 'evalsha');
    if (evalsha !== null && (sample.admitsPerRequest ?? 0) > 0.5) sample.evalshaUsec = evalsha.usecPerCall;
  }
  return sample;
}

/** Fails unless the arm's request gets the status and the rate-limit headers its kind implies. */
async function checkArm(arm: HttpArm, redis: Redis, caller: Caller): Promise<void> {
  const response = await fetch(new URL(arm.request.path, arm.server.origin), {
    method: 'POST',
    headers: arm.request.headers,
    body: arm.request.body,
  });
  const text = await response.text();
  if (response.status !== arm.expectStatus)
    throw new Error(
      `${arm.name}: expected ${arm.expectStatus}, got ${response.status}: ${text.slice(0, 300)}`,
    );
  if (arm.expectStatus === 200 && !text.includes('"actions"'))
    throw new Error(`${arm.name}: no actions in ${text.slice(0, 300)}`);
  const policy = response.headers.get('ratelimit-policy') ?? '';
  const wanted: Record<ArmKind, string[]> = {
    none: [],
    'none-redis-process': [],
    memory: ['requests_per_minute', 'concurrency', 'daily_quota'],
    redis: ['requests_per_minute', 'concurrency', 'daily_quota'],
    'redis-rpm': ['requests_per_minute'],
  };
  const seen = [...policy.matchAll(/"([a-z_]+)";q=/g)].map((m) => m[1]);
  if (seen.join() !== wanted[arm.kind].join())
    throw new Error(
      `${arm.name}: RateLimit-Policy ${JSON.stringify(policy)}, expected ${wanted[arm.kind].join()}`,
    );
  const onRedis = await countKeys(redis, `vla:rl:{${caller.tenantId}}:*`);
  const slots = await countKeys(redis, `vla:rl:{${caller.tenantId}}:conc:*`);
  const expectRedis = arm.kind === 'redis' || arm.kind === 'redis-rpm';
  if (expectRedis !== onRedis > 0)
    throw new Error(
      `${arm.name}: ${onRedis} Redis keys for its tenant, expected ${expectRedis ? 'some' : 'none'}`,
    );
  if (arm.kind === 'redis-rpm' && slots > 0) throw new Error(`${arm.name}: a concurrency key on Redis`);
}

// ---------------------------------------------------------------------------------------------------------
// The limiter alone, in this process

interface MicroArm {
  name: string;
  description: string;
  /** Redis commands this arm sends per timed call (for the time inside Redis). */
  redisCommand?: string;
  /** Runs for `ms`, timing each call into `hist` (ns); resolves with the number of timed calls. */
  run(ms: number, hist: RecordableHistogram): Promise<number>;
}

interface MicroArmResult {
  name: string;
  description: string;
  callsPerSec: Summary;
  p50Us: Summary;
  p99Us: Summary;
  meanUs: Summary;
  redisUsecPerCall?: Summary;
  rounds: {
    calls: number;
    elapsedMs: number;
    p50Us: number;
    p99Us: number;
    meanUs: number;
    redisUsecPerCall?: number;
  }[];
}

interface MicroComparison {
  name: string;
  candidate: string;
  baseline: string;
  p50Ratio: Summary;
  p50DifferenceUs: Summary;
}

const subjectFor = (name: string) => ({ keyId: randomUUID(), tenantId: randomUUID(), tenantName: name });

function expectAllowed(allowed: boolean, arm: string): void {
  if (!allowed) throw new Error(`${arm}: an admission was refused; the arm would measure refusals`);
}

/** A loop over `op` for `ms`, timing each call (ns) into `hist`. */
async function sequential(ms: number, hist: RecordableHistogram, op: () => Promise<void>): Promise<number> {
  const end = process.hrtime.bigint() + BigInt(ms) * 1_000_000n;
  let calls = 0;
  for (;;) {
    const t0 = process.hrtime.bigint();
    if (t0 >= end) return calls;
    await op();
    hist.record(Math.max(1, Number(process.hrtime.bigint() - t0)));
    calls++;
  }
}

/** Like {@link sequential}, but only what `op` passes through `timed` is recorded (set-up and clean-up are not). */
async function partlyTimed(
  ms: number,
  hist: RecordableHistogram,
  op: (timed: <T>(run: () => Promise<T>) => Promise<T>) => Promise<void>,
): Promise<number> {
  const timed = async <T>(run: () => Promise<T>): Promise<T> => {
    const t0 = process.hrtime.bigint();
    const result = await run();
    hist.record(Math.max(1, Number(process.hrtime.bigint() - t0)));
    return result;
  };
  const end = process.hrtime.bigint() + BigInt(ms) * 1_000_000n;
  let calls = 0;
  while (process.hrtime.bigint() < end) {
    await op(timed);
    calls++;
  }
  return calls;
}

function syncLoop(ms: number, hist: RecordableHistogram, op: () => void): number {
  const end = process.hrtime.bigint() + BigInt(ms) * 1_000_000n;
  let calls = 0;
  for (;;) {
    const t0 = process.hrtime.bigint();
    if (t0 >= end) return calls;
    op();
    hist.record(Math.max(1, Number(process.hrtime.bigint() - t0)));
    calls++;
  }
}

const limiterOptions = (redisUrl: string | null, keyPrefix: string): RateLimitModuleOptions => ({
  // As the API configures it with the defaults (RATE_LIMIT_*).
  redisUrl,
  failureMode: 'local',
  replicas: 1,
  redisTimeoutMs: 200,
  breakerThreshold: 5,
  breakerCooldownMs: 1000,
  leaseTtlMs: 600_000,
  keyPrefix,
});

/** A RateLimiter as the API builds it (its module, the metrics, the tenant label policy). */
async function limiterModule(redisUrl: string | null, keyPrefix: string) {
  // Each module registers the limiter's metrics in the default registry: one set per module.
  register.clear();
  const moduleRef = await Test.createTestingModule({
    imports: [
      MonitoringModule.forRoot({
        appVersion: 'bench',
        token: null,
        public: true,
        httpMetrics: false,
        defaultMetrics: false,
      }),
      RateLimitModule.forRoot(limiterOptions(redisUrl, keyPrefix)),
    ],
  }).compile();
  await moduleRef.init();
  return { limiter: moduleRef.get(RateLimiter), close: () => moduleRef.close() };
}

async function runMicro(
  redis: Redis,
): Promise<{ arms: MicroArmResult[]; comparisons: MicroComparison[]; prefix: string }> {
  const prefix = `bench:rl:${randomUUID()}:`;
  const memoryStore = new MemoryRateLimitStore({ leaseTtlMs: 600_000 });
  const memoryModule = await limiterModule(null, prefix);
  const redisModule = await limiterModule(REDIS_URL, prefix);
  try {
    const memoryLimiter = memoryModule.limiter;
    const redisLimiter = redisModule.limiter;
    const store: RedisRateLimitStore | null = redisLimiter.redis;
    if (store === null) throw new Error('the limiter built with a Redis URL has no Redis store');
    // The module connects in the background; ask the store itself, so no failure reaches the breaker.
    const until = performance.now() + 10_000;
    for (;;) {
      try {
        await store.ping();
        break;
      } catch (error) {
        if (performance.now() > until)
          throw new Error(`the limiter's Redis client did not connect`, { cause: error });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    if (redisLimiter.backend !== 'redis')
      throw new Error(`limiter backend ${redisLimiter.backend}, expected redis`);

    const arms: MicroArm[] = [
      {
        name: 'timer-floor',
        description:
          'two process.hrtime.bigint() calls around nothing: what the timing itself adds to each call',
        run: (ms, hist) => Promise.resolve(syncLoop(ms, hist, () => undefined)),
      },
      {
        name: 'memory-store-admitNow',
        description:
          'MemoryRateLimitStore.admitNow, key rpm + concurrency + tenant quota (all admit), then releaseNow (untimed)',
        run(ms, hist) {
          const who = subjectFor('bench');
          const end = process.hrtime.bigint() + BigInt(ms) * 1_000_000n;
          let calls = 0;
          while (process.hrtime.bigint() < end) {
            const ticket = randomUUID();
            const t0 = process.hrtime.bigint();
            const admission = memoryStore.admitNow(who, FULL_LIMITS, ticket);
            hist.record(Math.max(1, Number(process.hrtime.bigint() - t0)));
            expectAllowed(admission.allowed, this.name);
            memoryStore.releaseNow(who, ticket);
            calls++;
          }
          return Promise.resolve(calls);
        },
      },
      {
        name: 'limiter-no-limits',
        description: 'RateLimiter.admit with no limit on (the no-limits arm: returns before any store)',
        run: (ms, hist) =>
          sequential(ms, hist, async () => {
            (await memoryLimiter.admit(subjectFor('bench'), NO_LIMITS)).release();
          }),
      },
      {
        name: 'limiter-memory',
        description:
          'RateLimiter.admit without Redis (the API default): ticket, memory store, metrics; then release()',
        run(ms, hist) {
          const who = subjectFor('bench');
          return sequential(ms, hist, async () => {
            const decision = await memoryLimiter.admit(who, FULL_LIMITS);
            expectAllowed(decision.allowed, this.name);
            decision.release();
          });
        },
      },
      {
        name: 'redis-ping',
        description: 'one PING on the limiter connection: the loopback round trip alone',
        redisCommand: 'ping',
        run: (ms, hist) => sequential(ms, hist, () => store.ping()),
      },
      {
        name: 'redis-store-admit',
        description:
          'RedisRateLimitStore.admit (one EVALSHA), rpm + concurrency + quota; release awaited, untimed',
        redisCommand: 'evalsha',
        run(ms, hist) {
          const who = subjectFor('bench');
          return partlyTimed(ms, hist, async (timed) => {
            const ticket = randomUUID();
            const admission = await timed(() => store.admit(who, FULL_LIMITS, ticket));
            expectAllowed(admission.allowed, this.name);
            await store.release(who, ticket);
          });
        },
      },
      {
        name: 'redis-store-release',
        description: 'RedisRateLimitStore.release (one ZREM) of a slot just admitted (the admit untimed)',
        redisCommand: 'zrem',
        run(ms, hist) {
          const who = subjectFor('bench');
          return partlyTimed(ms, hist, async (timed) => {
            const ticket = randomUUID();
            expectAllowed((await store.admit(who, FULL_LIMITS, ticket)).allowed, this.name);
            await timed(() => store.release(who, ticket));
          });
        },
      },
      {
        name: 'redis-store-admit-rpm',
        description: 'RedisRateLimitStore.admit with requests_per_minute only (no slot, nothing to release)',
        redisCommand: 'evalsha',
        run(ms, hist) {
          const who = subjectFor('bench');
          return sequential(ms, hist, async () => {
            expectAllowed((await store.admit(who, RPM_LIMITS, randomUUID())).allowed, this.name);
          });
        },
      },
      {
        name: 'limiter-redis',
        description:
          'RateLimiter.admit on Redis (EVALSHA, breaker, metrics incl. the duration histogram); release() sends the ZREM without waiting, as the guard does at close',
        redisCommand: 'evalsha',
        run(ms, hist) {
          const who = subjectFor('bench');
          return sequential(ms, hist, async () => {
            const decision = await redisLimiter.admit(who, FULL_LIMITS);
            expectAllowed(decision.allowed && decision.backend === 'redis', this.name);
            decision.release();
          });
        },
      },
      {
        name: `limiter-redis-x${MICRO_CONCURRENCY}`,
        description: `as limiter-redis with ${MICRO_CONCURRENCY} admissions in flight at once (one connection): latency per admission, admissions/s over all`,
        redisCommand: 'evalsha',
        async run(ms, hist) {
          const who = subjectFor('bench');
          const counts = await Promise.all(
            Array.from({ length: MICRO_CONCURRENCY }, () =>
              sequential(ms, hist, async () => {
                const decision = await redisLimiter.admit(who, FULL_LIMITS);
                expectAllowed(decision.allowed && decision.backend === 'redis', this.name);
                decision.release();
              }),
            ),
          );
          return counts.reduce((a, b) => a + b, 0);
        },
      },
    ];

    const once = async (arm: MicroArm, ms: number) => {
      const hist = createHistogram({ lowest: 1, highest: 60_000_000_000, figures: 3 });
      const before = arm.redisCommand ? await commandStats(redis) : null;
      const started = performance.now();
      const calls = await arm.run(ms, hist);
      const elapsedMs = performance.now() - started;
      const after = arm.redisCommand ? await commandStats(redis) : null;
      const inside =
        before && after && arm.redisCommand ? usecPerCall(before, after, arm.redisCommand) : null;
      if (calls === 0) throw new Error(`${arm.name}: no call completed in ${ms} ms`);
      return {
        calls,
        elapsedMs,
        p50Us: hist.percentile(50) / 1000,
        p99Us: hist.percentile(99) / 1000,
        meanUs: hist.mean / 1000,
        ...(inside ? { redisUsecPerCall: inside.usecPerCall } : {}),
      };
    };

    for (const arm of arms) await once(arm, MICRO_ROUND_MS); // warm-up: JIT, the script cache
    log(`[rate-limit] in-process: warmed up ${arms.length} arms`);
    const perRound = new Map<string, Awaited<ReturnType<typeof once>>[]>(arms.map((a) => [a.name, []]));
    for (let round = 0; round < MICRO_ROUNDS; round++) {
      for (let i = 0; i < arms.length; i++) {
        const arm = arms[(i + round) % arms.length];
        const result = await once(arm, MICRO_ROUND_MS);
        perRound.get(arm.name)?.push(result);
      }
      const line = arms.map((a) => `${a.name} ${perRound.get(a.name)?.at(-1)?.p50Us.toFixed(2)}`).join(', ');
      log(`[rate-limit] in-process round ${round + 1}/${MICRO_ROUNDS} p50 µs: ${line}`);
    }

    const results = arms.map((arm): MicroArmResult => {
      const rounds = perRound.get(arm.name) ?? [];
      const inside = rounds.map((r) => r.redisUsecPerCall).filter((v): v is number => v !== undefined);
      return {
        name: arm.name,
        description: arm.description,
        callsPerSec: summarize(rounds.map((r) => (r.calls * 1000) / r.elapsedMs)),
        p50Us: summarize(rounds.map((r) => r.p50Us)),
        p99Us: summarize(rounds.map((r) => r.p99Us)),
        meanUs: summarize(rounds.map((r) => r.meanUs)),
        ...(inside.length === rounds.length && inside.length > 0
          ? { redisUsecPerCall: summarize(inside) }
          : {}),
        rounds,
      };
    });
    const compare = (name: string, candidate: string, baseline: string): MicroComparison => {
      const c = (perRound.get(candidate) ?? []).map((r) => r.p50Us);
      const b = (perRound.get(baseline) ?? []).map((r) => r.p50Us);
      return {
        name,
        candidate,
        baseline,
        p50Ratio: summarize(ratios(c, b)),
        p50DifferenceUs: summarize(c.map((v, i) => v - b[i])),
      };
    };
    const comparisons = [
      compare(
        'one Redis admission (EVALSHA) / one memory admission',
        'redis-store-admit',
        'memory-store-admitNow',
      ),
      compare('RateLimiter on Redis / RateLimiter in memory', 'limiter-redis', 'limiter-memory'),
      compare('RateLimiter in memory / no limit on', 'limiter-memory', 'limiter-no-limits'),
      compare('RateLimiter on Redis / no limit on', 'limiter-redis', 'limiter-no-limits'),
      compare('EVALSHA admission / PING (the script over the round trip)', 'redis-store-admit', 'redis-ping'),
      compare('EVALSHA, rpm only / rpm + concurrency + quota', 'redis-store-admit-rpm', 'redis-store-admit'),
      compare('ZREM release / PING', 'redis-store-release', 'redis-ping'),
      compare(
        `RateLimiter on Redis, ${MICRO_CONCURRENCY} in flight / one at a time`,
        `limiter-redis-x${MICRO_CONCURRENCY}`,
        'limiter-redis',
      ),
    ];
    return { arms: results, comparisons, prefix };
  } finally {
    memoryStore.close();
    await memoryModule.close();
    await redisModule.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// The run

interface RateLimitReport {
  schemaVersion: 1;
  date: string;
  durationS: number;
  machine: MachineInfo;
  settings: typeof settings & {
    pinning: Pinning | null;
    concurrencies: readonly number[];
    microRounds: number;
    microRoundMs: number;
    microConcurrency: number;
  };
  redis: { url: string; version: string; pid: number | null };
  limits: typeof HIGH;
  bodies: { inferenceBytes: number; refusedBytes: number; refused: string };
  comparisons: ComparisonResult[];
  arms: ArmResult[];
  checks: string[];
  micro: { arms: MicroArmResult[]; comparisons: MicroComparison[] };
  interference: Interference | null;
  redisKeysDeleted: number;
}

async function main(): Promise<void> {
  const started = performance.now();
  const date = new Date().toISOString();
  // Taken before the run: the commit (and whether the tree was dirty) that was built and measured.
  const machine = machineInfo(REPO_ROOT);
  const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'vla-bench-rate-limit-'));
  process.once('exit', () => {
    killAllServers();
    rmSync(tmpDir, { recursive: true, force: true });
  });
  const clk = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout);
  if (clk > 0) ticksPerSecond = clk;

  const redis = new Redis(REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectionName: 'vla-bench',
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch (error) {
    throw new Error(`no Redis at ${SHOWN_REDIS_URL} (set BENCH_REDIS_URL)`, { cause: error });
  }
  const serverInfo = await redis.info('server');
  const redisVersion = /redis_version:(\S+)/.exec(serverInfo)?.[1] ?? 'unknown';
  const redisPidRaw = Number(/process_id:(\d+)/.exec(serverInfo)?.[1]);
  // Only where it is this machine's process (loopback) and /proc can read it.
  const redisPid = Number.isFinite(cpuSeconds(redisPidRaw)) ? redisPidRaw : null;

  const groups = (['inference', 'refused'] as const).flatMap((route) =>
    CONCURRENCIES.map((connections) => ({ route, connections, name: `${route}-c${connections}` })),
  );
  const armKinds = (route: Route): ArmKind[] =>
    route === 'refused'
      ? ['none', 'memory', 'redis', 'redis-rpm', 'none-redis-process']
      : ['none', 'memory', 'redis', 'redis-rpm'];
  const armCount = groups.reduce((n, g) => n + armKinds(g.route).length, 0);
  const perArmS = settings.initialWarmupS + settings.rounds * (settings.warmupS + settings.durationS + 1);
  const deadlineS = 2 * armCount * perArmS + 2 * 10 * (MICRO_ROUNDS + 1) * (MICRO_ROUND_MS / 1000) + 180;
  setTimeout(() => {
    process.stderr.write(`bench: still running after ${Math.round(deadlineS)} s, giving up\n`);
    process.exit(1);
  }, deadlineS * 1000).unref();

  const pinning = pinLoadGenerator();
  log(
    `bench rate-limit: ${settings.rounds} rounds × ${settings.durationS} s per arm (${armCount} arms), ` +
      `Redis ${redisVersion} at ${SHOWN_REDIS_URL}; ` +
      (pinning ? `servers on CPU ${pinning.serverCpu}, load on CPU ${pinning.loadGeneratorCpu}` : 'unpinned'),
  );

  const context = { tmpDir };
  // Each process's environment is explicit (the harness passes nothing from the shell): no REDIS_URL and no
  // RATE_LIMIT_* here, so a limit is on only where a key or tenant sets it.
  const memoryServer = await ServerProcess.start(
    'rate-limit/api-no-redis',
    apiServer(context, 'api-no-redis'),
    pinning,
  );
  log(`[rate-limit] api-no-redis listening on ${memoryServer.origin}`);
  const redisServer = await ServerProcess.start(
    'rate-limit/api-redis',
    apiServer(context, 'api-redis', { REDIS_URL }),
    pinning,
  );
  log(`[rate-limit] api-redis listening on ${redisServer.origin}`);
  const servers = [memoryServer, redisServer];
  const redisTenants: string[] = [];
  let microPrefix: string | null = null;

  try {
    const admins = new Map<ServerProcess, string>(servers.map((s) => [s, bootstrapKey(s)]));
    for (const server of servers) await untilReady(server);
    const callers = new Map<string, Caller>();
    const callerOf = async (server: ServerProcess, kind: LimitsKind): Promise<Caller> => {
      const id = `${server.name}/${kind}`;
      let caller = callers.get(id);
      if (caller === undefined) {
        caller = await createCaller(server, admins.get(server) ?? '', kind);
        callers.set(id, caller);
        if (server === redisServer) redisTenants.push(caller.tenantId);
      }
      return caller;
    };
    for (const [server, backend] of [
      [memoryServer, 'memory'],
      [redisServer, 'redis'],
    ] as const) {
      const seen = await rateLimitBackend(server, admins.get(server) ?? '');
      if (seen !== backend)
        throw new Error(`${server.name}: rate_limit backend ${seen}, expected ${backend}`);
    }

    const placement: Record<ArmKind, { server: ServerProcess; limits: LimitsKind }> = {
      none: { server: memoryServer, limits: 'none' },
      memory: { server: memoryServer, limits: 'full' },
      redis: { server: redisServer, limits: 'full' },
      'redis-rpm': { server: redisServer, limits: 'rpm' },
      'none-redis-process': { server: redisServer, limits: 'none' },
    };
    const arms: HttpArm[] = [];
    const armGroups: HttpArm[][] = [];
    for (const group of groups) {
      const members: HttpArm[] = [];
      for (const kind of armKinds(group.route)) {
        const { server, limits } = placement[kind];
        const caller = await callerOf(server, limits);
        const arm: HttpArm = {
          name: `${group.name}-${kind}`,
          group: group.name,
          route: group.route,
          kind,
          connections: group.connections,
          description:
            `${group.route === 'inference' ? 'POST /v1/inference demo-policy, raw pixels → 200' : 'POST /v1/inference {"model":"demo-policy"} → 400 after the guard'}, ` +
            `concurrency ${group.connections}; ${KIND_TEXT[kind]}`,
          server,
          admin: admins.get(server) ?? '',
          onRedisProcess: server === redisServer,
          request: {
            method: 'POST',
            path: '/v1/inference',
            headers: { 'content-type': 'application/json', 'x-api-key': caller.key },
            body: group.route === 'inference' ? INFERENCE_BODY : REFUSED_BODY,
          },
          expectStatus: group.route === 'inference' ? 200 : 400,
        };
        await checkArm(arm, redis, caller);
        members.push(arm);
        arms.push(arm);
      }
      armGroups.push(members);
    }
    log(`[rate-limit] every arm answers as it should (status, RateLimit-Policy, keys on Redis or none)`);

    const comparisons: Comparison[] = groups.flatMap((g): Comparison[] => [
      {
        name: `memory / no limits, ${g.name}`,
        group: g.name,
        candidate: `${g.name}-memory`,
        baseline: `${g.name}-none`,
      },
      {
        name: `Redis / no limits, ${g.name}`,
        group: g.name,
        candidate: `${g.name}-redis`,
        baseline: `${g.name}-none`,
      },
      {
        name: `Redis rpm only / no limits, ${g.name}`,
        group: g.name,
        candidate: `${g.name}-redis-rpm`,
        baseline: `${g.name}-none`,
      },
      {
        name: `Redis / memory, ${g.name}`,
        group: g.name,
        candidate: `${g.name}-redis`,
        baseline: `${g.name}-memory`,
      },
      ...(g.route === 'refused'
        ? [
            {
              name: `Redis / no limits on the same (Redis) process, ${g.name}`,
              group: g.name,
              candidate: `${g.name}-redis`,
              baseline: `${g.name}-none-redis-process`,
            },
            {
              name: `control: no limits, Redis process / no-Redis process, ${g.name}`,
              group: g.name,
              candidate: `${g.name}-none-redis-process`,
              baseline: `${g.name}-none`,
            },
          ]
        : []),
    ]);

    const meter = startInterferenceMeter(() => [
      ...servers.flatMap((s) => (s.pid === undefined ? [] : [s.pid])),
      ...(redisPid === null ? [] : [redisPid]),
    ]);
    for (const arm of arms) await runArm(arm, settings.initialWarmupS, false, redis, redisPid);
    log(`[rate-limit] warmed up ${arms.length} arms (${settings.initialWarmupS} s each)`);

    const samples = new Map<string, HttpSample[]>(arms.map((a) => [a.name, []]));
    for (let round = 0; round < settings.rounds; round++) {
      // Groups in a rotated order, and the arms of a group in a rotated order inside it: an arm and its
      // baseline are measured seconds apart, and no arm is always first.
      for (let g = 0; g < armGroups.length; g++) {
        const members = armGroups[(g + round) % armGroups.length];
        for (let i = 0; i < members.length; i++) {
          const arm = members[(i + round) % members.length];
          await runArm(arm, settings.warmupS, false, redis, redisPid);
          const sample = await runArm(arm, settings.durationS, true, redis, redisPid);
          samples.get(arm.name)?.push(sample);
          log(
            `[rate-limit] round ${round + 1}/${settings.rounds} ${arm.name.padEnd(31)} ` +
              `${sample.reqPerSec.toFixed(0).padStart(6)} req/s  p50 ${sample.p50Ms.toFixed(3)} ms  ` +
              `p99 ${sample.p99Ms.toFixed(3)} ms  cpu ${sample.cpuMsPerRequest?.toFixed(3) ?? '–'} ms/req` +
              (sample.admitWaitMs !== undefined ? `  admit wait ${sample.admitWaitMs.toFixed(3)} ms` : ''),
          );
        }
      }
    }
    const interference = meter.stop();
    if (interference) {
      log(
        `[rate-limit] other processes used ${interference.otherCpuS.toFixed(1)} CPU-s ` +
          `(${(interference.otherShare * 100).toFixed(1)}% of the machine) during the HTTP rounds`,
      );
    }

    // Every Redis arm must have been decided by Redis all along: a timeout would have fallen back to memory.
    const checks: string[] = [];
    for (const [server, backend] of [
      [memoryServer, 'memory'],
      [redisServer, 'redis'],
    ] as const) {
      const seen = await rateLimitBackend(server, admins.get(server) ?? '');
      checks.push(`${server.name}: rate_limit backend after the rounds: ${seen} (expected ${backend})`);
      if (seen !== backend) log(`[rate-limit] WARNING: ${checks.at(-1)}`);
    }

    const optional = (rounds: HttpSample[], key: keyof HttpSample): Summary | undefined => {
      const values = rounds
        .map((s) => s[key])
        .filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
      return values.length === rounds.length && values.length > 0 ? summarize(values) : undefined;
    };
    const armResults = arms.map((arm): ArmResult => {
      const rounds = samples.get(arm.name) ?? [];
      const result: ArmResult = {
        name: arm.name,
        group: arm.group,
        route: arm.route,
        kind: arm.kind,
        connections: arm.connections,
        description: arm.description,
        rounds,
        reqPerSec: summarize(rounds.map((s) => s.reqPerSec)),
        p50Ms: summarize(rounds.map((s) => s.p50Ms)),
        p99Ms: summarize(rounds.map((s) => s.p99Ms)),
        cpuMsPerRequest: optional(rounds, 'cpuMsPerRequest'),
        redisCpuMsPerRequest: optional(rounds, 'redisCpuMsPerRequest'),
        admitWaitMs: optional(rounds, 'admitWaitMs'),
        evalshaUsec: optional(rounds, 'evalshaUsec'),
        admitsPerRequest: optional(rounds, 'admitsPerRequest'),
        releasesPerRequest: optional(rounds, 'releasesPerRequest'),
        failedRedisOps: rounds.reduce((n, s) => n + (s.failedRedisOps ?? 0), 0),
        fallbacks: rounds.reduce((n, s) => n + (s.fallbacks ?? 0), 0),
      };
      if (arm.onRedisProcess) {
        const [perAdmit, perRelease] =
          arm.kind === 'redis' ? [1, 1] : arm.kind === 'redis-rpm' ? [1, 0] : [0, 0];
        const requests = rounds.reduce((n, r) => n + r.requests, 0);
        const admits = rounds.reduce((n, r) => n + (r.admits ?? 0), 0);
        const releases = rounds.reduce((n, r) => n + (r.releases ?? 0), 0);
        // Up to `connections` requests are in flight at each end of a measured run: the API counts them,
        // autocannon does not (or counts them in the warm-up run).
        const slack = 2 * arm.connections * rounds.length + 0.01 * requests;
        const near = (count: number, per: number): boolean => Math.abs(count - per * requests) <= slack;
        const ok =
          near(admits, perAdmit) &&
          near(releases, perRelease) &&
          result.failedRedisOps === 0 &&
          result.fallbacks === 0;
        checks.push(
          `${arm.name}: ${admits} EVALSHA and ${releases} ZREM for ${requests} answered requests (expected ` +
            `${perAdmit} and ${perRelease} per request, ± ${Math.round(slack)} in flight at the cut-offs), ` +
            `${result.failedRedisOps} failed Redis commands, ${result.fallbacks} fallbacks` +
            (ok ? '' : ' — NOT AS EXPECTED'),
        );
        if (!ok) log(`[rate-limit] WARNING: ${checks.at(-1)}`);
      }
      return result;
    });

    const comparisonResults = comparisons.map((c): ComparisonResult => {
      const candidate = samples.get(c.candidate) ?? [];
      const baseline = samples.get(c.baseline) ?? [];
      const of = (key: 'reqPerSec' | 'p50Ms' | 'p99Ms'): number[] =>
        ratios(
          candidate.map((s) => s[key]),
          baseline.map((s) => s[key]),
        );
      const cpu = candidate.map(
        (s, i) => (s.cpuMsPerRequest ?? Number.NaN) - (baseline[i].cpuMsPerRequest ?? Number.NaN),
      );
      const perRound = { reqPerSec: of('reqPerSec'), p50: of('p50Ms'), p99: of('p99Ms') };
      return {
        ...c,
        reqPerSecRatio: summarize(perRound.reqPerSec),
        p50Ratio: summarize(perRound.p50),
        p99Ratio: summarize(perRound.p99),
        p50DifferenceMs: summarize(candidate.map((s, i) => s.p50Ms - baseline[i].p50Ms)),
        ...(cpu.every(Number.isFinite) ? { cpuDifferenceMs: summarize(cpu) } : {}),
        perRound,
      };
    });

    log('[rate-limit] the limiter alone, in-process');
    const micro = await runMicro(redis);
    microPrefix = micro.prefix;

    let deleted = 0;
    for (const tenantId of redisTenants) deleted += await deleteKeys(redis, `vla:rl:{${tenantId}}:*`);
    deleted += await deleteKeys(redis, `${micro.prefix}*`);
    microPrefix = null;
    redisTenants.length = 0;

    const report: RateLimitReport = {
      schemaVersion: 1,
      date,
      durationS: secondsSince(started),
      machine,
      settings: {
        ...settings,
        pinning,
        concurrencies: CONCURRENCIES,
        microRounds: MICRO_ROUNDS,
        microRoundMs: MICRO_ROUND_MS,
        microConcurrency: MICRO_CONCURRENCY,
      },
      redis: { url: SHOWN_REDIS_URL, version: redisVersion, pid: redisPid },
      limits: HIGH,
      bodies: {
        inferenceBytes: Buffer.byteLength(INFERENCE_BODY),
        refusedBytes: Buffer.byteLength(REFUSED_BODY),
        refused: REFUSED_BODY,
      },
      comparisons: comparisonResults,
      arms: armResults,
      checks,
      micro: { arms: micro.arms, comparisons: micro.comparisons },
      interference,
      redisKeysDeleted: deleted,
    };
    const dir = path.join(REPO_ROOT, 'bench/results');
    mkdirSync(dir, { recursive: true });
    const host = report.machine.hostname.replace(/[^A-Za-z0-9._-]+/g, '_') || 'unknown-host';
    const base = path.join(dir, `${date.slice(0, 10)}-${host}-rate-limit`);
    writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
    const markdown = toMarkdown(report);
    writeFileSync(`${base}.md`, markdown);
    process.stdout.write(`\n${markdown}\nwrote ${path.relative(REPO_ROOT, base)}.json and .md\n`);
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    // A failed run still leaves the shared Redis as it found it.
    for (const tenantId of redisTenants) await deleteKeys(redis, `vla:rl:{${tenantId}}:*`).catch(() => 0);
    if (microPrefix !== null) await deleteKeys(redis, `${microPrefix}*`).catch(() => 0);
    redis.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Report

function toMarkdown(report: RateLimitReport): string {
  const { machine, settings: s } = report;
  const range = (x: Summary, digits: number): string => `${x.min.toFixed(digits)}–${x.max.toFixed(digits)}`;
  const cell = (x: Summary | undefined, digits: number): string =>
    x === undefined ? '–' : `${x.median.toFixed(digits)} (${range(x, digits)})`;
  const noise = report.interference;
  const lines: string[] = [
    `# Rate-limit benchmarks, ${report.date.slice(0, 10)}, ${machine.hostname}`,
    '',
    ...machineRows(report.date, machine),
    `| Pinning | ${
      s.pinning
        ? `API processes on CPU ${s.pinning.serverCpu}, load generator and the in-process part on CPU ${s.pinning.loadGeneratorCpu} (taskset); Redis not pinned`
        : 'none (taskset or a second core missing)'
    } |`,
    `| Redis | ${report.redis.url}, Redis ${report.redis.version}${report.redis.pid === null ? '' : ` (pid ${report.redis.pid})`}, loopback, shared with whatever else uses it |`,
    `| Rounds | ${s.rounds} × ${s.durationS} s per arm, interleaved (groups rotated, arms rotated inside a group); ${s.warmupS} s warm-up before each measured run, ${s.initialWarmupS} s per arm before round 1 |`,
    `| Limits | \`memory\`, \`redis\`: key requests_per_minute ${report.limits.requestsPerMinute} (burst the same), max_concurrent ${report.limits.maxConcurrent}, tenant daily_request_quota ${report.limits.dailyQuota}; \`redis-rpm\`: key requests_per_minute only; \`none\`: nothing on the key, its tenant or the defaults |`,
    `| Bodies | \`inference\`: policyBody() (demo-policy, raw 224x224x3, ${report.bodies.inferenceBytes} bytes) → 200; \`refused\`: \`${report.bodies.refused}\` (${report.bodies.refusedBytes} bytes) → 400 invalid_request, after the guard admitted it |`,
    `| Run time | ${Math.round(report.durationS)} s |`,
    `| Other load | ${
      noise
        ? `other processes used ${noise.otherCpuS.toFixed(1)} CPU-s during the HTTP rounds, ${(noise.otherShare * 100).toFixed(1)}% of the machine${
            noise.otherShare > 0.05 ? ' (a busy machine: expect a wide spread)' : ''
          }; steal ${noise.stealS.toFixed(1)} s (Redis counted as ours)`
        : 'not measured (no /proc)'
    } |`,
    '',
    'Ratios are candidate / baseline, per round (both measured in the same round, seconds apart), then the',
    'median of the rounds; the spread is the smallest and largest per-round ratio. Differences are candidate −',
    'baseline, median of the per-round differences. Server CPU is the API process (all threads) per answered',
    'request, from /proc (10 ms ticks).',
    '',
    '## POST /v1/inference with and without limits',
    '',
    '| comparison | req/s ratio (spread) | p50 ratio (spread) | p99 ratio (spread) | p50 difference ms | server CPU difference ms/req |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const c of report.comparisons) {
    lines.push(
      `| ${c.name}: \`${c.candidate}\` / \`${c.baseline}\` | ${cell(c.reqPerSecRatio, 3)} | ${cell(c.p50Ratio, 3)} | ` +
        `${cell(c.p99Ratio, 3)} | ${c.p50DifferenceMs.median.toFixed(3)} | ${c.cpuDifferenceMs ? c.cpuDifferenceMs.median.toFixed(3) : '–'} |`,
    );
  }
  lines.push(
    '',
    '| arm | req/s, median (min–max) | p50 ms, median (min–max) | p99 ms, median (min–max) | server CPU ms/req | Redis CPU ms/req | admit wait ms (API histogram) | µs in Redis per EVALSHA | what it is |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|',
  );
  for (const a of report.arms) {
    lines.push(
      `| \`${a.name}\` | ${cell(a.reqPerSec, 0)} | ${cell(a.p50Ms, 3)} | ${cell(a.p99Ms, 3)} | ` +
        `${a.cpuMsPerRequest ? a.cpuMsPerRequest.median.toFixed(3) : '–'} | ` +
        `${a.redisCpuMsPerRequest ? a.redisCpuMsPerRequest.median.toFixed(3) : '–'} | ` +
        `${a.admitWaitMs ? a.admitWaitMs.median.toFixed(3) : '–'} | ${a.evalshaUsec ? a.evalshaUsec.median.toFixed(1) : '–'} | ` +
        `${a.description} |`,
    );
  }
  lines.push(
    '',
    'Checks (from the API: `/health/detailed` and its `vla_redis_operations_total` and',
    '`vla_rate_limit_store_fallback_total` over each measured run; requests still in flight when a run stops are',
    'counted by the API only, so a ratio can be a little above 1):',
    '',
    ...report.checks.map((c) => `- ${c}`),
    '',
    '## The limiter alone, in-process',
    '',
    `${s.microRounds} interleaved rounds of ${s.microRoundMs} ms per arm, after one warm-up round; each call timed`,
    'on its own (process.hrtime.bigint; `timer-floor` is what that costs). "µs in Redis" is `INFO commandstats`',
    "over the arm's runs: the time Redis spent executing the command, without the round trip.",
    '',
    '| arm | calls/s, median | p50 µs, median (min–max) | p99 µs, median (min–max) | mean µs | µs in Redis per call | what it is |',
    '|---|---:|---:|---:|---:|---:|---|',
  );
  for (const a of report.micro.arms) {
    lines.push(
      `| \`${a.name}\` | ${a.callsPerSec.median.toFixed(0)} | ${cell(a.p50Us, 2)} | ${cell(a.p99Us, 2)} | ` +
        `${a.meanUs.median.toFixed(2)} | ${a.redisUsecPerCall ? a.redisUsecPerCall.median.toFixed(2) : '–'} | ${a.description} |`,
    );
  }
  lines.push(
    '',
    '| comparison | p50 ratio, median (spread) | p50 difference µs |',
    '|---|---:|---:|',
    ...report.micro.comparisons.map(
      (c) =>
        `| ${c.name}: \`${c.candidate}\` / \`${c.baseline}\` | ${cell(c.p50Ratio, 2)} | ${c.p50DifferenceUs.median.toFixed(2)} |`,
    ),
  );
  return `${lines.join('\n')}\n`;
}

runEntryPoint(main);
