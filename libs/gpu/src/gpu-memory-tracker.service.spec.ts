import { Registry } from 'prom-client';
import { CollectionError, type GpuCollector } from './gpu-collector';
import type { GpuSnapshot, GpuSource, ProcessGpuMemory } from './gpu-snapshot';
import { GPU_METRICS, gpuMetricsIn, type GpuMetrics } from './gpu.metrics';
import type { GpuModuleOptions } from './gpu.options';
import { GpuMemoryTracker } from './gpu-memory-tracker.service';
import { SAMPLE_TIMEOUT_MS } from './gpu.options';
import { GpuTelemetry } from './gpu-telemetry.service';
import { NvmlCollector } from './nvml/nvml-collector';
import { describeWithFakeNvml, FakeNvml, type FakeNvmlState, twoDeviceState } from '../test/fake-nvml';
import { deferred } from '../test/deferred';

/**
 * GpuMemoryTracker over a GpuTelemetry: with NVML in its collector process against the fake libnvidia-ml.so.1 (whose
 * process list grows by `procGrowth` on every read), and with scripted collectors for what the fake
 * cannot do on cue (a sample that fails or never answers, another source).
 */

const describeNative = describeWithFakeNvml('GpuMemoryTracker (fake NVML)');

/** So long that no poll but the first runs during a test. */
const NO_MORE_POLLS_MS = 3_600_000;
const MODEL = 'm';

