/**
 * The comparison of a `model.yaml` with the inputs and outputs its ONNX file really has, so that a mismatch
 * is reported at load, per field, with what the file has, instead of as ONNX Runtime's first run error
 * ("input 'image' is missing in 'feeds'").
 *
 * Pure, and free of Nest, `@app/*` and ONNX Runtime at run time (a type import only): the Worker thread
 * (onnx-worker.ts), the main thread (model-workers.ts) and `npm run models:check` all import it.
 */
import type { InferenceSession } from 'onnxruntime-node';
import type { ModelConfig } from './model-config';

/** What ONNX Runtime says about one input or output (`session.inputMetadata[i]`). */
export type ValueInfo = InferenceSession.ValueMetadata;

/** The file's side of the comparison: `session.inputMetadata` and `session.outputMetadata`. */
export interface ModelInterface {
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
}

/** One mismatch: the `model.yaml` field to fix (as written in the yaml) and what the file has. */
export interface InterfaceProblem {
  readonly field: string;
  readonly message: string;
}

/**
 * How far loading got before it failed. `file`: the model file is not there. `session`: ONNX Runtime could
 * not open it (corrupt, unsupported, or an execution provider that does not load). `interface`: it opened,
 * but its inputs and outputs are not what `model.yaml` says. `dry_run`: a batch of zeros failed.
 */
export type LoadStage = 'file' | 'session' | 'interface' | 'dry_run';

/** A model that did not load; `message` is path-free (it is shown in `/models/stats` and logged). */
export class ModelLoadError extends Error {
  readonly code = 'model_load_failed';
  constructor(
    readonly stage: LoadStage,
    readonly reason: string,
    /** Set for `interface`: every mismatch, in `model.yaml` order. */
    readonly problems: readonly InterfaceProblem[] = [],
    /** Set for `interface` where the error was made (not after a Worker's message): the file's side. */
    readonly found?: { readonly inputs: readonly string[]; readonly outputs: readonly string[] },
  ) {
    super(reason);
    this.name = 'ModelLoadError';
  }
}

/** The one-line reason of an interface mismatch: every problem, `field: message`, joined by `; `. */
export function interfaceReason(problems: readonly InterfaceProblem[]): string {
  return `model.yaml does not match the model file: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`;
}

/** `[batch,3,224,224]`; an unnamed dynamic dimension (ONNX Runtime gives '') shows as `?`. */
export function formatShape(shape: readonly (number | string)[]): string {
  return `[${shape.map((d) => (d === '' ? '?' : String(d))).join(',')}]`;
}

/** `image (float32 [batch,3,224,224])`, as the messages list a file's inputs and outputs. */
export function describeValue(value: ValueInfo): string {
  return value.isTensor
    ? `${value.name} (${value.type} ${formatShape(value.shape)})`
    : `${value.name} (not a tensor)`;
}

/** What the config makes the server feed to (or read from) one tensor. */
interface Expected {
  readonly side: 'input' | 'output';
  /** The yaml block: `inputs.images[0]`, `inputs.state`, `outputs.actions`. */
  readonly at: string;
  readonly tensor: string;
  /** Element types the server can feed or read. */
  readonly type: string;
  /** Where the element type is set in the yaml; undefined where it is fixed by the server (float32). */
  readonly typeField?: string;
  /** The dimensions after the batch one, with the yaml names that set them (`channels`, `height`). */
  readonly dims: readonly { readonly label: string; readonly size: number }[];
  /** Said after the labels: `(nchw)` for an image, so the order of the labels is clear. */
  readonly note?: string;
}

function expectedTensors(config: ModelConfig): Expected[] {
  const out: Expected[] = config.inputs.images.map((image, i) => {
    const c = { label: 'channels', size: image.channels };
    const h = { label: 'height', size: image.height };
    const w = { label: 'width', size: image.width };
    return {
      side: 'input',
      at: `inputs.images[${i}]`,
      tensor: image.tensor,
      type: image.dtype,
      typeField: `inputs.images[${i}].dtype`,
      dims: image.layout === 'nchw' ? [c, h, w] : [h, w, c],
      note: ` (${image.layout})`,
    };
  });
  const { state, instruction } = config.inputs;
  out.push({
    side: 'input',
    at: 'inputs.state',
    tensor: state.tensor,
    type: 'float32',
    dims: [{ label: 'size', size: state.size }],
  });
  if (instruction !== undefined) {
    out.push({
      side: 'input',
      at: 'inputs.instruction',
      tensor: instruction.tensor,
      type: instruction.dtype,
      typeField: 'inputs.instruction.dtype',
      dims: [{ label: 'max_tokens', size: instruction.maxTokens }],
    });
  }
  const actions = config.outputs.actions;
  out.push({
    side: 'output',
    at: 'outputs.actions',
    tensor: actions.tensor,
    type: 'float32',
    dims: [
      { label: 'horizon', size: actions.horizon },
      { label: 'dim', size: actions.dim },
    ],
  });
  return out;
}

