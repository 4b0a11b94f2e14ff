import 'reflect-metadata';
import { RobotProfileError } from '@app/safety';
import { ConfigError, loadConfig } from './config';
import { ModelConfigError } from './inference/model-config.schema';
import { readVersion } from './config/version';
import { startServer } from './server';

function fatal(message: string, extra: Record<string, unknown> = {}): never {
  process.stderr.write(
    `${JSON.stringify({ level: 'fatal', time: new Date().toISOString(), pid: process.pid, ...extra, msg: message })}\n`,
  );
  process.exit(1);
}

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env, { version: readVersion() });
  } catch (error) {
    if (error instanceof ConfigError) fatal(`invalid configuration: ${error.message}`, { code: error.code });
    throw error;
  }
  await startServer(config, { installSignalHandlers: true });
}

main().catch((error: unknown) => {
  if (error instanceof RobotProfileError) {
    fatal(`invalid robot profile: ${error.message}`, {
      code: error.code,
      file: error.source,
      field: error.field,
    });
  }
  if (error instanceof ModelConfigError) {
    fatal(`invalid model config: ${error.message}`, {
      code: error.code,
      file: error.source,
      field: error.field,
    });
  }
  fatal('startup failed', {
    err: error instanceof Error ? { type: error.constructor.name, message: error.message } : String(error),
  });
});
