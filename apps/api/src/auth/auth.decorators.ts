import { SetMetadata } from '@nestjs/common';
import type { ApiKeyScope } from '../database/entities';

export const IS_PUBLIC = 'vla:auth:public';
export const REQUIRED_SCOPE = 'vla:auth:scope';

/** The route needs no key. The only way to make a route public: the guard denies everything else. */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(IS_PUBLIC, true);

/** What a route asks of a key: one scope, or {@link ANY_SCOPE} (any valid key, whatever its scopes). */
export const ANY_SCOPE = 'any';
export type RouteScope = ApiKeyScope | typeof ANY_SCOPE;

/** The scope a key needs for this route (`admin` implies every scope). Undecorated routes need `admin`. */
export const RequireScope = (scope: RouteScope): MethodDecorator & ClassDecorator =>
  SetMetadata(REQUIRED_SCOPE, scope);
