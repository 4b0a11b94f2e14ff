import { performance } from 'node:perf_hooks';
import type { Gauge } from 'prom-client';
import { ComponentHealth } from './component-health.service';
import { MONITORING_OPTIONS, type MonitoringModuleOptions } from './monitoring.options';
import { counterProvider, gaugeProvider, histogramProvider } from './metric-providers';

/** The cross-cutting metrics this lib owns; feature modules declare theirs next to their code. */
export const MONITORING_METRICS = {
  httpRequests: 'vla_http_requests_total',
  httpDuration: 'vla_http_request_duration_seconds',
  httpRequestSize: 'vla_http_request_size_bytes',
  httpResponseSize: 'vla_http_response_size_bytes',
  httpInFlight: 'vla_http_connections_active',
  errors: 'vla_errors_total',
  exceptions: 'vla_exceptions_total',
  appInfo: 'vla_application_info',
  uptime: 'vla_application_uptime_seconds',
  health: 'vla_application_health',
} as const;

/** Seconds; spans a cached health check (~1 ms) to a slow policy batch (10 s+). */
export const LATENCY_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
/** Bytes; from an empty body to the 8 MiB default body limit and beyond. */
export const SIZE_BUCKETS_BYTES = [100, 1_000, 10_000, 100_000, 1_000_000, 4_000_000, 16_000_000];

export const monitoringMetricProviders = [
  counterProvider({
    name: MONITORING_METRICS.httpRequests,
    help: 'HTTP requests completed, by method, route template and status code (499: client went away).',
    labelNames: ['method', 'route', 'status'],
  }),
  histogramProvider({
    name: MONITORING_METRICS.httpDuration,
    help: 'HTTP request duration in seconds, from the first middleware to the end of the response.',
    labelNames: ['method', 'route'],
    buckets: LATENCY_BUCKETS_SECONDS,
  }),
  histogramProvider({
    name: MONITORING_METRICS.httpRequestSize,
    help: 'HTTP request body size in bytes (Content-Length; socket bytes for chunked bodies).',
    labelNames: ['method', 'route'],
    buckets: SIZE_BUCKETS_BYTES,
  }),
  histogramProvider({
    name: MONITORING_METRICS.httpResponseSize,
    help: 'HTTP response size in bytes (Content-Length; socket bytes for streamed responses).',
    labelNames: ['method', 'route'],
    buckets: SIZE_BUCKETS_BYTES,
  }),
  gaugeProvider({
    name: MONITORING_METRICS.httpInFlight,
    help: 'HTTP requests in flight (received, response not yet finished).',
  }),
  counterProvider({
    name: MONITORING_METRICS.errors,
    help: 'Errors by type (stable error code or failure kind) and the component that raised them.',
    labelNames: ['type', 'component'],
  }),
  counterProvider({
    name: MONITORING_METRICS.exceptions,
    help: 'Unexpected exceptions (answered 500 internal_error), by exception class.',
    labelNames: ['exception_type'],
  }),
  gaugeProvider({
    name: MONITORING_METRICS.appInfo,
    help: 'Static facts about this process; always 1.',
    labelNames: ['version', 'node_version'],
    inject: [MONITORING_OPTIONS],
    collect(this: Gauge, options: MonitoringModuleOptions) {
      this.set({ version: options.appVersion, node_version: process.versions.node }, 1);
    },
  }),
  gaugeProvider({
    name: MONITORING_METRICS.uptime,
    help: 'Seconds since the process started (monotonic clock).',
    collect(this: Gauge) {
      this.set(performance.now() / 1000);
    },
  }),
  gaugeProvider({
    name: MONITORING_METRICS.health,
    help: 'Health of each component at scrape time: 1 healthy, 0 unhealthy.',
    labelNames: ['component'],
    inject: [ComponentHealth],
    async collect(this: Gauge, health: ComponentHealth) {
      const snapshot = await health.snapshot();
      this.reset();
      for (const [component, up] of snapshot) this.set({ component }, up ? 1 : 0);
    },
  }),
];
