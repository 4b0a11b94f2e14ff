import type { ChildProcess } from 'node:child_process';
import type { GpuSnapshot } from '../gpu-snapshot';
import { describeWithFakeNvml, FakeNvml, type FakeNvmlState, twoDeviceState } from '../../test/fake-nvml';
import { NvmlCollector } from './nvml-collector';
import { loadNvml } from './nvml-library';
import { NvmlReader } from './nvml-reader';
import { collectionError } from '../../test/collection-error';

/**
 * NvmlCollector: NVML in a child process (nvml-process.ts, run through @swc-node/register), against the
 * fake libnvidia-ml.so.1. The child loads the fake from its directory, so the call log there shows what
 * the collector process called.
 */

const describeNative = describeWithFakeNvml('NvmlCollector');

const START_TIMEOUT_MS = 20_000;

const fakes: FakeNvml[] = [];
const collectors: NvmlCollector[] = [];

function fakeWith(state: FakeNvmlState): FakeNvml {
  const fake = FakeNvml.create(state);
  fakes.push(fake);
  return fake;
}

async function start(fake: FakeNvml): Promise<NvmlCollector> {
  const collector = await NvmlCollector.start({
    libraryPath: fake.libraryPath,
    startTimeoutMs: START_TIMEOUT_MS,
  });
  collectors.push(collector);
  return collector;
}

/** A snapshot without what changes from one read to the next. */
function stable(snapshot: GpuSnapshot): Omit<GpuSnapshot, 'collectedAt' | 'durationMs'> {
  const { collectedAt: _at, durationMs: _ms, ...rest } = snapshot;
  return rest;
}

/** The collector's private child process, to kill it as a crash would. */
function childOf(collector: NvmlCollector): ChildProcess {
  return (collector as unknown as { child: ChildProcess }).child;
}

afterEach(async () => {
  for (const collector of collectors.splice(0)) await collector.close();
  for (const fake of fakes.splice(0)) fake.remove();
});

