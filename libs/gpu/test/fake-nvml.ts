/**
 * Test helper around `fake-nvml.c`, a fake `libnvidia-ml.so.1` for machines without a GPU: it compiles the
 * fake (once per source, cached under the OS temp dir), copies it into a fresh directory per instance and
 * drives it through the `state` file next to the copy, which the fake re-reads on every call. The fake logs
 * every call to `calls.log` in that directory, which `calls()` and `count()` read back.
 *
 * Every `FakeNvml` is its own copy of the library, so each has its own state and its own static counters
 * (init count, poll counters, lost-GPU latches) once loaded.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const SOURCE = path.join(__dirname, 'fake-nvml.c');
const LIBRARY_NAME = 'libnvidia-ml.so.1';
const COMPILE_FLAGS = ['-shared', '-fPIC', '-O1', '-Wall', '-Wextra', '-Werror'] as const;
const LINK_FLAGS = ['-ldl', '-lpthread'] as const;

let compilerLookup: { readonly found: string | null } | undefined;
let compiledLibrary: string | undefined;
let uniqueCounter = 0;

/** The C compiler found on PATH (`cc`, then `gcc`), or null. */
export function cCompiler(): string | null {
  if (compilerLookup === undefined) compilerLookup = { found: findOnPath(['cc', 'gcc']) };
  return compilerLookup.found;
}

/** Message for tests that skip because no compiler exists (`describe.skip` users print it). */
export const NO_COMPILER_MESSAGE =
  'fake NVML tests skipped: no C compiler (`cc` or `gcc`) on PATH to build libs/gpu/test/fake-nvml.c';

export interface FakeProcess {
  /**
   * `self`: the process that writes the state (the test, and the API it runs in-process), which is not
   * the one that loads the library when NVML runs in the collector's child process.
   */
  readonly pid: number | 'self';
  readonly bytes: number | 'na';
}

export interface FakeDevice {
  name?: string;
  uuid?: string;
  pciBusId?: string;
  /** `nvmlPciInfo_t.pciDeviceId` (e.g. 0x233010de); 0 when absent. */
  pciDeviceId?: number;
  /** `nvmlPciInfo_t.pciSubSystemId`; 0 when absent. */
  pciSubSystemId?: number;
  utilGpu?: number;
  utilMemory?: number;
  memTotal?: number;
  memUsed?: number;
  memFree?: number;
  temperature?: number;
  powerMw?: number;
  powerLimitMw?: number;
  computeMode?: number;
  clockSm?: number;
  clockMem?: number;
  energyMj?: number | bigint;
  procs?: readonly FakeProcess[];
  procGrowth?: number;
  lost?: boolean;
  lostAfterPolls?: number;
  /** Forced return codes of this device's calls, by NVML function name (0 = behave normally). */
  rc?: Readonly<Record<string, number>>;
}

export interface FakeNvmlState {
  init?: number;
  driverVersion?: string;
  nvmlVersion?: string;
  cudaDriverVersion?: number;
  hangMs?: number;
  /** Forced return codes by NVML function name, for every device too (a device's own `rc` wins). */
  rc?: Readonly<Record<string, number>>;
  devices: readonly FakeDevice[]; // device_count = devices.length
}

export interface FakeNvmlCall {
  fn: string;
  device: number | null;
  rc: number;
}

const H100_MEM_TOTAL = 85_520_809_984; // 81559 MiB, what an H100 80GB HBM3 reports

/** A complete, realistic two-device state (H100-like values) tests can start from and override. */
export function twoDeviceState(): FakeNvmlState {
  return {
    init: 0,
    driverVersion: '550.54.15',
    nvmlVersion: '12.550.54.15',
    cudaDriverVersion: 12040,
    hangMs: 0,
    devices: [
      {
        name: 'NVIDIA H100 80GB HBM3',
        uuid: 'GPU-3f8a1c2e-7b4d-4e9a-a1c6-5d2e8f0b9a71',
        pciBusId: '00000000:17:00.0',
        pciDeviceId: 0x233010de,
        pciSubSystemId: 0x16c110de,
        utilGpu: 87,
        utilMemory: 42,
        memTotal: H100_MEM_TOTAL,
        memUsed: 21_474_836_480,
        memFree: H100_MEM_TOTAL - 21_474_836_480,
        temperature: 61,
        powerMw: 512_345,
        powerLimitMw: 700_000,
        computeMode: 0,
        clockSm: 1980,
        clockMem: 2619,
        energyMj: 123_456_789_012,
        // This test process, and one other (pid 4242, a fixed number: not looked up on this machine).
        procs: [
          { pid: 'self', bytes: 17_179_869_184 },
          { pid: 4242, bytes: 3_221_225_472 },
        ],
      },
      {
        name: 'NVIDIA H100 80GB HBM3',
        uuid: 'GPU-9b27d0e4-1a5c-4f3b-8e6d-c0a4b7e2f158',
        pciBusId: '00000000:2A:00.0',
        pciDeviceId: 0x233010de,
        pciSubSystemId: 0x16c110de,
        utilGpu: 0,
        utilMemory: 0,
        memTotal: H100_MEM_TOTAL,
        memUsed: 553_648_128,
        memFree: H100_MEM_TOTAL - 553_648_128,
        temperature: 34,
        powerMw: 71_250,
        powerLimitMw: 700_000,
        computeMode: 0,
        clockSm: 345,
        clockMem: 2619,
        energyMj: 98_765_432_101,
        procs: [],
      },
    ],
  };
}

