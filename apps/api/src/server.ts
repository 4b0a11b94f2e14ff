import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { type CreateAppOptions, createApp } from './app.factory';
import type { AppConfig } from './config';
import { guardHttpServer } from './http/http-server-guards';
import { GracefulShutdown } from './lifecycle/graceful-shutdown';
import { LifecycleService } from './lifecycle/lifecycle.service';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { HttpMetrics } from '@app/monitoring';

export interface RunningServer {
  readonly app: NestExpressApplication;
  readonly server: Server;
  readonly logger: Logger;
  readonly url: string;
  readonly shutdown: GracefulShutdown;
}

/** Creates the app, listens, marks it ready and logs one line saying where. */
export async function startServer(
  config: AppConfig,
  options: CreateAppOptions & { readonly installSignalHandlers?: boolean } = {},
): Promise<RunningServer> {
  const { app, logger } = await createApp(config, options);
  const server = app.getHttpServer();
  guardHttpServer(server, config.http, { logger, metrics: app.get(HttpMetrics) });

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
