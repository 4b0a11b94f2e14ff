import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { type CreateAppOptions, createApp } from './app.factory';
import type { AppConfig } from './config';
import { ERROR_CODES } from './errors/error-codes';
import { GracefulShutdown } from './lifecycle/graceful-shutdown';
import { LifecycleService } from './lifecycle/lifecycle.service';
import type { NestExpressApplication } from '@nestjs/platform-express';

export interface RunningServer {
  readonly app: NestExpressApplication;
  readonly server: Server;
  readonly logger: Logger;
  readonly url: string;
  readonly shutdown: GracefulShutdown;
}

/** Malformed HTTP that never reaches Express still gets our JSON error, then the connection closes. */
function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const code = error.code === 'HPE_HEADER_OVERFLOW' ? 'header_too_large' : 'invalid_request';
  const { status, message } = ERROR_CODES[code];
  const reason = status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
  const body = JSON.stringify({ error: { code, message, request_id: randomUUID() } });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Creates the app, listens, marks it ready and logs one line saying where. */
export async function startServer(
  config: AppConfig,
  options: CreateAppOptions & { readonly installSignalHandlers?: boolean } = {},
): Promise<RunningServer> {
  const { app, logger } = await createApp(config, options);
  const server = app.getHttpServer();
  server.keepAliveTimeout = config.http.keepAliveTimeoutMs;
  // Must exceed keepAliveTimeout, or Node may cut a connection the client is about to reuse.
  server.headersTimeout = config.http.keepAliveTimeoutMs + 1000;
  server.on('clientError', answerClientError);

  const lifecycle = app.get(LifecycleService);
  const shutdown = new GracefulShutdown({
    app,
    server,
    lifecycle,
    logger,
    config: config.shutdown,
    exit: (code) => process.exit(code),
  });
  await app.listen(config.http.port, config.http.host);
  lifecycle.markReady();
  // Installed once listening: a signal before then (during migrations) ends the process the default way,
  // with nothing in flight to drain.
  if (options.installSignalHandlers === true) shutdown.install();
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.http.port;
  const host = config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host;
  const url = `http://${host}:${port}`;
  logger.info(
    { url, host: config.http.host, port, database: config.database.type, version: config.version },
    `listening on ${url}`,
  );
  return { app, server, logger, url, shutdown };
}
