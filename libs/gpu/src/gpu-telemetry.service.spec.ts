import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CollectionError, type CollectOptions, type GpuCollector } from './gpu-collector';
import type { GpuDevice, GpuSnapshot, GpuSource, ProcessGpuMemory } from './gpu-snapshot';
import { DEVICE_LABELS, GPU_METRICS } from './gpu.metrics';
import type { GpuLogger, GpuModuleOptions } from './gpu.options';
import { GpuTelemetry } from './gpu-telemetry.service';
import { deferred } from '../test/deferred';

/**
 * GpuTelemetry built directly (no Nest) with real prom-client metrics in a fresh registry, driven by
 * scripted collectors on Jest's fake clock: every poll, timeout and back-off is a timer the test advances.
 */

const INTERVAL_MS = 100;
const TIMEOUT_MS = 50;
/** The process whose memory the telemetry tracks (not this one: a fixed number). */
const PID = 4242;
const NAME = 'NVIDIA H100 80GB HBM3';

type Labels = Record<string, string>;

/** A healthy device with every reading; `overrides` replace some. */
function gpu(index: number, overrides: Partial<GpuDevice> = {}): GpuDevice {
  return {
    index,
    uuid: `GPU-0000000${index}-aaaa-bbbb-cccc-dddddddddddd`,
    name: NAME,
    pciBusId: `00000000:1${index}:00.0`,
    healthy: true,
    utilizationGpuPercent: 80 + index,
    utilizationMemoryPercent: 40 + index,
    memoryTotalBytes: 80_000,
    memoryUsedBytes: 20_000,
    memoryFreeBytes: 60_000,
    temperatureCelsius: 60 + index,
    powerWatts: 500.5,
    powerLimitWatts: 700,
    computeMode: 'exclusive_process',
    smClockMhz: 1980,
    memoryClockMhz: 2619,
    energyJoules: 1_000 * (index + 1),
    processes: index === 0 ? [{ pid: PID, usedMemoryBytes: 12_345 }, { pid: 1 }] : [],
    ...overrides,
  };
}

/**
 * A lost device. It still carries readings (NVML's reader never sends them with `healthy: false`), to show
 * that the telemetry drops an unhealthy device's readings itself.
 */
function lostGpu(index: number): GpuDevice {
  return { ...gpu(index), healthy: false, error: 'gpu_is_lost: GPU is lost' };
}

function snapshotOf(devices: readonly GpuDevice[], source: GpuSource = 'nvml'): GpuSnapshot {
  return {
    source,
    collectedAt: Date.now(),
    durationMs: 1,
    driverVersion: '550.54.15',
    cudaDriverVersion: '12.4',
    devices,
  };
}

interface Call {
  /** The fake clock when collect() was called. */
  readonly at: number;
  readonly skip: readonly number[];
}

/** A collector whose answers the test scripts: `respond` gets the call's number (from 1) and options. */
class ScriptedCollector implements GpuCollector {
  readonly calls: Call[] = [];
  closed = 0;

  constructor(
    public respond: (call: number, options: CollectOptions) => Promise<GpuSnapshot>,
    readonly source: GpuSource = 'nvml',
  ) {}

  collect(options: CollectOptions = {}): Promise<GpuSnapshot> {
    const skip = [...(options.skipDevices ?? [])].sort((a, b) => a - b);
    const n = this.calls.push({ at: Date.now(), skip });
    return this.respond(n, options);
  }

  processMemory(): Promise<ProcessGpuMemory> {
    return Promise.resolve({ perDevice: {}, totalBytes: 0 });
  }

  close(): Promise<void> {
    this.closed++;
    return Promise.resolve();
  }
}

/** Devices 0 and 1, each unless skipped; `lost` ones answer as lost. */
function twoDevices(lost: () => ReadonlySet<number>) {
  return (_call: number, options: CollectOptions): Promise<GpuSnapshot> =>
    Promise.resolve(
      snapshotOf(
        [0, 1]
          .filter((i) => !(options.skipDevices?.has(i) ?? false))
          .map((i) => (lost().has(i) ? lostGpu(i) : gpu(i))),
      ),
    );
}

class Logs implements GpuLogger {
  readonly lines: { level: 'error' | 'warn' | 'info'; message: string; object: Record<string, unknown> }[] =
    [];
  error(object: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'error', message, object });
  }
  warn(object: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'warn', message, object });
  }
  info(object: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'info', message, object });
  }
  count(level: 'error' | 'warn' | 'info', message?: string): number {
    return this.lines.filter(
      (l) => l.level === level && (message === undefined || l.message.includes(message)),
    ).length;
  }
}

