import autocannon from 'autocannon';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHistogram, performance } from 'node:perf_hooks';
import { type Interference, startInterferenceMeter } from './interference';
import { ratios, summarize, type Summary } from './stats';

export const REPO_ROOT = path.resolve(__dirname, '..');
/** What `npm run build` (nest build api) produces. */
export const API_ENTRY = path.join(REPO_ROOT, 'dist/apps/api/apps/api/src/main.js');
/** The ready line every bench server prints on stdout, as the API does: `"msg":"listening on <origin>"`. */
export const LISTENING_LINE = /"msg":"listening on (http:\/\/[^"\s]+)"/;

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 30_000;
/** At most this many stdout lines are kept from start-up (up to the ready line); the rest are dropped. */
const MAX_STARTUP_LINES = 1000;
const STOP_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------------------------------------
// Settings

export interface BenchSettings {
  rounds: number;
  /** Seconds measured per arm and round. */
  durationS: number;
  /** Seconds of load per arm before round 1 (JIT, connection pools, lazy initialisation). */
  initialWarmupS: number;
  /** Seconds of unmeasured load per arm right before each measured run. */
  warmupS: number;
  connections: number;
}

/** BENCH_ROUNDS, BENCH_DURATION_S, BENCH_WARMUP_S, BENCH_INITIAL_WARMUP_S; the defaults keep a bench near 2 min. */
export function readSettings(env: NodeJS.ProcessEnv): BenchSettings {
  return {
    rounds: positiveInteger(env, 'BENCH_ROUNDS', 5),
    durationS: positiveInteger(env, 'BENCH_DURATION_S', 5),
    initialWarmupS: positiveInteger(env, 'BENCH_INITIAL_WARMUP_S', 3),
    warmupS: positiveInteger(env, 'BENCH_WARMUP_S', 1),
    connections: 10,
  };
}

function positiveInteger(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[1-9][0-9]*$/.test(raw)) throw new Error(`${name} must be a positive integer.`);
  return Number(raw);
}

// ---------------------------------------------------------------------------------------------------------
// CPU pinning: servers on one core, the load generator (this process) on another, so neither steals from
// the other. Without taskset or a second core the run still happens, unpinned, and the report says so.

export interface Pinning {
  serverCpu: number;
  loadGeneratorCpu: number;
}

export function pinLoadGenerator(): Pinning | null {
  if (os.availableParallelism() < 2) return null;
  const pinning: Pinning = { serverCpu: 0, loadGeneratorCpu: 1 };
  // -a: every thread of this process, libuv's pool included.
  const result = spawnSync(
    'taskset',
    ['-a', '-p', '-c', String(pinning.loadGeneratorCpu), String(process.pid)],
    {
      stdio: 'ignore',
    },
  );
  return result.status === 0 ? pinning : null;
}

// ---------------------------------------------------------------------------------------------------------
// Server processes

/** How to start one server. It must listen on 127.0.0.1 and print {@link LISTENING_LINE} once ready. */
export interface ServerSpec {
  command: string;
  args: string[];
  /** The child's whole environment besides PATH and NODE_ENV=production: nothing leaks in from the shell. */
  env: Record<string, string>;
}

/** What a started server offers an arm's request set-up: its origin and what it printed while starting. */
export interface ServerInfo {
  readonly origin: string;
  /**
   * The stdout lines the server printed up to and including the ready line (at most
   * {@link MAX_STARTUP_LINES}), e.g. the API's one-time `"bootstrap_admin_key"` line. Later output (the
   * access log) is never kept.
   */
  readonly startupLines: readonly string[];
}

const children = new Set<ChildProcess>();

/** SIGKILLs every server still running; safe from an `exit` handler (synchronous). */
export function killAllServers(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
}

export class ServerProcess implements ServerInfo {
  private constructor(
    readonly name: string,
    readonly origin: string,
    readonly startupLines: readonly string[],
    private readonly child: ChildProcess,
    private readonly stderrTail: () => string,
  ) {}

