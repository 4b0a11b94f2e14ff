/** The monitoring lib: the one metrics registry, `/monitoring/metrics`, HTTP and cross-cutting metrics. */
export { MonitoringModule } from './monitoring.module';
export { METRICS_PATH, type MonitoringModuleOptions } from './monitoring.options';
export { MONITORING_METRICS, LATENCY_BUCKETS_SECONDS, SIZE_BUCKETS_BYTES } from './monitoring.metric-names';
export {
  counterProvider,
  gaugeProvider,
  histogramProvider,
  summaryProvider,
  declaredMetricNames,
  DuplicateMetricError,
} from './metric-providers';
export { InjectMetric } from '@willsoto/nestjs-prometheus';
export { ComponentHealth, type HealthProbe } from './component-health.service';
export { ErrorRecorder } from './error-recorder.service';
export { HttpMetrics } from './http-metrics.service';
export { MetricsUnauthorizedError } from './metrics-access.guard';
export { RouteResolver, UNMATCHED_ROUTE, methodLabel } from './route-label';
export { constantTimeEqual } from './secure-compare';
export { renderMetricsCatalogue, type MetricDescription } from './metrics-catalogue';
