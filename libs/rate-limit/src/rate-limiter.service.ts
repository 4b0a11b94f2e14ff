import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit, Optional } from '@nestjs/common';
import { InjectMetric, TenantLabels } from '@app/monitoring';
import type Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Counter, Gauge, Histogram } from 'prom-client';
import { CircuitBreaker, type CircuitState } from './circuit-breaker';
import {
  type Admission,
  anyLimit,
  divideLimits,
  type Limits,
  type LimitState,
  NO_LIMITS,
  type Subject,
} from './limits';
import { MemoryRateLimitStore } from './memory-store';
import {
  type Backend,
  BACKENDS,
  CIRCUIT_STATE_VALUES,
  RATE_LIMIT_METRICS,
  type RedisOperation,
} from './rate-limit.metrics';
import {
  FAILURE_MODES,
  RATE_LIMIT_OPTIONS,
  RATE_LIMIT_REDIS,
  type RateLimitModuleOptions,
} from './rate-limit.options';
import { MalformedReplyError, RedisRateLimitStore } from './redis-store';

/** A request the limiter admitted; `release()` frees its concurrency slot (idempotent). */
export type Decision = Admission & {
  /** Where it was decided. */
  readonly backend: Backend;
  readonly release: () => void;
};

/** Thrown in `closed` mode while Redis is out of reach; the API answers 503 `rate_limit_unavailable`. */
export class RateLimitUnavailableError extends Error {
  readonly code = 'rate_limit_unavailable';
  readonly retryAfterSeconds = 1;
  readonly component = 'rate_limit';
  constructor() {
    super('Rate limits cannot be checked right now, so requests are refused; retry later.');
    this.name = 'RateLimitUnavailableError';
  }
}

/** Who a request counts against, with the tenant name its metrics carry. */
export interface LimitedSubject extends Subject {
  readonly tenantName: string;
}

const noop = (): void => undefined;
const UNLIMITED: Decision = Object.freeze({ allowed: true, states: [], backend: 'memory', release: noop });
const MAX_PENDING_REPAIRS = 10_000;
const QUIT_TIMEOUT_MS = 1000;
const STARTUP_WAIT_MS = 1000;

/**
 * A release of a slot Redis granted, or the undoing of an admission whose answer never came (it may have
 * run in Redis after the caller gave up and decided without it).
 */
interface Repair {
  readonly kind: 'release' | 'void';
  readonly subject: Subject;
  readonly ticket: string;
}

const isTimeout = (error: unknown) => error instanceof Error && /timed out/i.test(error.message);
/**
 * Errors of one subject's keys (a key of the wrong type, a reply that cannot be read): that request is
 * decided without Redis, but they say nothing about Redis itself and do not count against the circuit.
 */
const isSubjectError = (error: unknown) =>
  error instanceof MalformedReplyError || (error instanceof Error && error.message.startsWith('WRONGTYPE'));

/**
 * Decides whether a request may run, against Redis when one is configured and reachable, else in memory.
 *
 * Redis failures never fail a request: each admission waits at most the command timeout, and after
 * `breakerThreshold` consecutive failures the circuit opens and admissions stop touching Redis until a
 * background PING succeeds (one probe per cool-down). Meanwhile the failure mode decides: `local` counts in
 * this process at limit / replicas, `open` admits, `closed` refuses with 503. The outage is logged once when
 * the circuit opens and once when it closes. When Redis is back, slots it granted whose release failed are
 * released, and admissions that timed out are undone if they ran after all (or the lease TTL frees them).
 */
@Injectable()
export class RateLimiter implements OnModuleInit, OnApplicationShutdown {
  /** The default store without Redis; the `local` fallback with it. */
  readonly memory: MemoryRateLimitStore;
  readonly redis: RedisRateLimitStore | null;
  private readonly breaker: CircuitBreaker;
  private probeTimer: NodeJS.Timeout | undefined;
  /** Redis work that failed and is done when Redis answers again. */
  private pendingRepairs: Repair[] = [];
  private closing = false;