/** Polls `probe` (real time) until it holds, failing after a generous ceiling. */
async function eventually(probe: () => boolean | Promise<boolean>, ceilingMs = 10_000): Promise<void> {
  const deadline = Date.now() + ceilingMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ceilingMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The delta histogram's sum and count for `model` (0 and 0 before any observation). */
async function observed(metrics: GpuMetrics, model = MODEL): Promise<{ sum: number; count: number }> {
  const { values } = await metrics.inferenceMemoryDelta.get();
  const mine = values.filter((v) => v.labels.model === model);
  const pick = (suffix: string) =>
    mine.find(
      (v) => (v as { metricName?: string }).metricName === `${GPU_METRICS.inferenceMemoryDelta}${suffix}`,
    )?.value ?? 0;
  return { sum: pick('_sum'), count: pick('_count') };
}

/** A collector whose snapshots are trivial and whose process memory the test scripts. */
class ScriptedCollector implements GpuCollector {
  readonly pids: number[] = [];

  constructor(
    public memory: () => Promise<ProcessGpuMemory>,
    readonly source: GpuSource = 'nvml',
    public snapshot: () => Promise<GpuSnapshot> = () =>
      Promise.resolve({ source, collectedAt: Date.now(), durationMs: 1, devices: [] }),
  ) {}

  collect(): Promise<GpuSnapshot> {
    return this.snapshot();
  }

  processMemory(pid: number): Promise<ProcessGpuMemory> {
    this.pids.push(pid);
    return this.memory();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

const bytes = (totalBytes: number): ProcessGpuMemory => ({ perDevice: { 0: totalBytes }, totalBytes });

const telemetries: GpuTelemetry[] = [];

async function trackerWith(options: Partial<GpuModuleOptions>) {
  const metrics = gpuMetricsIn(new Registry());
  const telemetry = GpuTelemetry.standalone(
    {
      pollIntervalMs: NO_MORE_POLLS_MS,
      collectTimeoutMs: 5_000,
      startWaitMs: 15_000,
      nvmlLibraryPath: '/nonexistent/libnvidia-ml.so.1',
      nvidiaSmiPath: '/nonexistent/nvidia-smi',
      ...options,
    },
    metrics,
  );
  telemetries.push(telemetry);
  await telemetry.onApplicationBootstrap();
  return { telemetry, metrics, tracker: new GpuMemoryTracker(telemetry, metrics.inferenceMemoryDelta) };
}

afterEach(async () => {
  for (const telemetry of telemetries.splice(0)) await telemetry.onApplicationShutdown();
  jest.useRealTimers();
});

describeNative('GpuMemoryTracker with NVML in its collector process (fake NVML)', () => {
  const fakes: FakeNvml[] = [];
  afterEach(() => {
    for (const fake of fakes.splice(0)) fake.remove();
  });

  const BASE = 17_179_869_184;
  const GROWTH = 268_435_456;

  function fakeWith(change: (state: FakeNvmlState) => FakeNvmlState): FakeNvml {
    const fake = FakeNvml.create(change(twoDeviceState()));
    fakes.push(fake);
    return fake;
  }

  async function measured(fake: FakeNvml) {
    const built = await trackerWith({
      collectors: [() => NvmlCollector.start({ libraryPath: fake.libraryPath, startTimeoutMs: 15_000 })],
    });
    expect(built.telemetry.status()).toMatchObject({ state: 'running', source: 'nvml' });
    expect(built.tracker.active).toBe(true);
    return built;
  }

  const growing = (state: FakeNvmlState): FakeNvmlState => ({
    ...state,
    devices: [
      { ...state.devices[0], procs: [{ pid: 'self', bytes: BASE }], procGrowth: GROWTH },
      state.devices[1],
    ],
  });

  it('records one observation of exactly what this process’s memory grew by over the batch', async () => {
    const fake = fakeWith(growing);
    const { tracker, metrics } = await measured(fake);
    const end = await tracker.begin(MODEL);
    expect(end).toBeInstanceOf(Function);
    expect(await observed(metrics)).toEqual({ sum: 0, count: 0 });
    end?.();
    await eventually(async () => (await observed(metrics)).count === 1);
    expect(await observed(metrics)).toEqual({ sum: GROWTH, count: 1 });
    // Another model's histogram is untouched.
    expect(await observed(metrics, 'other')).toEqual({ sum: 0, count: 0 });
  });

  it('measures back-to-back batches with one sample each: the last one’s after is the next one’s before', async () => {
    const fake = fakeWith(growing);
    const { tracker, metrics } = await measured(fake);
    const reads = () => fake.count('nvmlDeviceGetComputeRunningProcesses_v3', 0);
    const afterPoll = reads();
    for (let batch = 1; batch <= 3; batch++) {
      const end = await tracker.begin(MODEL);
      end?.();
      await eventually(async () => (await observed(metrics)).count === batch);
    }
    expect(await observed(metrics)).toEqual({ sum: 3 * GROWTH, count: 3 });
    expect(reads() - afterPoll).toBe(4);
  });

  it('records a shrinking process as a negative delta', async () => {
    const fake = fakeWith(growing);
    const { tracker, metrics } = await measured(fake);
    const end = await tracker.begin(MODEL);
    // Between the samples the process freed memory (the fake's growth keeps adding on top).
    const state = growing(twoDeviceState());
    fake.write({
      ...state,
      devices: [
        { ...state.devices[0], procs: [{ pid: 'self', bytes: BASE - 4 * GROWTH }] },
        state.devices[1],
      ],
    });
    end?.();
    await eventually(async () => (await observed(metrics)).count === 1);
    expect(await observed(metrics)).toEqual({ sum: -3 * GROWTH, count: 1 });
  });
});

describe('GpuMemoryTracker with a scripted collector', () => {
  it('samples the tracked process and records after minus before', async () => {
    const totals = [1_000, 5_000, 3_000];
    const collector = new ScriptedCollector(() => Promise.resolve(bytes(totals.shift() ?? 0)));
    const { tracker, metrics } = await trackerWith({
      pid: 777,
      collectors: [() => Promise.resolve(collector)],
    });
    const end = await tracker.begin(MODEL);
    end?.();
    await eventually(async () => (await observed(metrics)).count === 1);
    expect(await observed(metrics)).toEqual({ sum: 4_000, count: 1 });
    // The next batch starts from that after-sample.
    const next = await tracker.begin(MODEL);
    next?.();
    await eventually(async () => (await observed(metrics)).count === 2);
    expect(await observed(metrics)).toEqual({ sum: 4_000 - 2_000, count: 2 });
    expect(collector.pids).toEqual([777, 777, 777]);
  });

  it('samples overlapping batches each for itself', async () => {
    let total = 0;
    const collector = new ScriptedCollector(() => Promise.resolve(bytes((total += 10))));
    const { tracker, metrics } = await trackerWith({ collectors: [() => Promise.resolve(collector)] });
    const endA = await tracker.begin('a'); // 10
    const endB = await tracker.begin('b'); // 20
    endA?.(); // 30
    await eventually(async () => (await observed(metrics, 'a')).count === 1);
    endB?.(); // 40
    await eventually(async () => (await observed(metrics, 'b')).count === 1);
    expect(await observed(metrics, 'a')).toEqual({ sum: 20, count: 1 });
    expect(await observed(metrics, 'b')).toEqual({ sum: 20, count: 1 });
    expect(collector.pids).toHaveLength(4);
  });

  it('records once however often the end function is called', async () => {
    const collector = new ScriptedCollector(() => Promise.resolve(bytes(100)));
    const { tracker, metrics } = await trackerWith({ collectors: [() => Promise.resolve(collector)] });
    const end = await tracker.begin(MODEL);
    end?.();
    end?.();
    await eventually(async () => (await observed(metrics)).count === 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await observed(metrics)).toEqual({ sum: 0, count: 1 });
    expect(collector.pids).toHaveLength(2);
  });

  it('measures nothing when the source is nvidia-smi', async () => {
    const collector = new ScriptedCollector(() => Promise.resolve(bytes(1)), 'nvidia-smi');
    const { telemetry, tracker, metrics } = await trackerWith({
      collectors: [() => Promise.resolve(collector)],
    });
    expect(telemetry.status()).toMatchObject({ state: 'running', source: 'nvidia-smi' });
    expect(tracker.active).toBe(false);
    expect(await tracker.begin(MODEL)).toBeUndefined();
    expect(collector.pids).toEqual([]);
    expect(await observed(metrics)).toEqual({ sum: 0, count: 0 });
  });

  it('measures nothing while telemetry is disabled', async () => {
    const { telemetry, tracker, metrics } = await trackerWith({ pollIntervalMs: 0 });
    expect(telemetry.status().state).toBe('disabled');
    expect(tracker.active).toBe(false);
    expect(await tracker.begin(MODEL)).toBeUndefined();
    expect(await observed(metrics)).toEqual({ sum: 0, count: 0 });
  });

  it('measures nothing while NVML collections fail', async () => {
    const collector = new ScriptedCollector(
      () => Promise.resolve(bytes(1)),
      'nvml',
      () => Promise.reject(new CollectionError('nvml_error', 'count failed')),
    );
    const { telemetry, tracker, metrics } = await trackerWith({
      collectors: [() => Promise.resolve(collector)],
    });
    expect(telemetry.status()).toMatchObject({ state: 'failing', source: 'nvml' });
    expect(tracker.active).toBe(false);
    expect(await tracker.begin(MODEL)).toBeUndefined();
    expect(collector.pids).toEqual([]);
    expect(await observed(metrics)).toEqual({ sum: 0, count: 0 });
  });

  it('leaves a batch unmeasured when the before-sample fails', async () => {
    const collector = new ScriptedCollector(() =>
      Promise.reject(new CollectionError('collector_exited', 'the thread died')),
    );
    const { tracker, metrics } = await trackerWith({ collectors: [() => Promise.resolve(collector)] });
    expect(tracker.active).toBe(true);
    await expect(tracker.begin(MODEL)).resolves.toBeUndefined();
    expect(collector.pids).toHaveLength(1);
    expect(await observed(metrics)).toEqual({ sum: 0, count: 0 });
  });

  it('gives a before-sample that never answers up after SAMPLE_TIMEOUT_MS', async () => {
    jest.useFakeTimers();
    const collector = new ScriptedCollector(() => new Promise<ProcessGpuMemory>(() => undefined));
    const { tracker, metrics } = await trackerWith({ collectors: [() => Promise.resolve(collector)] });
    let settled = false;
    const begun = tracker.begin(MODEL).then((end) => {
      settled = true;
      return end;
    });
    await jest.advanceTimersByTimeAsync(SAMPLE_TIMEOUT_MS - 1);
    expect(settled).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    expect(settled).toBe(true);
    expect(await begun).toBeUndefined();
    expect(await observed(metrics)).toEqual({ sum: 0, count: 0 });
  });

  it('records nothing when the after-sample fails', async () => {
    const answers = [
      () => Promise.resolve(bytes(100)),
      () => Promise.reject(new CollectionError('collector_exited', 'gone')),
    ];
    const collector = new ScriptedCollector(() => (answers.shift() ?? (() => Promise.resolve(bytes(0))))());
    const { tracker, metrics } = await trackerWith({ collectors: [() => Promise.resolve(collector)] });
    const end = await tracker.begin(MODEL);
    expect(end).toBeInstanceOf(Function);
    end?.();
    await eventually(() => collector.pids.length === 2);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await observed(metrics)).toEqual({ sum: 0, count: 0 });
  });

  it('records nothing when the after-sample does not answer within SAMPLE_TIMEOUT_MS', async () => {
    jest.useFakeTimers();
    const late = deferred<ProcessGpuMemory>();
    const answers = [() => Promise.resolve(bytes(100)), () => late.promise];
    const collector = new ScriptedCollector(() => (answers.shift() ?? (() => Promise.resolve(bytes(0))))());
    const { tracker, metrics } = await trackerWith({ collectors: [() => Promise.resolve(collector)] });
    const end = await tracker.begin(MODEL);
    expect(end).toBeInstanceOf(Function);
    end?.();
    await jest.advanceTimersByTimeAsync(SAMPLE_TIMEOUT_MS);
    late.resolve(bytes(999));
    await jest.advanceTimersByTimeAsync(0);
    expect(collector.pids).toHaveLength(2);
    expect(await observed(metrics)).toEqual({ sum: 0, count: 0 });
  });
});
