/**
 * The Worker thread that owns one ONNX Runtime session. `session.run` blocks its thread for the whole
 * forward pass, so it never runs on the main event loop. It receives batches (buffers transferred, not
 * copied), packs them into tensors, runs, and transfers the per-request action chunks back.
 *
 * Kept free of Nest and of `@app/*` imports: it starts in a bare Worker.
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { performance } from 'node:perf_hooks';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { packImages, packStates, packTokens, unpackActions, type WorkItem } from './tensor-prep';
import type { ControlMessage, FromWorker, ToWorker, WorkerInit } from './worker-protocol';

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

/** Packs, runs and unpacks one batch; `computeMs` is `session.run` alone. */
async function run(
  session: InferenceSession,
  items: readonly WorkItem[],
): Promise<{ actions: Float32Array[]; computeMs: number }> {
  const output = config.outputs.actions;
  const inputs = feeds(items);
  const started = performance.now();
  const results = await session.run(inputs, [output.tensor]);
  const computeMs = performance.now() - started;
  const tensor = results[output.tensor];
  if (tensor === undefined || tensor.type !== 'float32') {
    throw new Error(`output ${output.tensor} is missing or not float32`);
  }
  return { actions: unpackActions(tensor.data as Float32Array, items.length, output), computeMs };
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
  let running = false;
  let exitCode: number | undefined;
  const control = (message: ControlMessage) => {
    exitCode = Math.max(exitCode ?? 0, message.type === 'crash' ? 1 : 0);
    if (!running) process.exit(exitCode);
  };
  init.control.on('message', control);
  port?.on('message', (message: ToWorker) => {
    const received = performance.now();
    running = true;
    void (async () => {
      let reply: { message: FromWorker; transfer: ArrayBuffer[] };
      try {
        const { actions, computeMs } = await run(session, message.items);
        reply = {
          message: {
            type: 'result',
            batchId: message.batchId,
            computeMs,
            taskMs: performance.now() - received,
            actions,
          },
          transfer: actions.map((a) => a.buffer as ArrayBuffer),
        };
      } catch (error) {
        reply = {
          message: { type: 'run_failed', batchId: message.batchId, reason: reasonOf(error) },
          transfer: [],
        };
      }
      running = false;
      // Control messages that arrived during the forward pass, before answering it.
      for (
        let m = receiveMessageOnPort(init.control);
        m !== undefined;
        m = receiveMessageOnPort(init.control)
      ) {
        exitCode = Math.max(exitCode ?? 0, (m.message as ControlMessage).type === 'crash' ? 1 : 0);
      }
      if (exitCode === 1) process.exit(1);
      post(reply.message, reply.transfer);
      if (exitCode === 0) process.exit(0);
    })();
  });
}

void main();
