import type { ModuleMetadata } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { ErrorRecorder, HttpMetrics, RouteResolver } from '@app/monitoring';
import { PinoLogger } from 'nestjs-pino';
import type { DestinationStream, Logger } from 'pino';
import { AppModule } from './app.module';
import type { AppConfig } from './config';
import { jsonBodyMiddleware } from './http/json-body.middleware';
import { requestContextMiddleware } from './http/request-context.middleware';
import { LifecycleService } from './lifecycle/lifecycle.service';
import { PinoNestLogger } from './logging/nest-logger';
import { createRootLogger } from './logging/root-logger';
import { setupOpenApi } from './openapi';

export interface CreateAppOptions {
  /** Where JSON log lines go (stdout by default); tests capture them here. */
  readonly logDestination?: DestinationStream;
  /** Extra modules (tests mount probe controllers this way). */
  readonly imports?: NonNullable<ModuleMetadata['imports']>;
}

export interface CreatedApp {
  readonly app: NestExpressApplication;
  readonly logger: Logger;
}

/**
 * Builds the application, initialised but not listening. The Express-level pipeline, in order: the request
 * context (id, intake, HTTP metrics and access line, so every response counts, shutdown refusals included),
 * JSON body parsing (our parser, so its failures become our errors); then Nest's routes.
 */
export async function createApp(config: AppConfig, options: CreateAppOptions = {}): Promise<CreatedApp> {
  const logger = createRootLogger(config.log.level, options.logDestination);
  const app = await NestFactory.create<NestExpressApplication>(
    AppModule.forRoot(config, logger, options.imports),
    { bodyParser: false, logger: new PinoNestLogger(logger), abortOnError: false },
  );
  app.disable('x-powered-by');
  // JSON API responses are not cached by clients: skip hashing every body for an ETag.
  app.set('etag', false);

  const routes = app.get(RouteResolver);
  app.use(
    requestContextMiddleware({
      lifecycle: app.get(LifecycleService),
      routes,
      metrics: app.get(HttpMetrics),
      errors: app.get(ErrorRecorder),
      logger,
      context: await app.resolve(PinoLogger),
    }),
  );
  for (const middleware of jsonBodyMiddleware(config.http.bodyLimitBytes)) app.use(middleware);
  setupOpenApi(app, config);

  await app.init();
  routes.load((app.getHttpAdapter().getInstance() as { router: { stack: unknown[] } }).router.stack);
  return { app, logger };
}
