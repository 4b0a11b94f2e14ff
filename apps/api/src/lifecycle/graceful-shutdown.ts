import type { INestApplication } from '@nestjs/common';
import type { Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { AppConfig } from '../config';
import type { LifecycleService } from './lifecycle.service';

/** Time allowed after the drain timeout for flushing buffers and closing connections. */
const CLOSE_BUDGET_MS = 5000;
/** How long `server.close()` may wait for sockets that stay open after the last response. */
const SOCKET_CLOSE_GRACE_MS = 1000;

export interface GracefulShutdownDeps {
  readonly app: INestApplication;
  readonly server: Server;
  readonly lifecycle: LifecycleService;
  readonly logger: Logger;
  readonly config: AppConfig['shutdown'];
  readonly exit: (code: number) => void;
}

/**
 * Shutdown in the order a load balancer needs:
 * 1. readiness turns 503 at once; liveness stays 200;
 * 2. requests keep being served for SHUTDOWN_DRAIN_DELAY_MS (the balancer's lag);
 * 3. intake stops: the listener closes, idle keep-alive connections close, new requests on open
 *    connections get 503 `shutting_down` with `Connection: close`;
 * 4. in-flight requests finish, bounded by SHUTDOWN_TIMEOUT_MS (then their connections are cut);
 * 5. `app.close()`: buffered work flushes in `beforeApplicationShutdown`, and the database and Redis close
 *    last in `onApplicationShutdown`. Nest's `onModuleDestroy` also runs only now, when no request remains.
 * A second signal, or the hard deadline (drain delay + timeout + 5 s), exits at once with code 1.
 */
export class GracefulShutdown {
  private running: Promise<number> | undefined;

  constructor(private readonly deps: GracefulShutdownDeps) {}

  install(): void {
    process.on('SIGTERM', () => this.onSignal('SIGTERM'));
    process.on('SIGINT', () => this.onSignal('SIGINT'));
  }

  onSignal(signal: string): void {
    const { logger, lifecycle, exit } = this.deps;
    if (this.running !== undefined) {
      logger.error(
        { signal, in_flight: lifecycle.inFlightCount },
        'second signal during shutdown: exiting now',
      );
      exit(1);
      return;
    }
    this.running = this.run(signal);
    this.running.then(exit, (error: unknown) => {
      logger.error({ err: error }, 'shutdown failed');
      exit(1);
    });
  }

  /** Runs the sequence once; resolves with the exit code. */
  run(reason: string): Promise<number> {
    this.running ??= this.sequence(reason);
    return this.running;
  }

  private async sequence(reason: string): Promise<number> {
    const { app, server, lifecycle, logger, config, exit } = this.deps;
    const started = performance.now();
    const deadlineMs = config.drainDelayMs + config.timeoutMs + CLOSE_BUDGET_MS;
    const deadline = setTimeout(() => {
      logger.error(
        { reason, in_flight: lifecycle.inFlightCount, deadline_ms: deadlineMs },
        'shutdown deadline passed: exiting with work abandoned',
      );
      exit(1);
    }, deadlineMs);
    deadline.unref();

    lifecycle.beginDrain();
    logger.info({ reason, drain_delay_ms: config.drainDelayMs }, 'shutdown: readiness is 503, still serving');
    if (config.drainDelayMs > 0) await sleep(config.drainDelayMs);

    // Logged before the listener closes, so its time precedes every refused or reset connection.
    logger.info(
      { in_flight: lifecycle.inFlightCount },
      'shutdown: stopping intake, finishing in-flight requests',
    );
    lifecycle.stopIntake();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const drained = await lifecycle.waitForIdle(config.timeoutMs);
    if (!drained) {
      logger.warn({ abandoned: lifecycle.inFlightCount }, 'shutdown timeout: cutting the remaining requests');
      server.closeAllConnections();
    }
    // Connections whose last response had already started when intake stopped are idle now.
    server.closeIdleConnections();
    const socketsClosed = await Promise.race([closed.then(() => true), sleep(SOCKET_CLOSE_GRACE_MS, false)]);
    if (!socketsClosed) server.closeAllConnections();

    lifecycle.markClosed();
    await app.close();
    clearTimeout(deadline);
    logger.info({ duration_ms: Math.round(performance.now() - started) }, 'shutdown complete');
    return drained ? 0 : 1;
  }
}
