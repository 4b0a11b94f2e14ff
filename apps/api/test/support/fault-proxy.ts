import { once } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';

/**
 * What the proxy does to traffic, switchable at run time:
 * - `pass`: forwards both ways;
 * - `refuse`: the listener closes (new connections get ECONNREFUSED) and open connections are reset, as
 *   when the server process dies; back to another mode, it listens again on the same port;
 * - `reset`: open connections are reset, and each new one is reset as soon as it is accepted;
 * - `blackhole`: connections are accepted and nothing is forwarded either way (data is swallowed); a
 *   connection that lost data this way is reset when the mode changes, since its stream is broken;
 * - `{ latencyMs }` (see {@link latency}): replies from the target are held `latencyMs` before they are
 *   passed on (order kept), so each round trip takes that much longer;
 * - `drop-replies`: requests reach the target, its replies are swallowed and the client connection is
 *   reset: the server did the work, the client never hears of it.
 */
export type FaultMode = 'pass' | 'refuse' | 'reset' | 'blackhole' | 'drop-replies' | LatencyMode;
export interface LatencyMode {
  readonly latencyMs: number;
}

/** The `latency(ms)` mode: `proxy.setMode(latency(1500))`. */
export function latency(ms: number): LatencyMode {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError('latency must be a non-negative number of ms');
  return { latencyMs: ms };
}

export interface FaultProxyOptions {
  readonly targetHost: string;
  readonly targetPort: number;
  /** Where the proxy listens; 127.0.0.1 unless set. */
  readonly listenHost?: string;
}

/** One client connection and, unless it was accepted in a mode that forwards nothing, its upstream. */
interface Pair {
  readonly client: net.Socket;
  upstream: net.Socket | undefined;
  /** Data was swallowed: the stream is broken and the connection is reset when the mode changes. */
  tainted: boolean;
  /** Monotonic ms when the last held reply is released (keeps delayed replies in order). */
  releaseAt: number;
}

/**
 * A TCP proxy between the app and a dependency (PostgreSQL, Redis) that fails on demand, for the fault
 * tests (TESTS.md "Fault proxy"). Point the app at `127.0.0.1:${proxy.port}`.
 */
export class FaultProxy {
  private readonly server: net.Server;
  private readonly pairs = new Set<Pair>();
  private current: FaultMode = 'pass';
  private listening = false;
  private closed = false;
  /** Bytes swallowed by `blackhole` and `drop-replies`, both directions: lets a test see that traffic came. */
  private swallowed = 0;

  private constructor(
    private readonly options: FaultProxyOptions,
    private listenPort: number,
  ) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /** Starts a proxy in `pass` mode on a free port. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const proxy = new FaultProxy(options, 0);
    await proxy.listen();
    return proxy;
  }

  /** The port the proxy listens on (the same across `refuse` and back). */
  get port(): number {
    return this.listenPort;
  }

  get mode(): FaultMode {
    return this.current;
  }

  /** Bytes swallowed so far by `blackhole` and `drop-replies`. */
  get swallowedBytes(): number {
    return this.swallowed;
  }

  /** Connections open through the proxy now. */
  get connections(): number {
    return this.pairs.size;
  }

  /** Switches the mode; resolves once it is in force (the listener closed or listening again). */
  async setMode(mode: FaultMode): Promise<void> {
    if (this.closed) throw new Error('the fault proxy is closed');
    const previous = this.current;
    this.current = mode;
    if (previous === 'blackhole' && mode !== 'blackhole') {
      for (const pair of this.pairs) if (pair.tainted || pair.upstream === undefined) this.reset(pair);
    }
    if (mode === 'refuse' || mode === 'reset') for (const pair of this.pairs) this.reset(pair);
    if (mode === 'refuse') await this.stopListening();
    else if (!this.listening) await this.listen();
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const pair of this.pairs) this.reset(pair);
    await this.stopListening();
  }

  private async listen(): Promise<void> {
    this.server.listen(this.listenPort, this.options.listenHost ?? '127.0.0.1');
    await once(this.server, 'listening');
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('the fault proxy has no TCP port');
    this.listenPort = address.port;
    this.listening = true;
  }

  private async stopListening(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    // close() stops accepting at once; its callback waits for connections, all reset just before.
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    client.on('error', () => undefined);
    const mode = this.current;
    if (this.closed || mode === 'refuse' || mode === 'reset') {
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, upstream: undefined, tainted: false, releaseAt: 0 };
    this.pairs.add(pair);
    client.on('close', () => this.end(pair));
    client.on('data', (chunk: Buffer) => this.fromClient(pair, chunk));
    if (mode === 'blackhole') return;
    const upstream = net.connect(this.options.targetPort, this.options.targetHost);
    pair.upstream = upstream;
    upstream.on('error', () => undefined);
    upstream.on('close', () => this.end(pair));
    upstream.on('data', (chunk: Buffer) => this.fromUpstream(pair, chunk));
  }

  private fromClient(pair: Pair, chunk: Buffer): void {
    const mode = this.current;
    if (mode === 'blackhole' || pair.upstream === undefined) {
      this.swallow(pair, chunk);
      return;
    }
    // Requests pass in every other mode (`refuse` and `reset` have already reset the connection).
    if (!pair.upstream.write(chunk)) {
      pair.client.pause();
      pair.upstream.once('drain', () => pair.client.resume());
    }
  }

  private fromUpstream(pair: Pair, chunk: Buffer): void {
    const mode = this.current;
    if (mode === 'blackhole') {
      this.swallow(pair, chunk);
      return;
    }
    if (mode === 'drop-replies') {
      this.swallow(pair, chunk);
      this.reset(pair);
      return;
    }
    if (typeof mode === 'object') {
      const now = performance.now();
      pair.releaseAt = Math.max(pair.releaseAt, now + mode.latencyMs);
      setTimeout(() => this.toClient(pair, chunk), pair.releaseAt - now).unref();
      return;
    }
    this.toClient(pair, chunk);
  }

  private toClient(pair: Pair, chunk: Buffer): void {
    if (pair.client.destroyed || pair.upstream === undefined) return;
    const upstream = pair.upstream;
    if (!pair.client.write(chunk)) {
      upstream.pause();
      pair.client.once('drain', () => upstream.resume());
    }
  }

  private swallow(pair: Pair, chunk: Buffer): void {
    this.swallowed += chunk.length;
    pair.tainted = true;
  }

  private reset(pair: Pair): void {
    this.pairs.delete(pair);
    if (!pair.client.destroyed) pair.client.resetAndDestroy();
    if (pair.upstream !== undefined && !pair.upstream.destroyed) pair.upstream.destroy();
  }

  /** One side closed: close the other, after any replies still held by `latency`. */
  private end(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    const wait = Math.max(0, pair.releaseAt - performance.now());
    // end(), not destroy(): what was already written still reaches the other side.
    const finish = () => {
      pair.client.end();
      pair.upstream?.end();
    };
    if (wait > 0) setTimeout(finish, wait).unref();
    else finish();
  }
}
