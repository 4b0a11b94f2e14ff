// `npm run build && node -r @swc-node/register bench/inference.bench.ts`: the inference benchmarks of
// issue 8, all arms in one run, results as ratios between arms of the same round. Writes
// bench/results/<YYYY-MM-DD>-<hostname>-inference.{json,md}.
//
// It has its own round loop (on the harness's servers, load generator, background streams and interference
// meter) because its arms need what a BenchFactory cannot express: a concurrency per arm (1 for latency, 16
// for batching) and an arm that is not a server at all (`session.run` timed in-process in a child).
//
//   B1  wrapper tax: p50 of POST /v1/inference at concurrency 1 (raw pixels) / p50 of a bare session.run of
//       the same model and tensors; also / a hand-rolled node:http policy server. demo-policy ≤ 1.5,
//       demo-policy-10ms ≤ 1.05.
//   B2  event-loop isolation: p99 of GET /health (concurrency 1) while demo-policy-slow saturates the model
//       worker / the same idle, ≤ 1.5; the hand-rolled server (session.run on its main thread) as contrast.
//   B3  batching: req/s at concurrency 16, demo-policy as shipped (max_batch_size 8) / max_batch_size 1, ≥ 1.5,
//       with the mean batch size from vla_inference_batch_size.
//   B4  image decoding: p50 with a 640x480 JPEG / with the same picture as raw pixels, and the difference.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import sharp from 'sharp';
import { parseDocument } from 'yaml';
import { loadRobotProfiles } from '@app/safety';
import { decodeImage } from '../apps/api/src/inference/image-decoder';
import { loadModelConfig } from '../apps/api/src/inference/model-config.loader';
import {
  apiServer,
  type BackgroundLoad,
  killAllServers,
  measure,
  type Pinning,
  pinLoadGenerator,
  readSettings,
  REPO_ROOT,
  type RequestSpec,
  type Sample,
  scriptServer,
  secondsSince,
  ServerProcess,
  type ServerSpec,
  startBackgroundLoad,
  runEntryPoint,
} from './harness';
import { type Interference, startInterferenceMeter } from './interference';
import { machineInfo, type MachineInfo, machineRows } from './report';
import { median, ratios, summarize, type Summary } from './stats';

/** Short rounds by default: the whole run stays near 7 minutes on a 2-core machine. */
const settings = readSettings({
  BENCH_ROUNDS: '5',
  BENCH_DURATION_S: '3',
  BENCH_WARMUP_S: '1',
  BENCH_INITIAL_WARMUP_S: '2',
  ...process.env,
});

const log = (line: string): void => void process.stderr.write(`${line}\n`);

const MODELS = ['demo-policy', 'demo-policy-10ms', 'demo-policy-slow'] as const;
type ModelId = (typeof MODELS)[number];
const MODEL_SOURCES: Record<ModelId, string> = {
  'demo-policy': 'models/demo-policy',
  'demo-policy-10ms': 'bench/models/demo-policy-10ms',
  'demo-policy-slow': 'models/demo-policy-slow',
};
const STATE = [0, -0.785, 0, -2.356, 0, 1.571, 0.785, 0.04];
const INSTRUCTION = 'pick up the red block';
/** Background stream of B2: demo-policy-slow has queue_capacity 4, so 4 connections never see queue_full. */
const SLOW_LOAD_CONNECTIONS = 4;
const BATCH_CONCURRENCY = 16;
/** Sequential requests per API configuration for the per-stage breakdown (the response's `timing`). */
const BREAKDOWN_REQUESTS = 200;
const BOOTSTRAP_KEY_LINE = /"bootstrap_admin_key":"(vla_[0-9A-Za-z_]+)"/;

// ---------------------------------------------------------------------------------------------------------
// Inputs: one 640x480 camera-like JPEG, and the same picture as the 224x224 raw pixels the API decodes it to

/** A deterministic scene (floor gradient, table, red block, sensor noise), so the JPEG compresses like a photo. */
async function cameraJpeg(): Promise<Buffer> {
  const width = 640;
  const height = 480;
  const rgb = Buffer.alloc(width * height * 3);
  let seed = 0x2545f491;
  const noise = (): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return ((seed >>> 24) % 17) - 8;
  };
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let r = 90 + (y * 80) / height;
      let g = 85 + (y * 70) / height;
      let b = 80 + (x * 40) / width;
      if (y > 260) [r, g, b] = [150 - (y - 260) / 6, 110 - (y - 260) / 8, 70];
      if (x > 280 && x < 360 && y > 200 && y < 280) [r, g, b] = [200 - (x - 280) / 2, 30, 35];
      const i = (y * width + x) * 3;
      rgb[i] = Math.max(0, Math.min(255, r + noise()));
      rgb[i + 1] = Math.max(0, Math.min(255, g + noise()));
      rgb[i + 2] = Math.max(0, Math.min(255, b + noise()));
    }
  }
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 85 })
    .toBuffer();
}

interface Inputs {
  jpeg: Buffer;
  /** HWC uint8 at the model's 224x224, exactly what the API's decoder makes of the JPEG. */
  pixels: Uint8Array;
}

async function makeInputs(): Promise<Inputs> {
  const jpeg = await cameraJpeg();
  const spec = loadModelConfig(path.join(REPO_ROOT, MODEL_SOURCES['demo-policy'])).inputs.images[0];
  const decoded = await decodeImage(jpeg.toString('base64'), spec, {
    maxPixels: 4096 * 4096,
    field: 'images.primary',
  });
  return { jpeg, pixels: decoded.pixels };
}

