import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { InjectMetric } from '@app/monitoring';
import { performance } from 'node:perf_hooks';
import type { Counter, Gauge, Histogram } from 'prom-client';
import { CollectionError, type CollectionErrorReason, type GpuCollector } from './gpu-collector';
import { COMPUTE_MODES, type GpuDevice, type GpuSnapshot, type GpuSource } from './gpu-snapshot';
import { GPU_METRICS, type GpuMetrics } from './gpu.metrics';
import { GPU_OPTIONS, type GpuModuleOptions, SAMPLE_TIMEOUT_MS } from './gpu.options';
import { CounterSeries, GaugeSeries } from './metric-series';
import { NvmlCollector } from './nvml/nvml-collector';
import { NvidiaSmiCollector, nvidiaSmiAvailable } from './smi/nvidia-smi';

/**
 * - `starting`: looking for a source; `disabled`: telemetry is off or no source was found (a CPU host);
 * - `running`: the last collection succeeded; `failing`: it did not (the poll backs off);
 * - `stopped`: the application is shutting down.
 */
export type TelemetryState = 'starting' | 'disabled' | 'running' | 'failing' | 'stopped';

/** Telemetry as operators see it (`/gpu/stats`, the health indicator). */
export interface TelemetryStatus {
  readonly state: TelemetryState;
  readonly source: GpuSource | null;
  /** Why telemetry is disabled, or why the last collection failed. */
  readonly reason: string | null;
  readonly lastSuccessAt: number | null;
  readonly consecutiveFailures: number;
  /** When the collection still running past its timeout began (a hung driver): no other starts meanwhile. */
  readonly hungSince: number | null;
  /** The last successful collection; while failing, devices keep their identity and carry the error. */
  readonly snapshot: GpuSnapshot | null;
}

interface LostDevice {
  readonly device: GpuDevice;
  probes: number;
  nextProbeAt: number;
}

const DEFAULT_MAX_BACKOFF_MS = 60_000;
const DEFAULT_START_WAIT_MS = 2_000;
/** NVML's start can take seconds on a host with many GPUs and no persistence daemon. */
const NVML_START_TIMEOUT_MS = 15_000;
/** The longest shutdown waits for a start in progress, and for the collector to close. */
const SHUTDOWN_WAIT_MS = 2_000;

/**
 * Polls the GPUs every `pollIntervalMs`, off the request path: NVML in a child process of its own, or
 * `nvidia-smi` as a child process. A collection never overlaps the previous one; one that exceeds
 * `collectTimeoutMs` counts as failed and the next waits until it has ended. While collections fail the
 * interval doubles up to `maxBackoffMs`; a lost device is probed on the same doubling schedule while the
 * others are read at the normal rate. Each failure streak and each lost device is logged once, with one
 * line more when it ends. Device series exist only for what the last collection read: a device that stops
 * answering, or a collection that fails, removes them rather than leaving stale values.
 */
@Injectable()
export class GpuTelemetry implements OnApplicationBootstrap, OnApplicationShutdown {
  private state: TelemetryState = 'starting';
  private reason: string | null = null;
  private collector: GpuCollector | undefined;
  private source: GpuSource | null = null;
  /** The last successful collection, lost devices merged in. */
  private lastGood: GpuSnapshot | null = null;
  private lastSuccessAt: number | null = null;
  private failures = 0;
  private inFlightSince: number | null = null;
  private timer: NodeJS.Timeout | undefined;
  private started: Promise<void> | undefined;
  private readonly lost = new Map<number, LostDevice>();
  private readonly maxBackoffMs: number;
  private readonly pid: number;

  private readonly values: Record<
    | 'utilization'
    | 'memoryCopyUtilization'
    | 'memoryUsed'
    | 'memoryTotal'
    | 'memoryUtilization'
    | 'temperature'
    | 'power'
    | 'powerLimit'
    | 'computeMode'
    | 'clock'
    | 'processMemory'
    | 'deviceHealthy'
    | 'info',
    GaugeSeries
  >;
  private readonly energySeries: CounterSeries;
  private readonly upSeries: GaugeSeries;

