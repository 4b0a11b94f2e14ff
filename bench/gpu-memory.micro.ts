// `npm run bench:gpu`: what per-batch GPU memory tracking adds to a batch, in-process. The real demo policy
// in its Worker thread (ONNX Runtime on CPU) behind the real scheduler, batches of one, one at a time:
// bare, against the same with GpuMeasuredRunner taking NVML samples before and after each batch from the
// fake libnvidia-ml.so.1 (compiled from C; the NVML calls go through koffi in the collector's process, as on
// a GPU host). Also the cost of one sample on its own. Interleaved rounds, all arms in one run; writes
// bench/results/<date>-<host>-gpu-memory.{json,md}.
import { GpuMemoryTracker, GpuTelemetry, type NvmlCollector, gpuMetricsIn } from '@app/gpu';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { loadModelConfig } from '../apps/api/src/inference/model-config.loader';
import { GpuMeasuredRunner } from '../apps/api/src/inference/gpu-measured-runner';
import { type BatchRunner, ModelScheduler } from '../apps/api/src/inference/model-scheduler';
import { ModelWorkers } from '../apps/api/src/inference/model-workers';
import type { WorkItem } from '../apps/api/src/inference/tensor-prep';
// eslint-disable-next-line no-restricted-imports -- the lib's test fake of NVML (compiled from C), not its API
import { FakeNvml, twoDeviceState } from '../libs/gpu/test/fake-nvml';
import { armAndRatioTables, machineInfo, machineLine, medianWithSpread, writeResultFiles } from './report';
import { ratios, summarize } from './stats';

const REPO_ROOT = path.join(__dirname, '..');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 1500);
const DEMO = loadModelConfig(path.join(REPO_ROOT, 'models/demo-policy'));

function item(): WorkItem {
  return {
    images: [new Uint8Array(224 * 224 * 3).fill(100)],
    state: Float32Array.from([0, -0.785, 0, -2.356, 0, 1.571, 0.785, 0.04]),
    tokens: new Int32Array(16).fill(3),
  };
}

/** Microseconds per call of `fn`, called one after another for about `ms` milliseconds. */
async function measure(fn: () => Promise<unknown>, ms: number): Promise<number> {
  let calls = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    await fn();
    calls++;
    now = performance.now();
  }
  return ((now - start) * 1000) / calls;
}

async function main(): Promise<void> {
  const fake = FakeNvml.create(twoDeviceState());
  const registry = new Registry();
  const metrics = gpuMetricsIn(registry);
  const telemetry = GpuTelemetry.standalone(
    {
      // One poll at start; none during the measurement (a poll would queue the samples behind it).
      pollIntervalMs: 3_600_000,
      collectTimeoutMs: 5000,
      nvmlLibraryPath: fake.libraryPath,
      nvidiaSmiPath: '/nonexistent',
    },
    metrics,
  );
  await telemetry.onApplicationBootstrap();
  if (telemetry.status().source !== 'nvml') throw new Error('the fake NVML did not start');
  const tracker = new GpuMemoryTracker(telemetry, metrics.inferenceMemoryDelta);
  const collector = telemetry.nvml as NvmlCollector;

  const workers = new ModelWorkers(DEMO, { executionProviders: ['cpu'] });
  await workers.start();
  const config = { ...DEMO, maxBatchSize: 1 };
  const schedulerOver = (runner: BatchRunner) => new ModelScheduler(config, runner, {});
  const bare = schedulerOver(workers);
  const measured = schedulerOver(new GpuMeasuredRunner(workers, tracker, DEMO.id));
  let requestId = 0;
  const submit = (scheduler: ModelScheduler) => () =>
    scheduler.submit({
      requestId: String(requestId++),
      tenant: 'bench',
      item: item(),
      deadlineAt: performance.now() + 60_000,
    });
  const ARMS: Record<string, () => Promise<unknown>> = {
    'batch of 1, bare': submit(bare),
    'batch of 1, GPU memory measured': submit(measured),
    'one NVML process-memory sample': () => collector.processMemory(process.pid),
  };
  const names = Object.keys(ARMS);
  try {
    for (const name of names) await measure(ARMS[name], ROUND_MS); // warm-up: JIT, the ORT arena
    const perRound: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + r) % names.length];
        perRound[name].push(await measure(ARMS[name], ROUND_MS));
      }
    }
    const observed = (await metrics.inferenceMemoryDelta.get()).values.find((v) =>
      String((v as { metricName?: string }).metricName).endsWith('_count'),
    )?.value;
    if (observed === undefined || observed === 0) throw new Error('the measured arm recorded no delta');
    write(perRound, names, Number(observed));
  } finally {
    await workers.close();
    await telemetry.onApplicationShutdown();
    fake.remove();
  }
}

function write(perRound: Record<string, number[]>, names: string[], observed: number): void {
  const [bareName, measuredName, sampleName] = names;
  const arms = names.map((name) => ({
    name,
    usPerCall: summarize(perRound[name]),
    perRound: perRound[name],
  }));
  const comparisons = [
    {
      candidate: measuredName,
      baseline: bareName,
      ratio: summarize(ratios(perRound[measuredName], perRound[bareName])),
    },
    {
      candidate: sampleName,
      baseline: bareName,
      ratio: summarize(ratios(perRound[sampleName], perRound[bareName])),
    },
  ];
  const machine = machineInfo(REPO_ROOT);
  const date = new Date().toISOString();
  const report = {
    schemaVersion: 1,
    date,
    machine,
    settings: { rounds: ROUNDS, roundMs: ROUND_MS, model: DEMO.id, deltasObserved: observed },
    arms,
    comparisons,
  };
  const md = [
    `# GPU memory tracking micro-benchmark, ${date.slice(0, 10)}, ${machine.hostname}`,
    '',
    machineLine(machine),
    `Model \`${DEMO.id}\` on CPU in its Worker, batches of one, one at a time; NVML is the fake library (two devices). ` +
      `${ROUNDS} interleaved rounds of ${ROUND_MS} ms per arm; ${observed} deltas recorded.`,
    '',
    ...armAndRatioTables(
      'µs per call, median (spread)',
      arms.map((a) => ({ name: a.name, value: medianWithSpread(a.usPerCall, 1) })),
      comparisons.map((c) => ({ ...c, ratio: medianWithSpread(c.ratio, 3) })),
    ),
    '',
  ].join('\n');
  writeResultFiles(REPO_ROOT, 'gpu-memory', report, md);
}

main().catch((error: unknown) => {
  process.stderr.write(`${String((error as Error).stack ?? error)}\n`);
  process.exit(1);
});
