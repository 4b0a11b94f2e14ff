import type { CollectionErrorReason } from '../gpu-collector';
import type { GpuSnapshot, ProcessGpuMemory } from '../gpu-snapshot';
import type { NvmlSystemInfo } from './nvml-reader';

/** The API → its NVML collector process. */
export type ToNvmlProcess =
  | { readonly type: 'collect'; readonly id: number; readonly skip: readonly number[] }
  | { readonly type: 'process_memory'; readonly id: number; readonly pid: number }
  | { readonly type: 'close' };

/** The NVML collector process → the API. */
export type FromNvmlProcess =
  | { readonly type: 'ready'; readonly system: NvmlSystemInfo }
  | { readonly type: 'init_failed'; readonly message: string }
  | { readonly type: 'snapshot'; readonly id: number; readonly snapshot: GpuSnapshot }
  | { readonly type: 'process_memory'; readonly id: number; readonly memory: ProcessGpuMemory }
  | {
      readonly type: 'failed';
      readonly id: number;
      readonly reason: CollectionErrorReason;
      readonly message: string;
    }
  | { readonly type: 'closed' };
