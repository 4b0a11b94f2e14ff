import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { GpuMemoryTracker } from '@app/gpu';
import { InjectMetric } from '@app/monitoring';
import { RobotProfiles } from '@app/safety';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Counter, Histogram } from 'prom-client';
import { APP_CONFIG, type AppConfig } from '../config';
import { ROOT_LOGGER } from '../logging/logging.constants';
import type { ModelConfig } from './model-config';
import { checkModelAgainstProfiles, loadModelConfigs } from './model-config.loader';
import { GpuMeasuredRunner } from './gpu-measured-runner';
import { type QueueSnapshot, ModelScheduler } from './model-scheduler';
import { ModelWorkers } from './model-workers';
import { ModelLoadError } from './model-interface';
import { INFERENCE_METRICS } from './inference.metrics-names';

/** Models the registry was given directly (tests), instead of reading MODELS_DIR. */
export const MODEL_CONFIGS = Symbol('MODEL_CONFIGS');

export type ModelStatus = 'loading' | 'ready' | 'unavailable';

/** One configured model, whether it loaded or not. */
export interface ModelEntry {
  readonly config: ModelConfig;
  status: ModelStatus;
  /** Why it is unavailable (a load error, path-free). */
  reason?: string;
  /** The device it runs on (`cuda` may have fallen back to `cpu`). */
  device: 'cpu' | 'cuda';
  loadedAt?: Date;
  loadMs?: number;
  memoryBytes?: number;
  workers?: ModelWorkers;
  scheduler?: ModelScheduler;
  /** Requests answered and failed after reaching the model, for /models/stats. */
  requests: number;
  errors: number;
  /** Batches run, by size. */
  batchSizes: Map<number, number>;
}

/**
 * The models of this replica: read from MODELS_DIR (validated against the robot profiles; a bad config
 * stops the start), loaded at start into their Worker threads (a model that fails to load is listed as
 * unavailable with its reason and the rest serve), each with its own scheduler.
 */
