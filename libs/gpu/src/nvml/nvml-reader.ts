import { performance } from 'node:perf_hooks';
import { CollectionError } from '../gpu-collector';
import {
  COMPUTE_MODES,
  type ComputeMode,
  type GpuDevice,
  type GpuProcess,
  type GpuSnapshot,
  type ProcessGpuMemory,
} from '../gpu-snapshot';
import {
  DEVICE_LOST_CODES,
  NVML,
  NVML_BUFFER,
  NVML_CLOCK,
  NVML_TEMPERATURE_GPU,
  NVML_VALUE_NOT_AVAILABLE_ULL,
  nvmlCodeName,
} from './nvml-codes';
import type { NvmlDevice, NvmlFunctions } from './nvml-library';

/** What NVML said about the system at init. */
export interface NvmlSystemInfo {
  readonly driverVersion?: string;
  readonly cudaDriverVersion?: string;
  readonly nvmlVersion?: string;
}

/** A device answered a code after which it answers nothing (lost, reset required), or gave no handle. */
class DeviceLost extends Error {
  constructor(readonly code: number) {
    super(`device lost (${nvmlCodeName(code)})`);
  }
}

interface Identity {
  uuid?: string;
  name?: string;
  pciBusId?: string;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** First process-list capacity; grown to what NVML asks for (INSUFFICIENT_SIZE) up to this many. */
const INITIAL_PROCESSES = 32;
const MAX_PROCESSES = 4096;

/**
 * Reads NVML synchronously: call it in the collector's process. A field whose call answers
 * NVML_ERROR_NOT_SUPPORTED is left out; any other failing field is left out and named in `fieldErrors`;
 * a device that answers GPU_IS_LOST (or RESET_REQUIRED, GPU_NOT_FOUND) is reported unhealthy with the
 * identity it had when it was last readable. Handles and identities are cached per index.
 */
export class NvmlReader {
  private readonly handles = new Map<number, NvmlDevice>();
  private readonly identities = new Map<number, Identity>();
  private closed = false;

  private constructor(
    private readonly nvml: NvmlFunctions,
    readonly system: NvmlSystemInfo,
  ) {}

  /** nvmlInit_v2 and the system strings; throws CollectionError('init_failed') with NVML's reason. */
  static open(nvml: NvmlFunctions): NvmlReader {
    const rc = nvml.nvmlInit_v2();
    if (rc !== NVML.SUCCESS) {
      throw new CollectionError('init_failed', `nvmlInit_v2 failed: ${describe(nvml, rc)}`);
    }
    const cuda: [number] = [0];
    const cudaRc = nvml.nvmlSystemGetCudaDriverVersion(cuda);
    return new NvmlReader(
      nvml,
      definedOnly({
        driverVersion: readString(
          (b, n) => nvml.nvmlSystemGetDriverVersion(b, n),
          NVML_BUFFER.SYSTEM_DRIVER_VERSION,
        ),
        nvmlVersion: readString(
          (b, n) => nvml.nvmlSystemGetNVMLVersion(b, n),
          NVML_BUFFER.SYSTEM_NVML_VERSION,
        ),
        // 12040 means 12.4: major * 1000 + minor * 10.
        cudaDriverVersion:
          cudaRc === NVML.SUCCESS
            ? `${Math.floor(cuda[0] / 1000)}.${Math.floor((cuda[0] % 1000) / 10)}`
            : undefined,
      }),
    );
  }

  /** Reads every device except `skip`; throws CollectionError('nvml_error') when the count cannot be read. */
  snapshot(skip: ReadonlySet<number> = new Set()): GpuSnapshot {
    const started = performance.now();
    const devices: GpuDevice[] = [];
    const count = this.deviceCount();
    for (let index = 0; index < count; index++) {
      if (skip.has(index)) continue;
      devices.push(this.readDevice(index));
    }
    return {
      source: 'nvml',
      collectedAt: Date.now(),
      durationMs: performance.now() - started,
      ...definedOnly(this.system),
      devices,
    };
  }