  constructor(
    @Inject(RATE_LIMIT_OPTIONS) private readonly options: RateLimitModuleOptions,
    @Optional() @Inject(RATE_LIMIT_REDIS) private readonly client: Redis | null,
    private readonly tenants: TenantLabels,
    @InjectMetric(RATE_LIMIT_METRICS.hits) private readonly hits: Counter<string>,
    @InjectMetric(RATE_LIMIT_METRICS.remaining) private readonly remaining: Gauge<string>,
    @InjectMetric(RATE_LIMIT_METRICS.quotaUsage) private readonly quotaUsage: Gauge<string>,
    @InjectMetric(RATE_LIMIT_METRICS.fallback) private readonly fallbacks: Counter<'mode'>,
    @InjectMetric(RATE_LIMIT_METRICS.backend) private readonly backendGauge: Gauge<'backend'>,
    @InjectMetric(RATE_LIMIT_METRICS.failureMode) private readonly failureModeGauge: Gauge<'mode'>,
    @InjectMetric(RATE_LIMIT_METRICS.circuit) private readonly circuitGauge: Gauge<'dependency'>,
    @InjectMetric(RATE_LIMIT_METRICS.redisOperations)
    private readonly redisOps: Counter<'operation' | 'status'>,
    @InjectMetric(RATE_LIMIT_METRICS.redisDuration) private readonly redisDuration: Histogram<'operation'>,
  ) {
    this.memory = new MemoryRateLimitStore({ leaseTtlMs: options.leaseTtlMs, now: options.now });
    this.redis =
      client === null || client === undefined
        ? null
        : new RedisRateLimitStore(client, {
            leaseTtlMs: options.leaseTtlMs,
            prefix: options.keyPrefix,
            now: options.now,
          });
    this.breaker = new CircuitBreaker(options.breakerThreshold, (from, to) => this.circuitChanged(from, to));
  }

