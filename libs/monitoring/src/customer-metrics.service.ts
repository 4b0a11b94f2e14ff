import { Injectable } from '@nestjs/common';
import { InjectMetric } from '@willsoto/nestjs-prometheus';
import type { Counter } from 'prom-client';
import { MONITORING_METRICS } from './monitoring.metric-names';
import { TenantLabels } from './tenant-labels.service';

/** Records the business metrics per tenant (`vla_customer_requests_total`), through the tenant label policy. */
@Injectable()
export class CustomerMetrics {
  constructor(
    private readonly tenants: TenantLabels,
    @InjectMetric(MONITORING_METRICS.customerRequests) private readonly requests: Counter<'tenant'>,
  ) {}

  /** One request from `tenant` (its name, never a key or an id a client chose). */
  request(tenant: string): void {
    this.requests.inc(this.tenants.labels(tenant, {}));
  }
}
