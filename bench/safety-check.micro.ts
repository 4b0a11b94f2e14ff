// `npm run bench:safety`: the cost of checking one action chunk, in-process (no server: the check is a pure
// function on the request path). A 50 × 14 chunk (ALOHA, 50 steps) in every outcome, against the work the
// response must do with the same chunk anyway (rows + JSON.stringify). Interleaved rounds, all arms in one
// run; writes bench/results/<date>-<host>-safety-check.{json,md}.
import {
  SafetyService,
  checkActionChunk,
  loadRobotProfiles,
  safetyMetricsIn,
  type SafetyMode,
} from '@app/safety';
import { Registry } from 'prom-client';
import path from 'node:path';
import { armAndRatioTables, machineInfo, machineLine, medianWithSpread, writeResultFiles } from './report';
import { ratios, summarize } from './stats';

const REPO_ROOT = path.join(__dirname, '..');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 400);
const H = 50;

const aloha = loadRobotProfiles(path.join(REPO_ROOT, 'config/robots')).get('aloha');
if (aloha === undefined) throw new Error('config/robots/aloha.yaml is missing');
const D = aloha.dimensions.length;

/** A smooth trajectory inside every limit, as float32 model output: each joint drifts at half its step limit. */
function trajectory(): { state: Float64Array; data: Float32Array } {
  const state = Float64Array.from(aloha!.dimensions, (d) => (d.min + d.max) / 2);
  const data = new Float32Array(H * D);
  for (let t = 0; t < H; t++) {
    for (let d = 0; d < D; d++) {
      const dim = aloha!.dimensions[d];
      const amplitude = Math.min((dim.max - dim.min) / 4, (dim.velocity * aloha!.dt * 0.5 * H) / Math.PI);
      data[t * D + d] = state[d] + amplitude * Math.sin((Math.PI * (t + 1)) / H);
    }
  }
  // float32 rounding must not push step 0 away from the state by more than a step: start from step 0's value.
  for (let d = 0; d < D; d++) state[d] = data[d];
  return { state, data };
}

const clean = trajectory();
/** The same chunk with one joint past its limit for ten steps and one mid-chunk jump. */
const broken = Float32Array.from(clean.data);
for (let t = 20; t < 30; t++) broken[t * D + 1] = aloha.dimensions[1].max + 0.2;
broken[35 * D + 8] += 1;
const nonFinite = Float32Array.from(clean.data);
nonFinite[25 * D + 3] = NaN;

const service = SafetyService.withMetrics(safetyMetricsIn(new Registry()));

const chunkOf = (data: Float32Array) => ({ horizon: H, dim: D, data });
const check = (data: Float32Array, mode: SafetyMode) => () =>
  checkActionChunk(chunkOf(data), aloha, clean.state, mode).report.outcome;

/** Each arm returns something, so the work cannot be optimised away. */
const ARMS: Record<string, () => unknown> = {
  'serialise actions (rows + JSON.stringify)': () => {
    const rows: number[][] = [];
    for (let t = 0; t < H; t++) rows.push(Array.from(clean.data.subarray(t * D, (t + 1) * D)));
    return JSON.stringify(rows).length;
  },
  'check, pass': check(clean.data, 'clip'),
  'check, pass, with metrics (SafetyService)': () =>
    service.check(chunkOf(clean.data), aloha, clean.state, 'clip').report.outcome,
  'check, clip → modified': check(broken, 'clip'),
  'check, reject → rejected': check(broken, 'reject'),
  'check, NaN → rejected': check(nonFinite, 'clip'),
};

function expectOutcomes(): void {
  const outcome = (data: Float32Array, mode: SafetyMode) => check(data, mode)();
  const seen = [
    outcome(clean.data, 'clip'),
    outcome(broken, 'clip'),
    outcome(broken, 'reject'),
    outcome(nonFinite, 'clip'),
  ];
  if (seen.join() !== 'pass,modified,rejected,rejected')
    throw new Error(`unexpected outcomes: ${seen.join()}`);
}

/** Nanoseconds per call of `fn`, over about `ms` milliseconds. */
function measure(fn: () => unknown, ms: number): number {
  let sink = 0;
  let calls = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < 200; i++) sink += fn() === undefined ? 0 : 1;
    calls += 200;
    now = process.hrtime.bigint();
  }
  if (sink !== calls) throw new Error('an arm returned undefined');
  return Number(now - start) / calls;
}

function main(): void {
  expectOutcomes();
  const names = Object.keys(ARMS);
  for (const name of names) measure(ARMS[name], ROUND_MS); // warm-up: JIT
  const perRound: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < ROUNDS; r++) {
    // Rotate the order, so slow drift hits every arm alike.
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + r) % names.length];
      perRound[name].push(measure(ARMS[name], ROUND_MS));
    }
  }
  const baseline = names[0];
  const pass = 'check, pass';
  const arms = names.map((name) => ({
    name,
    nsPerCall: summarize(perRound[name]),
    perRound: perRound[name],
  }));
  const comparisons = [
    ...names.slice(1).map((name) => ({
      candidate: name,
      baseline,
      ratio: summarize(ratios(perRound[name], perRound[baseline])),
    })),
    {
      candidate: 'check, pass, with metrics (SafetyService)',
      baseline: pass,
      ratio: summarize(ratios(perRound['check, pass, with metrics (SafetyService)'], perRound[pass])),
    },
  ];
  const machine = machineInfo(REPO_ROOT);
  const date = new Date().toISOString();
  const report = {
    schemaVersion: 1,
    date,
    machine,
    settings: { rounds: ROUNDS, roundMs: ROUND_MS, horizon: H, dim: D },
    arms,
    comparisons,
  };
  const worstPassUs = Math.max(...perRound['check, pass, with metrics (SafetyService)']) / 1000;

  const md = [
    `# Safety check micro-benchmark, ${date.slice(0, 10)}, ${machine.hostname}`,
    '',
    machineLine(machine),
    `One ${H} × ${D} chunk (profile \`aloha\`, float32 input, with the state), ${ROUNDS} interleaved rounds of ${ROUND_MS} ms per arm.`,
    '',
    ...armAndRatioTables(
      'µs per chunk, median (spread)',
      arms.map((a) => ({ name: a.name, value: medianWithSpread(a.nsPerCall, 2, 1000) })),
      comparisons.map((c) => ({ ...c, ratio: medianWithSpread(c.ratio, 2) })),
    ),
    '',
    `Target: well under 0.1 ms per chunk. Slowest round of the checked pass with metrics: ${worstPassUs.toFixed(2)} µs ` +
      `(${worstPassUs < 100 ? 'met' : 'NOT met'}).`,
    '',
  ].join('\n');

  writeResultFiles(REPO_ROOT, 'safety-check', report, md);
}

main();
