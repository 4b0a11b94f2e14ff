import { Injectable } from '@nestjs/common';
import { InjectMetric } from '@willsoto/nestjs-prometheus';
import type { Counter } from 'prom-client';
import { MONITORING_METRICS } from './monitoring.metric-names';

/** Counts errors and unexpected exceptions into `vla_errors_total` and `vla_exceptions_total`. */
@Injectable()
export class ErrorRecorder {
  constructor(
    @InjectMetric(MONITORING_METRICS.errors) private readonly errors: Counter<'type' | 'component'>,
    @InjectMetric(MONITORING_METRICS.exceptions) private readonly exceptions: Counter<'exception_type'>,
  ) {}

  /** `type` is a stable error code or failure kind (a closed set), never free text. */
  error(type: string, component: string): void {
    this.errors.inc({ type, component });
  }

  /** An exception nobody anticipated; labelled by its class name. */
  exception(error: unknown): void {
    const type = error instanceof Error ? error.constructor.name || 'Error' : typeof error;
    this.exceptions.inc({ exception_type: type });
  }
}
