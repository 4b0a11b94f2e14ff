import { extname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import * as koffi from 'koffi';
import { CollectionError, type CollectOptions, type GpuCollector } from '../gpu-collector';
import type { GpuSnapshot, ProcessGpuMemory } from '../gpu-snapshot';
import type { FromNvmlWorker, NvmlWorkerInit, ToNvmlWorker } from './nvml-protocol';
import type { NvmlSystemInfo } from './nvml-reader';

export interface NvmlCollectorOptions {
  /** `NVML_LIBRARY_PATH`: a file, or a name the dynamic loader searches (`libnvidia-ml.so.1`). */
  readonly libraryPath: string;
  /** How long NVML may take to start (nvmlInit on a machine with many GPUs takes a while). */
  readonly startTimeoutMs: number;
  /** Worker entry file; tests may point at another. Default: nvml-worker next to this file. */
  readonly workerFile?: string;
}

interface Pending {
  readonly resolve: (value: never) => void;
  readonly reject: (error: Error) => void;
}

/**
 * NVML in a Worker thread: the main event loop never waits on the driver. Requests are answered in
 * order; a Worker that dies fails what it was asked and every later request (`collector_exited`), and
 * the caller starts a new collector.
 */
export class NvmlCollector implements GpuCollector {
  readonly source = 'nvml' as const;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private exited: CollectionError | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly system: NvmlSystemInfo,
  ) {
    worker.on('message', (message: FromNvmlWorker) => this.answer(message));
    worker.on('error', (error) => this.fail(`the NVML collector thread failed: ${error.message}`));
    worker.on('exit', (code) => this.fail(`the NVML collector thread exited (code ${code})`));
    // After the listeners: adding a 'message' listener refs the Worker again. It must not keep a process
    // alive that has nothing else to do.
    worker.unref();
  }

  /**
   * Whether the dynamic loader can open the library at all: a cheap check on this thread (dlopen of a
   * missing file fails at once) that spares starting a Worker on the many machines without a GPU.
   */
  static loadable(libraryPath: string): string | undefined {
    try {
      koffi.load(libraryPath).unload();
      return undefined;
    } catch (error) {
      return `cannot load ${libraryPath}: ${(error as Error).message}`;
    }
  }

  /** Loads NVML and runs nvmlInit in a new Worker; rejects with CollectionError('init_failed'). */
  static async start(options: NvmlCollectorOptions): Promise<NvmlCollector> {
    const unloadable = NvmlCollector.loadable(options.libraryPath);
    if (unloadable !== undefined) throw new CollectionError('init_failed', unloadable);
    const file = options.workerFile ?? join(__dirname, `nvml-worker${extname(__filename)}`);
    const worker = new Worker(file, {
      workerData: { libraryPath: options.libraryPath } satisfies NvmlWorkerInit,
      // Under ts-node-like runners (tests, `npm run cli`) the Worker needs the same TypeScript loader.
      execArgv: file.endsWith('.ts') ? ['--require', '@swc-node/register'] : [],
      stdout: false,
      stderr: false,
    });
    const system = await new Promise<NvmlSystemInfo>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        void worker.terminate();
        reject(new CollectionError('timeout', `NVML did not start within ${options.startTimeoutMs} ms`));
      }, options.startTimeoutMs);
      const onMessage = (message: FromNvmlWorker): void => {
        if (message.type === 'ready') {
          cleanup();
          resolve(message.system);
        } else if (message.type === 'init_failed') {
          cleanup();
          void worker.terminate();
          reject(new CollectionError('init_failed', message.message));
        }
      };
      const onGone = (error?: Error): void => {
        cleanup();
        reject(
          new CollectionError(
            'init_failed',
            `the NVML collector thread failed: ${error?.message ?? 'exited'}`,
          ),
        );
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('error', onGone);
        worker.off('exit', onExit);
      };
      const onExit = (): void => onGone();
      worker.on('message', onMessage);
      worker.once('error', onGone);
      worker.once('exit', onExit);
    });
    return new NvmlCollector(worker, system);
  }

  collect(options: CollectOptions = {}): Promise<GpuSnapshot> {
    return this.request((id) => ({ type: 'collect', id, skip: [...(options.skipDevices ?? [])] }));
  }

  processMemory(pid: number): Promise<ProcessGpuMemory> {
    return this.request((id) => ({ type: 'process_memory', id, pid }));
  }

  /**
   * nvmlShutdown, then the Worker ends. One that does not answer within `graceMs` (stuck in the driver) is
   * terminated, and not waited for beyond another `graceMs`: a thread blocked in a native call cannot be
   * stopped, and shutdown must not hang on it.
   */
  async close(graceMs = 1000): Promise<void> {
    if (this.exited !== undefined) return;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage({ type: 'close' } satisfies ToNvmlWorker);
    const timers: NodeJS.Timeout[] = [];
    await Promise.race([
      exited,
      new Promise<void>((resolve) => {
        timers.push(setTimeout(() => void this.worker.terminate(), graceMs));
        timers.push(setTimeout(resolve, 2 * graceMs));
      }),
    ]);
    for (const timer of timers) clearTimeout(timer);
    this.fail('the NVML collector is closed');
  }

  private request<T>(build: (id: number) => ToNvmlWorker): Promise<T> {
    if (this.exited !== undefined) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage(build(id));
    });
  }

  private answer(message: FromNvmlWorker): void {
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
