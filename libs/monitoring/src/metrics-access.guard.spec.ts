import type { ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import type { IncomingHttpHeaders } from 'node:http';
import { MetricsAccessGuard, MetricsAccessPolicy, MetricsUnauthorizedError } from './metrics-access.guard';
import type { MonitoringModuleOptions } from './monitoring.options';

const TOKEN = 'mt_0123456789abcdefXYZ';
const OPS_KEY = 'ops-key-for-tests';

function guard(options: Partial<MonitoringModuleOptions> = {}, policy = new MetricsAccessPolicy()) {
  return new MetricsAccessGuard(
    { appVersion: '1.2.3', token: TOKEN, public: false, httpMetrics: true, ...options },
    policy,
  );
}

/** A policy accepting X-API-Key / Bearer `OPS_KEY`, forbidding `inference-key`, refusing anything else. */
function keyPolicy(): MetricsAccessPolicy {
  const policy = new MetricsAccessPolicy();
  policy.allowAlternative((req: Request) => {
    const key = req.headers['x-api-key'] ?? req.headers.authorization?.replace(/^Bearer\s+/i, '');
    if (key === OPS_KEY) return Promise.resolve();
    if (key === 'inference-key')
      return Promise.reject(Object.assign(new Error('no ops scope'), { code: 'forbidden' }));
    return Promise.reject(Object.assign(new Error('bad key'), { code: 'unauthorized' }));
  });
  return policy;
}

/** An HTTP ExecutionContext whose request carries `headers` (lower-case names, as Node gives them). */
function contextWith(headers: IncomingHttpHeaders): ExecutionContext {
  const request = { method: 'GET', url: '/monitoring/metrics', headers };
  return { switchToHttp: () => ({ getRequest: () => request }) } as unknown as ExecutionContext;
}

/** The refusal `headers` get; fails the test if they are let through. */
async function refusal(
  g: MetricsAccessGuard,
  headers: IncomingHttpHeaders,
): Promise<MetricsUnauthorizedError> {
  try {
    await g.canActivate(contextWith(headers));
  } catch (error) {
    if (error instanceof MetricsUnauthorizedError) return error;
    throw error;
  }
  throw new Error(`expected a refusal for ${JSON.stringify(headers)}`);
}

describe('MetricsAccessGuard', () => {
  it('lets everyone in when the endpoint is public, token or not', async () => {
    expect(await guard({ public: true, token: null }).canActivate(contextWith({}))).toBe(true);
    expect(await guard({ public: true }).canActivate(contextWith({ authorization: 'Bearer wrong' }))).toBe(
      true,
    );
  });

  it('refuses everyone when no token is configured, saying how to fix it', async () => {
    const error = await refusal(guard({ token: null }), { authorization: `Bearer ${TOKEN}` });
    expect(error.code).toBe('unauthorized');
    expect(error.message).toContain('METRICS_TOKEN');
    expect(error.message).toContain('METRICS_PUBLIC');
  });

  it('accepts the token as a Bearer credential, whatever the case of the scheme', async () => {
    const g = guard();
    expect(await g.canActivate(contextWith({ authorization: `Bearer ${TOKEN}` }))).toBe(true);
    expect(await g.canActivate(contextWith({ authorization: `bearer ${TOKEN}` }))).toBe(true);
    expect(await g.canActivate(contextWith({ authorization: `BEARER  ${TOKEN} ` }))).toBe(true);
  });

  it('accepts the token in X-Admin-Token', async () => {
    expect(await guard().canActivate(contextWith({ 'x-admin-token': TOKEN }))).toBe(true);
  });

  it('falls back to X-Admin-Token when Authorization is not a Bearer credential', async () => {
    expect(
      await guard().canActivate(contextWith({ authorization: 'Basic dXNlcjpwYXNz', 'x-admin-token': TOKEN })),
    ).toBe(true);
  });

  it('refuses a wrong, a shorter, a longer or a missing token with one identical message', async () => {
    const g = guard();
    const wrongSameLength = `${TOKEN.slice(0, -1)}Q`;
    const cases: IncomingHttpHeaders[] = [
      { authorization: `Bearer ${wrongSameLength}` },
      { 'x-admin-token': wrongSameLength },
      { authorization: `Bearer ${TOKEN.slice(0, 8)}` },
      { 'x-admin-token': `${TOKEN}-and-more` },
      {},
      { authorization: '' },
      { 'x-admin-token': '' },
      { authorization: 'Bearer' },
      { authorization: TOKEN },
      { authorization: `Basic ${TOKEN}` },
    ];
    const messages: string[] = [];
    for (const headers of cases) {
      const error = await refusal(g, headers);
      expect(error.code).toBe('unauthorized');
      messages.push(error.message);
    }
    expect(new Set(messages)).toEqual(new Set([messages[0]]));
    expect(messages[0]).not.toContain(TOKEN);
    expect(messages[0]).not.toContain(wrongSameLength);
    expect(messages[0]).toBe(
      'A valid metrics token is required: send Authorization: Bearer <token> or X-Admin-Token.',
    );
  });

  it('refuses a wrong Bearer token even when X-Admin-Token is right', async () => {
    await refusal(guard(), { authorization: 'Bearer not-the-token', 'x-admin-token': TOKEN });
  });

  describe('with an alternative (ops API keys)', () => {
    it('still accepts the token, and accepts what the alternative accepts', async () => {
      const g = guard({}, keyPolicy());
      expect(await g.canActivate(contextWith({ authorization: `Bearer ${TOKEN}` }))).toBe(true);
      expect(await g.canActivate(contextWith({ 'x-api-key': OPS_KEY }))).toBe(true);
      expect(await g.canActivate(contextWith({ authorization: `Bearer ${OPS_KEY}` }))).toBe(true);
    });

    it('passes the refusals of the alternative itself (403 for a key without the scope) through', async () => {
      await expect(
        guard({}, keyPolicy()).canActivate(contextWith({ 'x-api-key': 'inference-key' })),
      ).rejects.toMatchObject({ code: 'forbidden' });
    });

    it('answers a bad key, a bad token and no credential with one identical message', async () => {
      const g = guard({}, keyPolicy());
      const messages: string[] = [];
      for (const headers of [
        {},
        { 'x-api-key': 'nope' },
        { authorization: 'Bearer nope' },
        { 'x-admin-token': 'x' },
      ]) {
        messages.push((await refusal(g, headers)).message);
      }
      expect(new Set(messages).size).toBe(1);
      expect(messages[0]).toContain('ops API key');
    });

    it('without a token configured, an ops key still gets in and others learn how to configure one', async () => {
      const g = guard({ token: null }, keyPolicy());
      expect(await g.canActivate(contextWith({ 'x-api-key': OPS_KEY }))).toBe(true);
      const error = await refusal(g, {});
      expect(error.message).toContain('METRICS_TOKEN');
      expect(error.message).toContain('METRICS_PUBLIC');
    });
  });
});
