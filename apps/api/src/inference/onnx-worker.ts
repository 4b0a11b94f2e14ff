/**
 * The Worker thread that owns one ONNX Runtime session. `session.run` blocks its thread for the whole
 * forward pass, so it never runs on the main event loop. It receives batches (buffers transferred, not
 * copied), packs them into tensors, runs, and transfers the per-request action chunks back.
 *
 * Kept free of Nest and of `@app/*` imports: it starts in a bare Worker.
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { packImages, packStates, packTokens, unpackActions, type WorkItem } from './tensor-prep';
import type { FromWorker, ToWorker, WorkerInit } from './worker-protocol';

const init = workerData as WorkerInit;
const { config } = init;
const port = parentPort;

function post(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(message, transfer);
}

/** Short, path-free text of an ONNX Runtime error. */
function reasonOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/(\/[^\s:'"]+)+/g, (p) => p.split('/').pop() ?? '').slice(0, 300);
}

function feeds(items: readonly WorkItem[]): Record<string, Tensor> {
  const n = items.length;
  const out: Record<string, Tensor> = {};
  config.inputs.images.forEach((spec, k) => {
    const data = packImages(
      items.map((item) => item.images[k]),
      spec,
    );
    const dims =
      spec.layout === 'nchw'
        ? [n, spec.channels, spec.height, spec.width]
        : [n, spec.height, spec.width, spec.channels];
    out[spec.tensor] = new Tensor(spec.dtype, data, dims);
  });
  const state = config.inputs.state;
  out[state.tensor] = new Tensor(
    'float32',
    packStates(
      items.map((item) => item.state),
      state,
    ),
    [n, state.size],
  );
  const instruction = config.inputs.instruction;
  if (instruction !== undefined) {
    const tokens = packTokens(
      items.map((item) => item.tokens ?? new Int32Array(instruction.maxTokens)),
      instruction.maxTokens,
      instruction.dtype,
    );
    out[instruction.tensor] = new Tensor(instruction.dtype, tokens, [n, instruction.maxTokens]);
  }
  return out;
}

function zeroItems(count: number): WorkItem[] {
  return Array.from({ length: count }, () => ({
    images: config.inputs.images.map((s) => new Uint8Array(s.height * s.width * s.channels)),
    state: Float32Array.from(config.inputs.state.mean ?? new Array<number>(config.inputs.state.size).fill(0)),
    tokens:
      config.inputs.instruction === undefined ? null : new Int32Array(config.inputs.instruction.maxTokens),
  }));
}

async function run(session: InferenceSession, items: readonly WorkItem[]): Promise<Float32Array[]> {
  const output = config.outputs.actions;
  const results = await session.run(feeds(items), [output.tensor]);
  const tensor = results[output.tensor];
  if (tensor === undefined || tensor.type !== 'float32') {
    throw new Error(`output ${output.tensor} is missing or not float32`);
  }
  return unpackActions(tensor.data as Float32Array, items.length, output);
}

async function main(): Promise<void> {
  const rssBefore = process.memoryUsage().rss;
  const started = performance.now();
  let session: InferenceSession;
  try {
    session = await InferenceSession.create(config.file, {
      executionProviders: [...init.executionProviders],
      intraOpNumThreads: config.intraOpThreads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
    if (init.warmUp) await run(session, zeroItems(1));
  } catch (error) {
    post({ type: 'load_failed', reason: reasonOf(error) });
    return;
  }
  post({
    type: 'ready',
    loadMs: performance.now() - started,
    memoryBytes: Math.max(0, process.memoryUsage().rss - rssBefore),
    inputNames: session.inputNames,
    outputNames: session.outputNames,
  });

  // One batch at a time: the scheduler never sends a second before the first is answered.
  port?.on('message', (message: ToWorker) => {
    if (message.type !== 'run') return;
    const received = performance.now();
    void (async () => {
      try {
        const t0 = performance.now();
        const actions = await run(session, message.items);
        const computeMs = performance.now() - t0;
        post(
          {
            type: 'result',
            batchId: message.batchId,
            computeMs,
            taskMs: performance.now() - received,
            actions,
          },
          actions.map((a) => a.buffer as ArrayBuffer),
        );
      } catch (error) {
        post({ type: 'run_failed', batchId: message.batchId, reason: reasonOf(error) });
      }
    })();
  });
}

void main();