/**
 * Compares `config` with the file's inputs and outputs and returns every mismatch (empty: they match):
 *
 * - each tensor the yaml names must be an input (or, for the actions, an output) of the file, and a tensor;
 * - its element type must be the one the server feeds (float32 or uint8 images, float32 state, int64 or
 *   int32 tokens) or reads (float32 actions);
 * - its rank must be the server's (images 4, state and tokens 2, actions 3), and each fixed dimension after
 *   the batch one must equal the yaml's; a symbolic or unnamed dynamic dimension matches any size;
 * - the first dimension is the batch: it must be dynamic, or fixed at 1 with `max_batch_size: 1` (the
 *   server sends batches of 1 to `max_batch_size` requests, so no other fixed size can work);
 * - every input of the file must be fed by the yaml (ONNX Runtime refuses a run that leaves one out); not
 *   said when a yaml name is not in the file, whose message already lists every input.
 *
 * A tensor whose shape the file does not declare (ONNX Runtime gives `[]`) is not checked beyond its name and
 * type: the dry run that follows loading finds out. Extra outputs are fine: only the actions are read.
 */
export function checkModelInterface(config: ModelConfig, file: ModelInterface): InterfaceProblem[] {
  const problems: InterfaceProblem[] = [];
  const fixedBatchOfOne: string[] = [];
  for (const want of expectedTensors(config)) {
    const values = want.side === 'input' ? file.inputs : file.outputs;
    const found = values.find((v) => v.name === want.tensor);
    if (found === undefined) {
      problems.push({
        field: `${want.at}.tensor`,
        message: `the file has no ${want.side} "${want.tensor}"; ${listing(want.side, values)}`,
      });
      continue;
    }
    const what = `the file's ${want.side} "${found.name}"`;
    if (!found.isTensor) {
      problems.push({
        field: `${want.at}.tensor`,
        message: `${what} is not a tensor (a sequence, map or optional value); it must be a ${want.type} tensor`,
      });
      continue;
    }
    const shown = formatShape(found.shape);
    if (found.type !== want.type) {
      problems.push(
        want.typeField === undefined
          ? {
              field: `${want.at}.tensor`,
              message: `${what} is ${found.type} ${shown}; the server ${want.side === 'input' ? 'feeds' : 'reads'} ${want.type}`,
            }
          : { field: want.typeField, message: `${what} is ${found.type} ${shown}, not ${want.type}` },
      );
    }
    // `[]`: the file declares no shape (ONNX Runtime cannot tell it from a scalar); the dry run decides.
    if (found.shape.length === 0) continue;
    const labels = want.dims.map((d) => d.label).join(' x ');
    const sizes = want.dims.map((d) => d.size);
    if (found.shape.length !== want.dims.length + 1) {
      problems.push({
        field: want.at,
        message: `${what} has ${found.shape.length} dimensions ${shown}; the server ${want.side === 'input' ? 'feeds' : 'reads'} ${want.dims.length + 1}: [batch, ${want.dims.map((d) => d.label).join(', ')}] = ${formatShape(['batch', ...sizes])}`,
      });
      continue;
    }
    const [batch, ...rest] = found.shape;
    const differs = rest.some((d, i) => typeof d === 'number' && d !== sizes[i]);
    if (differs) {
      problems.push({
        field: want.at,
        message: `${what} is ${shown} but ${labels}${want.note ?? ''} is ${sizes.join(' x ')}`,
      });
    }
    if (typeof batch === 'number') {
      if (batch === 1) {
        if (config.maxBatchSize > 1) fixedBatchOfOne.push(`${found.name} ${shown}`);
      } else {
        problems.push({
          field: want.at,
          message: `${what} has a fixed batch (first) dimension of ${batch} ${shown}; the server sends batches of 1 to max_batch_size requests: export it with a dynamic batch dimension`,
        });
      }
    }
  }
  if (fixedBatchOfOne.length > 0) {
    problems.push({
      field: 'max_batch_size',
      message: `is ${config.maxBatchSize}, but the file fixes the batch (first) dimension at 1 (${fixedBatchOfOne.join(', ')}): set max_batch_size: 1, or export the model with a dynamic batch dimension`,
    });
  }
  // A yaml name the file lacks already lists every input of the file: the likely fix is there.
  if (problems.some((p) => p.message.startsWith('the file has no input '))) return problems;
  const fed = new Set(expectedTensors(config).map((e) => e.tensor));
  for (const input of file.inputs) {
    if (!fed.has(input.name)) {
      problems.push({
        field: 'inputs',
        message: `the file's input ${describeValue(input)} is fed by no entry of model.yaml; ONNX Runtime needs every input: name it in inputs.images[].tensor, inputs.state.tensor or inputs.instruction.tensor`,
      });
    }
  }
  return problems;
}

function listing(side: 'input' | 'output', values: readonly ValueInfo[]): string {
  if (values.length === 0) return `it has no ${side}s`;
  return `its ${side}s are ${values.map(describeValue).join(', ')}`;
}
