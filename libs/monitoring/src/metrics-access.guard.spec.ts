import type { ExecutionContext } from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import { MetricsAccessGuard, MetricsUnauthorizedError } from './metrics-access.guard';
import type { MonitoringModuleOptions } from './monitoring.options';

const TOKEN = 'mt_0123456789abcdefXYZ';

function guard(options: Partial<MonitoringModuleOptions> = {}): MetricsAccessGuard {
  return new MetricsAccessGuard({
    appVersion: '1.2.3',
    token: TOKEN,
    public: false,
    httpMetrics: true,
    ...options,
  });
}

/** An HTTP ExecutionContext whose request carries `headers` (lower-case names, as Node gives them). */
function contextWith(headers: IncomingHttpHeaders): ExecutionContext {
  const request = { method: 'GET', url: '/monitoring/metrics', headers };
  return { switchToHttp: () => ({ getRequest: () => request }) } as unknown as ExecutionContext;
}

/** The refusal `headers` get; fails the test if they are let through. */
function refusal(g: MetricsAccessGuard, headers: IncomingHttpHeaders): MetricsUnauthorizedError {
  try {
    g.canActivate(contextWith(headers));
  } catch (error) {
    if (error instanceof MetricsUnauthorizedError) return error;
    throw error;
  }
  throw new Error(`expected a refusal for ${JSON.stringify(headers)}`);
}

describe('MetricsAccessGuard', () => {
  it('lets everyone in when the endpoint is public, token or not', () => {
    expect(guard({ public: true, token: null }).canActivate(contextWith({}))).toBe(true);
    expect(guard({ public: true }).canActivate(contextWith({ authorization: 'Bearer wrong' }))).toBe(true);
  });

  it('refuses everyone when no token is configured, saying how to fix it', () => {
    const error = refusal(guard({ token: null }), { authorization: `Bearer ${TOKEN}` });
    expect(error.code).toBe('unauthorized');
    expect(error.message).toContain('METRICS_TOKEN');
    expect(error.message).toContain('METRICS_PUBLIC');
  });

  it('accepts the token as a Bearer credential, whatever the case of the scheme', () => {
    const g = guard();
    expect(g.canActivate(contextWith({ authorization: `Bearer ${TOKEN}` }))).toBe(true);
    expect(g.canActivate(contextWith({ authorization: `bearer ${TOKEN}` }))).toBe(true);
    expect(g.canActivate(contextWith({ authorization: `BEARER  ${TOKEN} ` }))).toBe(true);
  });

  it('accepts the token in X-Admin-Token', () => {
    expect(guard().canActivate(contextWith({ 'x-admin-token': TOKEN }))).toBe(true);
  });

  it('falls back to X-Admin-Token when Authorization is not a Bearer credential', () => {
    expect(
      guard().canActivate(contextWith({ authorization: 'Basic dXNlcjpwYXNz', 'x-admin-token': TOKEN })),
    ).toBe(true);
  });

  it('refuses a wrong, a shorter, a longer or a missing token with one identical message', () => {
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
    const messages = cases.map((headers) => {
      const error = refusal(g, headers);
      expect(error.code).toBe('unauthorized');
      return error.message;
    });
    expect(new Set(messages)).toEqual(new Set([messages[0]]));
    expect(messages[0]).not.toContain(TOKEN);
    expect(messages[0]).not.toContain(wrongSameLength);
    expect(messages[0]).toBe(
      'A valid metrics token is required: send Authorization: Bearer <token> or X-Admin-Token.',
    );
  });

  it('refuses a wrong Bearer token even when X-Admin-Token is right', () => {
    refusal(guard(), { authorization: 'Bearer not-the-token', 'x-admin-token': TOKEN });
  });
});
