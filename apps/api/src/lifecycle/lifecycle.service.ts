import { Injectable } from '@nestjs/common';
import type { ServerResponse } from 'node:http';

/**
 * Where the process is in its life. Readiness is 503 in every phase but `ready`; new requests are refused
 * (503 `shutting_down`, `Connection: close`) from `closing` on.
 * - starting: migrations and warm-up run; the server may already answer liveness.
 * - ready: serving.
 * - draining: SIGTERM received; still serving for the load balancer's lag, readiness 503.
 * - closing: intake stopped; in-flight requests finish.
 * - closed: resources are being released.
 */
export type LifecyclePhase = 'starting' | 'ready' | 'draining' | 'closing' | 'closed';

@Injectable()
export class LifecycleService {
  private current: LifecyclePhase = 'starting';
  private readonly inFlight = new Set<ServerResponse>();
  private idleWaiters: (() => void)[] = [];

  get phase(): LifecyclePhase {
    return this.current;
  }

  get isReady(): boolean {
    return this.current === 'ready';
  }

  /** False once intake has stopped: new requests get 503 `shutting_down`. */
  get acceptsRequests(): boolean {
    return this.current === 'starting' || this.current === 'ready' || this.current === 'draining';
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  markReady(): void {
    if (this.current === 'starting') this.current = 'ready';
  }

  /**
   * True from the first shutdown signal on: every response then carries `Connection: close`, so clients
   * open a new connection (to another replica) for their next request instead of reusing one that this
   * process is about to close under them (the keep-alive race that ends in ECONNRESET).
   */
  get closesConnections(): boolean {
    return this.current !== 'starting' && this.current !== 'ready';
  }

  beginDrain(): void {
    if (this.current !== 'starting' && this.current !== 'ready') return;
    this.current = 'draining';
    this.closeInFlightConnections();
  }

  /** Stops intake; responses still in flight will close their connection when they finish. */
  stopIntake(): void {
    if (this.current === 'closed') return;
    this.current = 'closing';
    this.closeInFlightConnections();
  }

  private closeInFlightConnections(): void {
    for (const res of this.inFlight) {
      if (!res.headersSent) res.setHeader('Connection', 'close');
    }
  }

  markClosed(): void {
    this.current = 'closed';
  }

  /** A request was admitted; the request middleware calls {@link untrack} when it closes. */
  track(res: ServerResponse): void {
    this.inFlight.add(res);
  }

  untrack(res: ServerResponse): void {
    this.inFlight.delete(res);
    if (this.inFlight.size === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Resolves true when no request is in flight, or false once `timeoutMs` has passed first. */
  waitForIdle(timeoutMs: number): Promise<boolean> {
    if (this.inFlight.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}
