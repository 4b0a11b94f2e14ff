/** `nvmlReturn_t` values from nvml.h, the ones this binding distinguishes. */
export const NVML = {
  SUCCESS: 0,
  ERROR_UNINITIALIZED: 1,
  ERROR_INVALID_ARGUMENT: 2,
  ERROR_NOT_SUPPORTED: 3,
  ERROR_NO_PERMISSION: 4,
  ERROR_ALREADY_INITIALIZED: 5,
  ERROR_NOT_FOUND: 6,
  ERROR_INSUFFICIENT_SIZE: 7,
  ERROR_INSUFFICIENT_POWER: 8,
  ERROR_DRIVER_NOT_LOADED: 9,
  ERROR_TIMEOUT: 10,
  ERROR_IRQ_ISSUE: 11,
  ERROR_LIBRARY_NOT_FOUND: 12,
  ERROR_FUNCTION_NOT_FOUND: 13,
  ERROR_CORRUPTED_INFOROM: 14,
  ERROR_GPU_IS_LOST: 15,
  ERROR_RESET_REQUIRED: 16,
  ERROR_OPERATING_SYSTEM: 17,
  ERROR_LIB_RM_VERSION_MISMATCH: 18,
  ERROR_IN_USE: 19,
  ERROR_MEMORY: 20,
  ERROR_NO_DATA: 21,
  ERROR_VGPU_ECC_NOT_SUPPORTED: 22,
  ERROR_INSUFFICIENT_RESOURCES: 23,
  ERROR_FREQ_NOT_SUPPORTED: 24,
  ERROR_ARGUMENT_VERSION_MISMATCH: 25,
  ERROR_DEPRECATED: 26,
  ERROR_NOT_READY: 27,
  ERROR_GPU_NOT_FOUND: 28,
  ERROR_INVALID_STATE: 29,
  ERROR_UNKNOWN: 999,
} as const;

const NAMES = new Map<number, string>(
  Object.entries(NVML).map(([key, value]) => [value, key.replace(/^ERROR_/, '').toLowerCase()]),
);

/** `gpu_is_lost` for 15, `unknown_42` for a code this table does not know. */
export function nvmlCodeName(code: number): string {
  return NAMES.get(code) ?? `unknown_${code}`;
}

/** Codes after which a device answers nothing until it is reset: it is marked unhealthy. */
export const DEVICE_LOST_CODES: ReadonlySet<number> = new Set([
  NVML.ERROR_GPU_IS_LOST,
  NVML.ERROR_RESET_REQUIRED,
  NVML.ERROR_GPU_NOT_FOUND,
]);

/** NVML_VALUE_NOT_AVAILABLE for unsigned long long fields (`usedGpuMemory` on some platforms). */
export const NVML_VALUE_NOT_AVAILABLE_ULL = 0xffff_ffff_ffff_ffffn;

/** `nvmlTemperatureSensors_t`. */
export const NVML_TEMPERATURE_GPU = 0;
/** `nvmlClockType_t`. */
export const NVML_CLOCK = { GRAPHICS: 0, SM: 1, MEM: 2, VIDEO: 3 } as const;

/** Buffer sizes from nvml.h (the `_V2` ones, the largest). */
export const NVML_BUFFER = {
  DEVICE_NAME: 96,
  DEVICE_UUID: 96,
  SYSTEM_DRIVER_VERSION: 80,
  SYSTEM_NVML_VERSION: 80,
} as const;

/**
 * `nvmlProcessInfo_t` as `nvmlDeviceGetComputeRunningProcesses_v3` writes it: `unsigned int pid;
 * unsigned long long usedGpuMemory; unsigned int gpuInstanceId; unsigned int computeInstanceId;`, 24 bytes
 * with the padding after `pid`. (nvml.h of CUDA 12.2 briefly appended `usedGpuCcProtectedMemory` to this
 * struct; drivers never wrote it there, and later headers moved it to `nvmlProcessDetail_v1_t`.)
 */
export const PROCESS_INFO = { size: 24, pid: 0, usedGpuMemory: 8 } as const;
/** `nvmlProcessInfo_v1_t` for drivers without `_v2`/`_v3`: `pid`, `usedGpuMemory`, 16 bytes. */
export const PROCESS_INFO_V1 = { size: 16, pid: 0, usedGpuMemory: 8 } as const;
