/**
 * Opening a model with ONNX Runtime and running batches on it: what the Worker thread does for the server
 * (onnx-worker.ts) and `npm run models:check` does on its own main thread, so that both load, compare and
 * dry-run a model the same way.
 *
 * Kept free of Nest and of `@app/*` imports: it runs in a bare Worker.
 */
import { InferenceSession, Tensor, env } from 'onnxruntime-node';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ModelConfig } from './model-config';
import { checkModelInterface, describeValue, interfaceReason, ModelLoadError } from './model-interface';
import { packImages, packStates, packTokens, unpackActions, type WorkItem } from './tensor-prep';

/**
 * Silences ONNX Runtime's own logger, which writes coloured, non-JSON lines to stderr (a missing CUDA
 * provider gives `[E:onnxruntime:onnxruntime-node, provider_bridge_ort.cc:...] ... Failed to load library
 * ...`), while our logs are JSON lines only. Every failure it would log also comes back as an exception,
 * which is reported in our own JSON line.
 *
 * It must run before the first session of the process is created: onnxruntime-node reads `env.logLevel`
 * once, when the first session is created, into one process-wide ORT environment (every Worker thread shares
 * it), and that environment's logger is the one the provider bridge writes with. The session option
 * `logSeverityLevel` does not reach that message (checked with 1.30); it is set too, for the session's own
 * messages.
 */
export function quietOnnxRuntime(): void {
  env.logLevel = 'fatal';
}

/** ONNX Runtime's severity 4: fatal only (its messages are path-full and not JSON). */
const SESSION_LOG_SEVERITY = 4;

/** Short, path-free text of an ONNX Runtime error: each absolute path becomes its last part. */
export function reasonOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/(\/[^\s:'"]+)+/g, (p) => p.split('/').pop() ?? '').slice(0, 300);
}

/**
 * Opens `config.file` on `executionProviders` and compares its inputs and outputs with the config. Throws
 * {@link ModelLoadError}: `file` (not there), `session` (ONNX Runtime refused it or a provider), or
 * `interface` (with every mismatch).
 */
export async function openSession(
  config: ModelConfig,
  executionProviders: readonly string[],
): Promise<InferenceSession> {
  quietOnnxRuntime();
  const name = basename(config.file);
  if (!existsSync(config.file)) {
    throw new ModelLoadError(
      'file',
      `the model file ${name} does not exist in the model folder (file: in model.yaml)`,
    );
  }
  let session: InferenceSession;
  try {
    session = await InferenceSession.create(config.file, {
      executionProviders: [...executionProviders],
      intraOpNumThreads: config.intraOpThreads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      logSeverityLevel: SESSION_LOG_SEVERITY,
    });
  } catch (error) {
    throw new ModelLoadError('session', reasonOf(error));
  }
  const problems = checkModelInterface(config, {
    inputs: session.inputMetadata,
    outputs: session.outputMetadata,
  });
  if (problems.length > 0) {
    const found = {
      inputs: session.inputMetadata.map(describeValue),
      outputs: session.outputMetadata.map(describeValue),
    };
    await session.release();
    throw new ModelLoadError('interface', interfaceReason(problems), problems, found);
  }
  return session;
}

function feeds(config: ModelConfig, items: readonly WorkItem[]): Record<string, Tensor> {
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

/** `count` requests of black images, the state at its mean (zeros without one) and no instruction. */
export function zeroItems(config: ModelConfig, count: number): WorkItem[] {
  return Array.from({ length: count }, () => ({
    images: config.inputs.images.map((s) => new Uint8Array(s.height * s.width * s.channels)),
    state: Float32Array.from(config.inputs.state.mean ?? new Array<number>(config.inputs.state.size).fill(0)),
    tokens:
      config.inputs.instruction === undefined ? null : new Int32Array(config.inputs.instruction.maxTokens),
  }));
}

/** Packs, runs and unpacks one batch; `computeMs` is `session.run` alone. */
export async function runBatch(
  session: InferenceSession,
  config: ModelConfig,
  items: readonly WorkItem[],
): Promise<{ actions: Float32Array<ArrayBuffer>[]; computeMs: number }> {
  const output = config.outputs.actions;
  const inputs = feeds(config, items);
  const started = performance.now();
  const results = await session.run(inputs, [output.tensor]);
  const computeMs = performance.now() - started;
  const tensor = results[output.tensor];
  if (tensor === undefined || tensor.type !== 'float32') {
    throw new Error(`output ${output.tensor} is missing or not float32`);
  }
  return { actions: unpackActions(tensor.data as Float32Array, items.length, output), computeMs };
}

/**
 * Runs a batch of `count` zero requests (the warm-up, and the checker's dry run). Throws
 * {@link ModelLoadError} `dry_run` with ONNX Runtime's reason.
 */
export async function dryRun(session: InferenceSession, config: ModelConfig, count = 1): Promise<void> {
  try {
    await runBatch(session, config, zeroItems(config, count));
  } catch (error) {
    throw new ModelLoadError('dry_run', `a batch of ${count} zero requests failed: ${reasonOf(error)}`);
  }
}
