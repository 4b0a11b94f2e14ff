import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Pool, request } from 'undici';
import { ChildServer } from './support/child-server';
import { eventually } from './support/eventually';
import { createInferenceKey, errorCodeOf, policyBody, postInference } from './support/inference-client';

const byMsg = (prefix: string) => (r: Record<string, unknown>) =>
  typeof r.msg === 'string' && r.msg.startsWith(prefix);

/** What one request of the load ended with. */
interface Outcome {
  readonly id: string;
  readonly model: string;
  /** The HTTP status as text, or the transport error's code (ECONNREFUSED, ECONNRESET, ...). */
  readonly outcome: string;
  /** The error code of a non-200 answer. */
  readonly code?: string;
  /** The answer's Connection header. */
  readonly connection?: string;
  /** Date.now() when the request was sent and when its answer (or error) arrived. */
  readonly sentAt: number;
  readonly at: number;
}

describe('SIGTERM under inference load (TESTS S1, real process)', () => {
  let server: ChildServer | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await server?.dispose();
    server = undefined;
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('readiness 503 at once, every request answered before intake stops is a 200, exit 0, one usage row per request the service saw', async () => {
    dir = mkdtempSync(join(tmpdir(), 'vla-s1-'));
    const file = join(dir, 'platform.sqlite');
    server = ChildServer.spawn('apps/api/src/main.ts', {
      DATABASE_URL: `sqlite:${file}`,
      SHUTDOWN_DRAIN_DELAY_MS: '1000',
      SHUTDOWN_TIMEOUT_MS: '20000',
      // Rows are written only by the shutdown flush: this checks that flush, not the timer.
      USAGE_FLUSH_INTERVAL_MS: '60000',
    });
    const url = await server.waitUntilListening();
    await eventually(async () => (await request(`${url}/health/ready`)).statusCode === 200);
    const admin = (await server.waitForLog((r) => 'bootstrap_admin_key' in r)).bootstrap_admin_key as string;
    const key = await createInferenceKey(url, admin, 'robots');

    const outcomes: Outcome[] = [];
    const pools: Pool[] = [];
    // A keep-alive client: one connection, requests back to back. Bounded: it stops at the first refused
    // connection, or after 2 000 requests.
    const loop = async (name: string, model: 'demo-policy' | 'demo-policy-slow'): Promise<void> => {
      const pool = new Pool(url, { connections: 1, pipelining: 1 });
      pools.push(pool);
      const body = policyBody(model);
      for (let i = 0; i < 2000; i++) {
        const id = `s1-${name}-${i}`;
        const sentAt = Date.now();
        try {
          const res = await postInference(url, key, body, { requestId: id, dispatcher: pool });
          outcomes.push({
            id,
            model,
            outcome: String(res.status),
            code: errorCodeOf(res),
            connection: res.headers.connection,
            sentAt,
            at: Date.now(),
          });
        } catch (error) {
          const code = (error as { code?: string }).code ?? 'unknown';
          outcomes.push({ id, model, outcome: code, sentAt, at: Date.now() });
          if (code === 'ECONNREFUSED') return;
        }
      }
    };
    const clients = [
      ...['fast-a', 'fast-b', 'fast-c', 'fast-d'].map((n) => loop(n, 'demo-policy')),
      ...['slow-a', 'slow-b'].map((n) => loop(n, 'demo-policy-slow')),
    ];
    await eventually(
      () =>
        outcomes.filter((o) => o.outcome === '200').length >= 30 &&
        outcomes.some((o) => o.model === 'demo-policy-slow' && o.outcome === '200'),
      30_000,
    );

    const signalledAt = Date.now();
    server.child.kill('SIGTERM');
    // The first probe after the signal, on a new connection (one the process accepts after the signal, not
    // a kept-alive one whose bytes could be read in the same event-loop turn as the signal).
    // The signal and the probe's connection may be handled in either order within the child's first
    // event-loop turns: probe again (new connections) until readiness has turned, within a second.
    let probe: Awaited<ReturnType<Client['request']>>;
    let probeBody: string;
    for (let attempt = 0; ; attempt++) {
      const prober = new Client(url);
      probe = await prober.request({ path: '/health/ready', method: 'GET' });
      probeBody = await probe.body.text();
      await prober.close();
      if (probe.statusCode !== 200 || attempt >= 20 || Date.now() - signalledAt > 1000) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(probe.statusCode).toBe(503);
    expect(JSON.parse(probeBody)).toMatchObject({ error: { code: 'not_ready' } });

    await Promise.all(clients);
    await Promise.all(pools.map((p) => p.destroy()));
    expect(await server.exit()).toEqual({ code: 0, signal: null });

    const records = server.records();
    const intakeStoppedAt = Date.parse(records.find(byMsg('shutdown: stopping intake'))?.time as string);
    expect(Number.isFinite(intakeStoppedAt)).toBe(true);
    // New requests were still accepted and answered during the drain delay.
    const duringDrain = outcomes.filter((o) => o.sentAt >= signalledAt && o.at < intakeStoppedAt);
    expect(duringDrain.length).toBeGreaterThan(0);
    // Every answer that came before intake stopped is a 200; no reset connection either.
    const before = outcomes.filter((o) => o.at < intakeStoppedAt);
    expect(new Set(before.map((o) => o.outcome))).toEqual(new Set(['200']));
    // Afterwards: requests in flight still finish (200); new ones are refused before they are read, as a
    // 503 shutting_down on an open connection or a refused (or, from the listen backlog, reset) connection.
    const after = outcomes.filter((o) => o.at >= intakeStoppedAt);
    for (const o of after) expect(['200', '503', 'ECONNREFUSED', 'ECONNRESET']).toContain(o.outcome);
    for (const o of outcomes.filter((x) => x.outcome === '503')) {
      expect(o.code).toBe('shutting_down');
      expect(o.connection).toBe('close');
    }
    // Before the signal connections are kept alive (so the drain had reused connections to deal with).
    expect(outcomes.filter((o) => o.at < signalledAt).every((o) => o.connection === 'keep-alive')).toBe(true);
    // Every client ended on a refused connection: the listener closed.
    expect(outcomes.filter((o) => o.outcome === 'ECONNREFUSED')).toHaveLength(6);

    // Rows come from requests that reached the inference service: every 200 (and any other answer of the
    // service), never a request refused at intake (503 shutting_down) or one that never arrived.
    const served = outcomes.filter(
      (o) => /^\d{3}$/.test(o.outcome) && !(o.outcome === '503' && o.code === 'shutting_down'),
    );
    expect(served.length).toBe(outcomes.filter((o) => o.outcome === '200').length);
    expect(records.some(byMsg('usage buffer flushed at shutdown'))).toBe(true);
    const db = new Database(file, { readonly: true });
    try {
      const rows = db
        .prepare(
          'SELECT request_id, COUNT(*) AS n, MIN(http_status) AS http FROM usage_records GROUP BY request_id',
        )
        .all() as { request_id: string; n: number; http: number }[];
      expect(rows.every((r) => r.n === 1)).toBe(true);
      expect(rows.map((r) => r.request_id).sort()).toEqual(served.map((o) => o.id).sort());
      const total = db.prepare('SELECT COUNT(*) AS n FROM usage_records').get() as { n: number };
      expect(total.n).toBe(served.length);
      expect(rows.every((r) => r.http === 200)).toBe(true);
    } finally {
      db.close();
    }
  }, 120_000);
});
