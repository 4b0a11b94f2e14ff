import { Controller, Get } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { type GpuDevice, GpuTelemetry, memoryPercent } from '@app/gpu';
import { z } from 'zod';
import { RequireScope } from '../auth/auth.decorators';

const GB = 1e9;

const GpuDeviceSchema = z.object({
  index: z.number().int(),
  uuid: z.string().optional(),
  name: z.string().optional(),
  pci_bus_id: z.string().optional(),
  healthy: z.boolean(),
  error: z.string().optional().describe('Why the device is unhealthy, or why telemetry failed.'),
  utilization: z
    .object({ gpu_percent: z.number().optional(), memory_copy_percent: z.number().optional() })
    .optional(),
  memory: z
    .object({
      total_bytes: z.number().optional(),
      used_bytes: z.number().optional(),
      free_bytes: z.number().optional(),
      total_gb: z.number().optional(),
      used_gb: z.number().optional(),
      free_gb: z.number().optional(),
      used_percent: z.number().optional(),
    })
    .optional()
    .describe('GB are 10^9 bytes.'),
  temperature_celsius: z.number().optional(),
  power: z
    .object({
      watts: z.number().optional(),
      limit_watts: z.number().optional(),
      percent_of_limit: z.number().optional(),
    })
    .optional(),
  compute_mode: z.enum(['default', 'exclusive_thread', 'prohibited', 'exclusive_process']).optional(),
  clocks: z.object({ sm_mhz: z.number().optional(), memory_mhz: z.number().optional() }).optional(),
  energy_joules: z.number().optional(),
  processes: z
    .array(
      z.object({
        pid: z.number().int(),
        used_memory_bytes: z.number().optional(),
        this_process: z.boolean(),
      }),
    )
    .optional(),
  field_errors: z.record(z.string(), z.string()).optional(),
});

export const GpuStatsSchema = z
  .object({
    status: z
      .enum(['ok', 'degraded', 'failing', 'disabled', 'starting', 'stopped'])
      .describe(
        'ok: every device read; degraded: a device is lost; failing: the last collection failed; disabled: no GPU telemetry here.',
      ),
    source: z.enum(['nvml', 'nvidia-smi']).nullable(),
    reason: z.string().nullable().describe('Why telemetry is disabled or failing.'),
    collected_at: z.string().nullable().describe('ISO 8601 time of the last successful collection.'),
    collection_ms: z.number().nullable(),
    driver_version: z.string().nullable(),
    cuda_driver_version: z.string().nullable(),
    nvml_version: z.string().nullable(),
    device_count: z.number().int(),
    devices: z.array(GpuDeviceSchema),
  })
  .meta({ id: 'GpuStats' });
export type GpuStats = z.infer<typeof GpuStatsSchema>;

/** Only the entries that are defined; undefined when none is (the group is left out). */
function group<T extends Record<string, number | undefined>>(values: T): Partial<T> | undefined {
  const defined = Object.entries(values).filter(([, v]) => v !== undefined);
  return defined.length === 0 ? undefined : (Object.fromEntries(defined) as Partial<T>);
}

const round = (value: number | undefined, digits: number): number | undefined =>
  value === undefined ? undefined : Number(value.toFixed(digits));

function deviceView(device: GpuDevice, pid: number): z.infer<typeof GpuDeviceSchema> {
  const limit = device.powerLimitWatts;
  const view: z.infer<typeof GpuDeviceSchema> = {
    index: device.index,
    uuid: device.uuid,
    name: device.name,
    pci_bus_id: device.pciBusId,
    healthy: device.healthy,
    error: device.error,
    utilization: group({
      gpu_percent: device.utilizationGpuPercent,
      memory_copy_percent: device.utilizationMemoryPercent,
    }),
    memory: group({
      total_bytes: device.memoryTotalBytes,
      used_bytes: device.memoryUsedBytes,
      free_bytes: device.memoryFreeBytes,
      total_gb: round(device.memoryTotalBytes === undefined ? undefined : device.memoryTotalBytes / GB, 2),
      used_gb: round(device.memoryUsedBytes === undefined ? undefined : device.memoryUsedBytes / GB, 2),
      free_gb: round(device.memoryFreeBytes === undefined ? undefined : device.memoryFreeBytes / GB, 2),
      used_percent: round(memoryPercent(device), 2),
    }),
    temperature_celsius: device.temperatureCelsius,
    power: group({
      watts: device.powerWatts,
      limit_watts: limit,
      percent_of_limit:
        device.powerWatts === undefined || limit === undefined || limit === 0
          ? undefined
          : round((device.powerWatts / limit) * 100, 2),
    }),
    compute_mode: device.computeMode,
    clocks: group({ sm_mhz: device.smClockMhz, memory_mhz: device.memoryClockMhz }),
    energy_joules: device.energyJoules,
    processes: device.processes?.map((p) => ({
      pid: p.pid,
      used_memory_bytes: p.usedMemoryBytes,
      this_process: p.pid === pid,
    })),
    field_errors: device.fieldErrors === undefined ? undefined : { ...device.fieldErrors },
  };
  // Absent, not null: a field the device does not support is left out of the answer.
  return JSON.parse(JSON.stringify(view)) as z.infer<typeof GpuDeviceSchema>;
}

/** What the GPUs report now (scope ops). */
@ApiTags('operations')
@ApiSecurity('api-key')
@RequireScope('ops')
@Controller('gpu')
export class GpuController {
  constructor(private readonly telemetry: GpuTelemetry) {}

  @Get('stats')
  @ApiOperation({
    summary:
      'Every GPU: utilization, memory, temperature, power, clocks, processes, and where the numbers came from (scope ops)',
  })
  @ApiOkResponse({ standardSchema: GpuStatsSchema })
  stats(): GpuStats {
    const status = this.telemetry.status();
    const snapshot = status.snapshot;
    const devices = snapshot?.devices ?? [];
    const state = status.state === 'running' && devices.some((d) => !d.healthy) ? 'degraded' : status.state;
    return {
      status: state === 'running' ? 'ok' : state,
      source: status.source,
      reason: status.reason,
      collected_at: status.lastSuccessAt === null ? null : new Date(status.lastSuccessAt).toISOString(),
      collection_ms: snapshot === null ? null : Math.round(snapshot.durationMs * 1000) / 1000,
      driver_version: snapshot?.driverVersion ?? null,
      cuda_driver_version: snapshot?.cudaDriverVersion ?? null,
      nvml_version: snapshot?.nvmlVersion ?? null,
      device_count: devices.length,
      devices: devices.map((d) => deviceView(d, this.telemetry.trackedPid)),
    };
  }
}
