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
  customerRequests: 'vla_customer_requests_total',
} as const;

/** Seconds; spans a cached health check (~1 ms) to a slow policy batch (10 s+). */
export const LATENCY_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
/** Bytes; from an empty body to the 8 MiB default body limit and beyond. */
export const SIZE_BUCKETS_BYTES = [100, 1_000, 10_000, 100_000, 1_000_000, 4_000_000, 16_000_000];
