/** Settings of {@link MonitoringModule}; the app passes a slice of its configuration. */
export interface MonitoringModuleOptions {
  /** Version reported by `vla_application_info`. */
  readonly appVersion: string;
  /** Token accepted on `/monitoring/metrics`; null when none is configured. */
  readonly token: string | null;
  /** Serve `/monitoring/metrics` to everyone (for networks that gate it elsewhere). */
  readonly public: boolean;
  /** Record the `vla_http_*` metrics (a switch for the overhead benchmark). */
  readonly httpMetrics: boolean;
  /** Whether per-tenant metrics carry a `tenant` label at all; default true. See `TenantLabels`. */
  readonly tenantLabels?: boolean;
  /** Tenants with series of their own; later ones count under `tenant="__other__"`. Default 100. */
  readonly maxTenants?: number;
  /** prom-client's process and Node.js metrics; default true. */
  readonly defaultMetrics?: boolean;
}

export const MONITORING_OPTIONS = Symbol('MONITORING_OPTIONS');

/** Path of the scrape endpoint; fixed by the public contract. */
export const METRICS_PATH = '/monitoring/metrics';
