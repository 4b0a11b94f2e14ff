import { GpuTelemetry } from '@app/gpu';
// eslint-disable-next-line no-restricted-imports -- the lib's test fakes (a compiled NVML, an nvidia-smi script), not its API
import {
  describeWithFakeNvml,
  FakeNvml,
  type FakeNvmlState,
  twoDeviceState,
} from '../../../libs/gpu/test/fake-nvml';
// eslint-disable-next-line no-restricted-imports -- the lib's test fake of nvidia-smi, not its API
import { FakeNvidiaSmi, twoGpuSmiState } from '../../../libs/gpu/test/fake-nvidia-smi';
import { bootstrapKeyOf } from './support/api-keys';
import { eventually } from './support/eventually';
import { createInferenceKey, policyBody, postInference } from './support/inference-client';
import { findSamples, parsePrometheusText, type Sample, sampleValue } from './support/prom-text';
import { startTestApp, type TestApp } from './support/test-app';

/** What these suites read of GET /gpu/stats. */
interface GpuStatsBody {
  status: string;
  source: string | null;
  reason: string | null;
  collected_at: string | null;
  driver_version: string | null;
  cuda_driver_version: string | null;
  device_count: number;
  devices: Record<string, unknown>[];
}

const MISSING_NVML = '/nonexistent/libnvidia-ml.so.1';
const MISSING_SMI = '/nonexistent/nvidia-smi';
/** Fast polls, so the tests see several collections; telemetry never sits on the request path. */
const FAST = { GPU_METRICS_POLL_INTERVAL_SECONDS: '0.1', GPU_COLLECT_TIMEOUT_SECONDS: '0.5' };

async function gpuStats(t: TestApp, key: string): Promise<GpuStatsBody> {
  const res = await t.fetch('/gpu/stats', { headers: { 'x-api-key': key } });
  expect(res.status).toBe(200);
  return res.json() as GpuStatsBody;
}

async function metrics(t: TestApp): Promise<Sample[]> {
  const res = await t.fetch('/monitoring/metrics');
  expect(res.status).toBe(200);
  return parsePrometheusText(res.text);
}

/** The names of the per-device GPU series that have samples. */
function gpuSeriesNames(samples: readonly Sample[]): string[] {
  return [...new Set(samples.filter((s) => s.labels.uuid !== undefined).map((s) => s.name))].sort();
}

function deviceLabels(state: FakeNvmlState, index: number): Record<string, string> {
  const device = state.devices[index];
  return { gpu: String(index), uuid: device.uuid ?? '', name: device.name ?? '' };
}

/** The two-device state, with the second device supporting neither temperature, power nor energy. */
function stateWithUnsupportedFields(): FakeNvmlState {
  const state = twoDeviceState();
  const [first, second] = state.devices;
  const rest = { ...second };
  delete rest.temperature;
  delete rest.powerMw;
  delete rest.energyMj;
  return { ...state, devices: [first, rest] };
}

const describeNative = describeWithFakeNvml('gpu e2e: NVML suites');