@Injectable()
export class ModelRegistry implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly entries = new Map<string, ModelEntry>();
  /** Per model: busy ms and wall time at the previous utilisation read. */
  private readonly utilisationMarks = new Map<string, { busyMs: number; at: number }>();

  constructor(
    @Inject(APP_CONFIG) private readonly appConfig: AppConfig,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    @Inject(MODEL_CONFIGS) configs: readonly ModelConfig[] | null,
    profiles: RobotProfiles,
    private readonly gpuMemory: GpuMemoryTracker,
    @InjectMetric(INFERENCE_METRICS.workerCrashes) private readonly crashes: Counter<'model'>,
    @InjectMetric(INFERENCE_METRICS.compute) private readonly compute: Histogram<'model' | 'device'>,
    @InjectMetric(INFERENCE_METRICS.batchSize) private readonly batchSize: Histogram<'model'>,
    @InjectMetric(INFERENCE_METRICS.workerTask) private readonly workerTask: Histogram<'model'>,
    @InjectMetric(INFERENCE_METRICS.queueWait) private readonly queueWait: Histogram<'model'>,
  ) {
    const list = configs ?? loadModelConfigs(appConfig.models.dir);
    for (const config of list) {
      checkModelAgainstProfiles(config, profiles);
      this.entries.set(config.id, {
        config,
        status: 'loading',
        device: config.device,
        requests: 0,
        errors: 0,
        batchSizes: new Map(),
      });
    }
  }

  /** Loads every model before the server listens (Nest awaits this), in parallel. */
  async onApplicationBootstrap(): Promise<void> {
    await Promise.all([...this.entries.values()].map((entry) => this.load(entry)));
    const ready = this.list().filter((m) => m.status === 'ready').length;
    this.logger.info(
      { component: 'inference', models_ready: ready, models_total: this.entries.size },
      'models loaded',
    );
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all([...this.entries.values()].map(async (entry) => entry.workers?.close()));
  }

  get(id: string): ModelEntry | undefined {
    return this.entries.get(id);
  }

  list(): ModelEntry[] {
    return [...this.entries.values()];
  }

  /** Queue snapshots of the models that serve. */
  queues(): { id: string; snapshot: QueueSnapshot; workers: ModelWorkers }[] {
    const out: { id: string; snapshot: QueueSnapshot; workers: ModelWorkers }[] = [];
    for (const entry of this.entries.values()) {
      if (entry.scheduler !== undefined && entry.workers !== undefined) {
        out.push({ id: entry.config.id, snapshot: entry.scheduler.snapshot(), workers: entry.workers });
      }
    }
    return out;
  }

  /** Models whose pending work completed nothing for MODEL_STALL_TIMEOUT_MS, with how long. */
  stalled(now = performance.now()): { id: string; stalledMs: number }[] {
    const out: { id: string; stalledMs: number }[] = [];
    for (const entry of this.entries.values()) {
      const ms = entry.scheduler?.stalledFor(this.appConfig.models.stallTimeoutMs, now);
      if (ms !== undefined) out.push({ id: entry.config.id, stalledMs: Math.round(ms) });
    }
    return out;
  }

  /** Busy share of a model's workers since the previous call, 0-100. */
  utilizationPercent(id: string, now = performance.now()): number {
    const workers = this.entries.get(id)?.workers;
    if (workers === undefined) return 0;
    const busyMs = workers.busyMs(now);
    const mark = this.utilisationMarks.get(id) ?? { busyMs: 0, at: now };
    this.utilisationMarks.set(id, { busyMs, at: now });
    const wall = (now - mark.at) * workers.size;
    return wall <= 0 ? 0 : Math.min(100, Math.max(0, ((busyMs - mark.busyMs) / wall) * 100));
  }

  private async load(entry: ModelEntry): Promise<void> {
    const { config } = entry;
    const attempt = async (providers: string[]): Promise<ModelWorkers> => {
      const workers = new ModelWorkers(config, {
        executionProviders: providers,
        onCrash: (reason) => {
          this.crashes.inc({ model: config.id });
          this.logger.error(
            { component: 'inference', model: config.id, reason },
            'inference worker died; replacing it',
          );
        },
        onAvailable: () => entry.scheduler?.pump(),
      });
      const info = await workers.start();
      entry.loadMs = info.loadMs;
      entry.memoryBytes = info.memoryBytes;
      return workers;
    };
    try {
      let workers: ModelWorkers;
      if (config.device === 'cuda') {
        try {
          workers = await attempt(['cuda', 'cpu']);
        } catch (error) {
          // A missing file or a model.yaml that does not match it fails the same on the CPU: no second try.
          if (!fallsBackToCpu(error)) throw error;
          workers = await attempt(['cpu']);
          entry.device = 'cpu';
          // Logged once the CPU has loaded it, so the line never announces a fallback that then failed.
          this.logger.warn(
            {
              component: 'inference',
              model: config.id,
              requested_device: 'cuda',
              device: 'cpu',
              onnxruntime_error: (error as Error).message,
            },
            'device cuda requested but the CUDA execution provider is not usable: running on CPU',
          );
        }
      } else {
        workers = await attempt(['cpu']);
      }
      entry.workers = workers;
      // Only a model on the GPU has a per-batch GPU memory delta; measuring a CPU model's would cost it
      // a sample per batch for a number that is always 0.
      const runner =
        entry.device === 'cuda' ? new GpuMeasuredRunner(workers, this.gpuMemory, config.id) : workers;
      entry.scheduler = new ModelScheduler(config, runner, {
        onDequeue: (waitedMs) => this.queueWait.observe({ model: config.id }, waitedMs / 1000),
        onBatch: (size, result) => {
          entry.batchSizes.set(size, (entry.batchSizes.get(size) ?? 0) + 1);
          this.batchSize.observe({ model: config.id }, size);
          if (result !== undefined) {
            this.compute.observe({ model: config.id, device: entry.device }, result.computeMs / 1000);
            this.workerTask.observe({ model: config.id }, result.taskMs / 1000);
          }
        },
      });
      entry.status = 'ready';
      entry.loadedAt = new Date();
      this.logger.info(
        {
          component: 'inference',
          model: config.id,
          version: config.version,
          device: entry.device,
          workers: config.workers,
          load_ms: Math.round(entry.loadMs ?? 0),
        },
        'model loaded',
      );
    } catch (error) {
      entry.status = 'unavailable';
      entry.reason = (error as Error).message;
      this.logger.error(
        {
          component: 'inference',
          model: config.id,
          reason: entry.reason,
          ...(error instanceof ModelLoadError
            ? { stage: error.stage, ...(error.problems.length > 0 ? { problems: error.problems } : {}) }
            : {}),
        },
        'model failed to load; it is listed as unavailable',
      );
    }
  }
}

/**
 * Whether a load that failed with the CUDA provider is worth a second try on the CPU alone: when ONNX Runtime
 * refused the session (the provider's libraries did not load) or the warm-up failed on it. A missing file or
 * an interface mismatch does not depend on the provider.
 */
function fallsBackToCpu(error: unknown): boolean {
  return !(error instanceof ModelLoadError) || error.stage === 'session' || error.stage === 'dry_run';
}