  /** The memory `pid` holds on each device, from the running compute processes. */
  processMemory(pid: number): ProcessGpuMemory {
    const perDevice: Record<number, number> = {};
    let totalBytes = 0;
    const count = this.deviceCount();
    for (let index = 0; index < count; index++) {
      let processes: GpuProcess[] | undefined;
      try {
        processes = this.processes(this.handle(index));
      } catch (error) {
        if (!(error instanceof DeviceLost)) throw error;
        continue; // A lost device holds nothing of ours that can be measured.
      }
      // A list that cannot be read is not an empty one: a sum without it would be a bogus delta.
      if (processes === undefined) {
        throw new CollectionError('nvml_error', `the process list of GPU ${index} cannot be read`);
      }
      const own = processes.find((p) => p.pid === pid);
      if (own?.usedMemoryBytes === undefined) continue;
      perDevice[index] = own.usedMemoryBytes;
      totalBytes += own.usedMemoryBytes;
    }
    return { perDevice, totalBytes };
  }

  /** nvmlShutdown, once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.nvml.nvmlShutdown();
  }

  private deviceCount(): number {
    const count: [number] = [0];
    const rc = this.nvml.nvmlDeviceGetCount(count);
    if (rc !== NVML.SUCCESS) {
      throw new CollectionError('nvml_error', `nvmlDeviceGetCount_v2 failed: ${describe(this.nvml, rc)}`);
    }
    return count[0];
  }

  private handle(index: number): NvmlDevice {
    const cached = this.handles.get(index);
    if (cached !== undefined) return cached;
    const cell: [NvmlDevice] = [null];
    const rc = this.nvml.nvmlDeviceGetHandleByIndex(index, cell);
    // Any failure here (lost, or NVML_ERROR_UNKNOWN from a GPU off the bus) is this device's, not the
    // collection's: the other devices are still read.
    if (rc !== NVML.SUCCESS) throw new DeviceLost(rc);
    this.handles.set(index, cell[0]);
    return cell[0];
  }

  private readDevice(index: number): GpuDevice {
    const identity = this.identities.get(index) ?? {};
    try {
      const device = this.handle(index);
      const fields: Mutable<Omit<GpuDevice, 'index' | 'healthy'>> = {};
      const errors: Record<string, string> = {};
      /** Runs one getter: true when it answered; NOT_SUPPORTED is silent, a lost device throws. */
      const read = (field: keyof GpuDevice, call: () => number): boolean => {
        const rc = call();
        if (rc === NVML.SUCCESS) return true;
        if (DEVICE_LOST_CODES.has(rc)) throw new DeviceLost(rc);
        if (rc !== NVML.ERROR_NOT_SUPPORTED && rc !== NVML.ERROR_FUNCTION_NOT_FOUND) {
          errors[field] = describe(this.nvml, rc);
        }
        return false;
      };
      const name = readStringField(
        read,
        'name',
        (b, n) => this.nvml.nvmlDeviceGetName(device, b, n),
        NVML_BUFFER.DEVICE_NAME,
      );
      const uuid = readStringField(
        read,
        'uuid',
        (b, n) => this.nvml.nvmlDeviceGetUUID(device, b, n),
        NVML_BUFFER.DEVICE_UUID,
      );
      const pci: { busId?: string } = {};
      if (read('pciBusId', () => this.nvml.nvmlDeviceGetPciInfo(device, pci)) && pci.busId) {
        identity.pciBusId = pci.busId;
      }
      if (name !== undefined) identity.name = name;
      if (uuid !== undefined) identity.uuid = uuid;
      this.identities.set(index, identity);