describeNative('GPU telemetry through the fake NVML library', () => {
  let fake: FakeNvml;
  let t: TestApp;
  let key: string;

  afterEach(async () => {
    await t?.close();
    fake?.remove();
  });

  async function start(state: FakeNvmlState, env: Record<string, string> = {}): Promise<void> {
    fake = FakeNvml.create(state);
    t = await startTestApp({
      NVML_LIBRARY_PATH: fake.libraryPath,
      NVIDIA_SMI_PATH: MISSING_SMI,
      METRICS_PUBLIC: 'true',
      ...FAST,
      ...env,
    });
    key = bootstrapKeyOf(t);
  }

  it('/gpu/stats and /monitoring/metrics show exactly what NVML returns for two devices; unsupported fields are absent', async () => {
    const state = stateWithUnsupportedFields();
    await start(state);
    const [d0, d1] = state.devices;

    const stats = await gpuStats(t, key);
    expect(stats).toMatchObject({
      status: 'ok',
      source: 'nvml',
      reason: null,
      driver_version: state.driverVersion,
      cuda_driver_version: '12.4',
      device_count: 2,
    });
    expect(new Date(stats.collected_at as string).getTime()).toBeGreaterThan(0);
    const [s0, s1] = stats.devices;
    expect(s0).toMatchObject({
      index: 0,
      uuid: d0.uuid,
      name: d0.name,
      pci_bus_id: d0.pciBusId,
      healthy: true,
      utilization: { gpu_percent: d0.utilGpu, memory_copy_percent: d0.utilMemory },
      memory: {
        total_bytes: d0.memTotal,
        used_bytes: d0.memUsed,
        free_bytes: d0.memFree,
        total_gb: Number(((d0.memTotal as number) / 1e9).toFixed(2)),
        used_percent: Number((((d0.memUsed as number) / (d0.memTotal as number)) * 100).toFixed(2)),
      },
      temperature_celsius: d0.temperature,
      power: { watts: (d0.powerMw as number) / 1000, limit_watts: (d0.powerLimitMw as number) / 1000 },
      compute_mode: 'default',
      clocks: { sm_mhz: d0.clockSm, memory_mhz: d0.clockMem },
      energy_joules: Number(d0.energyMj) / 1000,
    });
    // The fake lists this server's own process ('self') and another one on device 0.
    const processes = s0.processes as { pid: number; used_memory_bytes: number; this_process: boolean }[];
    expect(processes).toContainEqual({
      pid: process.pid,
      used_memory_bytes: d0.procs?.find((p) => p.pid === 'self')?.bytes,
      this_process: true,
    });
    expect(processes.filter((p) => !p.this_process).map((p) => p.pid)).toEqual(
      d0.procs?.filter((p) => p.pid !== 'self').map((p) => p.pid),
    );
    // NOT_SUPPORTED is absent, never 0.
    expect(s1).not.toHaveProperty('temperature_celsius');
    expect(s1).not.toHaveProperty('energy_joules');
    expect(s1.power).toEqual({ limit_watts: (d1.powerLimitMw as number) / 1000 });
    expect(s1).toMatchObject({ index: 1, uuid: d1.uuid, healthy: true, processes: [] });

    const samples = await metrics(t);
    const l0 = deviceLabels(state, 0);
    const l1 = deviceLabels(state, 1);
    expect(sampleValue(samples, 'vla_gpu_utilization_percent', l0)).toBe(d0.utilGpu);
    expect(sampleValue(samples, 'vla_gpu_utilization_percent', l1)).toBe(d1.utilGpu);
    expect(sampleValue(samples, 'vla_gpu_memory_used_bytes', l0)).toBe(d0.memUsed);
    expect(sampleValue(samples, 'vla_gpu_memory_total_bytes', l1)).toBe(d1.memTotal);
    expect(sampleValue(samples, 'vla_gpu_memory_utilization_percent', l0)).toBeCloseTo(
      ((d0.memUsed as number) / (d0.memTotal as number)) * 100,
      9,
    );
    expect(sampleValue(samples, 'vla_gpu_memory_copy_utilization_percent', l0)).toBe(d0.utilMemory);
    expect(sampleValue(samples, 'vla_gpu_temperature_celsius', l0)).toBe(d0.temperature);
    expect(sampleValue(samples, 'vla_gpu_power_watts', l0)).toBe((d0.powerMw as number) / 1000);
    expect(sampleValue(samples, 'vla_gpu_power_limit_watts', l1)).toBe((d1.powerLimitMw as number) / 1000);
    expect(sampleValue(samples, 'vla_gpu_compute_mode', l0)).toBe(0);
    expect(sampleValue(samples, 'vla_gpu_clock_hertz', { ...l0, clock: 'sm' })).toBe(
      (d0.clockSm as number) * 1e6,
    );
    expect(sampleValue(samples, 'vla_gpu_energy_joules_total', l0)).toBeCloseTo(
      Number(d0.energyMj) / 1000,
      3,
    );
    expect(sampleValue(samples, 'vla_gpu_process_memory_bytes', l0)).toBe(
      d0.procs?.find((p) => p.pid === 'self')?.bytes,
    );
    expect(sampleValue(samples, 'vla_gpu_device_healthy', l1)).toBe(1);
    expect(sampleValue(samples, 'vla_gpu_info', { ...l0, driver_version: state.driverVersion ?? '' })).toBe(
      1,
    );
    expect(sampleValue(samples, 'vla_gpu_collector_up', { source: 'nvml' })).toBe(1);
    expect(
      sampleValue(samples, 'vla_gpu_last_collection_timestamp_seconds', { source: 'nvml' }),
    ).toBeGreaterThan(0);
    // Unsupported on device 1: no series at all, not a 0.
    expect(findSamples(samples, 'vla_gpu_temperature_celsius', l1)).toEqual([]);
    expect(findSamples(samples, 'vla_gpu_power_watts', l1)).toEqual([]);
    expect(findSamples(samples, 'vla_gpu_energy_joules_total', l1)).toEqual([]);
    // This process holds nothing on device 1.
    expect(findSamples(samples, 'vla_gpu_process_memory_bytes', l1)).toEqual([]);

    const detailed = await t.fetch('/health/detailed', { headers: { 'x-api-key': key } });
    expect((detailed.json() as { checks: Record<string, unknown> }).checks.gpu).toMatchObject({
      status: 'up',
      telemetry: 'running',
      source: 'nvml',
      devices: 2,
      unhealthy_devices: [],
    });
  });

  it('F11: a GPU lost mid-run shows unhealthy with an error, its series go, the poller probes it with back-off and logs once, and inference is unaffected', async () => {
    const state = twoDeviceState();
    const lostAfter = 3;
    await start({
      ...state,
      devices: [state.devices[0], { ...state.devices[1], lostAfterPolls: lostAfter }],
    });
    const inferenceKey = await createInferenceKey(t.url, key, 'gpu-f11');
    const before = await postInference(t.url, inferenceKey, policyBody());
    expect(before.status).toBe(200);

    await eventually(async () => (await gpuStats(t, key)).status === 'degraded');
    const stats = await gpuStats(t, key);
    expect(stats.devices[0]).toMatchObject({ index: 0, healthy: true });
    expect(stats.devices[1]).toMatchObject({
      index: 1,
      uuid: state.devices[1].uuid,
      name: state.devices[1].name,
      healthy: false,
    });
    expect(stats.devices[1].error).toMatch(/^gpu_is_lost: GPU is lost/);
    // No stale readings for the lost device.
    expect(stats.devices[1]).not.toHaveProperty('utilization');
    expect(stats.devices[1]).not.toHaveProperty('memory');

    const samples = await metrics(t);
    const l0 = deviceLabels(state, 0);
    const l1 = deviceLabels(state, 1);
    expect(sampleValue(samples, 'vla_gpu_device_healthy', l1)).toBe(0);
    expect(sampleValue(samples, 'vla_gpu_device_healthy', l0)).toBe(1);
    for (const name of [
      'vla_gpu_utilization_percent',
      'vla_gpu_memory_used_bytes',
      'vla_gpu_temperature_celsius',
    ]) {
      expect(findSamples(samples, name, l1)).toEqual([]);
      expect(findSamples(samples, name, l0)).toHaveLength(1);
    }
    expect(
      sampleValue(samples, 'vla_gpu_collection_errors_total', { source: 'nvml', reason: 'gpu_lost' }),
    ).toBe(1);

    // The healthy device keeps being read at the normal rate while the lost one is probed less and less.
    const polls0 = fake.count('nvmlDeviceGetUtilizationRates', 0);
    const probes1 = fake.count('nvmlDeviceGetUtilizationRates', 1);
    await eventually(() => fake.count('nvmlDeviceGetUtilizationRates', 0) >= polls0 + 20);
    const morePolls = fake.count('nvmlDeviceGetUtilizationRates', 0) - polls0;
    const moreProbes = fake.count('nvmlDeviceGetUtilizationRates', 1) - probes1;
    expect(moreProbes).toBeLessThan(morePolls / 4);

    const lostLines = t.logs
      .records()
      .filter(
        (r) => r.msg === 'GPU stopped answering; its metrics are removed and it is probed with back-off',
      );
    expect(lostLines).toHaveLength(1);
    expect(lostLines[0]).toMatchObject({ level: 'error', gpu: 1, uuid: state.devices[1].uuid });

    const after = await postInference(t.url, inferenceKey, policyBody());
    expect(after.status).toBe(200);
    // A lost GPU is reported by /health/detailed, never by readiness.
    const detailed = (await t.fetch('/health/detailed', { headers: { 'x-api-key': key } })).json() as {
      checks: Record<string, Record<string, unknown>>;
    };
    expect(detailed.checks.gpu).toMatchObject({ status: 'down', unhealthy_devices: [1] });
    expect((await t.fetch('/health/ready')).status).toBe(200);
  });

  it('a hung collector never delays /health, never runs twice at once, is reported, and recovers without a restart', async () => {
    const state: FakeNvmlState = { ...twoDeviceState(), devices: [twoDeviceState().devices[0]] };
    await start(state, { GPU_COLLECT_TIMEOUT_SECONDS: '0.2' });
    expect((await gpuStats(t, key)).status).toBe('ok');
    const telemetry = t.app.get(GpuTelemetry);

    // Every device call now takes 250 ms: one collection takes seconds, far past its 0.2 s timeout.
    fake.write({ ...state, hangMs: 250 });
    const countsAtHang = fake.count('nvmlDeviceGetCount_v2');
    await eventually(() => telemetry.status().hungSince !== null);

    // While the collector is stuck in the driver, the server answers at once.
    const live = await t.fetch('/health');
    expect(live.status).toBe(200);
    expect(telemetry.status().hungSince).not.toBeNull();
    const stats = await gpuStats(t, key);
    expect(stats.status).toBe('failing');
    expect(stats.reason).toMatch(/longer than 200 ms/);
    expect(stats.devices[0]).toMatchObject({ index: 0, uuid: state.devices[0].uuid, healthy: false });
    expect(stats.devices[0].error).toMatch(/^collection failed/);
    const failing = await metrics(t);
    expect(findSamples(failing, 'vla_gpu_utilization_percent')).toEqual([]);
    expect(sampleValue(failing, 'vla_gpu_collector_up', { source: 'nvml' })).toBe(0);
    expect(
      sampleValue(failing, 'vla_gpu_collection_errors_total', { source: 'nvml', reason: 'timeout' }),
    ).toBeGreaterThanOrEqual(1);

    fake.write(state);
    await eventually(async () => (await gpuStats(t, key)).status === 'ok', 30_000);
    // Polls every 0.1 s would have queued dozens of collections behind the hung one; there were at most
    // the hung one, the one that found it recovered, and one more.
    expect(fake.count('nvmlDeviceGetCount_v2') - countsAtHang).toBeLessThanOrEqual(3);
    const failedLines = t.logs.records().filter((r) => String(r.msg).startsWith('GPU collection failed'));
    expect(failedLines).toHaveLength(1);
    expect(t.logs.records().filter((r) => r.msg === 'GPU telemetry recovered')).toHaveLength(1);
    const recovered = await metrics(t);
    expect(sampleValue(recovered, 'vla_gpu_collector_up', { source: 'nvml' })).toBe(1);
    expect(findSamples(recovered, 'vla_gpu_utilization_percent')).toHaveLength(1);
  });

  it.each([
    ['missing', () => MISSING_NVML],
    [
      'loaded but failing nvmlInit (NVML_ERROR_DRIVER_NOT_LOADED)',
      (f: FakeNvml, s: FakeNvmlState) => {
        f.write({ ...s, init: 9 });
        return f.libraryPath;
      },
    ],
  ])('with NVML %s, nvidia-smi takes over and gives the same metric names', async (_case, nvmlPath) => {
    const state = twoDeviceState();
    await start(state);
    const nvmlNames = gpuSeriesNames(await metrics(t));
    await t.close();

    const smiState = twoGpuSmiState();
    // This server holds memory on device 0, as in the NVML state.
    const smi = FakeNvidiaSmi.create({
      ...smiState,
      apps: [{ gpu_uuid: String(smiState.gpus[0].uuid), pid: 'self', used_memory: 16384 }],
    });
    try {
      t = await startTestApp({
        NVML_LIBRARY_PATH: nvmlPath(fake, state),
        NVIDIA_SMI_PATH: smi.path,
        METRICS_PUBLIC: 'true',
        ...FAST,
      });
      key = bootstrapKeyOf(t);
      const stats = await gpuStats(t, key);
      expect(stats).toMatchObject({ status: 'ok', source: 'nvidia-smi', device_count: 2 });
      const smiNames = gpuSeriesNames(await metrics(t));
      // nvidia-smi's --query-gpu has no energy counter; every other name is the same.
      expect(smiNames).toEqual(nvmlNames.filter((n) => n !== 'vla_gpu_energy_joules_total'));
    } finally {
      smi.remove();
    }
  });
});

