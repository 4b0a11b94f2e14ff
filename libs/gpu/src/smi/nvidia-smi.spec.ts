import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CollectionError } from '../gpu-collector';
import type { GpuDevice } from '../gpu-snapshot';
import {
  COMPUTE_APPS_FIELDS,
  GPU_QUERY_FIELDS,
  nvidiaSmiAvailable,
  NvidiaSmiCollector,
  parseComputeAppsCsv,
  parseGpuCsv,
} from './nvidia-smi';
import { FakeNvidiaSmi, type FakeSmiState, twoGpuSmiState } from '../../test/fake-nvidia-smi';
import { collectionError } from '../../test/collection-error';

const MIB = 1048576;
const TIMEOUT_MS = 10_000;
const UUID0 = 'GPU-5c1f3a2e-7d4b-4e8a-9f60-1b2c3d4e5f60';
const UUID1 = 'GPU-a9e8d7c6-b5a4-4938-8271-605f4e3d2c1b';
const GPU_ARGS = [`--query-gpu=${GPU_QUERY_FIELDS.join(',')}`, '--format=csv,noheader,nounits'];
const APPS_ARGS = [`--query-compute-apps=${COMPUTE_APPS_FIELDS.join(',')}`, '--format=csv,noheader,nounits'];

/** A line of the 16 query fields, from a field → value map (missing fields print `[N/A]`). */
function gpuLine(values: Record<string, string | number>): string {
  return GPU_QUERY_FIELDS.map((field) => String(values[field] ?? '[N/A]')).join(', ');
}