  static async start(name: string, spec: ServerSpec, pinning: Pinning | null): Promise<ServerProcess> {
    const [command, args] = pinning
      ? ['taskset', ['-c', String(pinning.serverCpu), spec.command, ...spec.args]]
      : [spec.command, spec.args];
    const child = spawn(command, args, {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_ENV: 'production', ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    child.once('exit', () => children.delete(child));

    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    });
    const stderrTail = (): string => stderr.trim();

    const startupLines: string[] = [];
    const origin = await new Promise<string>((resolve, reject) => {
      let pending = '';
      let ready = false;
      const fail = (reason: string): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new Error(`server ${name} ${reason}${stderrTail() ? `; stderr:\n${stderrTail()}` : ''}`));
      };
      const timer = setTimeout(
        () => fail(`printed no listening line within ${READY_TIMEOUT_MS} ms`),
        READY_TIMEOUT_MS,
      );
      // Keeps reading after the ready line and drops the access log, so the pipe never fills and blocks the
      // server's logger.
      // Complete lines go to startupLines until the ready line (a partial last line waits in `pending`).
      child.stdout?.on('data', (chunk: Buffer) => {
        if (ready) return;
        pending += chunk.toString('utf8');
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          if (startupLines.length < MAX_STARTUP_LINES) startupLines.push(line);
          const match = LISTENING_LINE.exec(line);
          if (match) {
            ready = true;
            pending = '';
            clearTimeout(timer);
            resolve(match[1]);
            return;
          }
        }
        // A line that never ends must not grow without bound.
        pending = pending.slice(-64_000);
      });
      child.once('error', (error) => fail(`could not start: ${error.message}`));
      child.once('exit', (code, signal) => {
        if (!ready) fail(`exited before listening (code ${code ?? 'none'}, signal ${signal ?? 'none'})`);
      });
    });
    return new ServerProcess(name, origin, startupLines, child, stderrTail);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  describeExit(): string {
    return `server ${this.name} exited (code ${this.child.exitCode ?? 'none'}, signal ${this.child.signalCode ?? 'none'})${
      this.stderrTail() ? `; stderr:\n${this.stderrTail()}` : ''
    }`;
  }

  /** SIGTERM (the API drains and exits), SIGKILL if it is still there after {@link STOP_TIMEOUT_MS}. */
  async stop(): Promise<void> {
    if (!this.alive) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Load

export interface RequestSpec {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path and query, e.g. `/health`. */
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

/** One measured run of one arm. */
export interface Sample {
  /** 2xx responses per second over the run. */
  reqPerSec: number;
  requests: number;
  durationS: number;
  /** Milliseconds, from a microsecond-resolution histogram of 2xx response times. */
  p50Ms: number;
  p99Ms: number;
  /** Arms with a {@link BackgroundLoad}: what that second stream achieved over the same run. */
  background?: BackgroundSample;
}

/** A second, rate-bounded load stream run alongside an arm's measured load (e.g. a flood of bad keys). */
export interface BackgroundLoad {
  description: string;
  /** Requests per second over all its connections (autocannon's `overallRate`). */
  ratePerSec: number;
  connections: number;
  request: RequestSpec;
  /** Called before every request; the headers it returns are added to that request (e.g. a fresh key). */
  headersPerRequest?: () => Record<string, string>;
  /** The status every response must have (e.g. 401); anything else, or any error, fails the run. */
  expectStatus: number;
}

export interface BackgroundSample {
  /** Responses per second (all with the expected status), over the stream's whole run. */
  reqPerSec: number;
  requests: number;
  durationS: number;
}

/**
 * Closed-loop load: `connections` keep-alive connections, each sending its next request as soon as the
 * previous response arrives, for `durationS` seconds. Fails on any error, timeout or non-2xx response: a
 * number measured on failing requests means nothing.
 */
export async function measure(
  origin: string,
  request: RequestSpec,
  durationS: number,
  connections: number,
  /** The one status every answer must have (a route measured on a refusal); unset: any 2xx. */
  expectStatus?: number,
): Promise<Sample> {
  // Microseconds: autocannon's own latency histogram has 1 ms resolution, too coarse for sub-ms routes.
  const latencyUs = createHistogram({ lowest: 1, highest: 60_000_000, figures: 3 });
  const expected = (status: number): boolean =>
    expectStatus === undefined ? status >= 200 && status < 300 : status === expectStatus;
  let answered = 0;
  let other = 0;
  let firstOther: number | null = null;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: new URL(request.path, origin).toString(),
        method: request.method ?? 'GET',
        headers: request.headers,
        body: request.body,
        connections,
        duration: durationS,
        pipelining: 1,
        timeout: 10,
      },
      (error, res) => (error ? reject(error) : resolve(res)),
    );
    instance.on(
      'response',
      (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
        if (expected(statusCode)) {
          answered++;
          latencyUs.record(Math.max(1, Math.round(responseTimeMs * 1000)));
        } else {
          other++;
          firstOther ??= statusCode;
        }
      },
    );
  });
  if (result.errors > 0 || other > 0) {
    throw new Error(
      `${request.method ?? 'GET'} ${origin}${request.path}: ${result.errors} errors (${result.timeouts} timeouts), ` +
        `${other} responses other than ${expectStatus ?? '2xx'} (first: ${firstOther ?? 'none'}) out of ${result.totalCompletedRequests}`,
    );
  }
  return {
    reqPerSec: answered / result.duration,
    requests: answered,
    durationS: result.duration,
    p50Ms: latencyUs.percentile(50) / 1000,
    p99Ms: latencyUs.percentile(99) / 1000,
  };
}

