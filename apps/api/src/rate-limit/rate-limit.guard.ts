import {
  applyDecorators,
  type CanActivate,
  type ExecutionContext,
  Inject,
  Injectable,
  SetMetadata,
  UseGuards,
} from '@nestjs/common';
import {
  type Decision,
  type LimitType,
  RateLimiter,
  rateLimitHeaders,
  retryAfterSeconds,
} from '@app/rate-limit';
import type { Response } from 'express';
import type { AuthenticatedRequest } from '../auth/auth.service';
import { APP_CONFIG, type AppConfig } from '../config';
import { AppError } from '../errors/app-error';
import { limitsFor } from './limits-for';

/** Route metadata: the route runs behind {@link RateLimitGuard} (the route inventory test checks it). */
export const RATE_LIMITED = Symbol('RATE_LIMITED');

/**
 * Puts a route behind the per-key and per-tenant limits. Route guards run after the global API-key guard,
 * so the caller is known. Every `inference`-scoped route must carry it.
 */
export const RateLimited = (): MethodDecorator & ClassDecorator =>
  applyDecorators(SetMetadata(RATE_LIMITED, true), UseGuards(RateLimitGuard));

const refusal = (limit: LimitType, size: number, retryAfter: number): string => {
  switch (limit) {
    case 'requests_per_minute':
      return `Rate limit exceeded: this key may send ${size} requests per minute; retry in ${retryAfter} s.`;
    case 'concurrency':
      return `Too many requests in flight: this key may have ${size} at once; retry when one finishes.`;
    case 'daily_quota':
      return `The tenant's daily quota of ${size} requests is used up; it resets at midnight UTC.`;
    case 'tokens_per_minute':
      return `The tenant's limit of ${size} tokens per minute is used up; retry in ${retryAfter} s.`;
  }
};

/**
 * Admits a request against its caller's limits, or refuses it: 429 `rate_limited` (per-minute, concurrency,
 * tokens) or 429 `quota_exceeded` (daily quota), with `Retry-After` and `error.details.limit_type`. Every
 * answer of a limited route carries the `RateLimit-Policy` and `RateLimit` headers of the limits that apply.
 * The concurrency slot is released when the response closes: finished, failed or abandoned by the client.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  constructor(
    private readonly limiter: RateLimiter,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const req = http.getRequest<AuthenticatedRequest>();
    const res = http.getResponse<Response>();
    const principal = req.auth;
    if (principal === undefined) throw new Error('rate-limited route reached without a principal');
    const limits = limitsFor(principal, this.config.rateLimit);
    const decision = await this.limiter.admit(
      { keyId: principal.keyId, tenantId: principal.tenantId, tenantName: principal.tenantName },
      limits,
    );
    const headers = rateLimitHeaders(decision.states);
    if (headers !== null && !res.headersSent) res.set(headers);
    if (!decision.allowed) throw refused(decision);
    // The client may have gone while Redis answered: then 'close' has already fired.
    const socket = res.socket;
    if (socket === null || socket.destroyed) decision.release();
    else res.once('close', () => decision.release());
    return true;
  }
}

function refused(decision: Extract<Decision, { allowed: false }>): AppError {
  const retryAfter = retryAfterSeconds(decision.retryAfterMs);
  const size = decision.states.find((s) => s.type === decision.limit)?.limit ?? 0;
  return new AppError(
    decision.limit === 'daily_quota' ? 'quota_exceeded' : 'rate_limited',
    refusal(decision.limit, size, retryAfter),
    {
      retryAfterSeconds: retryAfter,
      details: { limit_type: decision.limit, limit: size },
      component: 'rate_limit',
    },
  );
}