/** A GpuTelemetry with its metrics in a registry of its own, constructed in the constructor's order. */
function telemetryWith(options: Partial<GpuModuleOptions>) {
  const registry = new Registry();
  const registers = [registry];
  const deviceGauge = (name: string, extra: readonly string[] = []) =>
    new Gauge({ name, help: name, labelNames: [...DEVICE_LABELS, ...extra], registers });
  const gauge = (name: string, labelNames: readonly string[]) =>
    new Gauge({ name, help: name, labelNames: [...labelNames], registers });
  const logs = new Logs();
  const telemetry = new GpuTelemetry(
    {
      pollIntervalMs: INTERVAL_MS,
      collectTimeoutMs: TIMEOUT_MS,
      nvmlLibraryPath: '/nonexistent/libnvidia-ml.so.1',
      nvidiaSmiPath: '/nonexistent/nvidia-smi',
      pid: PID,
      logger: logs,
      ...options,
    },
    deviceGauge(GPU_METRICS.utilization),
    deviceGauge(GPU_METRICS.memoryCopyUtilization),
    deviceGauge(GPU_METRICS.memoryUsed),
    deviceGauge(GPU_METRICS.memoryTotal),
    deviceGauge(GPU_METRICS.memoryUtilization),
    deviceGauge(GPU_METRICS.temperature),
    deviceGauge(GPU_METRICS.power),
    deviceGauge(GPU_METRICS.powerLimit),
    new Counter({ name: GPU_METRICS.energy, help: 'energy', labelNames: [...DEVICE_LABELS], registers }),
    deviceGauge(GPU_METRICS.computeMode),
    deviceGauge(GPU_METRICS.clock, ['clock']),
    deviceGauge(GPU_METRICS.processMemory),
    deviceGauge(GPU_METRICS.deviceHealthy),
    gauge(GPU_METRICS.info, [
      ...DEVICE_LABELS,
      'pci_bus_id',
      'driver_version',
      'cuda_driver_version',
      'source',
    ]),
    gauge(GPU_METRICS.collectorUp, ['source']),
    new Counter({
      name: GPU_METRICS.collectionErrors,
      help: 'errors',
      labelNames: ['source', 'reason'],
      registers,
    }),
    gauge(GPU_METRICS.lastSuccess, ['source']),
    new Histogram({
      name: GPU_METRICS.collectionDuration,
      help: 'duration',
      labelNames: ['source'],
      registers,
    }),
  );
  /** The samples of `name` whose labels include `labels`. */
  const samples = async (name: string, labels: Labels = {}) => {
    const metric = registry.getSingleMetric(name);
    if (metric === undefined) throw new Error(`no metric ${name}`);
    const { values } = await metric.get();
    return values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  };
  /** The one sample of `name` with `labels`, or undefined when there is none. */
  const value = async (name: string, labels: Labels = {}): Promise<number | undefined> => {
    const found = await samples(name, labels);
    if (found.length > 1)
      throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
    return found[0]?.value;
  };
  return { telemetry, registry, logs, samples, value };
}

/** Advances the fake clock in small steps until `done()` holds (at most `maxMs`). */
async function advanceUntil(done: () => boolean, maxMs = 10_000, stepMs = 10): Promise<void> {
  for (let waited = 0; !done(); waited += stepMs) {
    if (waited > maxMs) throw new Error(`condition not met within ${maxMs} ms of fake time`);
    await jest.advanceTimersByTimeAsync(stepMs);
  }
}

const telemetries: GpuTelemetry[] = [];

beforeEach(() => jest.useFakeTimers());
afterEach(async () => {
  for (const telemetry of telemetries.splice(0)) await telemetry.onApplicationShutdown();
  jest.useRealTimers();
});

async function started(options: Partial<GpuModuleOptions>) {
  const built = telemetryWith(options);
  telemetries.push(built.telemetry);
  await built.telemetry.onApplicationBootstrap();
  return built;
}

