import { Inject, Injectable } from '@nestjs/common';
import { InjectMetric } from '@willsoto/nestjs-prometheus';
import type { Request, Response } from 'express';
import type { Counter, Histogram } from 'prom-client';
import { MONITORING_METRICS } from './monitoring.metric-names';
import { MONITORING_OPTIONS, type MonitoringModuleOptions } from './monitoring.options';
import { UNMATCHED_ROUTE, methodLabel } from './route-label';

/**
 * Records the `vla_http_*` metrics. The app calls it from its one Express-level request middleware and that
 * middleware's one `close` listener, which also write the access line: no RxJS interceptor on the hot path
 * (measured at 30-40% of a hello route's throughput here) and no second listener per request. The
 * in-flight count is a plain number read by the gauge at scrape time.
 */
@Injectable()
export class HttpMetrics {
  private inFlight = 0;

  constructor(
    @Inject(MONITORING_OPTIONS) private readonly options: MonitoringModuleOptions,
    @InjectMetric(MONITORING_METRICS.httpRequests)
    private readonly requests: Counter<'method' | 'route' | 'status'>,
    @InjectMetric(MONITORING_METRICS.httpDuration) private readonly duration: Histogram<'method' | 'route'>,
    @InjectMetric(MONITORING_METRICS.httpRequestSize)
    private readonly requestSize: Histogram<'method' | 'route'>,
    @InjectMetric(MONITORING_METRICS.httpResponseSize)
    private readonly responseSize: Histogram<'method' | 'route'>,
  ) {}

  /** Whether HTTP metrics are switched on (`HTTP_METRICS_ENABLED`). */
  get enabled(): boolean {
    return this.options.httpMetrics;
  }

  /** Requests received whose response has not finished. */
  get inFlightCount(): number {
    return this.inFlight;
  }

  /** A request arrived. */
  started(): void {
    this.inFlight++;
  }

  /**
   * A request refused by the HTTP server itself, before any middleware ran (malformed HTTP, a header
   * overflow, a request timeout, an unsupported `Expect`): counted, with no route or method to label.
   */
  rejected(status: number): void {
    this.requests.inc({ method: 'OTHER', route: UNMATCHED_ROUTE, status: String(status) });
  }

  /**
   * The request ended: its response finished (`status`), or the client went away first (status 499, nginx's
   * "client closed request"). Sizes come from Content-Length, or from the socket's byte counters (taken at
   * `started`) for chunked and streamed bodies.
   */
  finished(
    req: Request,
    res: Response,
    route: string,
    status: number,
    seconds: number,
    socketReadAtStart: number,
    socketWrittenAtStart: number,
  ): void {
    this.inFlight--;
    const labels = { method: methodLabel(req.method), route };
    this.requests.inc({ method: labels.method, route, status: String(status) });
    this.duration.observe(labels, seconds);
    this.requestSize.observe(
      labels,
      contentLength(req.headers['content-length']) ?? req.socket.bytesRead - socketReadAtStart,
    );
    this.responseSize.observe(
      labels,
      contentLength(res.getHeader('content-length')) ?? req.socket.bytesWritten - socketWrittenAtStart,
    );
  }
}

function contentLength(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string' || value === '') return undefined;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}
