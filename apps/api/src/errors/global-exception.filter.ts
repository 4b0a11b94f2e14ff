import { type ArgumentsHost, Catch, type ExceptionFilter, Inject } from '@nestjs/common';
import { ErrorRecorder } from '@app/monitoring';
import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import { requestIdOf } from '../http/request-id';
import { ROOT_LOGGER } from '../logging/logging.constants';
import { sendError, toErrorResponse } from './error-response';

/**
 * The one place that turns a thrown value into an HTTP response: `{"error": {"code", "message",
 * "request_id"}}`. Unexpected exceptions become 500 `internal_error` with nothing internal in the body;
 * they are logged once, with their stack and the request id, and counted. Every 5xx is counted.
 */
@Catch()
export class GlobalExceptionFilter implements ExceptionFilter {
  constructor(
    private readonly recorder: ErrorRecorder,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const req = http.getRequest<Request>();
    const res = http.getResponse<Response>();
    const requestId = requestIdOf(req);
    const error = toErrorResponse(exception);

    if (error.unexpected) {
      this.recorder.exception(exception);
      this.logger.error({ request_id: requestId, err: exception }, 'unhandled exception');
    }
    if (error.status >= 500) {
      this.recorder.error(error.code, error.component);
      if (!error.unexpected) {
        this.logger.warn(
          { request_id: requestId, code: error.code, component: error.component },
          error.message,
        );
      }
    }
    if (res.headersSent) {
      // Too late for a status: end the stream so the client sees a truncated response, not a hang.
      res.destroy();
      return;
    }
    sendError(res, requestId, error);
  }
}