  constructor(
    @Inject(GPU_OPTIONS) private readonly options: GpuModuleOptions,
    @InjectMetric(GPU_METRICS.utilization) utilization: Gauge<string>,
    @InjectMetric(GPU_METRICS.memoryCopyUtilization) memoryCopyUtilization: Gauge<string>,
    @InjectMetric(GPU_METRICS.memoryUsed) memoryUsed: Gauge<string>,
    @InjectMetric(GPU_METRICS.memoryTotal) memoryTotal: Gauge<string>,
    @InjectMetric(GPU_METRICS.memoryUtilization) memoryUtilization: Gauge<string>,
    @InjectMetric(GPU_METRICS.temperature) temperature: Gauge<string>,
    @InjectMetric(GPU_METRICS.power) power: Gauge<string>,
    @InjectMetric(GPU_METRICS.powerLimit) powerLimit: Gauge<string>,
    @InjectMetric(GPU_METRICS.energy) energy: Counter<string>,
    @InjectMetric(GPU_METRICS.computeMode) computeMode: Gauge<string>,
    @InjectMetric(GPU_METRICS.clock) clock: Gauge<string>,
    @InjectMetric(GPU_METRICS.processMemory) processMemory: Gauge<string>,
    @InjectMetric(GPU_METRICS.deviceHealthy) deviceHealthy: Gauge<string>,
    @InjectMetric(GPU_METRICS.info) info: Gauge<string>,
    @InjectMetric(GPU_METRICS.collectorUp) up: Gauge<string>,
    @InjectMetric(GPU_METRICS.collectionErrors) private readonly errors: Counter<string>,
    @InjectMetric(GPU_METRICS.lastSuccess) private readonly lastSuccess: Gauge<string>,
    @InjectMetric(GPU_METRICS.collectionDuration) private readonly duration: Histogram<string>,
  ) {
    this.maxBackoffMs = Math.max(options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS, options.pollIntervalMs);
    this.pid = options.pid ?? process.pid;
    const series = (gauge: Gauge<string>) => new GaugeSeries(gauge);
    this.values = {
      utilization: series(utilization),
      memoryCopyUtilization: series(memoryCopyUtilization),
      memoryUsed: series(memoryUsed),
      memoryTotal: series(memoryTotal),
      memoryUtilization: series(memoryUtilization),
      temperature: series(temperature),
      power: series(power),
      powerLimit: series(powerLimit),
      computeMode: series(computeMode),
      clock: series(clock),
      processMemory: series(processMemory),
      deviceHealthy: series(deviceHealthy),
      info: series(info),
    };
    this.energySeries = new CounterSeries(energy);
    this.upSeries = series(up);
  }

  /** A telemetry outside Nest (benchmarks, tests), recording into `m` (see `gpuMetricsIn`). */
  static standalone(options: GpuModuleOptions, m: GpuMetrics): GpuTelemetry {
    return new GpuTelemetry(
      options,
      m.utilization,
      m.memoryCopyUtilization,
      m.memoryUsed,
      m.memoryTotal,
      m.memoryUtilization,
      m.temperature,
      m.power,
      m.powerLimit,
      m.energy,
      m.computeMode,
      m.clock,
      m.processMemory,
      m.deviceHealthy,
      m.info,
      m.collectorUp,
      m.collectionErrors,
      m.lastSuccess,
      m.collectionDuration,
    );
  }

