import { type ChildProcess, fork } from 'node:child_process';
import { extname, join } from 'node:path';
import * as koffi from 'koffi';
import { CollectionError, type CollectOptions, type GpuCollector } from '../gpu-collector';
import type { GpuSnapshot, ProcessGpuMemory } from '../gpu-snapshot';
import type { FromNvmlProcess, ToNvmlProcess } from './nvml-protocol';
import type { NvmlSystemInfo } from './nvml-reader';

export interface NvmlCollectorOptions {
  /** `NVML_LIBRARY_PATH`: a file, or a name the dynamic loader searches (`libnvidia-ml.so.1`). */
  readonly libraryPath: string;
  /** How long NVML may take to start (nvmlInit on a machine with many GPUs takes a while). */
  readonly startTimeoutMs: number;
  /** The collector process's entry file; tests may point at another. Default: nvml-process next to this file. */
  readonly processFile?: string;
}

interface Pending {
  readonly resolve: (value: never) => void;
  readonly reject: (error: Error) => void;
}

/**
 * NVML in a child process of its own: the API's event loop never waits on the driver, and a collector
 * stuck in the driver can be killed, so neither shutdown nor exit ever hangs on it. Requests are answered
 * in order; a collector process that dies fails what it was asked and every later request
 * (`collector_exited`), and the caller starts a new one.
 */
export class NvmlCollector implements GpuCollector {
  readonly source = 'nvml' as const;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private exited: CollectionError | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly system: NvmlSystemInfo,
  ) {
    child.on('message', (message: FromNvmlProcess) => this.answer(message));
    child.on('error', (error) => this.fail(`the NVML collector process failed: ${error.message}`));
    child.on('exit', (code, signal) =>
      this.fail(`the NVML collector process exited (${signal ?? `code ${code}`})`),
    );
    // It must not keep an API process alive that has nothing else to do.
    child.unref();
    child.channel?.unref();
  }

  /**
   * Whether the dynamic loader can open the library at all: a cheap check in this process (dlopen of a
   * missing file fails at once) that spares starting a collector process on the many machines without
   * a GPU.
   */
  static loadable(libraryPath: string): string | undefined {
    try {
      koffi.load(libraryPath).unload();
      return undefined;
    } catch (error) {
      return `cannot load ${libraryPath}: ${(error as Error).message}`;
    }
  }

  /** Loads NVML and runs nvmlInit in a new collector process; rejects with CollectionError('init_failed'). */
  static async start(options: NvmlCollectorOptions): Promise<NvmlCollector> {
    const unloadable = NvmlCollector.loadable(options.libraryPath);
    if (unloadable !== undefined) throw new CollectionError('init_failed', unloadable);
    const file = options.processFile ?? join(__dirname, `nvml-process${extname(__filename)}`);
    const child = fork(file, [options.libraryPath], {
      // Under ts-node-like runners (tests, `npm run cli`) the child needs the same TypeScript loader.
      execArgv: file.endsWith('.ts') ? ['--require', '@swc-node/register'] : [],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    });
    const system = await new Promise<NvmlSystemInfo>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        child.kill('SIGKILL');
        reject(new CollectionError('timeout', `NVML did not start within ${options.startTimeoutMs} ms`));
      }, options.startTimeoutMs);
      const onMessage = (message: FromNvmlProcess): void => {
        if (message.type === 'ready') {
          cleanup();
          resolve(message.system);
        } else if (message.type === 'init_failed') {
          cleanup();
          child.kill('SIGKILL');
          reject(new CollectionError('init_failed', message.message));
        }
      };
      const onGone = (error?: Error): void => {
        cleanup();
        reject(
          new CollectionError(
            'init_failed',
            `the NVML collector process failed: ${error?.message ?? 'exited'}`,
          ),
        );
      };
      const onExit = (): void => onGone();
      const cleanup = (): void => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('error', onGone);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.once('error', onGone);
      child.once('exit', onExit);
    });
    return new NvmlCollector(child, system);
  }

  collect(options: CollectOptions = {}): Promise<GpuSnapshot> {
    return this.request((id) => ({ type: 'collect', id, skip: [...(options.skipDevices ?? [])] }));
  }

  processMemory(pid: number): Promise<ProcessGpuMemory> {
    return this.request((id) => ({ type: 'process_memory', id, pid }));
  }

  /**
   * nvmlShutdown, then the collector process ends. One that does not answer within `graceMs` (stuck in
   * the driver) is killed; shutdown waits at most another `graceMs` for it to be gone.
   */
  async close(graceMs = 1000): Promise<void> {
    if (this.exited !== undefined) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    if (this.child.connected) this.child.send({ type: 'close' } satisfies ToNvmlProcess);
    const timers: NodeJS.Timeout[] = [];
    await Promise.race([
      exited,
      new Promise<void>((resolve) => {
        timers.push(setTimeout(() => this.child.kill('SIGKILL'), graceMs));
        timers.push(setTimeout(resolve, 2 * graceMs));
      }),
    ]);
    for (const timer of timers) clearTimeout(timer);
    this.fail('the NVML collector is closed');
  }

  private request<T>(build: (id: number) => ToNvmlProcess): Promise<T> {
    if (!this.child.connected) this.fail('the NVML collector process has disconnected');
    if (this.exited !== undefined) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send(build(id));
    });
  }

  private answer(message: FromNvmlProcess): void {
    if (!('id' in message)) return;
    const pending = this.pending.get(message.id);
    if (pending === undefined) return;
    this.pending.delete(message.id);
    switch (message.type) {
      case 'snapshot':
        return pending.resolve(message.snapshot as never);
      case 'process_memory':
        return pending.resolve(message.memory as never);
      case 'failed':
        return pending.reject(new CollectionError(message.reason, message.message));
    }
  }

  private fail(message: string): void {
    this.exited ??= new CollectionError('collector_exited', message);
    for (const pending of this.pending.values()) pending.reject(this.exited);
    this.pending.clear();
  }
}
