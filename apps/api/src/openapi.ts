import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import type { AppConfig } from './config';

/** The OpenAPI document, generated from the controllers and the same zod schemas that validate requests. */
export function buildOpenApiDocument(app: INestApplication, config: AppConfig): OpenAPIObject {
  const builder = new DocumentBuilder()
    .setTitle('VLA inference platform')
    .setDescription(
      'Serves robot policies and LLMs to API-key clients. Every error is JSON: ' +
        '`{"error": {"code", "message", "request_id"}}`; `X-Request-Id` is echoed on every response.',
    )
    .setVersion(config.version)
    .addBearerAuth(
      {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'opaque token',
        description: 'Authorization: Bearer <METRICS_TOKEN>',
      },
      'metrics-token',
    )
    .addApiKey(
      { type: 'apiKey', in: 'header', name: 'X-Admin-Token', description: 'X-Admin-Token: <METRICS_TOKEN>' },
      'metrics-admin-token',
    )
    .addApiKey(
      {
        type: 'apiKey',
        in: 'header',
        name: 'X-API-Key',
        description: 'An API key (or Authorization: Bearer <key>)',
      },
      'api-key',
    )
    .build();
  return SwaggerModule.createDocument(app, builder);
}

/** Serves `GET /openapi.json` and the browsable `GET /docs`. */
export function setupOpenApi(app: INestApplication, config: AppConfig): void {
  const document = buildOpenApiDocument(app, config);
  SwaggerModule.setup('docs', app, document, {
    jsonDocumentUrl: 'openapi.json',
    raw: ['json'],
    customSiteTitle: 'VLA inference platform API',
  });
}
