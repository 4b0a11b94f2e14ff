// What the inference bench's baselines share: a model's ONNX Runtime session opened with the options the
// API's Worker uses (apps/api/src/inference/onnx-worker.ts), and the input tensors of one request built with
// the same packing code, so a bare `session.run` and the platform feed the model identical tensors.
import { InferenceSession, Tensor } from 'onnxruntime-node';
import path from 'node:path';
import type { ModelConfig } from '../../apps/api/src/inference/model-config';
import { loadModelConfig } from '../../apps/api/src/inference/model-config.loader';
import { packImages, packStates, packTokens, unpackActions } from '../../apps/api/src/inference/tensor-prep';
import { tokenize } from '../../apps/api/src/inference/tokenizer';

/** A model's validated config with its open session. */
export interface Policy {
  readonly config: ModelConfig;
  readonly session: InferenceSession;
}

/** One request's inputs as the model sees them: HWC uint8 pixels at the model's size, per image input. */
export interface PolicyInputs {
  readonly images: readonly Uint8Array[];
  readonly state: readonly number[];
  readonly instruction?: string;
}

/**
 * Opens `<modelsDir>/<id>` as the Worker does: CPU, the yaml's `intra_op_threads`, one inter-op thread, all
 * graph optimisations.
 */
export async function openPolicy(modelsDir: string, id: string): Promise<Policy> {
  const config = loadModelConfig(path.join(modelsDir, id));
  const session = await InferenceSession.create(config.file, {
    executionProviders: ['cpu'],
    intraOpNumThreads: config.intraOpThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  return { config, session };
}

/** The feeds of a batch of `batch` copies of one request, packed by the code the Worker packs with. */
export function feedsOf(config: ModelConfig, inputs: PolicyInputs, batch = 1): Record<string, Tensor> {
  const copies = <T>(value: T): T[] => Array.from({ length: batch }, () => value);
  const feeds: Record<string, Tensor> = {};
  config.inputs.images.forEach((spec, k) => {
    const pixels = inputs.images[k];
    if (pixels?.length !== spec.height * spec.width * spec.channels) {
      throw new Error(`image ${spec.name} must have ${spec.height * spec.width * spec.channels} bytes`);
    }
    const dims =
      spec.layout === 'nchw'
        ? [batch, spec.channels, spec.height, spec.width]
        : [batch, spec.height, spec.width, spec.channels];
    feeds[spec.tensor] = new Tensor(spec.dtype, packImages(copies(pixels), spec), dims);
  });
  const state = config.inputs.state;
  if (inputs.state.length !== state.size) throw new Error(`state must have ${state.size} numbers`);
  feeds[state.tensor] = new Tensor('float32', packStates(copies(Float32Array.from(inputs.state)), state), [
    batch,
    state.size,
  ]);
  const instruction = config.inputs.instruction;
  if (instruction !== undefined) {
    const ids = tokenize(inputs.instruction ?? '', instruction.vocabSize, instruction.maxTokens);
    feeds[instruction.tensor] = new Tensor(
      instruction.dtype,
      packTokens(copies(ids), instruction.maxTokens, instruction.dtype),
      [batch, instruction.maxTokens],
    );
  }
  return feeds;
}

/** Runs one batch of one and returns its action chunk as rows (un-normalised, as the API answers it). */
export async function runPolicy(policy: Policy, feeds: Record<string, Tensor>): Promise<number[][]> {
  const spec = policy.config.outputs.actions;
  const results = await policy.session.run(feeds, [spec.tensor]);
  const tensor = results[spec.tensor];
  if (tensor === undefined || tensor.type !== 'float32') throw new Error(`no float32 output ${spec.tensor}`);
  const [chunk] = unpackActions(tensor.data as Float32Array, 1, spec);
  const rows: number[][] = [];
  for (let h = 0; h < spec.horizon; h++)
    rows.push(Array.from(chunk.subarray(h * spec.dim, (h + 1) * spec.dim)));
  return rows;
}