/**
 * Starts `load` against `origin` and keeps it going until `stop()` is called (or `maxDurationS` passes);
 * `stop()` resolves once autocannon has closed its connections (at its next 1 s tick).
 */
export function startBackgroundLoad(
  origin: string,
  load: BackgroundLoad,
  maxDurationS: number,
): { stop: () => Promise<BackgroundSample> } {
  const { request } = load;
  let responses = 0;
  let unexpected = 0;
  let firstUnexpected: number | null = null;
  const perRequest = load.headersPerRequest;
  let instance: autocannon.Instance | undefined;
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(
      {
        url: new URL(request.path, origin).toString(),
        method: request.method ?? 'GET',
        headers: request.headers,
        body: request.body,
        connections: load.connections,
        overallRate: load.ratePerSec,
        duration: maxDurationS,
        pipelining: 1,
        timeout: 10,
        ...(perRequest
          ? {
              requests: [
                {
                  setupRequest: (req) => ({ ...req, headers: { ...req.headers, ...perRequest() } }),
                },
              ],
            }
          : {}),
      },
      (error, res) => (error ? reject(error) : resolve(res)),
    );
    instance.on('response', (_client: unknown, statusCode: number) => {
      responses++;
      if (statusCode !== load.expectStatus) {
        unexpected++;
        firstUnexpected ??= statusCode;
      }
    });
  });
  return {
    stop: async () => {
      instance?.stop();
      const result = await finished;
      const described = `background ${request.method ?? 'GET'} ${origin}${request.path}`;
      if (result.errors > 0 || unexpected > 0) {
        throw new Error(
          `${described}: ${result.errors} errors (${result.timeouts} timeouts), ${unexpected} responses ` +
            `other than ${load.expectStatus} (first: ${firstUnexpected ?? 'none'}) out of ${responses}`,
        );
      }
      return { reqPerSec: responses / result.duration, requests: responses, durationS: result.duration };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Benchmarks: arms measured in interleaved rounds, compared round by round

/** One variant under load: its server process and the request it is hit with. */
export interface ArmSpec {
  name: string;
  description: string;
  /**
   * Each distinct object is one server process. Arms given the very same object share that process (e.g.
   * two routes of one API compared inside one process); arms with separate objects never do.
   */
  server: ServerSpec;
  /**
   * Either fixed, or resolved once against the running server (e.g. to read the key it printed at start-up,
   * or to create one, then send it as a header).
   */
  request: RequestSpec | ((origin: string, server: ServerInfo) => Promise<RequestSpec>);
  /** A second load stream kept running during this arm's warm-ups and measured runs (and only then). */
  background?: BackgroundLoad;
}

/** candidate / baseline, per round. A throughput ratio below 1 means the candidate is slower. */
export interface ComparisonSpec {
  name: string;
  candidate: string;
  baseline: string;
  /** The issue's target, if any: the median throughput ratio must be at least this. */
  minThroughputRatio?: number;
}

export interface BenchSpec {
  name: string;
  title: string;
  arms: ArmSpec[];
  comparisons: ComparisonSpec[];
}

/** What a bench file exports: a factory, so arms can put files in the run's scratch directory. */
export type BenchFactory = (context: BenchContext) => BenchSpec;

export interface BenchContext {
  /** Scratch directory for this run (databases and the like), removed afterwards. */
  tmpDir: string;
}

export interface ArmResult {
  name: string;
  description: string;
  rounds: Sample[];
  reqPerSec: Summary;
  p50Ms: Summary;
  p99Ms: Summary;
}

export interface ComparisonResult {
  name: string;
  candidate: string;
  baseline: string;
  /** Per-round candidate/baseline ratios and their median and range. */
  throughputRatios: number[];
  throughputRatio: Summary;
  p50Ratio: Summary;
  p99Ratio: Summary;
  target: { minThroughputRatio: number; met: boolean } | null;
}

export interface BenchResult {
  name: string;
  title: string;
  arms: ArmResult[];
  comparisons: ComparisonResult[];
  /** CPU other processes took while this bench ran (warm-up and rounds); null where /proc is missing. */
  interference: Interference | null;
}

export type Log = (line: string) => void;

/**
 * Starts every arm's server once, warms each up, then runs `rounds` rounds. Each round measures every arm
 * once, in an order rotated from round to round, so drift (thermal, noisy neighbours) hits all arms alike
 * and each round yields one like-for-like ratio per comparison.
 */
export async function runBench(
  spec: BenchSpec,
  settings: BenchSettings,
  pinning: Pinning | null,
  log: Log,
): Promise<BenchResult> {
  validate(spec);
  const servers: ServerProcess[] = [];
  try {
    const arms: { spec: ArmSpec; server: ServerProcess; request: RequestSpec }[] = [];
    const started = new Map<ServerSpec, ServerProcess>();
    for (const arm of spec.arms) {
      let server = started.get(arm.server);
      if (server === undefined) {
        server = await ServerProcess.start(`${spec.name}/${arm.name}`, arm.server, pinning);
        started.set(arm.server, server);
        servers.push(server);
        log(`[${spec.name}] ${arm.name} listening on ${server.origin}`);
      } else {
        log(`[${spec.name}] ${arm.name} shares the server on ${server.origin}`);
      }
      const request =
        typeof arm.request === 'function' ? await arm.request(server.origin, server) : arm.request;
      arms.push({ spec: arm, server, request });
    }

    const run = async (arm: (typeof arms)[number], durationS: number): Promise<Sample> => {
      if (!arm.server.alive) throw new Error(arm.server.describeExit());
      if (arm.spec.background === undefined)
        return measure(arm.server.origin, arm.request, durationS, settings.connections);
      const background = startBackgroundLoad(arm.server.origin, arm.spec.background, durationS + 60);
      let sample: Sample;
      try {
        sample = await measure(arm.server.origin, arm.request, durationS, settings.connections);
      } catch (error) {
        await background.stop().catch(() => undefined);
        throw error;
      }
      // Awaited: the stream never overlaps the next run.
      return { ...sample, background: await background.stop() };
    };

    const meter = startInterferenceMeter(() => servers.flatMap((s) => (s.pid === undefined ? [] : [s.pid])));
    for (const arm of arms) await run(arm, settings.initialWarmupS);
    log(`[${spec.name}] warmed up ${arms.length} arms (${settings.initialWarmupS} s each)`);

    const samples = new Map<string, Sample[]>(arms.map((a) => [a.spec.name, []]));
    for (let round = 0; round < settings.rounds; round++) {
      const order = arms.map((_, i) => arms[(i + round) % arms.length]);
      for (const arm of order) {
        await run(arm, settings.warmupS);
        const sample = await run(arm, settings.durationS);
        samples.get(arm.spec.name)?.push(sample);
        log(
          `[${spec.name}] round ${round + 1}/${settings.rounds} ${arm.spec.name.padEnd(22)} ` +
            `${sample.reqPerSec.toFixed(0).padStart(7)} req/s  p50 ${sample.p50Ms.toFixed(3)} ms  ` +
            `p99 ${sample.p99Ms.toFixed(3)} ms` +
            (sample.background ? `  (background ${sample.background.reqPerSec.toFixed(0)} req/s)` : ''),
        );
      }
    }

    const interference = meter.stop();
    if (interference) {
      log(
        `[${spec.name}] other processes used ${interference.otherCpuS.toFixed(1)} CPU-s ` +
          `(${(interference.otherShare * 100).toFixed(1)}% of the machine) during the bench`,
      );
    }

    const armResults = spec.arms.map((arm): ArmResult => {
      const rounds = samples.get(arm.name) ?? [];
      return {
        name: arm.name,
        description: arm.description,
        rounds,
        reqPerSec: summarize(rounds.map((s) => s.reqPerSec)),
        p50Ms: summarize(rounds.map((s) => s.p50Ms)),
        p99Ms: summarize(rounds.map((s) => s.p99Ms)),
      };
    });
    return {
      name: spec.name,
      title: spec.title,
      arms: armResults,
      comparisons: spec.comparisons.map(compare),
      interference,
    };

    function compare(comparison: ComparisonSpec): ComparisonResult {
      const candidate = samples.get(comparison.candidate) ?? [];
      const baseline = samples.get(comparison.baseline) ?? [];
      const of = (key: 'reqPerSec' | 'p50Ms' | 'p99Ms'): number[] =>
        ratios(
          candidate.map((s) => s[key]),
          baseline.map((s) => s[key]),
        );
      const throughputRatios = of('reqPerSec');
      const throughputRatio = summarize(throughputRatios);
      return {
        name: comparison.name,
        candidate: comparison.candidate,
        baseline: comparison.baseline,
        throughputRatios,
        throughputRatio,
        p50Ratio: summarize(of('p50Ms')),
        p99Ratio: summarize(of('p99Ms')),
        target:
          comparison.minThroughputRatio === undefined
            ? null
            : {
                minThroughputRatio: comparison.minThroughputRatio,
                met: throughputRatio.median >= comparison.minThroughputRatio,
              },
      };
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

function validate(spec: BenchSpec): void {
  const names = new Set(spec.arms.map((a) => a.name));
  if (names.size !== spec.arms.length) throw new Error(`bench ${spec.name}: arm names must be unique`);
  for (const c of spec.comparisons) {
    for (const arm of [c.candidate, c.baseline]) {
      if (!names.has(arm))
        throw new Error(`bench ${spec.name}: comparison ${c.name} names unknown arm ${arm}`);
    }
  }
}

/** Seconds of load a bench generates with these settings (server start-up not included). */
export function expectedLoadSeconds(spec: BenchSpec, settings: BenchSettings): number {
  const perArm = settings.initialWarmupS + settings.rounds * (settings.warmupS + settings.durationS);
  // autocannon stops on its 1 s sample tick, so allow a second per run on top (two with a background stream).
  const runs = 1 + 2 * settings.rounds;
  return spec.arms.reduce((sum, arm) => sum + perArm + runs * (arm.background ? 2 : 1), 0);
}

// ---------------------------------------------------------------------------------------------------------
// Server specs the benches share

/** The built API with a bench-friendly configuration; `env` overrides it per arm. */
export function apiServer(context: BenchContext, arm: string, env: Record<string, string> = {}): ServerSpec {
  if (!existsSync(API_ENTRY)) throw new Error(`${API_ENTRY} is missing: run \`npm run build\` first.`);
  return {
    command: process.execPath,
    args: [API_ENTRY],
    env: {
      HOST,
      PORT: '0',
      DATABASE_URL: `sqlite:${path.join(context.tmpDir, `${arm}.sqlite`)}`,
      // info: one access line per request, as in production; the harness reads and drops it.
      LOG_LEVEL: 'info',
      METRICS_TOKEN: 'bench-metrics-token-0123456789',
      ...env,
    },
  };
}

/**
 * A TypeScript script under bench/, run with the loader this process was started with (`-r
 * @swc-node/register` under `npm run bench`). The script listens on HOST:PORT and prints the ready line.
 */
export function scriptServer(relativePath: string, env: Record<string, string> = {}): ServerSpec {
  return {
    command: process.execPath,
    args: [...process.execArgv, path.join(REPO_ROOT, relativePath)],
    env: { HOST, PORT: '0', ...env },
  };
}

/** Elapsed seconds on a monotonic clock since `start` (from `performance.now()`). */
/**
 * Runs a benchmark entry point: servers are stopped on SIGINT or SIGTERM (exit 130), and a failure prints
 * one line with its cause and exits 1.
 */
export function runEntryPoint(main: () => Promise<void>): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`bench: ${signal}, stopping servers\n`);
      process.exit(130);
    });
  }
  main().catch((error: unknown) => {
    const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : '';
    process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}${cause}\n`);
    process.exit(1);
  });
}

export function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}