function stateWith(change: (state: FakeSmiState) => void): FakeSmiState {
  const state = twoGpuSmiState();
  change(state);
  return state;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('parseGpuCsv', () => {
  const line0 = gpuLine(twoGpuSmiState().gpus[0]);

  it('reads the values nvidia-smi prints with units, although nounits is asked for', () => {
    const fake = FakeNvidiaSmi.create(twoGpuSmiState());
    try {
      // The fake prints the real units when `nounits` is left out.
      const withUnits = execFileSync(fake.path, [GPU_ARGS[0], '--format=csv,noheader'], { encoding: 'utf8' });
      expect(withUnits).toContain('81559 MiB, 40960 MiB');
      expect(withUnits).toContain('87 %');
      expect(withUnits).toContain('512.37 W');
      expect(withUnits).toContain('1980 MHz');
      expect(parseGpuCsv(withUnits)).toEqual(
        parseGpuCsv(execFileSync(fake.path, GPU_ARGS, { encoding: 'utf8' })),
      );
      expect(parseGpuCsv(withUnits).devices[0]).toMatchObject({
        memoryTotalBytes: 81559 * MIB,
        utilizationGpuPercent: 87,
        powerWatts: 512.37,
        smClockMhz: 1980,
      });
    } finally {
      fake.remove();
    }
  });

  it('skips a header line', () => {
    const header = GPU_QUERY_FIELDS.join(', ').replace('memory.total', 'memory.total [MiB]');
    expect(parseGpuCsv(`${header}\n${line0}\n`).devices).toHaveLength(1);
  });

  it('maps every compute mode', () => {
    const modes = ['Default', 'Exclusive_Thread', 'Prohibited', 'Exclusive_Process'];
    const text = modes.map((mode, index) => gpuLine({ index, compute_mode: mode })).join('\n');
    expect(parseGpuCsv(text).devices.map((device) => device.computeMode)).toEqual([
      'default',
      'exclusive_thread',
      'prohibited',
      'exclusive_process',
    ]);
  });

  it('puts a non-number and a bracketed error in fieldErrors, leaving the fields absent', () => {
    const text = gpuLine({
      index: 0,
      uuid: UUID0,
      'temperature.gpu': 'hot',
      'power.draw': '[Insufficient Permissions]',
      compute_mode: 'Sideways',
      'clocks.sm': 1410,
    });
    const [device] = parseGpuCsv(text).devices;
    expect(device.healthy).toBe(true);
    expect(device.smClockMhz).toBe(1410);
    expect('temperatureCelsius' in device).toBe(false);
    expect('powerWatts' in device).toBe(false);
    expect('computeMode' in device).toBe(false);
    expect(device.fieldErrors).toEqual({
      temperatureCelsius: 'parse_error: not a number: "hot"',
      powerWatts: 'no_permission: Insufficient Permissions',
      computeMode: 'parse_error: unknown compute mode "Sideways"',
    });
  });

  it('treats N/A, Not Supported, Unknown Error and empty values as absent, never 0', () => {
    const text = GPU_QUERY_FIELDS.map((field, i) =>
      field === 'index' ? '0' : ['N/A', 'Not Supported', '[Unknown Error]', '', '[N/A]'][i % 5],
    ).join(', ');
    const [device] = parseGpuCsv(text).devices;
    expect(device).toEqual({ index: 0, healthy: true });
  });

  it('reads an empty last value as absent', () => {
    const values = { ...twoGpuSmiState().gpus[0], 'clocks.mem': '' };
    const [device] = parseGpuCsv(`  ${gpuLine(values)}\n`).devices;
    expect(device).toMatchObject({ index: 0, smClockMhz: 1980 });
    expect('memoryClockMhz' in device).toBe(false);
  });

  it('indexes a line without a readable index by its position', () => {
    const text = `${line0}\n${gpuLine({ index: '[N/A]', uuid: UUID1 })}`;
    expect(parseGpuCsv(text).devices.map((device) => device.index)).toEqual([0, 1]);
  });

  it('reads an unhealthy device from a reset-required line, keeping its identity', () => {
    const text = gpuLine({
      index: 3,
      uuid: UUID1,
      name: 'NVIDIA H100',
      'memory.total': '[GPU requires reset]',
    });
    expect(parseGpuCsv(text).devices).toEqual([
      {
        index: 3,
        uuid: UUID1,
        name: 'NVIDIA H100',
        healthy: false,
        error: 'reset_required: GPU requires reset',
      },
    ]);
  });

  it('skips unrecognized lines among device lines, and queries with other fields', () => {
    expect(parseGpuCsv(`Some warning\n0, ${UUID0}\n1, ${UUID1}\n`, ['index', 'uuid']).devices).toEqual([
      { index: 0, uuid: UUID0, healthy: true },
      { index: 1, uuid: UUID1, healthy: true },
    ]);
  });

  it.each([
    ['garbage', 'Segmentation fault\nsomething else\n'],
    ['too few fields', '0, GPU-1, NVIDIA H100\n'],
    ['nothing', ''],
  ])('rejects %s with parse_error', (_name, text) => {
    expect(() => parseGpuCsv(text)).toThrow(CollectionError);
    try {
      parseGpuCsv(text);
    } catch (error) {
      expect((error as CollectionError).reason).toBe('parse_error');
    }
  });
});

describe('parseComputeAppsCsv', () => {
  it('reads apps, an unknown memory as absent, and nothing from an empty list', () => {
    expect(parseComputeAppsCsv(`${UUID0}, 101, 2048\r\n\r\n${UUID1}, 102, [N/A]\r\n`)).toEqual([
      { gpuUuid: UUID0, pid: 101, usedMemoryBytes: 2048 * MIB },
      { gpuUuid: UUID1, pid: 102 },
    ]);
    expect(parseComputeAppsCsv('')).toEqual([]);
    expect(parseComputeAppsCsv('No running processes found\n')).toEqual([]);
  });

  it('rejects a line it cannot read with parse_error', () => {
    expect(() => parseComputeAppsCsv(`${UUID0}, abc, 12\n`)).toThrow(/compute-app/);
    expect(() => parseComputeAppsCsv('garbage\n')).toThrow(CollectionError);
  });
});

describe('NvidiaSmiCollector', () => {
  let fake: FakeNvidiaSmi;
  let collector: NvidiaSmiCollector;

  function useState(state: FakeSmiState, timeoutMs = TIMEOUT_MS): void {
    fake = FakeNvidiaSmi.create(state);
    collector = new NvidiaSmiCollector({ path: fake.path, timeoutMs });
  }

  afterEach(async () => {
    await collector?.close();
    fake?.remove();
  });

  it('reads two devices with exact bytes, watts and MHz, from two queries', async () => {
    useState(twoGpuSmiState());
    const snapshot = await collector.collect({ skipDevices: new Set([1]) });

    expect(snapshot.source).toBe('nvidia-smi');
    expect(snapshot.driverVersion).toBe('550.54.15');
    expect('cudaDriverVersion' in snapshot).toBe(false);
    expect('nvmlVersion' in snapshot).toBe(false);
    expect(snapshot.durationMs).toBeGreaterThanOrEqual(0);
    expect(typeof snapshot.collectedAt).toBe('number');
    expect(snapshot.devices).toEqual<GpuDevice[]>([
      {
        index: 0,
        uuid: UUID0,
        name: 'NVIDIA H100 80GB HBM3',
        pciBusId: '00000000:17:00.0',
        healthy: true,
        utilizationGpuPercent: 87,
        utilizationMemoryPercent: 41,
        memoryTotalBytes: 81559 * MIB,
        memoryUsedBytes: 40960 * MIB,
        memoryFreeBytes: 40085 * MIB,
        temperatureCelsius: 63,
        powerWatts: 512.37,
        powerLimitWatts: 700,
        computeMode: 'default',
        smClockMhz: 1980,
        memoryClockMhz: 2619,
        processes: [],
      },
      {
        index: 1,
        uuid: UUID1,
        name: 'NVIDIA H100 80GB HBM3',
        pciBusId: '00000000:2A:00.0',
        healthy: true,
        utilizationGpuPercent: 0,
        utilizationMemoryPercent: 0,
        memoryTotalBytes: 81559 * MIB,
        memoryUsedBytes: 1 * MIB,
        memoryFreeBytes: 81044 * MIB,
        temperatureCelsius: 31,
        powerWatts: 71.84,
        powerLimitWatts: 700,
        computeMode: 'exclusive_process',
        smClockMhz: 345,
        memoryClockMhz: 2619,
        processes: [],
      },
    ]);
    expect(fake.invocations()).toEqual(expect.arrayContaining([GPU_ARGS, APPS_ARGS]));
    expect(fake.invocations()).toHaveLength(2);
    expect('energyJoules' in snapshot.devices[0]).toBe(false);
  });

  it('leaves [N/A] and [Not Supported] fields absent', async () => {
    useState(
      stateWith((state) => {
        Object.assign(state.gpus[0], { 'power.draw': '[N/A]', 'enforced.power.limit': '[Not Supported]' });
        delete state.gpus[0]['temperature.gpu'];
        state.gpus[1]['clocks.sm'] = '[Not Supported]';
      }),
    );
    const [first, second] = (await collector.collect()).devices;
    expect('powerWatts' in first).toBe(false);
    expect(first.powerLimitWatts).toBeUndefined();
    expect('powerLimitWatts' in first).toBe(false);
    expect('temperatureCelsius' in first).toBe(false);
    expect(first.fieldErrors).toBeUndefined();
    expect('smClockMhz' in second).toBe(false);
    expect(second.memoryClockMhz).toBe(2619);
  });

  it('joins a name holding a comma back together', async () => {
    useState(stateWith((state) => (state.gpus[1].name = 'NVIDIA A100, PCIe 80GB')));
    const [first, second] = (await collector.collect()).devices;
    expect(first.name).toBe('NVIDIA H100 80GB HBM3');
    expect(second).toMatchObject({
      name: 'NVIDIA A100, PCIe 80GB',
      pciBusId: '00000000:2A:00.0',
      smClockMhz: 345,
    });
  });

  it('reads CRLF line ends and ignores blank lines', async () => {
    const [gpu0, gpu1] = twoGpuSmiState().gpus;
    useState({ gpus: [], rawStdout: `\r\n${gpuLine(gpu0)}\r\n\r\n${gpuLine(gpu1)}\r\n\r\n` });
    const devices = (await collector.collect()).devices;
    expect(devices.map((device) => [device.index, device.uuid, device.memoryClockMhz])).toEqual([
      [0, UUID0, 2619],
      [1, UUID1, 2619],
    ]);
  });

  it('marks a lost GPU unhealthy among healthy ones when nvidia-smi exits 15', async () => {
    const lost = '[GPU is lost]';
    useState(
      stateWith((state) => {
        state.gpus.push({ index: 2, uuid: 'GPU-lost', name: 'NVIDIA H100 80GB HBM3', 'pci.bus_id': lost });
        for (const field of GPU_QUERY_FIELDS.slice(4)) state.gpus[2][field] = lost;
        state.exitCode = 15;
        state.computeApps = { exitCode: 15 };
      }),
    );
    const devices = (await collector.collect()).devices;
    expect(devices.map((device) => device.healthy)).toEqual([true, true, false]);
    expect(devices[2]).toEqual({
      index: 2,
      uuid: 'GPU-lost',
      name: 'NVIDIA H100 80GB HBM3',
      healthy: false,
      error: 'gpu_is_lost: GPU is lost',
    });
    expect(devices[0].memoryTotalBytes).toBe(81559 * MIB);
  });

  it('reads a handle-error line as an unhealthy device at its position, with the PCI id of the message', async () => {
    const [gpu0, gpu1] = twoGpuSmiState().gpus;
    const message =
      'Unable to determine the device handle for GPU0000:2A:00.0: GPU is lost.  Reboot the system to recover this GPU';
    useState({
      gpus: [],
      exitCode: 15,
      rawStdout: `${gpuLine(gpu0)}\n${message}\n${gpuLine({ ...gpu1, index: 2 })}\n`,
    });
    const devices = (await collector.collect()).devices;
    expect(devices.map((device) => [device.index, device.healthy])).toEqual([
      [0, true],
      [1, false],
      [2, true],
    ]);
    expect(devices[1]).toEqual({
      index: 1,
      pciBusId: '00000000:2A:00.0',
      healthy: false,
      error: 'gpu_is_lost: GPU is lost',
    });
  });

  it('attaches compute apps to their devices by uuid, the test process included', async () => {
    useState(
      stateWith((state) => {
        state.apps = [
          { gpu_uuid: UUID1, pid: 'self', used_memory: 1024 },
          { gpu_uuid: UUID1, pid: 4242, used_memory: '[N/A]' },
          { gpu_uuid: 'GPU-elsewhere', pid: 4343, used_memory: 5 },
        ];
      }),
    );
    const [first, second] = (await collector.collect()).devices;
    expect(first.processes).toEqual([]);
    expect(second.processes).toEqual([{ pid: process.pid, usedMemoryBytes: 1024 * MIB }, { pid: 4242 }]);
    expect('usedMemoryBytes' in (second.processes?.[1] ?? {})).toBe(false);
  });

  it('leaves processes unknown when the compute-apps query fails', async () => {
    useState(
      stateWith((state) => {
        state.apps = [{ gpu_uuid: UUID0, pid: 'self', used_memory: 1024 }];
        state.computeApps = { exitCode: 6, stderr: 'Failed to read the process list\n' };
      }),
    );
    const devices = (await collector.collect()).devices;
    expect(devices).toHaveLength(2);
    for (const device of devices) expect('processes' in device).toBe(false);
  });

  it('fails with command_failed and the first stderr line when nvidia-smi exits non-zero with nothing usable', async () => {
    useState({
      gpus: [],
      exitCode: 9,
      stderr:
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n\nSecond line\n",
    });
    const error = await collectionError(collector.collect());
    expect(error.reason).toBe('command_failed');
    expect(error.message).toMatch(
      /^nvidia-smi exited with code 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver/,
    );
    expect(error.message).not.toContain('Second line');
    expect(error.message.length).toBeLessThanOrEqual(250);
  });

  it('fails with command_failed when nvidia-smi rejects a query field (exit 2)', async () => {
    useState({
      gpus: [{ index: 0 }],
      rawStdout: 'Field "xyz" is not a valid field to query.\n',
      exitCode: 2,
    });
    const error = await collectionError(collector.collect());
    expect(error).toMatchObject({
      reason: 'command_failed',
      message: 'nvidia-smi exited with code 2: Field "xyz" is not a valid field to query.',
    });
  });

  it('kills nvidia-smi and fails with timeout when it hangs past timeoutMs', async () => {
    useState(
      stateWith((state) => (state.hangMs = 120_000)),
      1500,
    );
    const error = await collectionError(collector.collect());
    expect(error.reason).toBe('timeout');
    expect(error.message).toContain('killed');
    const pids = fake.pids();
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) expect(isRunning(pid)).toBe(false);
  });

  it('fails with command_failed when the executable does not exist or cannot be executed', async () => {
    useState(twoGpuSmiState());
    const missing = new NvidiaSmiCollector({
      path: join(fake.dir, 'no-such-dir', 'nvidia-smi'),
      timeoutMs: 5000,
    });
    expect(await collectionError(missing.collect())).toMatchObject({
      reason: 'command_failed',
      message: 'nvidia-smi was not found',
    });

    const notExecutable = join(fake.dir, 'not-executable');
    writeFileSync(notExecutable, '#!/bin/sh\n');
    chmodSync(notExecutable, 0o644);
    const denied = new NvidiaSmiCollector({ path: notExecutable, timeoutMs: 5000 });
    expect(await collectionError(denied.collect())).toMatchObject({ reason: 'command_failed' });
  });

  it('fails with parse_error on garbage', async () => {
    useState({ gpus: [], rawStdout: 'Welcome to the machine\n42\n' });
    expect(await collectionError(collector.collect())).toMatchObject({ reason: 'parse_error' });
  });

  it('reads the memory of a pid before any collection, building the uuid map with one query', async () => {
    useState(
      stateWith((state) => {
        state.apps = [
          { gpu_uuid: UUID0, pid: 'self', used_memory: 512 },
          { gpu_uuid: UUID1, pid: 'self', used_memory: 1024 },
          { gpu_uuid: UUID1, pid: 'self', used_memory: 256 },
          { gpu_uuid: UUID1, pid: 4242, used_memory: 4096 },
        ];
      }),
    );
    expect(await collector.processMemory(process.pid)).toEqual({
      perDevice: { 0: 512 * MIB, 1: 1280 * MIB },
      totalBytes: 1792 * MIB,
    });
    expect(await collector.processMemory(999_999)).toEqual({ perDevice: {}, totalBytes: 0 });
    expect(fake.invocations().filter((argv) => argv[0] === '--query-gpu=index,uuid')).toHaveLength(1);
  });

  it('reuses the uuid map of the last collection for processMemory', async () => {
    useState(stateWith((state) => (state.apps = [{ gpu_uuid: UUID1, pid: 'self', used_memory: 8 }])));
    await collector.collect();
    const before = fake.invocations().length;
    expect(await collector.processMemory(process.pid)).toEqual({
      perDevice: { 1: 8 * MIB },
      totalBytes: 8 * MIB,
    });
    expect(fake.invocations().slice(before)).toEqual([APPS_ARGS]);
  });

  it('rejects processMemory when the compute-apps query fails', async () => {
    useState(stateWith((state) => (state.computeApps = { exitCode: 3, stderr: 'nope\n' })));
    expect(await collectionError(collector.processMemory(process.pid))).toMatchObject({
      reason: 'command_failed',
      message: 'nvidia-smi exited with code 3: nope',
    });
  });

  it('rejects every call after close', async () => {
    useState(twoGpuSmiState());
    await collector.close();
    expect(await collectionError(collector.collect())).toMatchObject({
      reason: 'command_failed',
      message: 'collector closed',
    });
    expect(await collectionError(collector.processMemory(process.pid))).toMatchObject({
      reason: 'command_failed',
    });
    expect(fake.invocations()).toEqual([]);
  });
});

describe('nvidiaSmiAvailable', () => {
  let fake: FakeNvidiaSmi;

  afterEach(() => fake.remove());

  it('is true when the index query exits 0', async () => {
    fake = FakeNvidiaSmi.create(twoGpuSmiState());
    await expect(nvidiaSmiAvailable(fake.path, TIMEOUT_MS)).resolves.toBe(true);
    expect(fake.invocations()).toEqual([['--query-gpu=index', '--format=csv,noheader,nounits']]);
  });

  it('is false when nvidia-smi exits non-zero, hangs or does not exist', async () => {
    fake = FakeNvidiaSmi.create({ gpus: [], exitCode: 9, stderr: 'NVIDIA-SMI has failed\n' });
    await expect(nvidiaSmiAvailable(fake.path, TIMEOUT_MS)).resolves.toBe(false);
    fake.write({ gpus: [{ index: 0 }], hangMs: 120_000 });
    await expect(nvidiaSmiAvailable(fake.path, 1500)).resolves.toBe(false);
    await expect(nvidiaSmiAvailable(join(fake.dir, 'missing'), TIMEOUT_MS)).resolves.toBe(false);
  });
});
