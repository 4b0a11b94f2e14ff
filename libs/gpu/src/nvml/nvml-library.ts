import * as koffi from 'koffi';
import { NVML } from './nvml-codes';

/** An `nvmlDevice_t` (`struct nvmlDevice_st *`), opaque to us. */
export type NvmlDevice = unknown;

/** Out-parameter cells: koffi writes the value into element 0. */
type Cell<T> = [T];

const DevicePointer = koffi.pointer(koffi.opaque());
const Utilization = koffi.struct({ gpu: 'unsigned int', memory: 'unsigned int' });
/** `nvmlMemory_t`: the order in nvml.h is total, free, used. */
const Memory = koffi.struct({
  total: 'unsigned long long',
  free: 'unsigned long long',
  used: 'unsigned long long',
});
/** `nvmlPciInfo_t` as `nvmlDeviceGetPciInfo_v3` fills it. */
const PciInfo = koffi.struct({
  busIdLegacy: koffi.array('char', 16, 'String'),
  domain: 'unsigned int',
  bus: 'unsigned int',
  device: 'unsigned int',
  pciDeviceId: 'unsigned int',
  pciSubSystemId: 'unsigned int',
  busId: koffi.array('char', 32, 'String'),
});

const outUint = koffi.out(koffi.pointer('unsigned int'));
const outInt = koffi.out(koffi.pointer('int'));
const outUll = koffi.out(koffi.pointer('unsigned long long'));

export interface Utilization {
  gpu: number;
  memory: number;
}
export interface MemoryInfo {
  total: number | bigint;
  free: number | bigint;
  used: number | bigint;
}
export interface PciInfo {
  busId: string;
}

/**
 * NVML's C API as koffi calls it: each function is declared with its nvml.h signature and returns the
 * `nvmlReturn_t`; values come back through the out-parameter cells. Synchronous: call it on a thread that
 * may block (the collector's own process), never in the API's event loop.
 */
export interface NvmlFunctions {
  nvmlInit_v2(): number;
  nvmlShutdown(): number;
  nvmlErrorString(code: number): string;
  nvmlSystemGetDriverVersion(buffer: Buffer, length: number): number;
  nvmlSystemGetNVMLVersion(buffer: Buffer, length: number): number;
  nvmlSystemGetCudaDriverVersion(version: Cell<number>): number;
  nvmlDeviceGetCount(count: Cell<number>): number;
  nvmlDeviceGetHandleByIndex(index: number, device: Cell<NvmlDevice>): number;
  nvmlDeviceGetName(device: NvmlDevice, buffer: Buffer, length: number): number;
  nvmlDeviceGetUUID(device: NvmlDevice, buffer: Buffer, length: number): number;
  nvmlDeviceGetPciInfo(device: NvmlDevice, pci: Partial<PciInfo>): number;
  nvmlDeviceGetUtilizationRates(device: NvmlDevice, utilization: Partial<Utilization>): number;
  nvmlDeviceGetMemoryInfo(device: NvmlDevice, memory: Partial<MemoryInfo>): number;
  nvmlDeviceGetTemperature(device: NvmlDevice, sensor: number, temperature: Cell<number>): number;
  nvmlDeviceGetPowerUsage(device: NvmlDevice, milliwatts: Cell<number>): number;
  nvmlDeviceGetEnforcedPowerLimit(device: NvmlDevice, milliwatts: Cell<number>): number;
  nvmlDeviceGetComputeMode(device: NvmlDevice, mode: Cell<number>): number;
  nvmlDeviceGetClockInfo(device: NvmlDevice, clock: number, mhz: Cell<number>): number;
  nvmlDeviceGetTotalEnergyConsumption(device: NvmlDevice, millijoules: Cell<number | bigint>): number;
  /** `_v3` (or `_v2`: the same 24-byte `nvmlProcessInfo_t`), or v1's 16-byte struct: see `processInfoSize`. */
  nvmlDeviceGetComputeRunningProcesses(device: NvmlDevice, count: Cell<number>, infos: Buffer | null): number;
  /** The stride of the array `nvmlDeviceGetComputeRunningProcesses` writes. */
  readonly processInfoSize: number;
}

/** The library could not be opened, or lacks a function every driver since R450 has. */
export class NvmlLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NvmlLoadError';
  }
}

type Declared = (...args: never[]) => number;
/** A koffi type: a C type name, a type object or an out/inout marker. */
type ArgType = Parameters<typeof koffi.out>[0] | ReturnType<typeof koffi.out>;

/**
 * Opens `libnvidia-ml.so.1` (or the file at `path`) and declares the functions this binding uses. A
 * function the driver lacks in its newest version falls back to the older one with the same meaning;
 * one that no version has answers NVML_ERROR_FUNCTION_NOT_FOUND, so its field is reported as unsupported.
 */
