import type { NextFunction, Request, Response } from 'express';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { RouteResolver } from '@app/monitoring';
import type { PinoLogger } from 'nestjs-pino';
import { toErrorResponse, sendError } from '../errors/error-response';
import { AppError } from '../errors/app-error';
import type { LifecycleService } from '../lifecycle/lifecycle.service';
import { resolveRequestId } from './request-id';

/**
 * The first middleware of every request: assigns the request id (the client's `X-Request-Id` when sane,
 * else a UUID) and echoes it, refuses requests once shutdown has stopped intake, tracks the request as in
 * flight, opens the logging context, and writes exactly one access line when it ends. The line carries the route template, never the
 * URL, so query strings (and anything secret in them) stay out of the logs.
 */
export function requestContextMiddleware(
  lifecycle: LifecycleService,
  routes: RouteResolver,
  logger: Logger,
  context: PinoLogger,
) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const start = performance.now();
    const id = resolveRequestId(req.headers['x-request-id']);
    (req as Request & { id: string }).id = id;
    res.setHeader('X-Request-Id', id);

    res.once('close', () => {
      logger.info(
        {
          request_id: id,
          method: req.method,
          route: routes.label(req),
          status: res.writableFinished ? res.statusCode : 499,
          latency_ms: Math.round((performance.now() - start) * 1000) / 1000,
        },
        'request completed',
      );
    });

    if (!lifecycle.acceptsRequests) {
      res.setHeader('Connection', 'close');
      sendError(res, id, toErrorResponse(new AppError('shutting_down')));
      return;
    }
    lifecycle.track(res);
    // Lines logged through PinoLogger while this request runs carry its request_id.
    context.runInContext(next, { bindings: { request_id: id } });
  };
}
