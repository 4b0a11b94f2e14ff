import type { Admission, Limits, Subject } from './limits';

/**
 * A place where limits are counted. `ticket` is unique per admission (the caller makes it): it names the
 * concurrency lease to release, and makes a resent admission (a reply lost on the wire) count once.
 */
export interface RateLimitStore {
  readonly kind: 'redis' | 'memory';
  admit(subject: Subject, limits: Limits, ticket: string): Promise<Admission>;
  /** Frees the concurrency lease of an admission; releasing twice, or an unknown ticket, does nothing. */
  release(subject: Subject, ticket: string): Promise<void>;
  /** Charges `tokens` to the tenant's tokens-per-minute bucket, once per `ticket`. */
  recordTokens(subject: Subject, tokens: number, tokensPerMinute: number, ticket: string): Promise<void>;
}
