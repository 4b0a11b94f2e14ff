import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { CustomerMetrics, METRICS_ENDPOINT } from '@app/monitoring';
import { IS_PUBLIC, REQUIRED_SCOPE, type RouteScope } from './auth.decorators';
import { type AuthenticatedRequest, AuthService } from './auth.service';

/**
 * The global, deny-by-default guard. A route is public only through `@Public()`; every other route needs a
 * valid key with the scope its metadata names (`@RequireScope`, else `admin`), decided on the matched
 * route's metadata and never on the URL. The metrics endpoint is left to its own guard (its token, or an
 * ops key through AuthService).
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly auth: AuthService,
    private readonly customers: CustomerMetrics,
  ) {}

  /** Public routes and the metrics endpoint answer synchronously: no promise on their path. */
  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets) === true) return true;
    if (this.reflector.getAllAndOverride<boolean>(METRICS_ENDPOINT, targets) === true) return true;
    const scope = this.reflector.getAllAndOverride<RouteScope>(REQUIRED_SCOPE, targets) ?? 'admin';
    return this.authenticate(context.switchToHttp().getRequest<AuthenticatedRequest>(), scope);
  }

  private async authenticate(req: AuthenticatedRequest, scope: RouteScope): Promise<boolean> {
    const principal = await this.auth.authenticate(req, scope);
    this.customers.request(principal.tenantName);
    return true;
  }
}
