import { type DynamicModule, Module } from '@nestjs/common';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { ComponentHealth } from './component-health.service';
import { CustomerMetrics } from './customer-metrics.service';
import { ErrorRecorder } from './error-recorder.service';
import { HttpMetrics } from './http-metrics.service';
import { MetricsAccessGuard, MetricsAccessPolicy } from './metrics-access.guard';
import { MetricsController } from './metrics.controller';
import { RouteResolver } from './route-label';
import { monitoringMetricProviders } from './monitoring.metrics';
import { TenantLabels } from './tenant-labels.service';
import { METRICS_PATH, MONITORING_OPTIONS, type MonitoringModuleOptions } from './monitoring.options';

/**
 * Owns the process-wide Prometheus registry (prom-client's default registry, through
 * @willsoto/nestjs-prometheus), serves it at `/monitoring/metrics`, and records the cross-cutting metrics.
 * Global, so feature modules can inject {@link ComponentHealth}, {@link ErrorRecorder}, {@link TenantLabels}
 * (for their own per-tenant metrics) and {@link CustomerMetrics}.
 */
@Module({})
export class MonitoringModule {
  static forRoot(options: MonitoringModuleOptions): DynamicModule {
    return {
      module: MonitoringModule,
      global: true,
      imports: [
        PrometheusModule.register({
          path: METRICS_PATH,
          controller: MetricsController,
          defaultMetrics: { enabled: options.defaultMetrics ?? true },
        }),
      ],
      providers: [
        { provide: MONITORING_OPTIONS, useValue: options },
        TenantLabels,
        ...monitoringMetricProviders,
        CustomerMetrics,
        ComponentHealth,
        ErrorRecorder,
        HttpMetrics,
        MetricsAccessGuard,
        MetricsAccessPolicy,
        RouteResolver,
      ],
      exports: [
        MetricsAccessPolicy,
        MONITORING_OPTIONS,
        ComponentHealth,
        CustomerMetrics,
        ErrorRecorder,
        HttpMetrics,
        RouteResolver,
        TenantLabels,
      ],
    };
  }
}