  /** Finds a source and runs the first collection, waiting at most `startWaitMs` for both. */
  async onApplicationBootstrap(): Promise<void> {
    this.started = this.start();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.started,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.options.startWaitMs ?? DEFAULT_START_WAIT_MS);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.stopped) return;
    const previous = this.state;
    this.state = 'stopped';
    clearTimeout(this.timer);
    // A start still waiting on NVML is not waited for long: it closes what it finds once it sees `stopped`.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.started,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, SHUTDOWN_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
    // A collection hung in the driver is waited for only briefly (see NvmlCollector.close).
    if (previous !== 'disabled') await this.collector?.close().catch(() => undefined);
  }

  /** A getter, so that a check after an `await` reads the state as it is then. */
  private get stopped(): boolean {
    return this.state === 'stopped';
  }

  /** The current view of the GPUs. */
  status(): TelemetryStatus {
    return {
      state: this.state,
      source: this.source,
      reason: this.reason,
      lastSuccessAt: this.lastSuccessAt,
      consecutiveFailures: this.failures,
      hungSince:
        this.inFlightSince !== null && Date.now() - this.inFlightSince >= this.options.collectTimeoutMs
          ? this.inFlightSince
          : null,
      snapshot: this.view(),
    };
  }

  /** The last good snapshot; while failing, devices reduced to their identity with the failure. */
  private view(): GpuSnapshot | null {
    if (this.lastGood === null || this.state !== 'failing') return this.lastGood;
    const error = `collection failed: ${this.reason ?? 'unknown'}`;
    return { ...this.lastGood, devices: this.lastGood.devices.map((d) => identityOf(d, error)) };
  }

  /** The collector in use when it is NVML and answering: what per-batch memory tracking may call. */
  get nvml(): GpuCollector | undefined {
    // A poll in progress is no reason to skip a sample (it waits behind a millisecond of NVML calls), but
    // one that has taken longer than a sample may wait is: batches do not queue behind a slow driver.
    const slow = this.inFlightSince !== null && Date.now() - this.inFlightSince > SAMPLE_TIMEOUT_MS;
    return this.state === 'running' && this.source === 'nvml' && !slow ? this.collector : undefined;
  }

  /** The process this telemetry tracks. */
  get trackedPid(): number {
    return this.pid;
  }

  private async start(): Promise<void> {
    if (this.options.pollIntervalMs <= 0) {
      this.disable('GPU telemetry is off (GPU_METRICS_POLL_INTERVAL_SECONDS=0)');
      return;
    }
    const reasons = await this.adoptCollector(this.options.collectors ?? this.defaultCollectors());
    if (reasons === undefined) {
      if (this.collector === undefined) return; // Stopped meanwhile.
      this.options.logger?.info(
        { component: 'gpu', source: this.source, interval_ms: this.options.pollIntervalMs },
        'GPU telemetry started',
      );
      await this.poll();
      return;
    }
    this.disable(`no GPU telemetry source: ${reasons.join('; ')}`);
  }

  /**
   * Takes the first candidate that gives a collector (closing it again if the application stopped
   * meanwhile); resolves undefined then, or with each candidate's reason when none did.
   */
  private async adoptCollector(
    candidates: readonly (() => Promise<GpuCollector | string>)[],
  ): Promise<string[] | undefined> {
    const reasons: string[] = [];
    for (const candidate of candidates) {
      const found = await candidate();
      if (typeof found === 'string') {
        reasons.push(found);
        continue;
      }
      if (this.stopped) {
        await found.close();
        return undefined;
      }
      this.collector = found;
      this.source = found.source;
      return undefined;
    }
    return reasons;
  }

  private defaultCollectors(): (() => Promise<GpuCollector | string>)[] {
    const { nvmlLibraryPath, nvidiaSmiPath, collectTimeoutMs } = this.options;
    return [
      async () => {
        try {
          return await NvmlCollector.start({
            libraryPath: nvmlLibraryPath,
            startTimeoutMs: Math.max(collectTimeoutMs, NVML_START_TIMEOUT_MS),
          });
        } catch (error) {
          return `NVML: ${(error as Error).message}`;
        }
      },
      async () =>
        (await nvidiaSmiAvailable(nvidiaSmiPath, collectTimeoutMs))
          ? new NvidiaSmiCollector({ path: nvidiaSmiPath, timeoutMs: collectTimeoutMs })
          : `nvidia-smi: not found or failing at ${nvidiaSmiPath}`,
    ];
  }

  private disable(reason: string): void {
    if (this.stopped) return;
    this.state = 'disabled';
    this.reason = reason;
    this.upSeries.set({ source: 'none' }, 0);
    this.upSeries.commit();
    this.options.logger?.info({ component: 'gpu', reason }, 'GPU telemetry disabled');
  }

  /** One collection (or, while the previous one still runs, none), then the next is scheduled. */
  private async poll(): Promise<void> {
    if (this.stopped || this.collector === undefined) return;
    if (this.inFlightSince === null) {
      await this.collectOnce(this.collector);
    } else {
      // Still stuck in the driver: no second collection, and the wait before the next look doubles.
      this.failures++;
    }
    if (this.stopped) return;
    const delay =
      this.failures === 0
        ? this.options.pollIntervalMs
        : Math.min(this.options.pollIntervalMs * 2 ** this.failures, this.maxBackoffMs);
    this.timer = setTimeout(() => void this.poll(), delay);
    this.timer.unref();
  }

  private async collectOnce(collector: GpuCollector): Promise<void> {
    const started = performance.now();
    const now = Date.now();
    const skip = new Set([...this.lost].filter(([, l]) => l.nextProbeAt > now).map(([index]) => index));
    const call = collector.collect({ skipDevices: skip });
    // Set until the collection ends, even after its timeout: no other starts while it is stuck.
    this.inFlightSince = now;
    const clear = (): void => {
      this.inFlightSince = null;
    };
    void call.then(clear, clear);
    let timer: NodeJS.Timeout | undefined;
    try {
      const snapshot = await Promise.race([
        call,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new CollectionError(
                  'timeout',
                  `the ${collector.source} collection took longer than ${this.options.collectTimeoutMs} ms`,
                ),
              ),
            this.options.collectTimeoutMs,
          );
        }),
      ]);
      this.duration.observe({ source: collector.source }, (performance.now() - started) / 1000);
      if (!this.stopped) this.succeeded(snapshot);
    } catch (error) {
      this.duration.observe({ source: collector.source }, (performance.now() - started) / 1000);
      if (!this.stopped) await this.failed(collector, error);
    } finally {
      clearTimeout(timer);
    }
  }

  private succeeded(fresh: GpuSnapshot): void {
    const source = fresh.source;
    const now = Date.now();
    const read = new Map(fresh.devices.map((d) => [d.index, d]));
    for (const device of fresh.devices) {
      const lost = this.lost.get(device.index);
      if (device.healthy) {
        if (lost !== undefined) {
          this.lost.delete(device.index);
          this.options.logger?.info(
            { component: 'gpu', gpu: device.index, uuid: device.uuid },
            'GPU answers again',
          );
        }
        continue;
      }
      if (lost === undefined) {
        this.errors.inc({ source, reason: 'gpu_lost' });
        this.options.logger?.error(
          { component: 'gpu', gpu: device.index, uuid: device.uuid, name: device.name, error: device.error },
          'GPU stopped answering; its metrics are removed and it is probed with back-off',
        );
        this.lost.set(device.index, { device, probes: 1, nextProbeAt: now + this.options.pollIntervalMs });
      } else {
        lost.probes++;
        lost.nextProbeAt = now + Math.min(this.options.pollIntervalMs * 2 ** lost.probes, this.maxBackoffMs);
      }
    }
    // An unhealthy device keeps the identity it had (nvidia-smi's error line for it has none).
    const known = new Map((this.lastGood?.devices ?? []).map((d) => [d.index, d]));
    const devices = fresh.devices.map((d) => (d.healthy ? d : withIdentity(d, known.get(d.index))));
    // Devices skipped this time keep their unhealthy record.
    for (const [index, lost] of this.lost) if (!read.has(index)) devices.push(lost.device);
    devices.sort((a, b) => a.index - b.index);
    if (this.failures > 0) {
      this.options.logger?.info(
        { component: 'gpu', source, failed_collections: this.failures },
        'GPU telemetry recovered',
      );
    }
    this.state = 'running';
    this.reason = null;
    this.failures = 0;
    this.lastSuccessAt = fresh.collectedAt;
    this.lastGood = { ...fresh, devices };
    this.publish(this.lastGood);
  }

  private async failed(collector: GpuCollector, error: unknown): Promise<void> {
    const reason: CollectionErrorReason = error instanceof CollectionError ? error.reason : 'nvml_error';
    const message = (error as Error).message;
    this.errors.inc({ source: collector.source, reason });
    if (this.failures === 0) {
      this.options.logger?.warn(
        { component: 'gpu', source: collector.source, reason, error: message },
        'GPU collection failed; GPU metrics are removed and polling backs off until it succeeds',
      );
    }
    this.failures++;
    this.state = 'failing';
    this.reason = message;
    this.publish(null);
    if (reason === 'collector_exited' && this.options.collectors === undefined) {
      // The collector process died (not hung): a new one, on the next poll.
      await this.restart();
    }
  }

  private async restart(): Promise<void> {
    await this.adoptCollector(this.defaultCollectors());
  }

  /** Sets every series from `snapshot` and removes the rest; `null` (a failed collection) removes them all. */
  private publish(snapshot: GpuSnapshot | null): void {
    const source = this.source ?? 'none';
    if (snapshot !== null) {
      for (const device of snapshot.devices) this.publishDevice(snapshot, device);
      this.lastSuccess.set({ source }, snapshot.collectedAt / 1000);
    } else {
      // Identity stays: the devices are still there, only their readings are unknown.
      const last = this.lastGood;
      for (const device of last?.devices ?? []) if (last !== null) this.publishInfo(last, device);
    }
    for (const series of Object.values(this.values)) series.commit();
    this.energySeries.commit();
    this.upSeries.set({ source }, snapshot === null ? 0 : 1);
    this.upSeries.commit();
  }

  private publishInfo(snapshot: GpuSnapshot, device: GpuDevice): void {
    this.values.info.set(
      {
        ...deviceLabels(device),
        pci_bus_id: device.pciBusId ?? '',
        driver_version: snapshot.driverVersion ?? '',
        cuda_driver_version: snapshot.cudaDriverVersion ?? '',
        source: snapshot.source,
      },
      1,
    );
  }

  private publishDevice(snapshot: GpuSnapshot, device: GpuDevice): void {
    const labels = deviceLabels(device);
    const v = this.values;
    this.publishInfo(snapshot, device);
    v.deviceHealthy.set(labels, device.healthy ? 1 : 0);
    if (!device.healthy) return;
    const set = (series: GaugeSeries, value: number | undefined, extra: Record<string, string> = {}) => {
      if (value !== undefined) series.set({ ...labels, ...extra }, value);
    };
    set(v.utilization, device.utilizationGpuPercent);
    set(v.memoryCopyUtilization, device.utilizationMemoryPercent);
    set(v.memoryUsed, device.memoryUsedBytes);
    set(v.memoryTotal, device.memoryTotalBytes);
    set(v.memoryUtilization, memoryPercent(device));
    set(v.temperature, device.temperatureCelsius);
    set(v.power, device.powerWatts);
    set(v.powerLimit, device.powerLimitWatts);
    set(
      v.computeMode,
      device.computeMode === undefined ? undefined : COMPUTE_MODES.indexOf(device.computeMode),
    );
    set(v.clock, device.smClockMhz === undefined ? undefined : device.smClockMhz * 1e6, { clock: 'sm' });
    set(v.clock, device.memoryClockMhz === undefined ? undefined : device.memoryClockMhz * 1e6, {
      clock: 'memory',
    });
    set(v.processMemory, device.processes?.find((p) => p.pid === this.pid)?.usedMemoryBytes);
    if (device.energyJoules !== undefined) this.energySeries.set(labels, device.energyJoules);
  }
}

