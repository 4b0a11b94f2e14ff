/**
 * The Worker thread that owns one ONNX Runtime session. `session.run` blocks its thread for the whole
 * forward pass, so it never runs on the main event loop. It receives batches (buffers transferred, not
 * copied), packs them into tensors, runs, and transfers the per-request action chunks back.
 *
 * Kept free of Nest and of `@app/*` imports: it starts in a bare Worker.
 */
import type { InferenceSession } from 'onnxruntime-node';
import { performance } from 'node:perf_hooks';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { ModelLoadError } from './model-interface';
import { dryRun, openSession, reasonOf, runBatch } from './onnx-session';
import type { ControlMessage, FromWorker, ToWorker, WorkerInit } from './worker-protocol';

const init = workerData as WorkerInit;
const { config } = init;
const port = parentPort;

function post(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(message, transfer);
}

async function main(): Promise<void> {
  const rssBefore = process.memoryUsage().rss;
  const started = performance.now();
  let session: InferenceSession;
  try {
    session = await openSession(config, init.executionProviders);
    if (init.warmUp) await dryRun(session, config);
  } catch (error) {
    const failure = error instanceof ModelLoadError ? error : new ModelLoadError('session', reasonOf(error));
    post({ type: 'load_failed', stage: failure.stage, reason: failure.reason, problems: failure.problems });
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
        const { actions, computeMs } = await runBatch(session, config, message.items);
        reply = {
          message: {
            type: 'result',
            batchId: message.batchId,
            computeMs,
            taskMs: performance.now() - received,
            actions,
          },
          transfer: actions.map((a) => a.buffer),
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
