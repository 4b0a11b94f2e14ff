import type { ErrorRecorder, HttpMetrics, RouteResolver } from '@app/monitoring';
import type { NextFunction, Request, Response } from 'express';
import type { PinoLogger } from 'nestjs-pino';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { AppError } from '../errors/app-error';
import { sendError, toErrorResponse } from '../errors/error-response';
import type { LifecycleService } from '../lifecycle/lifecycle.service';
import { resolveRequestId } from './request-id';

export interface RequestContextDeps {
  readonly lifecycle: LifecycleService;
  readonly routes: RouteResolver;
  readonly metrics: HttpMetrics;
  readonly errors: ErrorRecorder;
  readonly logger: Logger;
  readonly context: PinoLogger;
}

/**
 * The first middleware of every request, and the only per-request `close` listener: assigns the request id
 * (the client's `X-Request-Id` when sane, else a UUID) and echoes it, refuses requests once shutdown has
 * stopped intake, tracks the request as in flight, opens the logging context; when the request ends it
 * records the HTTP metrics and writes exactly one access line. Both carry the route template, never the
 * URL, so query strings (and anything secret in them) stay out of logs and labels.
 */
export function requestContextMiddleware({
  lifecycle,
  routes,
  metrics,
  errors,
  logger,
  context,
}: RequestContextDeps) {
  const measure = metrics.enabled;
  return (req: Request, res: Response, next: NextFunction): void => {
    const start = performance.now();
    const socketRead = req.socket.bytesRead;
    const socketWritten = req.socket.bytesWritten;
    const id = resolveRequestId(req.headers['x-request-id']);
    (req as Request & { id: string }).id = id;
    res.setHeader('X-Request-Id', id);
    if (lifecycle.closesConnections) res.setHeader('Connection', 'close');
    const admitted = lifecycle.acceptsRequests;
    if (admitted) lifecycle.track(res);
    if (measure) metrics.started();

    res.once('close', () => {
      const ms = performance.now() - start;
      const route = routes.label(req);
      const status = res.writableFinished ? res.statusCode : 499;
      if (admitted) lifecycle.untrack(res);
      if (measure) metrics.finished(req, res, route, status, ms / 1000, socketRead, socketWritten);
      logger.info(
        { request_id: id, method: req.method, route, status, latency_ms: Math.round(ms * 1000) / 1000 },
        'request completed',
      );
    });

    if (!admitted) {
      const refusal = toErrorResponse(new AppError('shutting_down'));
      errors.error(refusal.code, refusal.component);
      sendError(res, id, refusal);
      return;
    }
    // Lines logged through PinoLogger while this request runs carry its request_id.
    context.runInContext(next, { bindings: { request_id: id } });
  };
}
