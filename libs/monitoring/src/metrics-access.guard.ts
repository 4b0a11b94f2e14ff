import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { MONITORING_OPTIONS, type MonitoringModuleOptions } from './monitoring.options';
import { constantTimeEqual } from './secure-compare';

/** A refused scrape; the app maps the `unauthorized` code to 401. */
export class MetricsUnauthorizedError extends Error {
  readonly code = 'unauthorized';
}

/** Route metadata marking the metrics endpoint, so an app's global auth guard leaves it to this guard. */
export const METRICS_ENDPOINT = 'vla:metrics-endpoint';

/** Checks a request's own credential (an app's API key) and throws when it may not scrape. */
export type MetricsAlternativeCheck = (req: Request) => Promise<void>;

/**
 * Other ways into `/monitoring/metrics` besides the token: the app registers one (e.g. "an API key with the
 * ops scope"). A check that throws an `unauthorized` error is answered like a bad token.
 */
@Injectable()
export class MetricsAccessPolicy {
  private check: MetricsAlternativeCheck | undefined;

  allowAlternative(check: MetricsAlternativeCheck): void {
    this.check = check;
  }

  get alternative(): MetricsAlternativeCheck | undefined {
    return this.check;
  }
}

/** One message for a missing and a wrong credential alike, so a caller learns nothing from the difference. */
const REFUSED = 'A valid metrics token is required: send Authorization: Bearer <token> or X-Admin-Token.';
const REFUSED_WITH_KEYS =
  'A valid metrics token or an ops API key is required: send Authorization: Bearer <token or key>, ' +
  'X-Admin-Token: <token> or X-API-Key: <key>.';
const NOT_CONFIGURED =
  'The metrics endpoint is protected and no token is configured: set METRICS_TOKEN (or METRICS_TOKEN_FILE), ' +
  'or METRICS_PUBLIC=true where the network already restricts access.';

/**
 * Guards `/monitoring/metrics`: `Authorization: Bearer <METRICS_TOKEN>` (what a ServiceMonitor sends with a
 * Secret) or `X-Admin-Token: <METRICS_TOKEN>` (a Prometheus `http_headers` scrape config), the app's
 * alternative (an ops API key), or everyone when public. Tokens are compared in constant time over SHA-256
 * digests.
 */
@Injectable()
export class MetricsAccessGuard implements CanActivate {
  constructor(
    @Inject(MONITORING_OPTIONS) private readonly options: MonitoringModuleOptions,
    private readonly policy: MetricsAccessPolicy,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (this.options.public) return true;
    const req = context.switchToHttp().getRequest<Request>();
    const expected = this.options.token;
    const presented = presentedToken(req);
    // Compare even when nothing was presented, so every refusal costs the same.
    if (constantTimeEqual(presented ?? '', expected ?? '') && presented !== undefined && expected !== null) {
      return true;
    }
    const alternative = this.policy.alternative;
    if (alternative !== undefined) {
      const refusal = expected === null ? `${NOT_CONFIGURED} Or send an ops API key.` : REFUSED_WITH_KEYS;
      if (!carriesApiKey(req)) throw new MetricsUnauthorizedError(refusal);
      try {
        await alternative(req);
        return true;
      } catch (error) {
        if ((error as { code?: unknown }).code === 'unauthorized')
          throw new MetricsUnauthorizedError(refusal);
        throw error;
      }
    }
    throw new MetricsUnauthorizedError(expected === null ? NOT_CONFIGURED : REFUSED);
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

function carriesApiKey(req: Request): boolean {
  return req.headers['x-api-key'] !== undefined || /^Bearer\s/i.test(req.headers.authorization ?? '');
}
