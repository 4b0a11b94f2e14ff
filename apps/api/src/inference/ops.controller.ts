import { Controller, Get } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { RequireScope } from '../auth/auth.decorators';
import { ModelRegistry } from './model-registry.service';

const QueueStatsSchema = z
  .object({
    models: z.array(
      z.object({
        model: z.string(),
        depth: z.number().int(),
        capacity: z.number().int(),
        utilization: z.number(),
        workers_busy: z.number().int(),
        workers_total: z.number().int(),
        workers_active: z.number().int(),
        oldest_wait_ms: z.number(),
        tenants_waiting: z.number().int(),
        rejected: z.object({
          queue_full: z.number().int(),
          deadline_exceeded: z.number().int(),
          client_closed: z.number().int(),
        }),
      }),
    ),
  })
  .meta({ id: 'QueueStats' });

const ModelStatsSchema = z
  .object({
    models: z.array(
      z.object({
        model: z.string(),
        version: z.string(),
        backend: z.string(),
        device: z.string(),
        status: z.enum(['loading', 'ready', 'unavailable']),
        reason: z.string().nullable(),
        loaded_at: z.string().nullable(),
        load_ms: z.number().nullable(),
        memory_bytes: z.number().nullable(),
        requests: z.number().int(),
        errors: z.number().int(),
        batches: z.number().int(),
        batch_sizes: z.record(z.string(), z.number().int()),
        mean_batch_size: z.number().nullable(),
        max_batch_size: z.number().int(),
        workers: z.number().int(),
      }),
    ),
  })
  .meta({ id: 'ModelStats' });

/** Operators' views of the queues and the models (scope ops). */
@ApiTags('operations')
@ApiSecurity('api-key')
@RequireScope('ops')
@Controller()
export class InferenceOpsController {
  constructor(private readonly registry: ModelRegistry) {}

  @Get('queue/stats')
  @ApiOperation({ summary: 'Per-model queue depth, capacity, workers and refusals (scope ops)' })
  @ApiOkResponse({ standardSchema: QueueStatsSchema })
  queueStats(): z.infer<typeof QueueStatsSchema> {
    return {
      models: this.registry.queues().map(({ id, snapshot, workers }) => ({
        model: id,
        depth: snapshot.depth,
        capacity: snapshot.capacity,
        utilization: snapshot.utilization,
        workers_busy: snapshot.workersBusy,
        workers_total: workers.size,
        workers_active: workers.active,
        oldest_wait_ms: Math.round(snapshot.oldestWaitMs * 1000) / 1000,
        tenants_waiting: snapshot.tenantsWaiting,
        rejected: { ...snapshot.rejected },
      })),
    };
  }

  @Get('models/stats')
  @ApiOperation({
    summary: 'Per-model status, load time, memory, requests, errors and batch sizes (scope ops)',
  })
  @ApiOkResponse({ standardSchema: ModelStatsSchema })
  modelStats(): z.infer<typeof ModelStatsSchema> {
    return {
      models: this.registry.list().map((m) => {
        let batches = 0;
        let items = 0;
        for (const [size, count] of m.batchSizes) {
          batches += count;
          items += size * count;
        }
        return {
          model: m.config.id,
          version: m.config.version,
          backend: m.config.backend,
          device: m.device,
          status: m.status,
          reason: m.reason ?? null,
          loaded_at: m.loadedAt?.toISOString() ?? null,
          load_ms: m.loadMs === undefined ? null : Math.round(m.loadMs * 1000) / 1000,
          memory_bytes: m.memoryBytes ?? null,
          requests: m.requests,
          errors: m.errors,
          batches,
          batch_sizes: Object.fromEntries(
            [...m.batchSizes].sort((a, b) => a[0] - b[0]).map(([k, v]) => [String(k), v]),
          ),
          mean_batch_size: batches === 0 ? null : items / batches,
          max_batch_size: m.config.maxBatchSize,
          workers: m.config.workers,
        };
      }),
    };
  }
}