  async onModuleInit(): Promise<void> {
    const client = this.client;
    const redis = this.redis;
    if (client !== null && client !== undefined && redis !== null) {
      // Failures surface through the limiter (metrics, one log line per outage); without a listener
      // ioredis would print each reconnect failure.
      client.on('error', () => undefined);
      client.on('ready', () => void redis.loadScripts().catch(() => undefined));
      // Wait a little for the connection, so the first requests do not fall back and count against the
      // circuit; an unreachable Redis must not stop the API from starting.
      const connected = client.connect().catch(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        connected,
        new Promise((resolve) => {
          timer = setTimeout(resolve, STARTUP_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    for (const mode of FAILURE_MODES)
      this.failureModeGauge.set({ mode }, mode === this.options.failureMode ? 1 : 0);
    if (this.redis !== null) this.circuitGauge.set({ dependency: 'redis' }, CIRCUIT_STATE_VALUES.closed);
    this.showBackend();
  }

  /**
   * Last, after the HTTP server closed: the repairs still pending are tried once (each bounded by the
   * command timeout), then the connection is closed.
   */
  async onApplicationShutdown(): Promise<void> {
    this.closing = true;
    clearTimeout(this.probeTimer);
    this.memory.close();
    const client = this.client;
    if (client === null || client === undefined || client.status === 'end') return;
    if (this.breaker.closed) await this.flushRepairs();
    await Promise.race([
      client.quit().catch(() => undefined),
      new Promise((resolve) => setTimeout(resolve, QUIT_TIMEOUT_MS).unref()),
    ]);
    client.disconnect();
  }

  /** The backend deciding now. */
  get backend(): Backend {
    if (this.redis === null) return 'memory';
    if (this.breaker.closed) return 'redis';
    return this.options.failureMode === 'local' ? 'memory' : this.options.failureMode;
  }

  get circuit(): CircuitState | null {
    return this.redis === null ? null : this.breaker.state;
  }

  get failureMode() {
    return this.options.failureMode;
  }

  /**
   * Admits or refuses one request. A request with no limit on is admitted without touching any store.
   * Throws {@link RateLimitUnavailableError} only in `closed` mode while Redis is out of reach.
   */
  async admit(subject: LimitedSubject, limits: Limits): Promise<Decision> {
    if (!anyLimit(limits)) return UNLIMITED;
    const ticket = randomUUID();
    const redis = this.redis;
    if (redis === null)
      return this.decided(subject, this.memory.admitNow(subject, limits, ticket), 'memory', ticket);
    if (this.breaker.closed) {
      try {
        const admission = await this.timed('admit', () => redis.admit(subject, limits, ticket));
        this.breaker.success();
        return this.decided(subject, admission, 'redis', ticket);
      } catch (error) {
        if (!isSubjectError(error)) {
          this.breaker.failure();
          // The command may still run in Redis (a stall, a lost reply): undo it once Redis answers.
          this.defer({ kind: 'void', subject, ticket });
        }
      }
    }
    return this.fallback(subject, limits, ticket);
  }

  /** Charges the tokens a request used (the LLM path) to its tenant's tokens-per-minute bucket. */
  async recordTokens(subject: Subject, tokens: number, tokensPerMinute: number | null): Promise<void> {
    if (tokensPerMinute === null || !(tokens > 0)) return;
    const ticket = randomUUID();
    const redis = this.redis;
    if (redis !== null && this.breaker.closed) {
      try {
        await this.timed('record_tokens', () => redis.recordTokens(subject, tokens, tokensPerMinute, ticket));
        this.breaker.success();
        return;
      } catch {
        this.breaker.failure();
      }
    }
    if (redis === null) {
      await this.memory.recordTokens(subject, tokens, tokensPerMinute, ticket);
    } else if (this.options.failureMode === 'local') {
      // Charged against the same share of the limit that local admissions use.
      const local = divideLimits({ ...NO_LIMITS, tokensPerMinute }, this.options.replicas);
      await this.memory.recordTokens(subject, tokens, local.tokensPerMinute ?? tokensPerMinute, ticket);
    }
  }

  private fallback(subject: LimitedSubject, limits: Limits, ticket: string): Decision {
    const mode = this.options.failureMode;
    this.fallbacks.inc({ mode });
    if (mode === 'open') return { allowed: true, states: [], backend: 'open', release: noop };
    if (mode === 'closed') throw new RateLimitUnavailableError();
    const local = divideLimits(limits, this.options.replicas);
    return this.decided(subject, this.memory.admitNow(subject, local, ticket), 'memory', ticket);
  }

  private decided(subject: LimitedSubject, admission: Admission, backend: Backend, ticket: string): Decision {
    this.observe(subject.tenantName, admission);
    const holdsSlot = admission.allowed && admission.states.some((s) => s.type === 'concurrency');
    let released = !holdsSlot;
    const release = (): void => {
      if (released) return;
      released = true;
      if (backend === 'redis') this.releaseOnRedis(subject, ticket);
      else this.memory.releaseNow(subject, ticket);
    };
    return { ...admission, backend, release };
  }

  private releaseOnRedis(subject: Subject, ticket: string): void {
    void this.repair({ kind: 'release', subject, ticket });
  }

  /** Runs a repair now if the circuit is closed, else (or if it fails) keeps it for when Redis is back. */
  private async repair(work: Repair): Promise<void> {
    const redis = this.redis;
    if (redis === null) return;
    if (!this.breaker.closed) {
      this.defer(work);
      return;
    }
    const run = async (): Promise<void> => {
      if (work.kind === 'release') await redis.release(work.subject, work.ticket);
      else await redis.void(work.subject, work.ticket);
    };
    try {
      await this.timed(work.kind, run);
    } catch (error) {
      // A broken key of this subject will not mend by retrying: the lease TTL frees the slot instead.
      if (isSubjectError(error)) return;
      this.breaker.failure();
      this.defer(work);
    }
  }

  /** Past the cap, a slot is freed by its lease TTL instead, and a stalled admission stays counted. */
  private defer(work: Repair): void {
    if (this.pendingRepairs.length < MAX_PENDING_REPAIRS) this.pendingRepairs.push(work);
  }

  private observe(tenant: string, admission: Admission): void {
    if (!admission.allowed) this.hits.inc(this.tenants.labels(tenant, { limit_type: admission.limit }));
    for (const state of admission.states) {
      this.remaining.set(this.tenants.labels(tenant, { limit_type: state.type }), state.remaining);
      if (state.type === 'daily_quota')
        this.quotaUsage.set(this.tenants.labels(tenant, {}), quotaPercent(state));
    }
  }

  private async timed<T>(operation: RedisOperation, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await run();
      this.redisOps.inc({ operation, status: 'ok' });
      // Redis answers again: do the repairs that failed meanwhile.
      if (operation !== 'release' && operation !== 'void' && this.pendingRepairs.length > 0)
        void this.flushRepairs();
      return result;
    } catch (error) {
      this.redisOps.inc({ operation, status: isTimeout(error) ? 'timeout' : 'error' });
      throw error;
    } finally {
      this.redisDuration.observe({ operation }, (performance.now() - started) / 1000);
    }
  }

  private circuitChanged(from: CircuitState, to: CircuitState): void {
    this.circuitGauge.set({ dependency: 'redis' }, CIRCUIT_STATE_VALUES[to]);
    this.showBackend();
    if (to === 'open') {
      if (from === 'closed') {
        this.options.logger?.warn(
          { component: 'rate_limit', failure_mode: this.options.failureMode, backend: this.backend },
          'redis unreachable: rate limits use the failure mode until it answers again',
        );
      }
      this.scheduleProbe();
    } else if (to === 'closed') {
      this.options.logger?.info(
        { component: 'rate_limit', backend: 'redis' },
        'redis answers again: rate limits are back on redis',
      );
      void this.flushRepairs();
    }
  }

  private scheduleProbe(): void {
    if (this.closing) return;
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => void this.probe(), this.options.breakerCooldownMs);
    this.probeTimer.unref();
  }

  private async probe(): Promise<void> {
    const redis = this.redis;
    if (redis === null || this.closing || !this.breaker.probe()) return;
    try {
      await this.timed('probe', () => redis.probe());
      this.breaker.success();
    } catch {
      this.breaker.failure();
    }
  }

  private async flushRepairs(): Promise<void> {
    const pending = this.pendingRepairs;
    this.pendingRepairs = [];
    await Promise.all(pending.map((work) => this.repair(work)));
  }

  private showBackend(): void {
    const active = this.backend;
    for (const backend of BACKENDS) this.backendGauge.set({ backend }, backend === active ? 1 : 0);
  }
}

function quotaPercent(state: LimitState): number {
  if (state.limit === 0) return 100;
  return Math.min(100, ((state.limit - state.remaining) / state.limit) * 100);
}