describeNative('NvmlCollector', () => {
  it('reads in its process what the reader reads in this one', async () => {
    const state = twoDeviceState();
    const collector = await start(fakeWith(state));
    expect(collector.source).toBe('nvml');
    expect(collector.system).toMatchObject({
      driverVersion: '550.54.15',
      nvmlVersion: '12.550.54.15',
      cudaDriverVersion: '12.4',
    });

    const remote = await collector.collect();
    const direct = fakeWith(state);
    const reader = NvmlReader.open(loadNvml(direct.libraryPath));
    try {
      expect(stable(remote)).toEqual(stable(reader.snapshot()));
    } finally {
      reader.close();
    }
    expect(remote.devices).toHaveLength(2);
    expect(remote.devices[0]).toMatchObject({
      index: 0,
      uuid: 'GPU-3f8a1c2e-7b4d-4e9a-a1c6-5d2e8f0b9a71',
      healthy: true,
      utilizationGpuPercent: 87,
      powerWatts: 512.345,
      energyJoules: 123_456_789.012,
      processes: [
        { pid: process.pid, usedMemoryBytes: 17_179_869_184 },
        { pid: 4242, usedMemoryBytes: 3_221_225_472 },
      ],
    });
  });

  it('passes the skip set to the reader', async () => {
    const fake = fakeWith(twoDeviceState());
    const collector = await start(fake);
    const snapshot = await collector.collect({ skipDevices: new Set([1]) });
    expect(snapshot.devices.map((d) => d.index)).toEqual([0]);
    expect(fake.count('nvmlDeviceGetUtilizationRates', 1)).toBe(0);
  });

  it('answers this process’s memory, fresh on every call', async () => {
    const state = twoDeviceState();
    const growth = 2_097_152;
    const fake = fakeWith({
      ...state,
      devices: [
        { ...state.devices[0], procs: [{ pid: 'self', bytes: 1_000_000 }], procGrowth: growth },
        state.devices[1],
      ],
    });
    const collector = await start(fake);
    const first = await collector.processMemory(process.pid);
    expect(first).toEqual({ perDevice: { 0: 1_000_000 + growth }, totalBytes: 1_000_000 + growth });
    const second = await collector.processMemory(process.pid);
    expect(second.totalBytes - first.totalBytes).toBe(growth);
  });

  it('answers requests in the order they were made, each with its own answer', async () => {
    const collector = await start(fakeWith(twoDeviceState()));
    const order: string[] = [];
    const tag = <T>(name: string, promise: Promise<T>): Promise<T> =>
      promise.then((value) => {
        order.push(name);
        return value;
      });
    const [a, b, c, d] = await Promise.all([
      tag('collect 1', collector.collect()),
      tag('memory 1', collector.processMemory(process.pid)),
      tag('collect 2', collector.collect({ skipDevices: new Set([0]) })),
      tag('memory 2', collector.processMemory(4242)),
    ]);
    expect(order).toEqual(['collect 1', 'memory 1', 'collect 2', 'memory 2']);
    expect(a.devices.map((x) => x.index)).toEqual([0, 1]);
    expect(b.totalBytes).toBe(17_179_869_184);
    expect(c.devices.map((x) => x.index)).toEqual([1]);
    expect(d).toEqual({ perDevice: { 0: 3_221_225_472 }, totalBytes: 3_221_225_472 });
  });

  it('rejects a collection with the reader’s reason, and goes on answering', async () => {
    const state = twoDeviceState();
    const fake = fakeWith(state);
    const collector = await start(fake);
    fake.write({ ...state, rc: { nvmlDeviceGetCount_v2: 999 } });
    const error = await collectionError(collector.collect());
    expect(error.reason).toBe('nvml_error');
    expect(error.message).toContain('nvmlDeviceGetCount');
    fake.write(state);
    expect((await collector.collect()).devices).toHaveLength(2);
  });

  it('fails with init_failed naming the library, without starting a collector process, when the library is missing', async () => {
    // The module object nvml-collector.ts reads `fork` from (an `import * as` would be a copy).
    const childProcess = jest.requireActual<typeof import('node:child_process')>('node:child_process');
    const forkSpy = jest.spyOn(childProcess, 'fork');
    try {
      const missing = '/nonexistent/dir/libnvidia-ml.so.1';
      const error = await collectionError(
        NvmlCollector.start({ libraryPath: missing, startTimeoutMs: START_TIMEOUT_MS }),
      );
      expect(error.reason).toBe('init_failed');
      expect(error.message).toContain(missing);
      expect(forkSpy).not.toHaveBeenCalled();
      expect(NvmlCollector.loadable(missing)).toContain(missing);
      // The spy does see the process a loadable library starts.
      await start(fakeWith(twoDeviceState()));
      expect(forkSpy).toHaveBeenCalledTimes(1);
    } finally {
      forkSpy.mockRestore();
    }
  });

  it('fails with init_failed and NVML’s reason when nvmlInit fails in the collector process', async () => {
    const fake = fakeWith({ ...twoDeviceState(), init: 9 });
    expect(NvmlCollector.loadable(fake.libraryPath)).toBeUndefined();
    const error = await collectionError(
      NvmlCollector.start({ libraryPath: fake.libraryPath, startTimeoutMs: START_TIMEOUT_MS }),
    );
    expect(error.reason).toBe('init_failed');
    expect(error.message).toContain('driver_not_loaded');
    expect(fake.count('nvmlInit_v2')).toBe(1);
  });

  it('shuts NVML down on close, and refuses requests after it (collector_exited)', async () => {
    const fake = fakeWith(twoDeviceState());
    const collector = await NvmlCollector.start({
      libraryPath: fake.libraryPath,
      startTimeoutMs: START_TIMEOUT_MS,
    });
    await collector.collect();
    expect(fake.count('nvmlShutdown')).toBe(0);
    await collector.close();
    expect(fake.count('nvmlShutdown')).toBe(1);
    expect((await collectionError(collector.collect())).reason).toBe('collector_exited');
    expect((await collectionError(collector.processMemory(process.pid))).reason).toBe('collector_exited');
    await collector.close(); // a second close is a no-op
    expect(fake.count('nvmlShutdown')).toBe(1);
  });

  it('fails what it was asked and every later request when its process dies', async () => {
    const state = twoDeviceState();
    const fake = fakeWith(state);
    const collector = await start(fake);
    // A hung driver holds the request in the process while the process is killed.
    fake.write({ ...state, hangMs: 200 });
    const pending = collector.collect();
    const exited = new Promise<void>((resolve) => childOf(collector).once('exit', () => resolve()));
    childOf(collector).kill('SIGKILL');
    await exited;
    const error = await collectionError(pending);
    expect(error.reason).toBe('collector_exited');
    expect(error.message).toContain('exited');
    expect((await collectionError(collector.collect())).reason).toBe('collector_exited');
  });
});
