import { Injectable } from '@nestjs/common';
import { Logger } from 'nestjs-pino';

/**
 * Nest's framework chatter (every module initialised, every route mapped) moves to debug, so that at the
 * default level a start is one line saying where the API listens.
 */
const FRAMEWORK_CONTEXTS = new Set([
  'NestFactory',
  'InstanceLoader',
  'RoutesResolver',
  'RouterExplorer',
  'NestApplication',
]);

@Injectable()
export class AppLogger extends Logger {
  // `any`: the signature is fixed by Nest's LoggerService.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override log(message: any, ...optionalParams: unknown[]): void {
    const context: unknown = optionalParams[optionalParams.length - 1];
    if (typeof context === 'string' && FRAMEWORK_CONTEXTS.has(context)) {
      super.debug(message, ...optionalParams);
      return;
    }
    super.log(message, ...optionalParams);
  }
}
