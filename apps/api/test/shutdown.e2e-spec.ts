import { Pool, request } from 'undici';
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
    const order = ['shutdown: readiness is 503', 'shutdown: stopping intake', 'shutdown complete'].map((m) =>
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

  it('keep-alive clients looping through SIGTERM: only 200s until intake stops, no connection reset before', async () => {
    server = ChildServer.spawn(PROBE_SERVER, { SHUTDOWN_DRAIN_DELAY_MS: '1000' });
    const url = await server.waitUntilListening();
    const outcomes: { outcome: string; at: number; connection?: string | string[] }[] = [];
    const pool = new Pool(url, { connections: 4, pipelining: 1 });
    const loop = async (): Promise<void> => {
      // Bounded: stops at the first refused connection, or after 3 000 requests per client.
      for (let i = 0; i < 3000; i++) {
        try {
          const res = await pool.request({ path: '/health', method: 'GET' });
          await res.body.text();
          outcomes.push({
            outcome: String(res.statusCode),
            at: Date.now(),
            connection: res.headers.connection,
          });
        } catch (error) {
          const code = (error as { code?: string }).code ?? 'unknown';
          outcomes.push({ outcome: code, at: Date.now() });
          if (code === 'ECONNREFUSED') return;
        }
      }
    };
    const clients = Array.from({ length: 4 }, () => loop());
    await eventually(() => outcomes.length >= 20);
    const signalledAt = Date.now();
    server.child.kill('SIGTERM');
    await Promise.all(clients);
    await pool.destroy();
    expect(await server.exit()).toEqual({ code: 0, signal: null });

    const stopping = server.records().find(byMsg('shutdown: stopping intake'));
    const intakeStoppedAt = Date.parse(stopping?.time as string);
    // During the drain delay every request is served: the keep-alive race (a reused connection closed under
    // a request) cannot happen, because every response from the signal on says Connection: close.
    const beforeStop = outcomes.filter((o) => o.at < intakeStoppedAt);
    expect(beforeStop.filter((o) => o.at >= signalledAt).length).toBeGreaterThan(0);
    expect(new Set(beforeStop.map((o) => o.outcome))).toEqual(new Set(['200']));
    // Before the signal connections are reused; from the signal on each response closes its connection.
    expect(outcomes.filter((o) => o.at < signalledAt).every((o) => o.connection === 'keep-alive')).toBe(true);
    // Responses already on the wire when draining began may still say keep-alive: leave them a margin.
    const drainingAt = Date.parse(server.records().find(byMsg('shutdown: readiness is 503'))?.time as string);
    const drained = outcomes.filter(
      (o) => o.outcome === '200' && o.at > drainingAt + 250 && o.at < intakeStoppedAt,
    );
    expect(drained.length).toBeGreaterThan(0);
    expect(drained.every((o) => o.connection === 'close')).toBe(true);
    // Once intake stops, a request is refused before it is read: 503 shutting_down on an accepted
    // connection, or a refused (or, from the listen backlog, reset) connection. Never a 5xx of another kind.
    const afterStop = new Set(outcomes.filter((o) => o.at >= intakeStoppedAt).map((o) => o.outcome));
    for (const outcome of afterStop) expect(['200', '503', 'ECONNREFUSED', 'ECONNRESET']).toContain(outcome);
    expect(afterStop.has('ECONNREFUSED')).toBe(true);
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
    await server.waitForLog(byMsg('shutdown: stopping intake'));
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