describe('GpuTelemetry', () => {
  it('publishes every reading of the first collection under its metric, before start returns', async () => {
    const collector = new ScriptedCollector(twoDevices(() => new Set()));
    const { telemetry, value, samples } = await started({ collectors: [() => Promise.resolve(collector)] });
    const labels0 = { gpu: '0', uuid: gpu(0).uuid ?? '', name: NAME };

    expect(collector.calls).toHaveLength(1);
    expect(telemetry.status()).toMatchObject({
      state: 'running',
      source: 'nvml',
      reason: null,
      consecutiveFailures: 0,
      hungSince: null,
    });
    expect(telemetry.status().snapshot?.devices.map((d) => d.index)).toEqual([0, 1]);
    expect(await value(GPU_METRICS.utilization, labels0)).toBe(80);
    expect(await value(GPU_METRICS.memoryCopyUtilization, labels0)).toBe(40);
    expect(await value(GPU_METRICS.memoryUsed, labels0)).toBe(20_000);
    expect(await value(GPU_METRICS.memoryTotal, labels0)).toBe(80_000);
    expect(await value(GPU_METRICS.memoryUtilization, labels0)).toBe(25);
    expect(await value(GPU_METRICS.temperature, labels0)).toBe(60);
    expect(await value(GPU_METRICS.power, labels0)).toBe(500.5);
    expect(await value(GPU_METRICS.powerLimit, labels0)).toBe(700);
    expect(await value(GPU_METRICS.computeMode, labels0)).toBe(3);
    expect(await value(GPU_METRICS.clock, { ...labels0, clock: 'sm' })).toBe(1_980_000_000);
    expect(await value(GPU_METRICS.clock, { ...labels0, clock: 'memory' })).toBe(2_619_000_000);
    expect(await value(GPU_METRICS.energy, labels0)).toBe(1000);
    expect(await value(GPU_METRICS.deviceHealthy, labels0)).toBe(1);
    expect(await value(GPU_METRICS.info, { ...labels0, driver_version: '550.54.15', source: 'nvml' })).toBe(
      1,
    );
    expect(await value(GPU_METRICS.collectorUp, { source: 'nvml' })).toBe(1);
    // Only the tracked process's memory, and only where it is listed.
    expect(await value(GPU_METRICS.processMemory, labels0)).toBe(12_345);
    expect(await samples(GPU_METRICS.processMemory, { gpu: '1' })).toEqual([]);
  });

  it('never overlaps a hung collection: it fails on its timeout, removes the series, and resumes after it ends', async () => {
    const hung = deferred<GpuSnapshot>();
    const collector = new ScriptedCollector((call) =>
      call === 2
        ? hung.promise
        : Promise.resolve(snapshotOf([gpu(0, { utilizationGpuPercent: call === 1 ? 40 : 55 })])),
    );
    const { telemetry, value, samples, logs } = await started({
      collectors: [() => Promise.resolve(collector)],
    });
    expect(await value(GPU_METRICS.utilization, { gpu: '0' })).toBe(40);

    await advanceUntil(() => collector.calls.length === 2);
    const hungAt = collector.calls[1].at;
    await advanceUntil(() => telemetry.status().state === 'failing');
    const failing = telemetry.status();
    // No batch waits on a collector that hangs.
    expect(telemetry.nvml).toBeUndefined();
    expect(failing.reason).toContain(`${TIMEOUT_MS} ms`);
    expect(failing.hungSince).toBe(hungAt);
    expect(failing.consecutiveFailures).toBe(1);
    expect(await samples(GPU_METRICS.utilization)).toEqual([]);
    expect(await samples(GPU_METRICS.temperature)).toEqual([]);
    expect(await samples(GPU_METRICS.energy)).toEqual([]);
    expect(await samples(GPU_METRICS.deviceHealthy)).toEqual([]);
    expect(await value(GPU_METRICS.collectorUp, { source: 'nvml' })).toBe(0);
    expect(await value(GPU_METRICS.collectionErrors, { source: 'nvml', reason: 'timeout' })).toBe(1);
    // The devices keep their identity while their readings are unknown.
    expect(await value(GPU_METRICS.info, { gpu: '0' })).toBe(1);
    expect(failing.snapshot?.devices).toEqual([
      {
        index: 0,
        uuid: gpu(0).uuid,
        name: NAME,
        pciBusId: gpu(0).pciBusId,
        healthy: false,
        error: expect.stringContaining('collection failed') as unknown,
      },
    ]);

    // However long it hangs, no other collection starts, and the hang is counted once.
    await jest.advanceTimersByTimeAsync(5_000);
    expect(collector.calls).toHaveLength(2);
    expect(telemetry.status().hungSince).toBe(hungAt);
    expect(await value(GPU_METRICS.collectionErrors, { source: 'nvml', reason: 'timeout' })).toBe(1);

    // Its late answer is not published; the next poll's is.
    hung.resolve(snapshotOf([gpu(0, { utilizationGpuPercent: 11 })]));
    await jest.advanceTimersByTimeAsync(0);
    expect(telemetry.status()).toMatchObject({ state: 'failing', hungSince: null });
    expect(await samples(GPU_METRICS.utilization)).toEqual([]);
    await advanceUntil(() => collector.calls.length === 3);
    expect(telemetry.status()).toMatchObject({ state: 'running', reason: null, consecutiveFailures: 0 });
    expect(await value(GPU_METRICS.utilization, { gpu: '0' })).toBe(55);
    expect(await value(GPU_METRICS.collectorUp, { source: 'nvml' })).toBe(1);
    expect(logs.count('warn')).toBe(1);
    expect(logs.count('info', 'recovered')).toBe(1);
  });

  it('backs off while collections fail: the gap between calls doubles', async () => {
    const collector = new ScriptedCollector(() => Promise.reject(new CollectionError('nvml_error', 'boom')));
    const { telemetry, value, logs } = await started({ collectors: [() => Promise.resolve(collector)] });
    expect(telemetry.status()).toMatchObject({ state: 'failing', reason: 'boom', consecutiveFailures: 1 });

    await jest.advanceTimersByTimeAsync(1_500);
    // At 0, 200, 600 and 1400 ms: a healthy collector makes 16 calls in the same time (see below).
    expect(collector.calls.length).toBeLessThanOrEqual(5);
    const at = collector.calls.map((c) => c.at);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    expect(gaps).toEqual([2 * INTERVAL_MS, 4 * INTERVAL_MS, 8 * INTERVAL_MS]);
    expect(await value(GPU_METRICS.collectionErrors, { source: 'nvml', reason: 'nvml_error' })).toBe(
      collector.calls.length,
    );
    expect(telemetry.status().consecutiveFailures).toBe(collector.calls.length);
    // One line for the whole streak.
    expect(logs.count('warn')).toBe(1);
  });

  it('polls a healthy collector at its interval', async () => {
    const collector = new ScriptedCollector(twoDevices(() => new Set()));
    await started({ collectors: [() => Promise.resolve(collector)] });
    await jest.advanceTimersByTimeAsync(1_500);
    expect(collector.calls.length).toBeGreaterThanOrEqual(14);
  });

  it('caps the back-off at maxBackoffMs', async () => {
    const collector = new ScriptedCollector(() => Promise.reject(new Error('not a CollectionError')));
    const { value } = await started({ collectors: [() => Promise.resolve(collector)], maxBackoffMs: 300 });
    await jest.advanceTimersByTimeAsync(3_000);
    const at = collector.calls.map((c) => c.at);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    expect(gaps.length).toBeGreaterThanOrEqual(5);
    expect(gaps[0]).toBe(2 * INTERVAL_MS);
    expect(gaps.slice(1).every((g) => g === 300)).toBe(true);
    // An error that is not a CollectionError counts as nvml_error.
    expect(await value(GPU_METRICS.collectionErrors, { reason: 'nvml_error' })).toBe(collector.calls.length);
  });

  it('takes a lost device’s series away, counts and logs the loss once, and probes it with back-off', async () => {
    const lost = new Set<number>();
    const collector = new ScriptedCollector(twoDevices(() => lost));
    const { telemetry, value, samples, logs } = await started({
      collectors: [() => Promise.resolve(collector)],
    });
    const labels1 = { gpu: '1', uuid: gpu(1).uuid ?? '', name: NAME };
    expect(await value(GPU_METRICS.utilization, labels1)).toBe(81);

    lost.add(1);
    await advanceUntil(() => collector.calls.length === 2);
    const lostAt = collector.calls[1].at;
    for (const name of [
      GPU_METRICS.utilization,
      GPU_METRICS.memoryUsed,
      GPU_METRICS.temperature,
      GPU_METRICS.power,
      GPU_METRICS.clock,
      GPU_METRICS.energy,
    ]) {
      expect(await samples(name, { gpu: '1' })).toEqual([]);
      expect(await samples(name, { gpu: '0' })).not.toEqual([]);
    }
    expect(await value(GPU_METRICS.deviceHealthy, labels1)).toBe(0);
    expect(await value(GPU_METRICS.deviceHealthy, { gpu: '0' })).toBe(1);
    expect(await value(GPU_METRICS.info, { gpu: '1' })).toBe(1);
    expect(await value(GPU_METRICS.collectionErrors, { source: 'nvml', reason: 'gpu_lost' })).toBe(1);
    // A lost device is not a failed collection.
    expect(telemetry.status().state).toBe('running');
    expect(await value(GPU_METRICS.collectorUp, { source: 'nvml' })).toBe(1);
    expect(telemetry.status().snapshot?.devices[1]).toMatchObject({ index: 1, healthy: false });

    await jest.advanceTimersByTimeAsync(2_000);
    expect(await value(GPU_METRICS.collectionErrors, { source: 'nvml', reason: 'gpu_lost' })).toBe(1);
    expect(logs.count('error')).toBe(1);
    expect(logs.lines.find((l) => l.level === 'error')?.object).toMatchObject({ gpu: 1, uuid: gpu(1).uuid });
    // Skipped polls keep its unhealthy record.
    expect(await value(GPU_METRICS.deviceHealthy, labels1)).toBe(0);
    expect(await samples(GPU_METRICS.utilization, { gpu: '1' })).toEqual([]);
    expect(telemetry.status().snapshot?.devices.map((d) => [d.index, d.healthy])).toEqual([
      [0, true],
      [1, false],
    ]);

    const after = collector.calls.filter((c) => c.at > lostAt);
    expect(after.every((c) => !c.skip.includes(0))).toBe(true);
    expect(after.some((c) => c.skip.includes(1))).toBe(true);
    // The polls that probed it (did not skip it) come further and further apart.
    const probes = [lostAt, ...after.filter((c) => !c.skip.includes(1)).map((c) => c.at)];
    expect(probes.length).toBeGreaterThanOrEqual(3);
    const gaps = probes.slice(1).map((t, i) => t - probes[i]);
    expect(gaps.every((g, i) => i === 0 || g > gaps[i - 1])).toBe(true);
    // Until its next probe, every poll skips it.
    const lastProbe = probes[probes.length - 1];
    expect(after.filter((c) => c.at > lastProbe).every((c) => c.skip.includes(1))).toBe(true);

    // It answers again at its next probe: its series come back, one line says so, no more skipping.
    lost.delete(1);
    const calls = collector.calls.length;
    await advanceUntil(() => collector.calls.slice(calls).some((c) => !c.skip.includes(1)));
    expect(await value(GPU_METRICS.utilization, labels1)).toBe(81);
    expect(await value(GPU_METRICS.deviceHealthy, labels1)).toBe(1);
    expect(logs.count('info', 'answers again')).toBe(1);
    const recovered = collector.calls.length;
    await jest.advanceTimersByTimeAsync(5 * INTERVAL_MS);
    expect(collector.calls.length).toBeGreaterThan(recovered);
    expect(collector.calls.slice(recovered).every((c) => c.skip.length === 0)).toBe(true);
    expect(logs.count('error')).toBe(1);
    expect(logs.count('info', 'answers again')).toBe(1);
  });

  it('counts a device lost again after it recovered as a new loss', async () => {
    const lost = new Set<number>([1]);
    const collector = new ScriptedCollector(twoDevices(() => lost));
    const { value, logs } = await started({ collectors: [() => Promise.resolve(collector)] });
    expect(await value(GPU_METRICS.collectionErrors, { reason: 'gpu_lost' })).toBe(1);
    lost.delete(1);
    await advanceUntil(() => logs.count('info', 'answers again') === 1);
    lost.add(1);
    await advanceUntil(() => logs.count('error') === 2);
    expect(await value(GPU_METRICS.collectionErrors, { reason: 'gpu_lost' })).toBe(2);
  });

  it('is disabled when the poll interval is 0, without trying any source', async () => {
    const candidate = jest.fn(() => Promise.resolve(new ScriptedCollector(twoDevices(() => new Set()))));
    const { telemetry, value, samples, logs } = await started({ pollIntervalMs: 0, collectors: [candidate] });
    expect(candidate).not.toHaveBeenCalled();
    expect(telemetry.status()).toMatchObject({ state: 'disabled', source: null, snapshot: null });
    expect(telemetry.status().reason).toContain('off');
    expect(await value(GPU_METRICS.collectorUp, { source: 'none' })).toBe(0);
    expect(await samples(GPU_METRICS.collectorUp)).toHaveLength(1);
    expect(telemetry.nvml).toBeUndefined();
    expect(logs.count('info', 'disabled')).toBe(1);
  });

  it('is disabled with every source’s reason when none is available', async () => {
    const { telemetry, value, samples } = await started({
      collectors: [
        () => Promise.resolve('NVML: cannot load it'),
        () => Promise.resolve('nvidia-smi: not found'),
      ],
    });
    expect(telemetry.status().state).toBe('disabled');
    expect(telemetry.status().reason).toBe(
      'no GPU telemetry source: NVML: cannot load it; nvidia-smi: not found',
    );
    expect(await value(GPU_METRICS.collectorUp, { source: 'none' })).toBe(0);
    expect(await samples(GPU_METRICS.collectorUp)).toHaveLength(1);
    expect(await samples(GPU_METRICS.utilization)).toEqual([]);
  });

  it('takes the first source that is available', async () => {
    const smi = new ScriptedCollector(
      twoDevices(() => new Set()),
      'nvidia-smi',
    );
    const { telemetry, value } = await started({
      collectors: [() => Promise.resolve('NVML: cannot load it'), () => Promise.resolve(smi)],
    });
    expect(telemetry.status()).toMatchObject({ state: 'running', source: 'nvidia-smi' });
    expect(await value(GPU_METRICS.collectorUp, { source: 'nvidia-smi' })).toBe(1);
    // Per-batch sampling is NVML's only.
    expect(telemetry.nvml).toBeUndefined();
  });

  it('mirrors the energy reading in its counter, growing by the deltas', async () => {
    const readings = [1_000, 1_000.5, 1_600, 1_600];
    const collector = new ScriptedCollector((call) =>
      Promise.resolve(snapshotOf([gpu(0, { energyJoules: readings[Math.min(call, readings.length) - 1] })])),
    );
    const { value } = await started({ collectors: [() => Promise.resolve(collector)] });
    const energy = () => value(GPU_METRICS.energy, { gpu: '0' });
    expect(await energy()).toBe(1_000);
    await advanceUntil(() => collector.calls.length === 2);
    expect(await energy()).toBe(1_000.5);
    await advanceUntil(() => collector.calls.length === 3);
    expect(await energy()).toBe(1_600);
    await advanceUntil(() => collector.calls.length === 4);
    expect(await energy()).toBe(1_600);
  });

  it('stops polling and closes the collector at shutdown', async () => {
    const collector = new ScriptedCollector(twoDevices(() => new Set()));
    const { telemetry } = await started({ collectors: [() => Promise.resolve(collector)] });
    await advanceUntil(() => collector.calls.length === 3);
    await telemetry.onApplicationShutdown();
    expect(collector.closed).toBe(1);
    expect(telemetry.status().state).toBe('stopped');
    const calls = collector.calls.length;
    await jest.advanceTimersByTimeAsync(10_000);
    expect(collector.calls).toHaveLength(calls);
  });

  it('shuts down during a hung collection without waiting for it, and ignores its late answer', async () => {
    const hung = deferred<GpuSnapshot>();
    const collector = new ScriptedCollector((call) =>
      call === 1 ? Promise.resolve(snapshotOf([gpu(0)])) : hung.promise,
    );
    const { telemetry, samples } = await started({ collectors: [() => Promise.resolve(collector)] });
    await advanceUntil(() => collector.calls.length === 2);
    await telemetry.onApplicationShutdown();
    expect(collector.closed).toBe(1);
    hung.resolve(snapshotOf([gpu(0, { utilizationGpuPercent: 1 })]));
    await jest.advanceTimersByTimeAsync(10_000);
    expect(telemetry.status().state).toBe('stopped');
    expect(collector.calls).toHaveLength(2);
    // What the last good collection published stays; the late answer is not published.
    expect((await samples(GPU_METRICS.utilization, { gpu: '0' })).map((s) => s.value)).toEqual([80]);
  });

  it('does not wait long at shutdown for a start in progress, and closes what that start finds later', async () => {
    const found = deferred<GpuCollector>();
    const collector = new ScriptedCollector(twoDevices(() => new Set()));
    const built = telemetryWith({ collectors: [() => found.promise], startWaitMs: 10 });
    const boot = built.telemetry.onApplicationBootstrap();
    await jest.advanceTimersByTimeAsync(10);
    await boot;
    expect(built.telemetry.status().state).toBe('starting');
    let shutDown = false;
    const shutdown = built.telemetry.onApplicationShutdown().then(() => {
      shutDown = true;
    });
    await advanceUntil(() => shutDown, 60_000);
    await shutdown;
    expect(collector.closed).toBe(0);
    found.resolve(collector);
    await jest.advanceTimersByTimeAsync(0);
    expect(collector.closed).toBe(1);
    expect(collector.calls).toHaveLength(0);
    expect(built.telemetry.status().state).toBe('stopped');
  });
});