/** The labels of a device's series: index, UUID and name (empty when the device never told). */
export function deviceLabels(device: GpuDevice): Record<'gpu' | 'uuid' | 'name', string> {
  return { gpu: String(device.index), uuid: device.uuid ?? '', name: device.name ?? '' };
}

/** Used memory as a share of the total, 0-100; absent when either is unknown. */
export function memoryPercent(device: GpuDevice): number | undefined {
  const { memoryUsedBytes: used, memoryTotalBytes: total } = device;
  return used === undefined || total === undefined || total === 0 ? undefined : (used / total) * 100;
}

/** `device` with the uuid, name and PCI id of `earlier` where it has none of its own. */
function withIdentity(device: GpuDevice, earlier: GpuDevice | undefined): GpuDevice {
  if (earlier === undefined) return device;
  return {
    ...device,
    uuid: device.uuid ?? earlier.uuid,
    name: device.name ?? earlier.name,
    pciBusId: device.pciBusId ?? earlier.pciBusId,
  };
}

/** A device reduced to its identity, unhealthy with `error`: what is known while readings are not. */
function identityOf(device: GpuDevice, error: string): GpuDevice {
  return {
    index: device.index,
    ...(device.uuid === undefined ? {} : { uuid: device.uuid }),
    ...(device.name === undefined ? {} : { name: device.name }),
    ...(device.pciBusId === undefined ? {} : { pciBusId: device.pciBusId }),
    healthy: false,
    error: device.healthy ? error : (device.error ?? error),
  };
}
