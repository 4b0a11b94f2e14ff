import type { HttpMetrics } from '@app/monitoring';
import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type Server, STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { AppConfig } from '../config';
import { type ErrorCode, ERROR_CODES } from '../errors/error-codes';
import { bodyWorthReceiving } from './json-body.middleware';

/** Node's error codes for what its HTTP parser and timers refuse, mapped to ours. */
function clientErrorCode(code: string | undefined): ErrorCode {
  if (code === 'HPE_HEADER_OVERFLOW') return 'header_too_large';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'request_timeout';
  return 'invalid_request';
}

function envelope(code: ErrorCode): { status: number; body: string; requestId: string } {
  const requestId = randomUUID();
  const { status, message } = ERROR_CODES[code];
  return { status, requestId, body: JSON.stringify({ error: { code, message, request_id: requestId } }) };
}

/**
 * What the Node HTTP server answers before any middleware runs, made to follow the platform's rules: the
 * JSON error envelope, a log line and a count for every refusal, timeouts on slow clients, and no
 * `100 Continue` for a body we would refuse anyway.
 */
export function guardHttpServer(
  server: Server,
  config: AppConfig['http'],
  deps: { readonly logger: Logger; readonly metrics: HttpMetrics },
): void {
  server.keepAliveTimeout = config.keepAliveTimeoutMs;
  // A client has this long to send a whole request, headers and body (Node's default is 5 minutes).
  server.requestTimeout = config.requestTimeoutMs;
  server.headersTimeout = config.requestTimeoutMs;

  const refused = (status: number, code: ErrorCode, requestId: string): void => {
    deps.metrics.rejected(status);
    deps.logger.info({ request_id: requestId, status, code }, 'request refused by the HTTP server');
  };

  server.on('clientError', (error: Error & { code?: string }, socket: Socket) => {
    const current = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
    // Past the point of a clean answer: a response already started on this connection.
    if (!socket.writable || current?.headersSent === true) {
      socket.destroy();
      return;
    }
    const code = clientErrorCode(error.code);
    const { status, body, requestId } = envelope(code);
    refused(status, code, requestId);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
    );
  });

  // A client that asks before uploading gets `100 Continue` only for a body we would accept; otherwise the
  // request goes straight to the pipeline, which answers 413 or 415 without reading the body.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (bodyWorthReceiving(req, config.bodyLimitBytes)) res.writeContinue();
    server.emit('request', req, res);
  });

  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    const { status, body, requestId } = envelope('expectation_failed');
    refused(status, 'expectation_failed', requestId);
    res.writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'X-Request-Id': requestId,
      Connection: 'close',
    });
    res.end(body);
  });
}