function inferenceBody(model: ModelId, image: Inputs, as: 'raw' | 'jpeg'): string {
  const primary =
    as === 'jpeg'
      ? image.jpeg.toString('base64')
      : { format: 'raw', shape: [224, 224, 3], data: Buffer.from(image.pixels).toString('base64') };
  return JSON.stringify({
    model,
    robot_type: 'franka_panda',
    instruction: INSTRUCTION,
    images: { primary },
    state: STATE,
  });
}

// ---------------------------------------------------------------------------------------------------------
// Model folders: as shipped, and unbatched (max_batch_size 1, so a request is dispatched at once)

function modelsDir(tmpDir: string, name: string, maxBatchSize: number | null): string {
  const dir = path.join(tmpDir, name);
  for (const id of MODELS) {
    const target = path.join(dir, id);
    mkdirSync(target, { recursive: true });
    cpSync(path.join(REPO_ROOT, MODEL_SOURCES[id]), target, { recursive: true });
    if (maxBatchSize === null) continue;
    const yamlPath = path.join(target, 'model.yaml');
    const doc = parseDocument(readFileSync(yamlPath, 'utf8'));
    doc.set('max_batch_size', maxBatchSize);
    doc.set('batch_timeout_ms', 0);
    writeFileSync(yamlPath, doc.toString());
  }
  return dir;
}

// ---------------------------------------------------------------------------------------------------------
// The in-process floor: bench/servers/bare-session-timer.ts on the servers' CPU

class SessionTimer {
  private static readonly running = new Set<ChildProcess>();
  private readonly replies: ((line: string) => void)[] = [];
  private stderr = '';

  private constructor(readonly child: ChildProcess) {}

  static async start(pinning: Pinning | null, env: Record<string, string>): Promise<SessionTimer> {
    const script = [...process.execArgv, path.join(REPO_ROOT, 'bench/servers/bare-session-timer.ts')];
    const [command, args] = pinning
      ? ['taskset', ['-c', String(pinning.serverCpu), process.execPath, ...script]]
      : [process.execPath, script];
    const child = spawn(command, args, {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_ENV: 'production', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    SessionTimer.running.add(child);
    child.once('exit', () => SessionTimer.running.delete(child));
    const timer = new SessionTimer(child);
    child.stderr?.on('data', (chunk: Buffer) => {
      timer.stderr = (timer.stderr + chunk.toString('utf8')).slice(-4000);
    });
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => timer.replies.shift()?.(line));
    const ready = await timer.next(60_000);
    if (!ready.includes('"ready"')) throw new Error(`session timer did not start: ${ready}`);
    return timer;
  }

  private next(timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timeout = setTimeout(
        () => reject(new Error(`session timer: no answer; ${this.stderr}`)),
        timeoutMs,
      );
      const onExit = (): void => reject(new Error(`session timer exited; stderr: ${this.stderr}`));
      this.child.once('exit', onExit);
      this.replies.push((line) => {
        clearTimeout(timeout);
        this.child.off('exit', onExit);
        resolve(line);
      });
    });
  }

  async ask<T>(command: Record<string, unknown>, timeoutMs: number): Promise<T> {
    const answer = this.next(timeoutMs);
    this.child.stdin?.write(`${JSON.stringify(command)}\n`);
    const parsed = JSON.parse(await answer) as T & { error?: string };
    if (parsed.error !== undefined) throw new Error(`session timer: ${parsed.error}`);
    return parsed;
  }

  /** SIGKILLs every timer still running; safe from an `exit` handler (synchronous). */
  static killAll(): void {
    for (const child of SessionTimer.running) child.kill('SIGKILL');
  }

  stop(): void {
    this.child.stdin?.end();
    this.child.kill('SIGTERM');
  }
}

// ---------------------------------------------------------------------------------------------------------
// Server set-up and checks

async function json<T>(response: Response, what: string): Promise<T> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${what}: ${response.status} ${text.slice(0, 400)}`);
  return JSON.parse(text) as T;
}

/** An inference-scoped key, created with the admin key the API printed on its first start. */
async function inferenceKey(server: ServerProcess): Promise<string> {
  const admin = server.startupLines.map((l) => BOOTSTRAP_KEY_LINE.exec(l)?.[1]).find((k) => k !== undefined);
  if (admin === undefined) throw new Error(`${server.name}: no "bootstrap_admin_key" line at start-up`);
  const created = await json<{ key: string }>(
    await fetch(new URL('/admin/keys', server.origin), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': admin },
      body: JSON.stringify({ tenant: 'default', name: 'bench', scopes: ['inference'] }),
    }),
    `${server.name} POST /admin/keys`,
  );
  return created.key;
}

/** Models load after the server listens: wait until every one is `ready`. */
async function modelsReady(server: ServerProcess, key: string): Promise<void> {
  const until = performance.now() + 60_000;
  for (;;) {
    const list = await json<{ data: { id: string; status: string }[] }>(
      await fetch(new URL('/v1/models', server.origin), { headers: { 'x-api-key': key } }),
      `${server.name} GET /v1/models`,
    );
    const notReady = MODELS.filter((id) => list.data.find((m) => m.id === id)?.status !== 'ready');
    if (notReady.length === 0) return;
    if (performance.now() > until)
      throw new Error(`${server.name}: models not ready: ${notReady.join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

interface InferenceAnswer {
  actions: number[][];
  batch_size?: number;
  safety?: { outcome: string; violations: { joint: string | null }[] };
  timing?: Record<'queue_ms' | 'preprocess_ms' | 'inference_ms' | 'safety_ms' | 'total_ms', number>;
}

async function post(origin: string, request: RequestSpec): Promise<InferenceAnswer> {
  return json<InferenceAnswer>(
    await fetch(new URL(request.path, origin), {
      method: 'POST',
      headers: request.headers,
      body: request.body,
    }),
    `POST ${origin}${request.path}`,
  );
}

const FRANKA_JOINTS = (() => {
  const profile = loadRobotProfiles(path.join(REPO_ROOT, 'config/robots')).get('franka_panda');
  if (profile === undefined) throw new Error('config/robots/franka_panda.yaml is missing');
  return profile.dimensions.map((d) => d.name);
})();

/**
 * The arms must feed the model the same tensors: an answer must carry the floor's actions. Where the API's
 * safety check clipped a joint (outcome `modified`), that joint's column is left out of the comparison.
 */
function expectSameActions(what: string, answer: InferenceAnswer, floor: number[][]): void {
  if (answer.safety !== undefined && !['pass', 'modified'].includes(answer.safety.outcome)) {
    throw new Error(`${what}: safety outcome ${answer.safety.outcome}`);
  }
  const clipped = new Set((answer.safety?.violations ?? []).map((v) => v.joint));
  const columns = FRANKA_JOINTS.flatMap((joint, d) => (clipped.has(joint) ? [] : [d]));
  let worst = 0;
  floor.forEach((row, h) => {
    for (const d of columns) worst = Math.max(worst, Math.abs(row[d] - (answer.actions[h]?.[d] ?? Infinity)));
  });
  if (answer.actions.length !== floor.length || !(worst <= 1e-5) || columns.length === 0) {
    throw new Error(
      `${what}: actions differ (largest difference ${worst}); the arms do not run the same inputs`,
    );
  }
  if (clipped.size > 0) log(`[inference] ${what}: the safety check clipped ${[...clipped].join(', ')}`);
}

// ---------------------------------------------------------------------------------------------------------
// Metrics and CPU

/** `name{labels} value` lines of the Prometheus text format, as {name, labels, value}. */
function parseMetrics(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const match = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2];
    }
    out.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return out;
}

