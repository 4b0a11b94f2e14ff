import { counterProvider } from '@app/monitoring';

export const AUTH_METRICS = {
  failures: 'vla_auth_failures_total',
} as const;

/**
 * Why a request was refused. Internal only: clients get one identical 401 for every reason up to
 * `wrong_secret`, so the label never turns into an oracle, and it never carries key material.
 */
export const AUTH_FAILURE_REASONS = [
  'missing',
  'conflicting',
  'malformed',
  'unknown',
  'wrong_secret',
  'revoked',
  'expired',
  'scope',
  'tenant_disabled',
  'unavailable',
] as const;
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

export const authMetricProviders = [
  counterProvider({
    name: AUTH_METRICS.failures,
    help: 'Refused credentials by reason (missing, malformed, unknown, wrong_secret, revoked, expired, scope, ...).',
    labelNames: ['reason'],
  }),
];