      const utilization: { gpu?: number; memory?: number } = {};
      if (read('utilizationGpuPercent', () => this.nvml.nvmlDeviceGetUtilizationRates(device, utilization))) {
        fields.utilizationGpuPercent = utilization.gpu;
        fields.utilizationMemoryPercent = utilization.memory;
      }
      const memory: { total?: number | bigint; free?: number | bigint; used?: number | bigint } = {};
      if (read('memoryTotalBytes', () => this.nvml.nvmlDeviceGetMemoryInfo(device, memory))) {
        fields.memoryTotalBytes = toNumber(memory.total);
        fields.memoryUsedBytes = toNumber(memory.used);
        fields.memoryFreeBytes = toNumber(memory.free);
      }
      const cell: [number] = [0];
      if (
        read('temperatureCelsius', () =>
          this.nvml.nvmlDeviceGetTemperature(device, NVML_TEMPERATURE_GPU, cell),
        )
      ) {
        fields.temperatureCelsius = cell[0];
      }
      if (read('powerWatts', () => this.nvml.nvmlDeviceGetPowerUsage(device, cell))) {
        fields.powerWatts = cell[0] / 1000;
      }
      if (read('powerLimitWatts', () => this.nvml.nvmlDeviceGetEnforcedPowerLimit(device, cell))) {
        fields.powerLimitWatts = cell[0] / 1000;
      }
      if (read('computeMode', () => this.nvml.nvmlDeviceGetComputeMode(device, cell))) {
        const mode: ComputeMode | undefined = COMPUTE_MODES[cell[0]];
        if (mode !== undefined) fields.computeMode = mode;
        else errors.computeMode = `unknown compute mode ${cell[0]}`;
      }
      if (read('smClockMhz', () => this.nvml.nvmlDeviceGetClockInfo(device, NVML_CLOCK.SM, cell))) {
        fields.smClockMhz = cell[0];
      }
      if (read('memoryClockMhz', () => this.nvml.nvmlDeviceGetClockInfo(device, NVML_CLOCK.MEM, cell))) {
        fields.memoryClockMhz = cell[0];
      }
      const energy: [number | bigint] = [0];
      if (read('energyJoules', () => this.nvml.nvmlDeviceGetTotalEnergyConsumption(device, energy))) {
        fields.energyJoules = Number(energy[0]) / 1000;
      }
      const processes = this.processes(device, (rc) => read('processes', () => rc));
      if (processes !== undefined) fields.processes = processes;
      return {
        index,
        ...definedOnly(identity),
        healthy: true,
        ...definedOnly(fields),
        ...(Object.keys(errors).length > 0 ? { fieldErrors: errors } : {}),
      };
    } catch (error) {
      if (!(error instanceof DeviceLost)) throw error;
      return {
        index,
        ...definedOnly(identity),
        healthy: false,
        error: `${nvmlCodeName(error.code)}: ${this.nvml.nvmlErrorString(error.code)}`,
      };
    }
  }

  /**
   * The running compute processes; undefined when the list cannot be read. `report` sees the final code
   * (it throws DeviceLost for a lost device); without it, a failure other than success is undefined.
   */
  private processes(
    device: NvmlDevice,
    report: (rc: number) => boolean = (rc) => {
      if (DEVICE_LOST_CODES.has(rc)) throw new DeviceLost(rc);
      return rc === NVML.SUCCESS;
    },
  ): GpuProcess[] | undefined {
    const stride = this.nvml.processInfoSize;
    let capacity = INITIAL_PROCESSES;
    for (;;) {
      const buffer = Buffer.alloc(capacity * stride);
      const count: [number] = [capacity];
      const rc = this.nvml.nvmlDeviceGetComputeRunningProcesses(device, count, buffer);
      if (rc === NVML.ERROR_INSUFFICIENT_SIZE && count[0] > capacity && count[0] <= MAX_PROCESSES) {
        // Processes started between the calls: ask for what NVML needs now, with room to spare.
        capacity = count[0] + 8;
        continue;
      }
      if (!report(rc)) return undefined;
      const processes: GpuProcess[] = [];
      for (let i = 0; i < Math.min(count[0], capacity); i++) {
        const pid = buffer.readUInt32LE(i * stride);
        const used = buffer.readBigUInt64LE(i * stride + 8);
        processes.push(
          used === NVML_VALUE_NOT_AVAILABLE_ULL ? { pid } : { pid, usedMemoryBytes: Number(used) },
        );
      }
      return processes;
    }
  }
}

function describe(nvml: NvmlFunctions, rc: number): string {
  return `${nvmlCodeName(rc)}: ${nvml.nvmlErrorString(rc)}`;
}

function toNumber(value: number | bigint | undefined): number | undefined {
  return value === undefined ? undefined : Number(value);
}

function cString(buffer: Buffer): string {
  const end = buffer.indexOf(0);
  return buffer.toString('utf8', 0, end === -1 ? buffer.length : end);
}

/** A system string (driver version...): undefined when the call fails. */
function readString(call: (buffer: Buffer, length: number) => number, size: number): string | undefined {
  const buffer = Buffer.alloc(size);
  return call(buffer, size) === NVML.SUCCESS ? cString(buffer) : undefined;
}

function readStringField(
  read: (field: keyof GpuDevice, call: () => number) => boolean,
  field: keyof GpuDevice,
  call: (buffer: Buffer, length: number) => number,
  size: number,
): string | undefined {
  const buffer = Buffer.alloc(size);
  return read(field, () => call(buffer, size)) ? cString(buffer) : undefined;
}

/** The object without its undefined properties (absent, not `undefined`, in JSON and `in` checks). */
function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
