import { createHash, randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import {
  NO_LIMITS,
  type Admission,
  LIMIT_TYPES,
  type Limits,
  type LimitState,
  type LimitType,
  type Subject,
  burstOf,
} from './limits';
import type { RateLimitStore } from './rate-limit-store';
import { ADMIT_SCRIPT, RECORD_TOKENS_SCRIPT, VOID_SCRIPT } from './redis-scripts';

export interface RedisStoreOptions {
  /** Key prefix (several platforms may share one Redis). */
  readonly prefix?: string;
  readonly leaseTtlMs: number;
  /** How long an admitted ticket's answer is kept for a resent command. */
  readonly markerTtlMs?: number;
  /** Milliseconds to use as "now"; unset, the Redis server's clock (one clock for every replica). */
  readonly now?: () => number;
}

/** The Redis keys of one subject; every one carries the tenant as a Cluster hash tag. */
export function redisKeys(prefix: string, subject: Subject) {
  const base = `${prefix}{${subject.tenantId}}`;
  return {
    requests: `${base}:rpm:${subject.keyId}`,
    concurrency: `${base}:conc:${subject.keyId}`,
    quota: `${base}:day`,
    tokens: `${base}:tpm`,
    ticket: (ticket: string) => `${base}:ticket:${ticket}`,
  };
}

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const ADMIT_SHA = sha1(ADMIT_SCRIPT);
const RECORD_TOKENS_SHA = sha1(RECORD_TOKENS_SCRIPT);
const VOID_SHA = sha1(VOID_SCRIPT);

type RawState = [string, number, number, number, number?];
const isLimitType = (value: unknown): value is LimitType =>
  typeof value === 'string' && (LIMIT_TYPES as readonly string[]).includes(value);

/** A reply the limiter cannot read: an error of this subject's keys, not of Redis. */
export class MalformedReplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedReplyError';
  }
}

/** Parses the admission script's reply; anything unexpected is an error, never a silent "allowed". */
export function parseAdmission(reply: unknown): Admission {
  if (typeof reply !== 'string') throw new MalformedReplyError('rate-limit script returned no reply');
  let decoded: unknown;
  try {
    decoded = JSON.parse(reply);
  } catch {
    throw new MalformedReplyError('rate-limit script reply is not JSON');
  }
  if (!Array.isArray(decoded) || decoded.length < 4 || decoded.length > 5)
    throw new MalformedReplyError('rate-limit script reply is malformed');
  const [allowed, refused, retryAfterMs, rawStates] = decoded as [unknown, unknown, unknown, unknown];
  // cjson encodes an empty Lua table as {}: no limit was on.
  const list: unknown[] = Array.isArray(rawStates) ? rawStates : [];
  const states: LimitState[] = list.map((raw) => {
    const [type, limit, remaining, resetMs, burst] = raw as RawState;
    if (!isLimitType(type)) throw new MalformedReplyError('rate-limit script reply names an unknown limit');
    const state: LimitState = {
      type,
      limit: Number(limit),
      remaining: Math.max(0, Number(remaining)),
      resetMs: Math.max(0, Number(resetMs)),
    };
    return burst === undefined ? state : { ...state, burst: Number(burst) };
  });
  if (allowed === 1) return { allowed: true, states };
  if (!isLimitType(refused)) throw new MalformedReplyError('rate-limit script reply names an unknown limit');
  return { allowed: false, limit: refused, retryAfterMs: Math.max(0, Number(retryAfterMs)), states };
}

const isNoScript = (error: unknown) => error instanceof Error && error.message.startsWith('NOSCRIPT');
const off = (value: number | null) => (value === null ? -1 : value);

/**
 * Limits counted in Redis, shared by every replica: one EVALSHA per admission (EVAL once when the script
 * is not cached yet), one ZREM per release. The client's own settings bound every wait; see
 * `limiterRedisOptions`.
 */
export class RedisRateLimitStore implements RateLimitStore {
  readonly kind = 'redis' as const;
  private readonly prefix: string;
  private readonly markerTtlMs: number;

  constructor(
    private readonly client: Redis,
    private readonly options: RedisStoreOptions,
  ) {
    this.prefix = options.prefix ?? 'vla:rl:';
    this.markerTtlMs = options.markerTtlMs ?? 60_000;
  }

  keys(subject: Subject) {
    return redisKeys(this.prefix, subject);
  }

  async admit(subject: Subject, limits: Limits, ticket: string): Promise<Admission> {
    const keys = this.keys(subject);
    const reply = await this.run(
      ADMIT_SCRIPT,
      ADMIT_SHA,
      [keys.requests, keys.concurrency, keys.quota, keys.tokens, keys.ticket(ticket)],
      [
        this.clock(),
        off(limits.requestsPerMinute),
        burstOf(limits),
        off(limits.maxConcurrent),
        this.options.leaseTtlMs,
        off(limits.dailyQuota),
        off(limits.tokensPerMinute),
        ticket,
        this.markerTtlMs,
      ],
    );
    return parseAdmission(reply);
  }

  /**
   * Undoes the admission of `ticket` if it ran (its caller never got the answer and decided without
   * Redis). True when there was one to undo.
   */
  async void(subject: Subject, ticket: string): Promise<boolean> {
    const keys = this.keys(subject);
    const undone = await this.run(
      VOID_SCRIPT,
      VOID_SHA,
      [keys.requests, keys.concurrency, keys.quota, keys.ticket(ticket)],
      [this.clock(), ticket, this.markerTtlMs],
    );
    return undone === 1;
  }

  async release(subject: Subject, ticket: string): Promise<void> {
    await this.client.zrem(this.keys(subject).concurrency, ticket);
  }

  async recordTokens(
    subject: Subject,
    tokens: number,
    tokensPerMinute: number,
    ticket: string,
  ): Promise<void> {
    if (tokens <= 0) return;
    const keys = this.keys(subject);
    await this.run(
      RECORD_TOKENS_SCRIPT,
      RECORD_TOKENS_SHA,
      [keys.tokens, keys.ticket(`tokens:${ticket}`)],
      [this.clock(), tokensPerMinute, tokens, this.markerTtlMs],
    );
  }

  /** One PING: the round trip alone (benchmarks). */
  async ping(): Promise<void> {
    const pong = await this.client.ping();
    if (pong !== 'PONG') throw new Error('unexpected PING reply');
  }

  /**
   * How the circuit breaker probes a Redis it stopped using: the admission script itself, with no limit
   * on, so that a Redis that answers PING but cannot run or write (out of memory, a read-only replica, no
   * script permission) stays out of use.
   */
  async probe(): Promise<void> {
    await this.admit({ keyId: 'probe', tenantId: 'probe' }, NO_LIMITS, randomUUID());
  }

  /** Loads the scripts (after each connect), so that admissions rarely pay a NOSCRIPT round trip. */
  async loadScripts(): Promise<void> {
    await Promise.all(
      [ADMIT_SCRIPT, VOID_SCRIPT, RECORD_TOKENS_SCRIPT].map((s) => this.client.script('LOAD', s)),
    );
  }

  private clock(): string {
    return this.options.now === undefined ? '' : String(this.options.now());
  }

  private async run(
    script: string,
    sha: string,
    keys: string[],
    args: (string | number)[],
  ): Promise<unknown> {
    try {
      return await this.client.evalsha(sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return this.client.eval(script, keys.length, ...keys, ...args);
    }
  }
}