/** vla_inference_batch_size{model} _sum and _count: requests and forward passes so far. */
async function batchCounters(origin: string, model: ModelId): Promise<{ sum: number; count: number }> {
  const response = await fetch(new URL('/monitoring/metrics', origin));
  const text = await response.text();
  if (!response.ok) throw new Error(`GET /monitoring/metrics: ${response.status} ${text.slice(0, 200)}`);
  const series = parseMetrics(text).filter((s) => s.labels.model === model);
  const value = (name: string): number => {
    const found = series.find((s) => s.name === name);
    if (found === undefined) throw new Error(`no ${name}{model="${model}"} in /monitoring/metrics`);
    return found.value;
  };
  return { sum: value('vla_inference_batch_size_sum'), count: value('vla_inference_batch_size_count') };
}

let ticksPerSecond = 100;

/** utime + stime in seconds of the whole process and of its main thread (tid = pid). */
function cpuSeconds(pid: number): { process: number; mainThread: number } {
  const read = (file: string): number => {
    try {
      const stat = readFileSync(file, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(rest[11]) + Number(rest[12])) / ticksPerSecond;
    } catch {
      return Number.NaN;
    }
  };
  return { process: read(`/proc/${pid}/stat`), mainThread: read(`/proc/${pid}/task/${pid}/stat`) };
}

// ---------------------------------------------------------------------------------------------------------
// Arms, rounds, comparisons

interface InferenceSample extends Sample {
  /** Requests per forward pass over this run (vla_inference_batch_size), where the arm records it. */
  meanBatchSize?: number;
  /** Server CPU per answered request over this run: the whole process, and its main (event-loop) thread. */
  cpuMsPerRequest?: number;
  mainThreadCpuMsPerRequest?: number;
}

interface Arm {
  name: string;
  group: string;
  description: string;
  run(durationS: number, measured: boolean): Promise<InferenceSample>;
}

interface HttpArmSpec {
  name: string;
  group: string;
  description: string;
  server: ServerProcess;
  request: RequestSpec;
  connections: number;
  background?: BackgroundLoad;
  /** Record the mean batch size of this model over each measured run. */
  batchSizeOf?: ModelId;
  /** Run a busy loop in another process on the servers' CPU meanwhile (B2's control: a core shared, nothing else). */
  cpuHog?: { pinning: Pinning | null };
}

const hogs = new Set<ChildProcess>();

/** A process spinning on the servers' CPU until the returned function kills it. */
function startCpuHog(pinning: Pinning | null): () => void {
  const spin = [process.execPath, '-e', 'for (;;) {}'];
  const [command, args] = pinning
    ? ['taskset', ['-c', String(pinning.serverCpu), ...spin]]
    : [spin[0], spin.slice(1)];
  const child = spawn(command, args, { stdio: 'ignore' });
  hogs.add(child);
  return () => {
    child.kill('SIGKILL');
    hogs.delete(child);
  };
}

