import { request } from 'undici';
import { ChildServer } from './support/child-server';
import { eventually } from './support/eventually';

const PROBE_SERVER = 'apps/api/test/support/serve-with-probes.ts';
const byMsg = (prefix: string) => (r: Record<string, unknown>) =>
  typeof r.msg === 'string' && r.msg.startsWith(prefix);

async function get(url: string): Promise<{ status: number; body: string; connection?: string }> {
  const res = await request(url, { reset: true });
  return {
    status: res.statusCode,
    body: await res.body.text(),
    connection: res.headers.connection as string,
  };
}

describe('graceful shutdown (real process, real signals)', () => {
  let server: ChildServer | undefined;
  afterEach(async () => {
    await server?.dispose();
    server = undefined;
  });

  it('SIGTERM during a slow request: readiness 503 at once, liveness 200, the request completes, exit 0', async () => {
    server = ChildServer.spawn(PROBE_SERVER, {
      SHUTDOWN_DRAIN_DELAY_MS: '1500',
      SHUTDOWN_TIMEOUT_MS: '20000',
    });
    const url = await server.waitUntilListening();
    expect((await get(`${url}/health/ready`)).status).toBe(200);

    const slow = get(`${url}/probe/slow?ms=3000`);
    await server.waitForLog(byMsg('slow request started'));
    server.child.kill('SIGTERM');
    await server.waitForLog(byMsg('shutdown: readiness is 503'));

    // Draining: still serving, but no longer ready.
    const ready = await get(`${url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toMatchObject({ error: { code: 'not_ready' } });
    expect((await get(`${url}/health`)).status).toBe(200);

    // Intake stops after the drain delay: new connections are refused.
    await eventually(async () => {
      try {
        await get(`${url}/health`);
        return false;
      } catch (error) {
        return (error as { code?: string }).code === 'ECONNREFUSED';
      }
    });

    const done = await slow;
    expect(done.status).toBe(200);
    expect(JSON.parse(done.body)).toEqual({ slept_ms: 3000 });
    expect(done.connection).toBe('close');

    expect(await server.exit()).toEqual({ code: 0, signal: null });
    const messages = server.records().map((r) => r.msg as string);
    const order = ['shutdown: readiness is 503', 'shutdown: intake stopped', 'shutdown complete'].map((m) =>
      messages.findIndex((x) => x.startsWith(m)),
    );
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    const slowLine = server.records().find((r) => r.msg === 'request completed' && r.route === '/probe/slow');
    expect(slowLine).toMatchObject({ status: 200 });
    // The slow request finished before the resources closed.
    expect(messages.indexOf('request completed', messages.indexOf('slow request started'))).toBeLessThan(
      order[2],
    );
  });

  it('a request longer than SHUTDOWN_TIMEOUT_MS is cut and the exit code says work was abandoned', async () => {
    server = ChildServer.spawn(PROBE_SERVER, { SHUTDOWN_TIMEOUT_MS: '300' });
    const url = await server.waitUntilListening();
    const slow = get(`${url}/probe/slow?ms=30000`).then(
      () => 'answered',
      () => 'cut',
    );
    await server.waitForLog(byMsg('slow request started'));
    server.child.kill('SIGTERM');
    expect(await slow).toBe('cut');
    expect((await server.exit()).code).toBe(1);
    expect(server.records().some(byMsg('shutdown timeout'))).toBe(true);
  });

  it('a second signal during shutdown exits at once with code 1 and says so', async () => {
    server = ChildServer.spawn(PROBE_SERVER, { SHUTDOWN_TIMEOUT_MS: '60000' });
    const url = await server.waitUntilListening();
    void get(`${url}/probe/slow?ms=30000`).catch(() => undefined);
    await server.waitForLog(byMsg('slow request started'));
    server.child.kill('SIGTERM');
    await server.waitForLog(byMsg('shutdown: intake stopped'));
    server.child.kill('SIGINT');
    expect((await server.exit()).code).toBe(1);
    expect(server.records().find(byMsg('second signal'))).toMatchObject({ signal: 'SIGINT', in_flight: 1 });
  });
});

describe('startup configuration errors (main.ts)', () => {
  it.each([
    [{ PORT: 'abc' }, 'PORT', 'abc'],
    [{ PORT: '70000' }, 'PORT', '70000'],
    [{ METRICS_TOKEN: 'too-short' }, 'METRICS_TOKEN', 'too-short'],
    [{ DATABASE_URL: 'mysql://root:hunter2@db/x' }, 'DATABASE_URL', 'hunter2'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', 'loud'],
  ])('%j stops the process with exit code 1 naming %s, never echoing the value', async (env, name, value) => {
    const child = ChildServer.spawn('apps/api/src/main.ts', env);
    try {
      expect(await child.exit()).toEqual({ code: 1, signal: null });
      const stderr = child.stderr.join('');
      const line = JSON.parse(stderr.trim().split('\n').pop() ?? '{}') as { level: string; msg: string };
      expect(line.level).toBe('fatal');
      expect(line.msg).toContain(name);
      expect(stderr).not.toContain(value);
    } finally {
      await child.dispose();
    }
  });
});
