import type { AppConfig } from '../config';

/** Settings of the auth module, from the app's configuration. */
export interface AuthOptions {
  /** Keys the HMAC of stored secrets; null uses a fixed domain key. */
  readonly pepper: string | null;
  /** How long a verified key is trusted without asking the database (also the revocation delay). */
  readonly cacheTtlMs: number;
  /** How long an unknown key id is remembered as unknown. */
  readonly negativeCacheTtlMs: number;
  /** Create tenant `default` with an admin key on a first start with no keys. */
  readonly bootstrap: boolean;
}

export const AUTH_OPTIONS = Symbol('AUTH_OPTIONS');

/** Unknown key ids are remembered this long: a burst of random keys costs one query per id. */
const NEGATIVE_CACHE_TTL_MS = 2000;

/** The auth options from the configuration: the server and the CLI must agree (the pepper above all). */
export function authOptionsFromConfig(config: AppConfig, overrides: Partial<AuthOptions> = {}): AuthOptions {
  return {
    pepper: config.auth.pepper,
    cacheTtlMs: config.auth.cacheTtlMs,
    negativeCacheTtlMs: Math.min(NEGATIVE_CACHE_TTL_MS, config.auth.cacheTtlMs),
    bootstrap: config.auth.bootstrap,
    ...overrides,
  };
}
