import { CollectionError } from '../gpu-collector';
import type { GpuDevice } from '../gpu-snapshot';
import {
  describeWithFakeNvml,
  FakeNvml,
  type FakeDevice,
  type FakeNvmlState,
  twoDeviceState,
} from '../../test/fake-nvml';
import { loadNvml } from './nvml-library';
import { NvmlReader } from './nvml-reader';

/**
 * NvmlReader in this process (no Worker) against the fake libnvidia-ml.so.1: what the C calls answer and
 * how the reader turns them into devices. Each test gets its own copy of the fake, so its own counters.
 */

const describeNative = describeWithFakeNvml('NvmlReader');

const fakes: FakeNvml[] = [];
const readers: NvmlReader[] = [];

function fakeWith(state: FakeNvmlState): FakeNvml {
  const fake = FakeNvml.create(state);
  fakes.push(fake);
  return fake;
}

function open(fake: FakeNvml): NvmlReader {
  const reader = NvmlReader.open(loadNvml(fake.libraryPath));
  readers.push(reader);
  return reader;
}

/** The two-device state with device `index` changed. */
function withDevice(index: number, change: (device: FakeDevice) => FakeDevice): FakeNvmlState {
  const state = twoDeviceState();
  return { ...state, devices: state.devices.map((d, i) => (i === index ? change({ ...d }) : d)) };
}

function thrown(run: () => unknown): CollectionError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(CollectionError);
    return error as CollectionError;
  }
  throw new Error('expected a CollectionError, nothing was thrown');
}

function device(devices: readonly GpuDevice[], index: number): GpuDevice {
  const found = devices.find((d) => d.index === index);
  if (found === undefined) throw new Error(`no device ${index}`);
  return found;
}

afterEach(() => {
  for (const reader of readers.splice(0)) reader.close();
  for (const fake of fakes.splice(0)) fake.remove();
});