export class FakeNvml {
  private constructor(
    readonly dir: string,
    readonly libraryPath: string,
  ) {}

  /**
   * Compiles the fake once per process (cached under os.tmpdir() by a hash of the C source), copies it as
   * `libnvidia-ml.so.1` into a fresh temp directory, writes the state. Throws if no compiler.
   */
  static create(state: FakeNvmlState): FakeNvml {
    const compiled = compileFake();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-nvml-'));
    const libraryPath = path.join(dir, LIBRARY_NAME);
    // A real copy (a new inode): the dynamic loader would treat a hard link to the cached file as the object
    // it already loaded, sharing its static state.
    fs.copyFileSync(compiled, libraryPath);
    const fake = new FakeNvml(dir, libraryPath);
    fake.write(state);
    return fake;
  }

  /** Atomic rewrite of the state (tmp + rename): the fake sees the old or the new state, never half of one. */
  write(state: FakeNvmlState): void {
    const tmp = path.join(this.dir, `.state.${process.pid}.${++uniqueCounter}.tmp`);
    fs.writeFileSync(tmp, serializeState(state));
    fs.renameSync(tmp, path.join(this.dir, 'state'));
  }

  /** Parsed calls.log lines: { fn, device: number | null, rc } */
  calls(): FakeNvmlCall[] {
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.dir, 'calls.log'), 'utf8');
    } catch (err) {
      if (isErrnoException(err) && err.code === 'ENOENT') return [];
      throw err;
    }
    const calls: FakeNvmlCall[] = [];
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const [fn, device, rc] = line.split(' ');
      if (fn === undefined || device === undefined || rc === undefined) {
        throw new Error(`fake NVML: malformed calls.log line ${JSON.stringify(line)}`);
      }
      calls.push({ fn, device: device === '-' ? null : Number(device), rc: Number(rc) });
    }
    return calls;
  }

  /** Number of logged calls of one function (optionally for one device). */
  count(fn: string, device?: number): number {
    return this.calls().filter((c) => c.fn === fn && (device === undefined || c.device === device)).length;
  }

  /** rm -rf dir */
  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The state in the fake's `key=value` format. */
export function serializeState(state: FakeNvmlState): string {
  const lines: string[] = ['# fake NVML state, written by libs/gpu/test/fake-nvml.ts'];
  const put = (key: string, value: string | number | bigint | boolean | undefined, kind: ValueKind): void => {
    if (value === undefined) return;
    lines.push(`${key}=${formatValue(key, value, kind)}`);
  };

  put('init', state.init, 'int');
  put('driver_version', state.driverVersion, 'string');
  put('nvml_version', state.nvmlVersion, 'string');
  put('cuda_driver_version', state.cudaDriverVersion, 'int');
  put('hang_ms', state.hangMs, 'u64');
  for (const [fn, rc] of Object.entries(state.rc ?? {})) put(`rc.${checkName(fn)}`, rc, 'int');

  if (state.devices.length > 16) throw new Error('fake NVML: at most 16 devices');
  put('device_count', state.devices.length, 'u64');
  state.devices.forEach((d, i) => {
    const p = `dev.${i}.`;
    put(`${p}name`, d.name, 'string');
    put(`${p}uuid`, d.uuid, 'string');
    put(`${p}pci_bus_id`, d.pciBusId, 'string');
    put(`${p}pci_device_id`, d.pciDeviceId, 'u64');
    put(`${p}pci_subsystem_id`, d.pciSubSystemId, 'u64');
    put(`${p}util_gpu`, d.utilGpu, 'u64');
    put(`${p}util_memory`, d.utilMemory, 'u64');
    put(`${p}mem_total`, d.memTotal, 'u64');
    put(`${p}mem_used`, d.memUsed, 'u64');
    put(`${p}mem_free`, d.memFree, 'u64');
    put(`${p}temperature`, d.temperature, 'u64');
    put(`${p}power_mw`, d.powerMw, 'u64');
    put(`${p}power_limit_mw`, d.powerLimitMw, 'u64');
    put(`${p}compute_mode`, d.computeMode, 'u64');
    put(`${p}clock_sm`, d.clockSm, 'u64');
    put(`${p}clock_mem`, d.clockMem, 'u64');
    put(`${p}energy_mj`, d.energyMj, 'u64');
    if (d.procs !== undefined) {
      const procs = d.procs.map((proc) => {
        const pid = formatValue(`${p}procs pid`, proc.pid === 'self' ? process.pid : proc.pid, 'u64');
        const bytes = proc.bytes === 'na' ? 'na' : formatValue(`${p}procs bytes`, proc.bytes, 'u64');
        return `${pid}:${bytes}`;
      });
      lines.push(`${p}procs=${procs.join(',')}`);
    }
    put(`${p}proc_growth`, d.procGrowth, 'u64');
    if (d.lost !== undefined) put(`${p}lost`, d.lost ? 1 : 0, 'u64');
    put(`${p}lost_after_polls`, d.lostAfterPolls, 'u64');
    for (const [fn, rc] of Object.entries(d.rc ?? {})) put(`${p}rc.${checkName(fn)}`, rc, 'int');
  });
  return `${lines.join('\n')}\n`;
}

