import { type DynamicModule, Global, Module } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { requestIdOf, resolveRequestId } from '../http/request-id';
import { ROOT_LOGGER } from './logging.constants';

/**
 * nestjs-pino for Nest's logger and for `PinoLogger` in services, whose lines carry the `request_id` of the
 * request they run in. Its own middleware is not mounted (a catch-all route would hide which route served
 * a request): the request-context middleware opens the logging context, and writes the access line, before
 * body parsing, so it also sees requests that fail there.
 */
@Global()
@Module({})
export class LoggingModule {
  static forRoot(logger: Logger): DynamicModule {
    return {
      module: LoggingModule,
      imports: [
        LoggerModule.forRoot({
          forRoutes: [],
          pinoHttp: {
            logger,
            autoLogging: false,
            quietReqLogger: true,
            quietResLogger: true,
            customAttributeKeys: { reqId: 'request_id' },
            genReqId: (req: IncomingMessage) => requestIdOf(req) || resolveRequestId(undefined),
            // No request object in any binding: headers, query strings and bodies never reach a log line.
            wrapSerializers: false,
            serializers: { req: () => undefined, res: () => undefined },
          },
        }),
      ],
      providers: [{ provide: ROOT_LOGGER, useValue: logger }],
      exports: [ROOT_LOGGER],
    };
  }
}
