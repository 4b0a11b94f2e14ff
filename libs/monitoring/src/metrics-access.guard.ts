import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { MONITORING_OPTIONS, type MonitoringModuleOptions } from './monitoring.options';
import { constantTimeEqual } from './secure-compare';

/** A refused scrape; the app maps the `unauthorized` code to 401. */
export class MetricsUnauthorizedError extends Error {
  readonly code = 'unauthorized';
}

/** One message for a missing and a wrong token alike, so a caller learns nothing from the difference. */
const REFUSED = 'A valid metrics token is required: send Authorization: Bearer <token> or X-Admin-Token.';
const NOT_CONFIGURED =
  'The metrics endpoint is protected and no token is configured: set METRICS_TOKEN (or METRICS_TOKEN_FILE), ' +
  'or METRICS_PUBLIC=true where the network already restricts access.';

/**
 * Guards `/monitoring/metrics`: `Authorization: Bearer <METRICS_TOKEN>` (what a ServiceMonitor sends with a
 * Secret) or `X-Admin-Token: <METRICS_TOKEN>` (a Prometheus `http_headers` scrape config), or everyone when
 * public. Tokens are compared in constant time over SHA-256 digests.
 */
@Injectable()
export class MetricsAccessGuard implements CanActivate {
  constructor(@Inject(MONITORING_OPTIONS) private readonly options: MonitoringModuleOptions) {}

  canActivate(context: ExecutionContext): boolean {
    if (this.options.public) return true;
    const expected = this.options.token;
    if (expected === null) throw new MetricsUnauthorizedError(NOT_CONFIGURED);
    const req = context.switchToHttp().getRequest<Request>();
    const presented = presentedToken(req);
    // Compare even when nothing was presented, so both refusals cost the same.
    const ok = constantTimeEqual(presented ?? '', expected) && presented !== undefined;
    if (!ok) throw new MetricsUnauthorizedError(REFUSED);
    return true;
  }
}

function presentedToken(req: Request): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (match) return match[1];
  }
  const admin = req.headers['x-admin-token'];
  return typeof admin === 'string' && admin !== '' ? admin : undefined;
}
