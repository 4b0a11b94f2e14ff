import { register } from 'prom-client';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { type AppConfig, loadConfig } from '../../src/config';
import { startServer } from '../../src/server';
import { LogCapture } from './log-capture';
import { ProbeModule } from './probe.module';

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
 * Starts the real app on 127.0.0.1 with a free port, a fresh SQLite file and the probe routes, with its
 * logs captured. The metrics registry is process-wide: it is cleared first.
 */
export async function startTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  register.clear();
  const dir = mkdtempSync(join(tmpdir(), 'vla-e2e-'));
  const config = loadConfig(
    {
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE_URL: `sqlite:${join(dir, 'platform.sqlite')}`,
      LOG_LEVEL: 'info',
      ...env,
    },
    { version: '0.0.0-test' },
  );
  const logs = new LogCapture();
  const running = await startServer(config, { logDestination: logs, imports: [ProbeModule] });
  const agent = new Agent({ connections: 16 });
  return {
    url: running.url,
    app: running.app,
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
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