export function loadNvml(path: string): NvmlFunctions {
  let lib: koffi.LibraryHandle;
  try {
    lib = koffi.load(path);
  } catch (error) {
    throw new NvmlLoadError(`cannot load ${path}: ${(error as Error).message}`);
  }
  const declare = (names: readonly string[], result: string, args: ArgType[]): Declared | undefined => {
    for (const name of names) {
      try {
        return lib.func(name, result, args) as Declared;
      } catch {
        // Not exported by this driver: try the older name.
      }
    }
    return undefined;
  };
  const required = (names: readonly string[], args: ArgType[]): Declared => {
    const fn = declare(names, 'int', args);
    if (fn === undefined) throw new NvmlLoadError(`${path} does not export ${names.join(' or ')}`);
    return fn;
  };
  const optional = (names: readonly string[], args: ArgType[]): Declared =>
    declare(names, 'int', args) ?? (() => NVML.ERROR_FUNCTION_NOT_FOUND);

  const errorString = declare(['nvmlErrorString'], 'const char *', ['int']) as unknown as
    ((code: number) => string) | undefined;
  // The process list: _v3 and _v2 write the 24-byte nvmlProcessInfo_t, the unsuffixed v1 a 16-byte one.
  const processesV2 = declare(
    ['nvmlDeviceGetComputeRunningProcesses_v3', 'nvmlDeviceGetComputeRunningProcesses_v2'],
    'int',
    [DevicePointer, koffi.inout(koffi.pointer('unsigned int')), 'void *'],
  );
  const processesV1 =
    processesV2 === undefined
      ? declare(['nvmlDeviceGetComputeRunningProcesses'], 'int', [
          DevicePointer,
          koffi.inout(koffi.pointer('unsigned int')),
          'void *',
        ])
      : undefined;

  const functions = {
    nvmlInit_v2: required(['nvmlInit_v2', 'nvmlInit'], []),
    nvmlShutdown: required(['nvmlShutdown'], []),
    nvmlErrorString: (code: number): string => errorString?.(code) ?? `NVML error ${code}`,
    nvmlSystemGetDriverVersion: optional(['nvmlSystemGetDriverVersion'], ['char *', 'unsigned int']),
    nvmlSystemGetNVMLVersion: optional(['nvmlSystemGetNVMLVersion'], ['char *', 'unsigned int']),
    nvmlSystemGetCudaDriverVersion: optional(
      ['nvmlSystemGetCudaDriverVersion_v2', 'nvmlSystemGetCudaDriverVersion'],
      [outInt],
    ),
    nvmlDeviceGetCount: required(['nvmlDeviceGetCount_v2', 'nvmlDeviceGetCount'], [outUint]),
    nvmlDeviceGetHandleByIndex: required(
      ['nvmlDeviceGetHandleByIndex_v2', 'nvmlDeviceGetHandleByIndex'],
      ['unsigned int', koffi.out(koffi.pointer(DevicePointer))],
    ),
    nvmlDeviceGetName: optional(['nvmlDeviceGetName'], [DevicePointer, 'char *', 'unsigned int']),
    nvmlDeviceGetUUID: optional(['nvmlDeviceGetUUID'], [DevicePointer, 'char *', 'unsigned int']),
    nvmlDeviceGetPciInfo: optional(
      ['nvmlDeviceGetPciInfo_v3', 'nvmlDeviceGetPciInfo_v2'],
      [DevicePointer, koffi.out(koffi.pointer(PciInfo))],
    ),
    nvmlDeviceGetUtilizationRates: optional(
      ['nvmlDeviceGetUtilizationRates'],
      [DevicePointer, koffi.out(koffi.pointer(Utilization))],
    ),
    nvmlDeviceGetMemoryInfo: optional(
      ['nvmlDeviceGetMemoryInfo'],
      [DevicePointer, koffi.out(koffi.pointer(Memory))],
    ),
    nvmlDeviceGetTemperature: optional(
      ['nvmlDeviceGetTemperature'],
      [DevicePointer, 'unsigned int', outUint],
    ),
    nvmlDeviceGetPowerUsage: optional(['nvmlDeviceGetPowerUsage'], [DevicePointer, outUint]),
    nvmlDeviceGetEnforcedPowerLimit: optional(['nvmlDeviceGetEnforcedPowerLimit'], [DevicePointer, outUint]),
    nvmlDeviceGetComputeMode: optional(['nvmlDeviceGetComputeMode'], [DevicePointer, outUint]),
    nvmlDeviceGetClockInfo: optional(['nvmlDeviceGetClockInfo'], [DevicePointer, 'unsigned int', outUint]),
    nvmlDeviceGetTotalEnergyConsumption: optional(
      ['nvmlDeviceGetTotalEnergyConsumption'],
      [DevicePointer, outUll],
    ),
    nvmlDeviceGetComputeRunningProcesses: processesV2 ?? processesV1 ?? (() => NVML.ERROR_FUNCTION_NOT_FOUND),
    processInfoSize: processesV2 === undefined && processesV1 !== undefined ? 16 : 24,
  };
  // Each declaration carries the nvml.h signature of the name it was bound to, and koffi checks the
  // arguments of every call against it; the interface gives the compiler the same parameters.
  return functions;
}
