import { register } from 'prom-client';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import type { ModuleMetadata } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { type AppConfig, loadConfig } from '../../src/config';
import { startServer } from '../../src/server';
import { LogCapture } from './log-capture';
import { ProbeModule } from './probe.module';

type Imports = NonNullable<ModuleMetadata['imports']>;

export interface TestApp {
  readonly url: string;
  readonly app: NestExpressApplication;
  readonly config: AppConfig;
  readonly logs: LogCapture;
  /** GET/POST against the app with a client of its own; never throws on a status. */
  fetch(
    path: string,
    init?: { method?: string; headers?: Record<string, string>; body?: string | Buffer },
  ): Promise<{ status: number; headers: Record<string, string>; text: string; json: () => unknown }>;
  close(): Promise<void>;
}

/**
 * Like {@link startTestApp}, with the modules to mount (the probe routes by default) and a database the caller may
 * share between apps: with `env.DATABASE_URL` set the app uses it and `close()` leaves it alone; without it,
 * the app gets a fresh SQLite file that `close()` removes. The metrics registry is process-wide: it is
 * cleared first, so of two apps in one process only the last started should be scraped.
 */
export async function startTestAppWith(
  env: Record<string, string> = {},
  imports: Imports = [ProbeModule],
): Promise<TestApp> {
  register.clear();
  const dir = env.DATABASE_URL === undefined ? mkdtempSync(join(tmpdir(), 'vla-e2e-')) : undefined;
  const config = loadConfig(
    {
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ...(dir === undefined ? {} : { DATABASE_URL: `sqlite:${join(dir, 'platform.sqlite')}` }),
      ...env,
    },
    { version: '0.0.0-test' },
  );
  const logs = new LogCapture();
  const running = await startServer(config, { logDestination: logs, imports });
  const app: NestExpressApplication = running.app;
  const agent = new Agent({ connections: 16 });
  return {
    url: running.url,
    app,
    config,
    logs,
    async fetch(path, init = {}) {
      const res = await request(`${running.url}${path}`, {
        method: (init.method ?? 'GET') as 'GET',
        headers: init.headers,
        body: init.body,
        dispatcher: agent,
      });
      const text = await res.body.text();
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v;
      return { status: res.statusCode, headers, text, json: () => JSON.parse(text) as unknown };
    },
    async close() {
      await agent.close();
      await running.app.close();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts the real app on 127.0.0.1 with a free port, a fresh SQLite file (unless `env.DATABASE_URL` names a
 * database) and the probe routes, with its logs captured.
 */
export function startTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  return startTestAppWith(env);
}