function httpArm(spec: HttpArmSpec): Arm {
  return {
    name: spec.name,
    group: spec.group,
    description: spec.description,
    async run(durationS, measured) {
      const { server } = spec;
      if (!server.alive) throw new Error(server.describeExit());
      const before =
        measured && spec.batchSizeOf ? await batchCounters(server.origin, spec.batchSizeOf) : null;
      const background = spec.background
        ? startBackgroundLoad(server.origin, spec.background, durationS + 60)
        : undefined;
      const stopHog = spec.cpuHog ? startCpuHog(spec.cpuHog.pinning) : undefined;
      const cpuBefore = server.pid === undefined ? null : cpuSeconds(server.pid);
      let sample: InferenceSample;
      try {
        sample = await measure(server.origin, spec.request, durationS, spec.connections);
      } catch (error) {
        stopHog?.();
        await background?.stop().catch(() => undefined);
        // A server that died mid-run fails the run with its exit status and stderr, not just "fetch failed".
        await new Promise((resolve) => setTimeout(resolve, 200));
        if (!server.alive) throw new Error(`${spec.name}: ${server.describeExit()}`, { cause: error });
        throw error;
      }
      stopHog?.();
      const cpuAfter = server.pid === undefined ? null : cpuSeconds(server.pid);
      if (measured && sample.requests === 0) {
        await background?.stop().catch(() => undefined);
        throw new Error(`${spec.name}: no answer at all in ${durationS} s`);
      }
      if (background) sample = { ...sample, background: await background.stop() };
      if (cpuBefore && cpuAfter && sample.requests > 0 && !background) {
        sample.cpuMsPerRequest = ((cpuAfter.process - cpuBefore.process) * 1000) / sample.requests;
        sample.mainThreadCpuMsPerRequest =
          ((cpuAfter.mainThread - cpuBefore.mainThread) * 1000) / sample.requests;
      }
      if (before && spec.batchSizeOf) {
        const after = await batchCounters(server.origin, spec.batchSizeOf);
        sample.meanBatchSize = (after.sum - before.sum) / Math.max(1, after.count - before.count);
      }
      return sample;
    },
  };
}

type SessionVariant = { pack?: boolean; batch?: number };

function sessionArm(timer: SessionTimer, model: ModelId, variant: SessionVariant = {}): Arm {
  const batch = variant.batch ?? 1;
  const pack = variant.pack === true;
  const base = `session-run-${model}`;
  return {
    name: `${base}${pack ? '-packing' : ''}${batch > 1 ? `-batch${batch}` : ''}`,
    group: batch > 1 ? 'B3' : 'B1',
    description: pack
      ? `as ${base}, each call also packing the tensors from the request's values and unpacking the actions (the Worker's work per batch)`
      : batch > 1
        ? `as ${base} with a batch of ${batch} copies per call; req/s counts requests (${batch} per call), latency is per call`
        : `bare onnxruntime-node session.run of ${model}, in-process, tensors built once, back to back`,
    async run(durationS) {
      const r = await timer.ask<{
        calls: number;
        durationS: number;
        itemsPerSec: number;
        p50Ms: number;
        p99Ms: number;
      }>({ model, durationS, pack, batch }, (durationS + 30) * 1000);
      return {
        reqPerSec: r.itemsPerSec,
        requests: r.calls * batch,
        durationS: r.durationS,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
      };
    },
  };
}

type Metric = 'p50Ms' | 'p99Ms' | 'reqPerSec';

interface ComparisonSpec {
  name: string;
  group: string;
  candidate: string;
  baseline: string;
  metric: Metric;
  /** The issue's target on the median ratio: at most `max` (latency) or at least `min` (throughput). */
  target?: { max?: number; min?: number };
  /** Also report candidate − baseline of the metric (ms), median of the per-round differences. */
  difference?: boolean;
}

interface ComparisonResult extends ComparisonSpec {
  ratios: number[];
  ratio: Summary;
  differenceMs?: Summary;
  met: boolean | null;
}

interface ArmResult {
  name: string;
  group: string;
  description: string;
  rounds: InferenceSample[];
  reqPerSec: Summary;
  p50Ms: Summary;
  p99Ms: Summary;
  meanBatchSize?: Summary;
  cpuMsPerRequest?: Summary;
  mainThreadCpuMsPerRequest?: Summary;
}

/** Medians over {@link BREAKDOWN_REQUESTS} sequential requests of the response's `timing`, and the client's. */
interface Breakdown {
  name: string;
  description: string;
  requests: number;
  clientMs: number;
  timing: Record<string, number>;
  batchSize: number;
}

async function breakdown(
  name: string,
  description: string,
  origin: string,
  request: RequestSpec,
): Promise<Breakdown> {
  const client: number[] = [];
  const timings: Record<string, number[]> = {};
  const batchSizes: number[] = [];
  for (let i = 0; i < BREAKDOWN_REQUESTS; i++) {
    const t0 = performance.now();
    const answer = await post(origin, request);
    client.push(performance.now() - t0);
    for (const [k, v] of Object.entries(answer.timing ?? {})) (timings[k] ??= []).push(v);
    batchSizes.push(answer.batch_size ?? Number.NaN);
  }
  return {
    name,
    description,
    requests: BREAKDOWN_REQUESTS,
    clientMs: median(client),
    timing: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, median(v)])),
    batchSize: median(batchSizes),
  };
}

// ---------------------------------------------------------------------------------------------------------
// The run

interface InferenceReport {
  schemaVersion: 1;
  date: string;
  durationS: number;
  machine: MachineInfo;
  settings: typeof settings & { pinning: Pinning | null };
  inputs: {
    jpegBytes: number;
    jpegSize: string;
    rawBytes: number;
    rawBodyBytes: number;
    jpegBodyBytes: number;
  };
  comparisons: ComparisonResult[];
  arms: ArmResult[];
  breakdowns: Breakdown[];
  interference: Interference | null;
}

