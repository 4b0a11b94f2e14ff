import { performance } from 'node:perf_hooks';
import type { Gauge } from 'prom-client';
import { ComponentHealth } from './component-health.service';
import { HttpMetrics } from './http-metrics.service';
import { MONITORING_OPTIONS, type MonitoringModuleOptions } from './monitoring.options';
import { LATENCY_BUCKETS_SECONDS, MONITORING_METRICS, SIZE_BUCKETS_BYTES } from './monitoring.metric-names';
import { counterProvider, gaugeProvider, histogramProvider, tenantCounterProvider } from './metric-providers';

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
    inject: [HttpMetrics],
    collect(this: Gauge, http: HttpMetrics) {
      this.set(http.inFlightCount);
    },
  }),
  counterProvider({
    name: MONITORING_METRICS.errors,
    help: 'Server-side failures (every 5xx answer, and errors recorded by components), by type (a stable error code or failure kind) and component.',
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
  // Business metric (seed 003). Recorded by the auth layer through CustomerMetrics once a request is
  // authenticated; `tenant` follows the tenant label policy (capped, absent when switched off).
  tenantCounterProvider({
    name: MONITORING_METRICS.customerRequests,
    help: 'Requests from API-key clients, by tenant (capped: tenants past the cap are counted under __other__).',
  }),
];
