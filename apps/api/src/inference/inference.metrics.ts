import { counterProvider, gaugeProvider, histogramProvider, tenantCounterProvider } from '@app/monitoring';
import type { Gauge } from 'prom-client';
import { INFERENCE_METRICS } from './inference.metrics-names';
import { ModelRegistry } from './model-registry.service';

export { INFERENCE_METRICS };

/** The `model` label for a name that is not a configured model: one value, whatever the client sent. */
export const UNKNOWN_MODEL_LABEL = 'unknown';

/** Seed 003: 10 buckets from 10 ms to 30 s. */
export const INFERENCE_DURATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30];
/** Seed 003: 9 buckets. */
export const QUEUE_WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5];
/** Seed 003: 6 buckets (per batch). */
export const COMPUTE_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.25, 1];
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64];
export const DECODE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5];

export const inferenceMetricProviders = [
  counterProvider({
    name: INFERENCE_METRICS.requests,
    help: 'Inference requests, by model and robot type (unknown ones folded into `unknown`) and status (success, or the error code).',
    labelNames: ['model', 'robot_type', 'status'],
  }),
  histogramProvider({
    name: INFERENCE_METRICS.duration,
    help: 'Time from receiving an inference request to its answer, for requests the model ran, in seconds.',
    labelNames: ['model'],
    buckets: INFERENCE_DURATION_BUCKETS,
  }),
  histogramProvider({
    name: INFERENCE_METRICS.queueWait,
    help: "Time a request waited in its model's queue (until a worker took it, or it was dropped), in seconds.",
    labelNames: ['model'],
    buckets: QUEUE_WAIT_BUCKETS,
  }),
  histogramProvider({
    name: INFERENCE_METRICS.compute,
    help: 'Forward-pass time (session.run) of each batch on its device (CPU or GPU), in seconds.',
    labelNames: ['model', 'device'],
    buckets: COMPUTE_BUCKETS,
  }),
  histogramProvider({
    name: INFERENCE_METRICS.batchSize,
    help: 'Requests per forward pass.',
    labelNames: ['model'],
    buckets: BATCH_SIZE_BUCKETS,
  }),
  gaugeProvider({
    name: INFERENCE_METRICS.queueDepth,
    help: 'Requests waiting for a worker, per model (running ones excluded).',
    labelNames: ['model'],
    inject: [ModelRegistry],
    collect(this: Gauge, registry: ModelRegistry) {
      for (const m of registry.queues()) this.set({ model: m.id }, m.snapshot.depth);
    },
  }),
  gaugeProvider({
    name: INFERENCE_METRICS.queueCapacity,
    help: 'Most requests that may wait per model; beyond it requests get 503 queue_full.',
    labelNames: ['model'],
    inject: [ModelRegistry],
    collect(this: Gauge, registry: ModelRegistry) {
      for (const m of registry.queues()) this.set({ model: m.id }, m.snapshot.capacity);
    },
  }),
  gaugeProvider({
    name: INFERENCE_METRICS.queueUtilization,
    help: 'Queue depth / capacity per model, 0-1 (1: full, new requests are refused).',
    labelNames: ['model'],
    inject: [ModelRegistry],
    collect(this: Gauge, registry: ModelRegistry) {
      for (const m of registry.queues()) this.set({ model: m.id }, m.snapshot.utilization);
    },
  }),
  counterProvider({
    name: INFERENCE_METRICS.validationFailures,
    help: 'Inference requests refused before the queue, by model (unknown folded into one value) and reason.',
    labelNames: ['model', 'reason'],
  }),
  counterProvider({
    name: INFERENCE_METRICS.imageErrors,
    help: 'Images refused, by model and reason (unsupported_format, too_many_pixels, truncated, ...).',
    labelNames: ['model', 'reason'],
  }),
  histogramProvider({
    name: INFERENCE_METRICS.imageDecode,
    help: 'Time to decode and resize one image (or to check a raw one), by source format, in seconds.',
    labelNames: ['model', 'format'],
    buckets: DECODE_BUCKETS,
  }),
  gaugeProvider({
    name: INFERENCE_METRICS.modelLoad,
    help: 'How long loading each model took at start (session creation and warm-up), in seconds.',
    labelNames: ['model'],
    inject: [ModelRegistry],
    collect(this: Gauge, registry: ModelRegistry) {
      for (const m of registry.list())
        if (m.loadMs !== undefined) this.set({ model: m.config.id }, m.loadMs / 1000);
    },
  }),
  gaugeProvider({
    name: INFERENCE_METRICS.modelMemory,
    help: 'Resident memory the process grew by while a model loaded (measured by its first worker; loads run in parallel, so overlapping growth is shared), in bytes.',
    labelNames: ['model'],
    inject: [ModelRegistry],
    collect(this: Gauge, registry: ModelRegistry) {
      for (const m of registry.list()) {
        if (m.memoryBytes !== undefined) this.set({ model: m.config.id }, m.memoryBytes);
      }
    },
  }),
  gaugeProvider({
    name: INFERENCE_METRICS.modelsLoaded,
    help: 'Models loaded and serving on this replica.',
    inject: [ModelRegistry],
    collect(this: Gauge, registry: ModelRegistry) {
      this.set(registry.list().filter((m) => m.status === 'ready').length);
    },
  }),
  gaugeProvider({
    name: INFERENCE_METRICS.modelInfo,
    help: 'One series per configured model with its facts; 1 when it serves, 0 when unavailable.',
    labelNames: ['model', 'version', 'backend', 'device', 'status'],
    inject: [ModelRegistry],
    collect(this: Gauge, registry: ModelRegistry) {
      this.reset();
      for (const m of registry.list()) {
        this.set(
          {
            model: m.config.id,
            version: m.config.version,
            backend: m.config.backend,
            device: m.device,
            status: m.status,
          },
          m.status === 'ready' ? 1 : 0,
        );
      }
    },
  }),
  gaugeProvider({
    name: INFERENCE_METRICS.workersActive,
    help: 'Worker threads alive and loaded, per model.',
    labelNames: ['model'],
    inject: [ModelRegistry],
    collect(this: Gauge, registry: ModelRegistry) {
      for (const m of registry.list()) this.set({ model: m.config.id }, m.workers?.active ?? 0);
    },
  }),
  gaugeProvider({
    name: INFERENCE_METRICS.workerUtilization,
    help: "Share of the model's worker time spent on batches since the previous scrape, 0-100.",
    labelNames: ['model'],
    inject: [ModelRegistry],
    collect(this: Gauge, registry: ModelRegistry) {
      for (const m of registry.list())
        this.set({ model: m.config.id }, registry.utilizationPercent(m.config.id));
    },
  }),
  histogramProvider({
    name: INFERENCE_METRICS.workerTask,
    help: 'Time a worker spent on one batch (packing tensors, the forward pass, unpacking), in seconds.',
    labelNames: ['model'],
    buckets: INFERENCE_DURATION_BUCKETS,
  }),
  counterProvider({
    name: INFERENCE_METRICS.workerCrashes,
    help: 'Worker threads that died and were replaced, per model.',
    labelNames: ['model'],
  }),
  tenantCounterProvider({
    name: INFERENCE_METRICS.tenantCompute,
    help: "Compute seconds charged per tenant and model: each request's share of its batch's forward pass.",
    labelNames: ['model'],
  }),
];