describe('GPU telemetry with neither NVML nor nvidia-smi', () => {
  let t: TestApp;
  afterEach(async () => {
    await t.close();
  });

  it('the server runs, serves inference, and /gpu/stats and the health indicator say telemetry is off', async () => {
    t = await startTestApp({
      NVML_LIBRARY_PATH: MISSING_NVML,
      NVIDIA_SMI_PATH: MISSING_SMI,
      METRICS_PUBLIC: 'true',
    });
    const key = bootstrapKeyOf(t);
    const stats = await gpuStats(t, key);
    expect(stats).toMatchObject({ status: 'disabled', source: null, device_count: 0, devices: [] });
    expect(stats.reason).toContain('NVML: cannot load /nonexistent/libnvidia-ml.so.1');
    expect(stats.reason).toContain('nvidia-smi');

    const detailed = await t.fetch('/health/detailed', { headers: { 'x-api-key': key } });
    const body = detailed.json() as { status: string; checks: Record<string, Record<string, unknown>> };
    expect(body.checks.gpu).toMatchObject({
      status: 'up',
      telemetry: 'disabled',
      source: 'none',
      devices: 0,
    });
    expect((await t.fetch('/health/ready')).status).toBe(200);

    const samples = await metrics(t);
    expect(sampleValue(samples, 'vla_gpu_collector_up', { source: 'none' })).toBe(0);
    expect(gpuSeriesNames(samples)).toEqual([]);

    const inferenceKey = await createInferenceKey(t.url, key, 'gpu-none');
    expect((await postInference(t.url, inferenceKey, policyBody())).status).toBe(200);
  });

  it('GPU_METRICS_POLL_INTERVAL_SECONDS=0 turns telemetry off and says so', async () => {
    t = await startTestApp({ GPU_METRICS_POLL_INTERVAL_SECONDS: '0' });
    const stats = await gpuStats(t, bootstrapKeyOf(t));
    expect(stats).toMatchObject({ status: 'disabled', source: null });
    expect(stats.reason).toContain('GPU_METRICS_POLL_INTERVAL_SECONDS=0');
  });

  it('/gpu/stats needs the ops scope', async () => {
    t = await startTestApp();
    expect((await t.fetch('/gpu/stats')).status).toBe(401);
    const inferenceKey = await createInferenceKey(t.url, bootstrapKeyOf(t), 'gpu-scope');
    const res = await t.fetch('/gpu/stats', { headers: { 'x-api-key': inferenceKey } });
    expect(res.status).toBe(403);
  });
});