async function main(): Promise<void> {
  const started = performance.now();
  const date = new Date().toISOString();
  // Taken before the run: the commit (and whether the tree was dirty) that was built and measured.
  const machine = machineInfo(REPO_ROOT);
  const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'vla-bench-inference-'));
  process.once('exit', () => {
    SessionTimer.killAll();
    for (const hog of hogs) hog.kill('SIGKILL');
    killAllServers();
    rmSync(tmpDir, { recursive: true, force: true });
  });
  const perArmS = settings.initialWarmupS + settings.rounds * (settings.warmupS + settings.durationS + 2);
  // 20: at least the number of arms below; twice the expected time, plus start-up and the breakdown.
  const deadlineS = 2 * 20 * perArmS + 180;
  setTimeout(() => {
    process.stderr.write(`bench: still running after ${deadlineS} s, giving up\n`);
    process.exit(1);
  }, deadlineS * 1000).unref();
  const clk = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout);
  if (clk > 0) ticksPerSecond = clk;

  const pinning = pinLoadGenerator();
  log(
    `bench inference: ${settings.rounds} rounds × ${settings.durationS} s per arm; ` +
      (pinning ? `servers on CPU ${pinning.serverCpu}, load on CPU ${pinning.loadGeneratorCpu}` : 'unpinned'),
  );

  const inputs = await makeInputs();
  const shippedDir = modelsDir(tmpDir, 'models-shipped', null);
  const unbatchedDir = modelsDir(tmpDir, 'models-unbatched', 1);
  const inputFile = path.join(tmpDir, 'input.json');
  writeFileSync(
    inputFile,
    JSON.stringify({
      pixels: Buffer.from(inputs.pixels).toString('base64'),
      state: STATE,
      instruction: INSTRUCTION,
    }),
  );

  const context = { tmpDir };
  const specs: [string, ServerSpec][] = [
    [
      'api-unbatched',
      apiServer(context, 'api-unbatched', { MODELS_DIR: unbatchedDir, METRICS_PUBLIC: 'true' }),
    ],
    ['api-shipped', apiServer(context, 'api-shipped', { MODELS_DIR: shippedDir, METRICS_PUBLIC: 'true' })],
    [
      'bare-policy-server',
      scriptServer('bench/servers/bare-policy-server.ts', {
        MODELS_DIR: unbatchedDir,
        MODELS: MODELS.join(','),
      }),
    ],
  ];
  const servers: ServerProcess[] = [];
  for (const [name, spec] of specs) {
    servers.push(await ServerProcess.start(`inference/${name}`, spec, pinning));
    log(`[inference] ${name} listening on ${servers.at(-1)?.origin}`);
  }
  const [unbatched, shipped, bare] = servers;
  const timer = await SessionTimer.start(pinning, {
    MODELS_DIR: unbatchedDir,
    MODELS: MODELS.join(','),
    INPUT_FILE: inputFile,
  });

  try {
    const keys = new Map<ServerProcess, string>();
    for (const server of [unbatched, shipped]) {
      const key = await inferenceKey(server);
      await modelsReady(server, key);
      keys.set(server, key);
    }
    const inference = (server: ServerProcess, model: ModelId, as: 'raw' | 'jpeg'): RequestSpec => ({
      method: 'POST',
      path: '/v1/inference',
      headers: {
        'content-type': 'application/json',
        ...(keys.has(server) ? { 'x-api-key': keys.get(server)! } : {}),
      },
      body: inferenceBody(model, inputs, as),
    });

    // Same tensors everywhere: the bare session, the bare server and both API configurations agree.
    for (const model of ['demo-policy', 'demo-policy-10ms'] as const) {
      const floor = await timer.ask<{ actions: number[][] }>({ model, actions: true }, 30_000);
      for (const server of [unbatched, shipped, bare]) {
        const answer = await post(server.origin, inference(server, model, 'raw'));
        expectSameActions(`${server.name} ${model}`, answer, floor.actions);
      }
    }
    const jpegAnswer = await post(unbatched.origin, inference(unbatched, 'demo-policy', 'jpeg'));
    const floor = await timer.ask<{ actions: number[][] }>({ model: 'demo-policy', actions: true }, 30_000);
    expectSameActions('JPEG and raw pixels', jpegAnswer, floor.actions);
    log('[inference] bare session, bare server and the API return the same actions for the same inputs');

    const slowLoad = (server: ServerProcess): BackgroundLoad => ({
      description: `POST /v1/inference demo-policy-slow (about 200 ms per request), ${SLOW_LOAD_CONNECTIONS} connections`,
      ratePerSec: 1000,
      connections: SLOW_LOAD_CONNECTIONS,
      request: inference(server, 'demo-policy-slow', 'raw'),
      expectStatus: 200,
    });
    const health: RequestSpec = { path: '/health' };

    const arms: Arm[] = [
      sessionArm(timer, 'demo-policy'),
      sessionArm(timer, 'demo-policy', { pack: true }),
      sessionArm(timer, 'demo-policy', { batch: 8 }),
      sessionArm(timer, 'demo-policy-10ms'),
      sessionArm(timer, 'demo-policy-10ms', { pack: true }),
    ];
    for (const model of ['demo-policy', 'demo-policy-10ms'] as const) {
      arms.push(
        httpArm({
          name: `api-${model}-c1`,
          group: 'B1',
          description: `POST /v1/inference ${model}, raw pixels, concurrency 1; max_batch_size 1 (dispatched at once)`,
          server: unbatched,
          request: inference(unbatched, model, 'raw'),
          connections: 1,
        }),
        httpArm({
          name: `api-${model}-c1-shipped`,
          group: 'B1',
          description: `as api-${model}-c1 with the model.yaml as shipped (max_batch_size 8, batch_timeout_ms 2)`,
          server: shipped,
          request: inference(shipped, model, 'raw'),
          connections: 1,
        }),
        httpArm({
          name: `bare-server-${model}-c1`,
          group: 'B1',
          description: `bench/servers/bare-policy-server.ts (node:http, session.run on the main thread), ${model}, raw pixels, concurrency 1`,
          server: bare,
          request: inference(bare, model, 'raw'),
          connections: 1,
        }),
      );
    }
    arms.push(
      httpArm({
        name: 'api-demo-policy-c16-batched',
        group: 'B3',
        description: `POST /v1/inference demo-policy, raw pixels, concurrency ${BATCH_CONCURRENCY}; model.yaml as shipped (max_batch_size 8, batch_timeout_ms 2)`,
        server: shipped,
        request: inference(shipped, 'demo-policy', 'raw'),
        connections: BATCH_CONCURRENCY,
        batchSizeOf: 'demo-policy',
      }),
      httpArm({
        name: 'api-demo-policy-c16-unbatched',
        group: 'B3',
        description: `as api-demo-policy-c16-batched with max_batch_size 1`,
        server: unbatched,
        request: inference(unbatched, 'demo-policy', 'raw'),
        connections: BATCH_CONCURRENCY,
        batchSizeOf: 'demo-policy',
      }),
      httpArm({
        name: 'api-health-idle',
        group: 'B2',
        description: 'GET /health, concurrency 1, nothing else running',
        server: unbatched,
        request: health,
        connections: 1,
      }),
      httpArm({
        name: 'api-health-under-load',
        group: 'B2',
        description: `GET /health, concurrency 1, while ${SLOW_LOAD_CONNECTIONS} connections keep demo-policy-slow's worker busy`,
        server: unbatched,
        request: health,
        connections: 1,
        background: slowLoad(unbatched),
      }),
      httpArm({
        name: 'api-health-cpu-shared',
        group: 'B2',
        description:
          'GET /health, concurrency 1, no inference, while another process spins on the same CPU (the cost of a shared core alone)',
        server: unbatched,
        request: health,
        connections: 1,
        cpuHog: { pinning },
      }),
      httpArm({
        name: 'bare-health-idle',
        group: 'B2',
        description: 'the bare policy server: GET /health, concurrency 1, nothing else running',
        server: bare,
        request: health,
        connections: 1,
      }),
      httpArm({
        name: 'bare-health-under-load',
        group: 'B2',
        description: `the bare policy server: GET /health, concurrency 1, while ${SLOW_LOAD_CONNECTIONS} connections run demo-policy-slow on its main thread`,
        server: bare,
        request: health,
        connections: 1,
        background: slowLoad(bare),
      }),
      httpArm({
        name: 'api-demo-policy-jpeg-c1',
        group: 'B4',
        description: `as api-demo-policy-c1 with the picture as a 640x480 JPEG (${inputs.jpeg.length} bytes) instead of raw pixels`,
        server: unbatched,
        request: inference(unbatched, 'demo-policy', 'jpeg'),
        connections: 1,
      }),
    );

    const comparisons: ComparisonSpec[] = [
      ...(['demo-policy', 'demo-policy-10ms'] as const).flatMap((model): ComparisonSpec[] => {
        const max = model === 'demo-policy' ? 1.5 : 1.05;
        return [
          {
            name: `B1 wrapper tax, ${model}`,
            group: 'B1',
            candidate: `api-${model}-c1`,
            baseline: `session-run-${model}`,
            metric: 'p50Ms',
            target: { max },
            difference: true,
          },
          {
            name: `B1 wrapper tax, ${model}, model.yaml as shipped`,
            group: 'B1',
            candidate: `api-${model}-c1-shipped`,
            baseline: `session-run-${model}`,
            metric: 'p50Ms',
            target: { max },
            difference: true,
          },
          {
            name: `B1 packing and unpacking / session.run alone, ${model}`,
            group: 'B1',
            candidate: `session-run-${model}-packing`,
            baseline: `session-run-${model}`,
            metric: 'p50Ms',
            difference: true,
          },
          {
            name: `B1 platform / hand-rolled server, ${model}`,
            group: 'B1',
            candidate: `api-${model}-c1`,
            baseline: `bare-server-${model}-c1`,
            metric: 'p50Ms',
            difference: true,
          },
          {
            name: `B1 hand-rolled server / session.run, ${model}`,
            group: 'B1',
            candidate: `bare-server-${model}-c1`,
            baseline: `session-run-${model}`,
            metric: 'p50Ms',
            difference: true,
          },
        ];
      }),
      {
        name: 'B3 batching: throughput at concurrency 16, batched / unbatched',
        group: 'B3',
        candidate: 'api-demo-policy-c16-batched',
        baseline: 'api-demo-policy-c16-unbatched',
        metric: 'reqPerSec',
        target: { min: 1.5 },
      },
      {
        name: 'B3 ceiling: session.run requests/s, batches of 8 / batches of 1',
        group: 'B3',
        candidate: 'session-run-demo-policy-batch8',
        baseline: 'session-run-demo-policy',
        metric: 'reqPerSec',
      },
      {
        name: 'B2 event-loop isolation: GET /health p99, under load / idle',
        group: 'B2',
        candidate: 'api-health-under-load',
        baseline: 'api-health-idle',
        metric: 'p99Ms',
        target: { max: 1.5 },
        difference: true,
      },
      {
        name: 'B2 control: GET /health p99, another process spinning on the core / idle',
        group: 'B2',
        candidate: 'api-health-cpu-shared',
        baseline: 'api-health-idle',
        metric: 'p99Ms',
        difference: true,
      },
      {
        name: 'B2 inference load / a spinning process, GET /health p99',
        group: 'B2',
        candidate: 'api-health-under-load',
        baseline: 'api-health-cpu-shared',
        metric: 'p99Ms',
        difference: true,
      },
      {
        name: 'B2 contrast: hand-rolled server, GET /health p99, under load / idle',
        group: 'B2',
        candidate: 'bare-health-under-load',
        baseline: 'bare-health-idle',
        metric: 'p99Ms',
        difference: true,
      },
      {
        name: 'B4 image decoding: p50, 640x480 JPEG / raw pixels',
        group: 'B4',
        candidate: 'api-demo-policy-jpeg-c1',
        baseline: 'api-demo-policy-c1',
        metric: 'p50Ms',
        difference: true,
      },
    ];

    const names = new Set(arms.map((a) => a.name));
    if (names.size !== arms.length) throw new Error('arm names must be unique');
    for (const c of comparisons) {
      for (const arm of [c.candidate, c.baseline]) {
        if (!names.has(arm)) throw new Error(`comparison ${c.name} names unknown arm ${arm}`);
      }
    }

    const meter = startInterferenceMeter(() =>
      [...servers.map((s) => s.pid), timer.child.pid].filter((p): p is number => p !== undefined),
    );
    for (const arm of arms) await arm.run(settings.initialWarmupS, false);
    log(`[inference] warmed up ${arms.length} arms (${settings.initialWarmupS} s each)`);

    const samples = new Map<string, InferenceSample[]>(arms.map((a) => [a.name, []]));
    for (let round = 0; round < settings.rounds; round++) {
      const order = arms.map((_, i) => arms[(i + round) % arms.length]);
      for (const arm of order) {
        await arm.run(settings.warmupS, false);
        const sample = await arm.run(settings.durationS, true);
        samples.get(arm.name)?.push(sample);
        log(
          `[inference] round ${round + 1}/${settings.rounds} ${arm.name.padEnd(32)} ` +
            `${sample.reqPerSec.toFixed(0).padStart(6)} req/s  p50 ${sample.p50Ms.toFixed(3)} ms  ` +
            `p99 ${sample.p99Ms.toFixed(3)} ms` +
            (sample.meanBatchSize !== undefined ? `  batch ${sample.meanBatchSize.toFixed(2)}` : '') +
            (sample.background ? `  (background ${sample.background.reqPerSec.toFixed(1)} req/s)` : ''),
        );
      }
    }
    const interference = meter.stop();

    log('[inference] per-stage breakdown (sequential requests, the response timing)');
    const breakdowns: Breakdown[] = [];
    for (const [name, server, model, as] of [
      ['api-demo-policy-c1', unbatched, 'demo-policy', 'raw'],
      ['api-demo-policy-c1-shipped', shipped, 'demo-policy', 'raw'],
      ['api-demo-policy-10ms-c1', unbatched, 'demo-policy-10ms', 'raw'],
      ['api-demo-policy-10ms-c1-shipped', shipped, 'demo-policy-10ms', 'raw'],
      ['api-demo-policy-jpeg-c1', unbatched, 'demo-policy', 'jpeg'],
    ] as const) {
      const arm = arms.find((a) => a.name === name);
      breakdowns.push(
        await breakdown(name, arm?.description ?? '', server.origin, inference(server, model, as)),
      );
    }

    const armResults = arms.map((arm): ArmResult => {
      const rounds = samples.get(arm.name) ?? [];
      const optional = (key: 'meanBatchSize' | 'cpuMsPerRequest' | 'mainThreadCpuMsPerRequest') => {
        const values = rounds
          .map((s) => s[key])
          .filter((v): v is number => v !== undefined && Number.isFinite(v));
        return values.length === rounds.length && values.length > 0 ? { [key]: summarize(values) } : {};
      };
      return {
        name: arm.name,
        group: arm.group,
        description: arm.description,
        rounds,
        reqPerSec: summarize(rounds.map((s) => s.reqPerSec)),
        p50Ms: summarize(rounds.map((s) => s.p50Ms)),
        p99Ms: summarize(rounds.map((s) => s.p99Ms)),
        ...optional('meanBatchSize'),
        ...optional('cpuMsPerRequest'),
        ...optional('mainThreadCpuMsPerRequest'),
      };
    });
    const comparisonResults = comparisons.map((c): ComparisonResult => {
      const candidate = (samples.get(c.candidate) ?? []).map((s) => s[c.metric]);
      const baseline = (samples.get(c.baseline) ?? []).map((s) => s[c.metric]);
      const perRound = ratios(candidate, baseline);
      const ratio = summarize(perRound);
      const met =
        c.target === undefined
          ? null
          : (c.target.max === undefined || ratio.median <= c.target.max) &&
            (c.target.min === undefined || ratio.median >= c.target.min);
      return {
        ...c,
        ratios: perRound,
        ratio,
        ...(c.difference ? { differenceMs: summarize(candidate.map((v, i) => v - baseline[i])) } : {}),
        met,
      };
    });

    const meta = await sharp(inputs.jpeg).metadata();
    const report: InferenceReport = {
      schemaVersion: 1,
      date,
      durationS: secondsSince(started),
      machine,
      settings: { ...settings, pinning },
      inputs: {
        jpegBytes: inputs.jpeg.length,
        jpegSize: `${meta.width}x${meta.height}`,
        rawBytes: inputs.pixels.length,
        rawBodyBytes: Buffer.byteLength(inferenceBody('demo-policy', inputs, 'raw')),
        jpegBodyBytes: Buffer.byteLength(inferenceBody('demo-policy', inputs, 'jpeg')),
      },
      comparisons: comparisonResults,
      arms: armResults,
      breakdowns,
      interference,
    };
    const dir = path.join(REPO_ROOT, 'bench/results');
    mkdirSync(dir, { recursive: true });
    const host = report.machine.hostname.replace(/[^A-Za-z0-9._-]+/g, '_') || 'unknown-host';
    const base = path.join(dir, `${date.slice(0, 10)}-${host}-inference`);
    writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
    const markdown = toMarkdown(report);
    writeFileSync(`${base}.md`, markdown);
    process.stdout.write(`\n${markdown}\nwrote ${path.relative(REPO_ROOT, base)}.json and .md\n`);
    for (const c of comparisonResults.filter((r) => r.met === false)) {
      log(`bench: target missed: ${c.name}, median ${c.ratio.median.toFixed(3)} (${targetText(c)})`);
    }
  } finally {
    timer.stop();
    await Promise.all(servers.map((s) => s.stop()));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Report

function targetText(c: ComparisonSpec): string {
  if (c.target === undefined) return '–';
  return [
    c.target.max !== undefined ? `≤ ${c.target.max}` : '',
    c.target.min !== undefined ? `≥ ${c.target.min}` : '',
  ]
    .filter((t) => t !== '')
    .join(', ');
}

const METRIC_TEXT: Record<Metric, string> = { p50Ms: 'p50', p99Ms: 'p99', reqPerSec: 'req/s' };

function toMarkdown(report: InferenceReport): string {
  const { machine, settings: s } = report;
  const range = (x: Summary, digits: number): string => `${x.min.toFixed(digits)}–${x.max.toFixed(digits)}`;
  const noise = report.interference;
  const lines: string[] = [
    `# Inference benchmarks, ${report.date.slice(0, 10)}, ${machine.hostname}`,
    '',
    ...machineRows(report.date, machine),
    `| Pinning | ${
      s.pinning
        ? `servers and the session.run child on CPU ${s.pinning.serverCpu}, load generator on CPU ${s.pinning.loadGeneratorCpu} (taskset)`
        : 'none (taskset or a second core missing)'
    } |`,
    `| Rounds | ${s.rounds} × ${s.durationS} s per arm, interleaved; ${s.warmupS} s warm-up before each measured run, ${s.initialWarmupS} s per arm before round 1 |`,
    `| Inputs | 640x480 JPEG of ${report.inputs.jpegBytes} bytes (body ${report.inputs.jpegBodyBytes} bytes); raw 224x224x3 = ${report.inputs.rawBytes} bytes (body ${report.inputs.rawBodyBytes} bytes) |`,
    `| Run time | ${Math.round(report.durationS)} s |`,
    `| Other load | ${
      noise
        ? `other processes used ${noise.otherCpuS.toFixed(1)} CPU-s, ${(noise.otherShare * 100).toFixed(1)}% of the machine${
            noise.otherShare > 0.05 ? ' (a busy machine: expect a wide spread)' : ''
          }; steal ${noise.stealS.toFixed(1)} s`
        : 'not measured (no /proc)'
    } |`,
    '',
    'Ratios are candidate / baseline of the named metric, per round (both measured in the same round), then',
    'the median of the rounds; the spread is the smallest and largest per-round ratio. Differences are',
    'candidate − baseline in ms, median of the rounds.',
    '',
    '| comparison | metric | ratio, median | spread | difference ms | target | met |',
    '|---|---|---:|---:|---:|---:|---|',
  ];
  for (const c of report.comparisons) {
    lines.push(
      `| ${c.name}: \`${c.candidate}\` / \`${c.baseline}\` | ${METRIC_TEXT[c.metric]} | ${c.ratio.median.toFixed(3)} | ` +
        `${range(c.ratio, 3)} | ${c.differenceMs ? c.differenceMs.median.toFixed(3) : '–'} | ${targetText(c)} | ` +
        `${c.met === null ? '–' : c.met ? 'yes' : '**no**'} |`,
    );
  }
  lines.push(
    '',
    '| arm | group | req/s, median (min–max) | p50 ms, median (min–max) | p99 ms, median (min–max) | mean batch | server CPU ms/req (main thread) | what it is |',
    '|---|---|---:|---:|---:|---:|---:|---|',
  );
  for (const a of report.arms) {
    lines.push(
      `| \`${a.name}\` | ${a.group} | ${a.reqPerSec.median.toFixed(0)} (${range(a.reqPerSec, 0)}) | ` +
        `${a.p50Ms.median.toFixed(3)} (${range(a.p50Ms, 3)}) | ${a.p99Ms.median.toFixed(3)} (${range(a.p99Ms, 3)}) | ` +
        `${a.meanBatchSize ? a.meanBatchSize.median.toFixed(2) : '–'} | ` +
        `${a.cpuMsPerRequest ? `${a.cpuMsPerRequest.median.toFixed(2)} (${a.mainThreadCpuMsPerRequest?.median.toFixed(2) ?? '–'})` : '–'} | ` +
        `${a.description} |`,
    );
  }
  lines.push(
    '',
    `Per-stage breakdown: medians over ${BREAKDOWN_REQUESTS} sequential requests (fetch from the runner) after the`,
    "rounds, from the response's `timing` (ms). `total_ms` runs from the controller to the answer; the client",
    "sees it plus HTTP, the API-key guard and the JSON body parse. `inference_ms` is the Worker's task (packing,",
    '`session.run`, unpacking); `queue_ms` includes the batch window and the hop to the Worker.',
    '',
    '| configuration | client ms | total_ms | preprocess_ms | queue_ms | inference_ms | safety_ms | batch |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const b of report.breakdowns) {
    const t = (k: string): string => (b.timing[k] === undefined ? '–' : b.timing[k].toFixed(3));
    lines.push(
      `| \`${b.name}\` | ${b.clientMs.toFixed(3)} | ${t('total_ms')} | ${t('preprocess_ms')} | ${t('queue_ms')} | ` +
        `${t('inference_ms')} | ${t('safety_ms')} | ${b.batchSize} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

runEntryPoint(main);
