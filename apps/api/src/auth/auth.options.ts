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
