import { InjectMetric } from '@app/monitoring';
import { Injectable, type OnModuleInit } from '@nestjs/common';
import type { Request } from 'express';
import type { Counter } from 'prom-client';
import { ANY_SCOPE, type RouteScope } from './auth.decorators';
import { AppError } from '../errors/app-error';
import { ApiKeyVerifier, type Principal } from './api-key-verifier.service';
import { AUTH_FAILURE_REASONS, AUTH_METRICS, type AuthFailureReason } from './auth.metrics';
import { presentedKey } from './presented-key';

/** One message for every kind of bad key: the 401s are byte-identical, whatever went wrong. */
export const UNAUTHORIZED_MESSAGE =
  'A valid API key is required: send X-API-Key: <key> or Authorization: Bearer <key>.';

export type AuthenticatedRequest = Request & { auth?: Principal };

/** Authentication and scope checks, shared by the guard and the metrics endpoint. */
@Injectable()
export class AuthService implements OnModuleInit {
  constructor(
    private readonly verifier: ApiKeyVerifier,
    @InjectMetric(AUTH_METRICS.failures) private readonly failures: Counter<'reason'>,
  ) {}

  /** Every reason is exported from the start (at 0), so rate() works before the first refusal. */
  onModuleInit(): void {
    for (const reason of AUTH_FAILURE_REASONS) this.failures.inc({ reason }, 0);
  }

  /** Attaches the principal to `req`, or throws 401, 403 or 503. */
  async authenticate(req: AuthenticatedRequest, scope: RouteScope): Promise<Principal> {
    const presented = presentedKey(req.headers);
    if (presented.kind !== 'key') this.refuse(presented.kind === 'none' ? 'missing' : 'conflicting');
    const result = await this.verifier.verify(presented.key);
    if (!result.ok) {
      if (result.reason === 'unavailable') {
        this.failures.inc({ reason: 'unavailable' });
        throw new AppError(
          'dependency_unavailable',
          'The key could not be checked: the database is unavailable.',
          {
            retryAfterSeconds: 5,
            component: 'auth',
          },
        );
      }
      this.refuse(result.reason);
    }
    const principal = result.principal;
    if (principal.tenantDisabled) {
      this.failures.inc({ reason: 'tenant_disabled' });
      throw new AppError('forbidden', 'This tenant is disabled.');
    }
    if (scope !== ANY_SCOPE && !principal.scopes.includes(scope) && !principal.scopes.includes('admin')) {
      this.failures.inc({ reason: 'scope' });
      throw new AppError('forbidden', `This key lacks the ${scope} scope.`);
    }
    req.auth = principal;
    return principal;
  }

  private refuse(reason: AuthFailureReason): never {
    this.failures.inc({ reason });
    throw new AppError('unauthorized', UNAUTHORIZED_MESSAGE);
  }
}