type ValueKind = 'string' | 'int' | 'u64';

const U64_MAX = (1n << 64n) - 1n;

function formatValue(key: string, value: string | number | bigint | boolean, kind: ValueKind): string {
  if (kind === 'string') {
    if (typeof value !== 'string') throw new Error(`fake NVML: ${key} must be a string`);
    if (/[\r\n]/.test(value) || value.trim() !== value) {
      throw new Error(`fake NVML: ${key} cannot hold line breaks or surrounding whitespace`);
    }
    return value;
  }
  if (typeof value === 'number' && Number.isInteger(value)) value = BigInt(value);
  if (typeof value !== 'bigint')
    throw new Error(`fake NVML: ${key} must be an integer, got ${String(value)}`);
  const min = kind === 'u64' ? 0n : -(1n << 31n);
  const max = kind === 'u64' ? U64_MAX : (1n << 31n) - 1n;
  if (value < min || value > max) throw new Error(`fake NVML: ${key}=${value} is out of range`);
  return value.toString();
}

function checkName(fn: string): string {
  if (!/^nvml\w+$/.test(fn)) throw new Error(`fake NVML: ${JSON.stringify(fn)} is not an NVML function name`);
  return fn;
}

/** Compiles the fake once per process; the result is cached under os.tmpdir() by a hash of what builds it. */
function compileFake(): string {
  if (compiledLibrary !== undefined && fs.existsSync(compiledLibrary)) return compiledLibrary;
  const compiler = cCompiler();
  if (compiler === null) throw new Error(NO_COMPILER_MESSAGE);

  const source = fs.readFileSync(SOURCE);
  const hash = createHash('sha256')
    .update(source)
    .update(JSON.stringify([compiler, COMPILE_FLAGS, LINK_FLAGS]))
    .digest('hex')
    .slice(0, 32);
  const cacheDir = path.join(os.tmpdir(), `fake-nvml-build-${hash}`);
  const target = path.join(cacheDir, LIBRARY_NAME);
  if (!fs.existsSync(target)) {
    fs.mkdirSync(cacheDir, { recursive: true });
    // Compiled under a name of its own, then renamed: another Jest worker compiling at the same time never
    // sees a half-written library, and whichever rename lands last leaves an identical, complete file.
    const tmp = path.join(cacheDir, `.${LIBRARY_NAME}.${process.pid}.${++uniqueCounter}.tmp`);
    const result = spawnSync(compiler, [...COMPILE_FLAGS, '-o', tmp, SOURCE, ...LINK_FLAGS], {
      encoding: 'utf8',
    });
    if (result.error !== undefined || result.status !== 0) {
      fs.rmSync(tmp, { force: true });
      const why =
        result.error !== undefined
          ? result.error.message
          : `exit ${result.status ?? `signal ${result.signal ?? '?'}`}`;
      throw new Error(`fake NVML: compiling ${SOURCE} with ${compiler} failed (${why}):\n${result.stderr}`);
    }
    fs.renameSync(tmp, target);
  }
  compiledLibrary = target;
  return target;
}

function findOnPath(names: readonly string[]): string | null {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter((d) => d !== '');
  for (const name of names) {
    for (const dir of dirs) {
      const candidate = path.join(dir, name);
      try {
        if (!fs.statSync(candidate).isFile()) continue;
        fs.accessSync(candidate, fs.constants.X_OK);
        return candidate;
      } catch {
        // not here
      }
    }
  }
  return null;
}

function isErrnoException(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && 'code' in err;
}

/**
 * `describe` for suites that need the compiled fake, or `describe.skip` (with {@link NO_COMPILER_MESSAGE}
 * printed once, naming `suite`) on a machine without a C compiler.
 */
export function describeWithFakeNvml(suite: string): jest.Describe {
  if (cCompiler() !== null) return describe;
  console.warn(`${suite}: skipped: ${NO_COMPILER_MESSAGE}`);
  return describe.skip;
}
