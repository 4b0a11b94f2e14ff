/** The monitoring lib: the one metrics registry, `/monitoring/metrics`, HTTP and cross-cutting metrics. */
export { MonitoringModule } from './monitoring.module';
export { METRICS_PATH, type MonitoringModuleOptions } from './monitoring.options';
export { MONITORING_METRICS, LATENCY_BUCKETS_SECONDS, SIZE_BUCKETS_BYTES } from './monitoring.metric-names';
export {
  counterProvider,
  gaugeProvider,
  histogramProvider,
  summaryProvider,
  tenantCounterProvider,
  tenantGaugeProvider,
  tenantHistogramProvider,
  declaredMetricNames,
  DuplicateMetricError,
} from './metric-providers';
export { InjectMetric } from '@willsoto/nestjs-prometheus';
export { ComponentHealth, type HealthProbe } from './component-health.service';
export { ErrorRecorder } from './error-recorder.service';
/**
 * The tenant label policy (`tenantLabels`, `maxTenants` options): `tenant` on or off for every per-tenant
 * metric, capped with `__other__` beyond, and `forget(tenant)` to drop a deleted or disabled tenant's series.
 */
export { TenantLabels, TENANT_LABEL, OTHER_TENANT } from './tenant-labels.service';
/** `request(tenant)` counts one authenticated request into `vla_customer_requests_total{tenant}`. */
export { CustomerMetrics } from './customer-metrics.service';
export { HttpMetrics } from './http-metrics.service';
export {
  METRICS_ENDPOINT,
  MetricsAccessPolicy,
  type MetricsAlternativeCheck,
  MetricsUnauthorizedError,
} from './metrics-access.guard';
export { RouteResolver, UNMATCHED_ROUTE, methodLabel } from './route-label';
export { constantTimeEqual } from './secure-compare';
export { renderMetricsCatalogue, type MetricDescription } from './metrics-catalogue';