describeNative('NvmlReader against the fake NVML', () => {
  it('reads the system strings at open, the CUDA version as major.minor', () => {
    const reader = open(fakeWith(twoDeviceState()));
    expect(reader.system).toEqual({
      driverVersion: '550.54.15',
      nvmlVersion: '12.550.54.15',
      cudaDriverVersion: '12.4',
    });
  });

  it('leaves a system string out when the driver does not answer it', () => {
    const state = twoDeviceState();
    delete state.cudaDriverVersion;
    const reader = open(fakeWith({ ...state, rc: { nvmlSystemGetNVMLVersion: 3 } }));
    expect(reader.system).toEqual({ driverVersion: '550.54.15' });
    expect(reader.system.cudaDriverVersion).toBeUndefined();
    // A snapshot carries only what was read: the missing strings are absent, not `undefined`.
    const snapshot = reader.snapshot();
    expect(snapshot.driverVersion).toBe('550.54.15');
    expect(snapshot).not.toHaveProperty('cudaDriverVersion');
    expect(snapshot).not.toHaveProperty('nvmlVersion');
  });

  it('reads both devices with exact values, in units (bytes, watts, MHz, joules)', () => {
    const state = withDevice(1, (d) => ({ ...d, computeMode: 3 }));
    const reader = open(fakeWith(state));
    const snapshot = reader.snapshot();
    expect(snapshot.source).toBe('nvml');
    expect(snapshot).toMatchObject({
      driverVersion: '550.54.15',
      nvmlVersion: '12.550.54.15',
      cudaDriverVersion: '12.4',
    });
    expect(snapshot.devices.map((d) => d.index)).toEqual([0, 1]);
    const [first, second] = snapshot.devices;
    expect(first).toEqual({
      index: 0,
      uuid: 'GPU-3f8a1c2e-7b4d-4e9a-a1c6-5d2e8f0b9a71',
      name: 'NVIDIA H100 80GB HBM3',
      pciBusId: '00000000:17:00.0',
      healthy: true,
      utilizationGpuPercent: 87,
      utilizationMemoryPercent: 42,
      memoryTotalBytes: 85_520_809_984,
      memoryUsedBytes: 21_474_836_480,
      memoryFreeBytes: 85_520_809_984 - 21_474_836_480,
      temperatureCelsius: 61,
      powerWatts: 512.345,
      powerLimitWatts: 700,
      computeMode: 'default',
      smClockMhz: 1980,
      memoryClockMhz: 2619,
      energyJoules: 123_456_789.012,
      processes: [
        { pid: process.pid, usedMemoryBytes: 17_179_869_184 },
        { pid: 4242, usedMemoryBytes: 3_221_225_472 },
      ],
    });
    expect(second).toEqual({
      index: 1,
      uuid: 'GPU-9b27d0e4-1a5c-4f3b-8e6d-c0a4b7e2f158',
      name: 'NVIDIA H100 80GB HBM3',
      pciBusId: '00000000:2A:00.0',
      healthy: true,
      utilizationGpuPercent: 0,
      utilizationMemoryPercent: 0,
      memoryTotalBytes: 85_520_809_984,
      memoryUsedBytes: 553_648_128,
      memoryFreeBytes: 85_520_809_984 - 553_648_128,
      temperatureCelsius: 34,
      powerWatts: 71.25,
      powerLimitWatts: 700,
      computeMode: 'exclusive_process',
      smClockMhz: 345,
      memoryClockMhz: 2619,
      energyJoules: 98_765_432.101,
      processes: [],
    });
  });

  it('leaves a field the device does not support absent, never 0, with no field error', () => {
    const state = withDevice(1, (d) => {
      const rest = { ...d };
      delete rest.temperature;
      delete rest.powerMw;
      delete rest.energyMj;
      delete rest.clockSm;
      return rest;
    });
    const second = device(open(fakeWith(state)).snapshot().devices, 1);
    expect(second.healthy).toBe(true);
    expect(second).not.toHaveProperty('temperatureCelsius');
    expect(second).not.toHaveProperty('powerWatts');
    expect(second).not.toHaveProperty('energyJoules');
    expect(second).not.toHaveProperty('smClockMhz');
    expect(second).not.toHaveProperty('fieldErrors');
    // What the device does support is still read.
    expect(second.memoryClockMhz).toBe(2619);
    expect(second.powerLimitWatts).toBe(700);
  });

  it('puts a failure other than NOT_SUPPORTED in fieldErrors and leaves the field absent', () => {
    const state = withDevice(0, (d) => ({ ...d, rc: { nvmlDeviceGetTemperature: 4 }, computeMode: 7 }));
    const first = device(open(fakeWith(state)).snapshot().devices, 0);
    expect(first.healthy).toBe(true);
    expect(first).not.toHaveProperty('temperatureCelsius');
    expect(first).not.toHaveProperty('computeMode');
    expect(first.fieldErrors).toEqual({
      temperatureCelsius: 'no_permission: Insufficient Permissions',
      computeMode: 'unknown compute mode 7',
    });
    expect(first.powerWatts).toBe(512.345);
  });

  it('reports a lost GPU unhealthy with the identity of an earlier read, and the other device as usual', () => {
    const fake = fakeWith(twoDeviceState());
    const reader = open(fake);
    expect(device(reader.snapshot().devices, 1).healthy).toBe(true);

    fake.write(withDevice(1, (d) => ({ ...d, lost: true })));
    const snapshot = reader.snapshot();
    const lost = device(snapshot.devices, 1);
    expect(lost).toEqual({
      index: 1,
      uuid: 'GPU-9b27d0e4-1a5c-4f3b-8e6d-c0a4b7e2f158',
      name: 'NVIDIA H100 80GB HBM3',
      pciBusId: '00000000:2A:00.0',
      healthy: false,
      error: expect.stringMatching(/^gpu_is_lost/) as unknown,
    });
    expect(lost.error).toBe('gpu_is_lost: GPU is lost');
    expect(device(snapshot.devices, 0)).toMatchObject({ healthy: true, utilizationGpuPercent: 87 });
  });

  it('reports a GPU lost from the start unhealthy, without an identity it never had', () => {
    const state = withDevice(0, (d) => ({ ...d, lost: true }));
    const first = device(open(fakeWith(state)).snapshot().devices, 0);
    expect(first).toEqual({ index: 0, healthy: false, error: 'gpu_is_lost: GPU is lost' });
  });

  it('turns a device lost after N polls unhealthy on poll N + 1, and it stays lost', () => {
    const state = withDevice(0, (d) => ({ ...d, lostAfterPolls: 2 }));
    const fake = fakeWith(state);
    const reader = open(fake);
    const health = (): boolean => device(reader.snapshot().devices, 0).healthy;
    expect([health(), health(), health(), health()]).toEqual([true, true, false, false]);
    const lost = device(reader.snapshot().devices, 0);
    expect(lost).toMatchObject({ uuid: 'GPU-3f8a1c2e-7b4d-4e9a-a1c6-5d2e8f0b9a71', healthy: false });
    expect(lost).not.toHaveProperty('utilizationGpuPercent');
    expect(device(reader.snapshot().devices, 1).healthy).toBe(true);
  });

  it('leaves usedMemoryBytes out of a process whose memory the driver cannot tell', () => {
    const state = withDevice(1, (d) => ({
      ...d,
      procs: [
        { pid: 777, bytes: 'na' },
        { pid: 778, bytes: 1024 },
      ],
    }));
    const second = device(open(fakeWith(state)).snapshot().devices, 1);
    expect(second.processes).toEqual([{ pid: 777 }, { pid: 778, usedMemoryBytes: 1024 }]);
    expect(second.processes?.[0]).not.toHaveProperty('usedMemoryBytes');
  });

  it('returns every process when there are more than the first buffer holds (INSUFFICIENT_SIZE)', () => {
    const procs = Array.from({ length: 45 }, (_, i) => ({ pid: 10_000 + i, bytes: (i + 1) * 1_048_576 }));
    const fake = fakeWith(withDevice(1, (d) => ({ ...d, procs })));
    const second = device(open(fake).snapshot().devices, 1);
    expect(second.processes).toEqual(procs.map((p) => ({ pid: p.pid, usedMemoryBytes: p.bytes })));
    expect(second).not.toHaveProperty('fieldErrors');
    // The first call was too small and said so; the second, with the size asked for, succeeded.
    const calls = fake
      .calls()
      .filter((c) => c.fn === 'nvmlDeviceGetComputeRunningProcesses_v3' && c.device === 1);
    expect(calls.map((c) => c.rc)).toEqual([7, 0]);
  });

  it('fails open with init_failed and NVML’s reason when nvmlInit fails', () => {
    const fake = fakeWith({ ...twoDeviceState(), init: 9 });
    const error = thrown(() => NvmlReader.open(loadNvml(fake.libraryPath)));
    expect(error.reason).toBe('init_failed');
    expect(error.message).toContain('driver_not_loaded');
    expect(fake.count('nvmlInit_v2')).toBe(1);
  });

  it('fails a snapshot with nvml_error when the device count cannot be read', () => {
    const fake = fakeWith({ ...twoDeviceState(), rc: { nvmlDeviceGetCount_v2: 999 } });
    const reader = open(fake);
    const error = thrown(() => reader.snapshot());
    expect(error.reason).toBe('nvml_error');
    expect(error.message).toContain('nvmlDeviceGetCount');
    expect(error.message).toContain('unknown');
  });

  it('reads the device count once per snapshot and once per process-memory sample', () => {
    const fake = fakeWith(twoDeviceState());
    const reader = open(fake);
    const before = fake.count('nvmlDeviceGetCount_v2');
    reader.snapshot();
    expect(fake.count('nvmlDeviceGetCount_v2') - before).toBe(1);
    reader.processMemory(process.pid);
    expect(fake.count('nvmlDeviceGetCount_v2') - before).toBe(2);
  });

  it('does not read the devices in the skip set', () => {
    const fake = fakeWith(twoDeviceState());
    const reader = open(fake);
    const snapshot = reader.snapshot(new Set([0]));
    expect(snapshot.devices.map((d) => d.index)).toEqual([1]);
    expect(fake.count('nvmlDeviceGetUtilizationRates', 0)).toBe(0);
    expect(fake.count('nvmlDeviceGetName', 0)).toBe(0);
    expect(fake.count('nvmlDeviceGetUtilizationRates', 1)).toBe(1);
    expect(reader.snapshot(new Set([0, 1])).devices).toEqual([]);
  });

  it('sums this process’s memory over the devices it is listed on, fresh on every call', () => {
    const growth0 = 1_048_576;
    const growth1 = 4096;
    const state = twoDeviceState();
    const fake = fakeWith({
      ...state,
      devices: [
        { ...state.devices[0], procs: [{ pid: 'self', bytes: 1_000_000_000 }], procGrowth: growth0 },
        {
          ...state.devices[1],
          procs: [
            { pid: 4242, bytes: 5 },
            { pid: 'self', bytes: 2_000_000 },
          ],
          procGrowth: growth1,
        },
      ],
    });
    const reader = open(fake);
    const first = reader.processMemory(process.pid);
    // The fake adds procGrowth on each successful process-list call, from the first one on.
    expect(first).toEqual({
      perDevice: { 0: 1_000_000_000 + growth0, 1: 2_000_000 + growth1 },
      totalBytes: 1_000_000_000 + growth0 + 2_000_000 + growth1,
    });
    const second = reader.processMemory(process.pid);
    expect(second.totalBytes - first.totalBytes).toBe(growth0 + growth1);
    expect(second.perDevice[0] - first.perDevice[0]).toBe(growth0);
    expect(reader.processMemory(4242)).toEqual({
      perDevice: { 1: 5 + 3 * growth1 },
      totalBytes: 5 + 3 * growth1,
    });
    expect(reader.processMemory(1)).toEqual({ perDevice: {}, totalBytes: 0 });
  });

  it('leaves a lost device out of the process memory', () => {
    const state = twoDeviceState();
    const fake = fakeWith({
      ...state,
      devices: [state.devices[0], { ...state.devices[1], procs: [{ pid: 'self', bytes: 100 }], lost: true }],
    });
    expect(open(fake).processMemory(process.pid)).toEqual({
      perDevice: { 0: 17_179_869_184 },
      totalBytes: 17_179_869_184,
    });
  });

  it('refuses a process-memory sample when a list cannot be read, rather than counting that device as 0', () => {
    const fake = fakeWith(
      withDevice(0, (d) => ({ ...d, rc: { nvmlDeviceGetComputeRunningProcesses_v3: 999 } })),
    );
    expect(thrown(() => open(fake).processMemory(process.pid)).reason).toBe('nvml_error');
  });

  it("a device that gives no handle (NVML_ERROR_UNKNOWN) is that device's error: the other is still read", () => {
    const fake = fakeWith(withDevice(1, (d) => ({ ...d, rc: { nvmlDeviceGetHandleByIndex_v2: 999 } })));
    const { devices } = open(fake).snapshot();
    expect(device(devices, 0)).toMatchObject({ healthy: true, utilizationGpuPercent: 87 });
    expect(device(devices, 1)).toMatchObject({ index: 1, healthy: false });
    expect(device(devices, 1).error).toMatch(/^unknown: /);
  });

  it('calls nvmlShutdown once however often it is closed', () => {
    const fake = fakeWith(twoDeviceState());
    const reader = NvmlReader.open(loadNvml(fake.libraryPath));
    reader.snapshot();
    expect(fake.count('nvmlShutdown')).toBe(0);
    reader.close();
    reader.close();
    expect(fake.count('nvmlShutdown')).toBe(1);
    expect(fake.calls().find((c) => c.fn === 'nvmlShutdown')?.rc).toBe(0);
  });
});
