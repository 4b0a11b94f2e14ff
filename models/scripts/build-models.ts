/**
 * Builds the demo policy models (ONNX) from code: `npm run models:build` writes every file listed in
 * {@link MODEL_FILES}. The weights come from a seeded PRNG and the protobuf encoding is deterministic, so
 * the output is byte-for-byte the same on every machine; a unit test (apps/api/src/inference/
 * demo-models.spec.ts) rebuilds each model in memory and compares it with the committed file.
 *
 * Every model has the same interface (what the model.yaml files next to them declare):
 *   inputs   image   float32 [batch, 3, 224, 224]  NCHW, pixel / 255 then (x - 0.5) / 0.5
 *            state   float32 [batch, 8]            normalised robot state
 *            tokens  int64   [batch, 16]           words-fnv1a-v1 ids in 0..1023, 0 = padding
 *   output   actions float32 [batch, 10, 8]        in -1..1 (Tanh); the server un-normalises them
 *
 * The graph: a two-layer strided conv encoder with global average pooling, the mean of the tokens'
 * embeddings, and the state, concatenated into an MLP whose Tanh output is reshaped to the action chunk.
 * The demo adds a tower of `towerLayers` [batch, N] x [N, N] layers (cheap per request, many kernels:
 * batching pays). The slow variants add a chain of `chainLayers` [N, N] x [N, N] MatMul layers (one shared weight, so the
 * file stays small) fed by the MLP's hidden layer: real compute that depends on the input, which ONNX
 * Runtime can neither constant-fold nor drop, because its result feeds the output.
 *
 * Opset 17, IR version 8; the batch dimension is the symbolic `batch`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { onnx } from 'onnx-proto';

/** The models this script builds. */
export const MODEL_NAMES = ['demo-policy', 'demo-policy-slow', 'demo-policy-10ms'] as const;
export type DemoModelName = (typeof MODEL_NAMES)[number];

/** Where each model's file lives, relative to the repository root. */
export const MODEL_FILES: Readonly<Record<DemoModelName, string>> = {
  'demo-policy': 'models/demo-policy/model.onnx',
  'demo-policy-slow': 'models/demo-policy-slow/model.onnx',
  'demo-policy-10ms': 'bench/models/demo-policy-10ms/model.onnx',
};

/** The interface every demo model shares (the ONNX names and sizes the model.yaml files declare). */
export const DEMO_INTERFACE = {
  image: { name: 'image', channels: 3, height: 224, width: 224 },
  state: { name: 'state', size: 8 },
  tokens: { name: 'tokens', maxTokens: 16, vocabSize: 1024 },
  actions: { name: 'actions', horizon: 10, dim: 8 },
} as const;

export const OPSET_VERSION = 17;
export const IR_VERSION = 8;

interface ModelSpec {
  readonly seed: number;
  readonly description: string;
  /** MatMul layers in the compute chain; 0: none. */
  readonly chainLayers: number;
  /** N of the chain's [N, N] activations and weight. */
  readonly chainWidth: number;
  /**
   * Layers of a [batch, width] x [width, width] MLP tower on the hidden vector; 0: none. Per request it is
   * cheap arithmetic and many small kernels, so a batch of 8 costs little more than one: the shape of
   * cost that makes batching pay (as kernel launches do on a GPU).
   */
  readonly towerLayers?: number;
  readonly towerWidth?: number;
}

/**
 * Chain sizes were measured on the development machine (AMD EPYC, ONNX Runtime 1.30, one intra-op
 * thread, default graph optimisations): a 256-wide layer costs about 0.45 ms per batch item.
 */
const SPECS: Readonly<Record<DemoModelName, ModelSpec>> = {
  'demo-policy': {
    seed: 0x5eed0001,
    description: 'Demo policy: random weights, a few milliseconds per forward pass.',
    chainLayers: 0,
    chainWidth: 0,
    // A tower of small layers: a few milliseconds per forward pass, most of it per-kernel cost.
    towerLayers: 150,
    towerWidth: 256,
  },
  'demo-policy-slow': {
    seed: 0x5eed0002,
    description: 'Slow demo policy: the demo plus a MatMul chain, about 200 ms per request on one thread.',
    chainLayers: 440,
    chainWidth: 256,
  },
  'demo-policy-10ms': {
    seed: 0x5eed0003,
    description: 'Benchmark policy: the demo plus a MatMul chain, about 10 ms per request on one thread.',
    chainLayers: 19,
    chainWidth: 256,
  },
};

/** mulberry32: a small 32-bit PRNG; the same seed gives the same sequence of floats in [0, 1) everywhere. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
type Attribute = number | readonly number[];

/** Accumulates nodes and initializers with generated, stable names. */
class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];
  private readonly used = new Set<string>();
  private nodeCount = 0;

  constructor(private readonly random: () => number) {}

  /** A float32 initializer of uniform values in [-bound, bound), stored little-endian in rawData. */
  uniform(name: string, dims: readonly number[], bound: number): string {
    const count = dims.reduce((a, b) => a * b, 1);
    const bytes = new Uint8Array(count * 4);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < count; i++) view.setFloat32(i * 4, (this.random() * 2 - 1) * bound, true);
    return this.initializer({ name, dims: [...dims], dataType: FLOAT, rawData: bytes });
  }

  /** A float32 weight scaled to its fan-in (LeCun uniform times `gain`), so activations stay O(1). */
  weight(name: string, dims: readonly number[], fanIn: number, gain = 1): string {
    return this.uniform(name, dims, gain * Math.sqrt(3 / fanIn));
  }

  int64(name: string, values: readonly number[]): string {
    const bytes = new Uint8Array(values.length * 8);
    const view = new DataView(bytes.buffer);
    values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
    return this.initializer({ name, dims: [values.length], dataType: INT64, rawData: bytes });
  }

  /** Adds a node with one output and returns the output's name. */
  node(opType: string, inputs: readonly string[], attributes: Record<string, Attribute> = {}): string {
    const name = `${opType.toLowerCase()}_${this.nodeCount++}`;
    const attribute = Object.entries(attributes).map(([key, value]): onnx.IAttributeProto => {
      if (typeof value !== 'number') {
        return { name: key, type: onnx.AttributeProto.AttributeType.INTS, ints: [...value] };
      }
      return { name: key, type: onnx.AttributeProto.AttributeType.INT, i: value };
    });
    this.nodes.push({ name, opType, input: [...inputs], output: [name], attribute });
    return name;
  }

  private initializer(tensor: onnx.ITensorProto): string {
    const name = tensor.name ?? '';
    if (this.used.has(name)) throw new Error(`initializer ${name} declared twice`);
    this.used.add(name);
    this.initializers.push(tensor);
    return name;
  }
}

function tensorValue(
  name: string,
  elemType: number,
  dims: readonly (number | 'batch')[],
): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (d === 'batch' ? { dimParam: 'batch' } : { dimValue: d })) },
      },
    },
  };
}

function buildGraph(g: GraphBuilder, spec: ModelSpec): void {
  const { image, state, tokens, actions } = DEMO_INTERFACE;
  const conv1 = 8;
  const conv2 = 16;
  const embedding = 16;
  const hidden = 64;
  const chainOut = 8;

  // Image encoder: 224 -> 28 (k8 s8) -> 7 (k4 s4), then the mean over the 7 x 7 grid.
  const w1 = g.weight('conv1.weight', [conv1, image.channels, 8, 8], image.channels * 64, Math.SQRT2);
  const b1 = g.uniform('conv1.bias', [conv1], 0.05);
  const w2 = g.weight('conv2.weight', [conv2, conv1, 4, 4], conv1 * 16, Math.SQRT2);
  const b2 = g.uniform('conv2.bias', [conv2], 0.05);
  let x = g.node('Conv', [image.name, w1, b1], { kernel_shape: [8, 8], strides: [8, 8] });
  x = g.node('Relu', [x]);
  x = g.node('Conv', [x, w2, b2], { kernel_shape: [4, 4], strides: [4, 4] });
  x = g.node('Relu', [x]);
  x = g.node('GlobalAveragePool', [x]);
  const visual = g.node('Flatten', [x], { axis: 1 });

  // Instruction: the mean of the 16 token embeddings (padding rows included).
  const table = g.uniform('token_embedding', [tokens.vocabSize, embedding], 1);
  const embedded = g.node('Gather', [table, tokens.name], { axis: 0 });
  const text = g.node('ReduceMean', [embedded], { axes: [1], keepdims: 0 });

  const features = g.node('Concat', [visual, text, state.name], { axis: 1 });
  const width = conv2 + embedding + state.size;
  const w3 = g.weight('fc1.weight', [width, hidden], width, Math.SQRT2);
  const b3 = g.uniform('fc1.bias', [hidden], 0.05);
  let h = g.node('Relu', [g.node('Gemm', [features, w3, b3])]);
  let headWidth = hidden;

  if (spec.chainLayers > 0) {
    const n = spec.chainWidth;
    if (n % hidden !== 0) throw new Error(`chain width ${n} is not a multiple of ${hidden}`);
    // [batch, n, n] from the hidden layer without an [hidden, n] weight: the hidden vector tiled to n,
    // times a fixed row (an outer product).
    const tiled = g.node('Tile', [h, g.int64('chain.tile_repeats', [1, n / hidden])]);
    const column = g.node('Unsqueeze', [tiled, g.int64('chain.unsqueeze_axes', [2])]);
    const row = g.uniform('chain.row', [1, n], 1);
    let a = g.node('Tanh', [g.node('MatMul', [column, row])]);
    // One weight for every layer. Gain 0.8 < 1 makes the chain contracting: a rounding difference in
    // one layer shrinks in the next ones instead of growing, so batched and single runs agree.
    const wc = g.weight('chain.weight', [n, n], n, 0.8);
    const bc = g.uniform('chain.bias', [n], 0.5);
    for (let layer = 0; layer < spec.chainLayers; layer++) {
      a = g.node('Tanh', [g.node('Add', [g.node('MatMul', [a, wc]), bc])]);
    }
    const pooled = g.node('ReduceMean', [a], { axes: [1], keepdims: 0 });
    const wo = g.weight('chain.out.weight', [n, chainOut], n);
    h = g.node('Concat', [h, g.node('MatMul', [pooled, wo])], { axis: 1 });
    headWidth += chainOut;
  }

  const towerLayers = spec.towerLayers ?? 0;
  if (towerLayers > 0) {
    const n = spec.towerWidth ?? hidden;
    const wi = g.weight('tower.in.weight', [hidden, n], hidden, Math.SQRT2);
    let v = g.node('Tanh', [g.node('MatMul', [h, wi])]);
    // One weight for every layer (small file); gain 0.8 keeps the tower contracting, as the chain.
    const wt = g.weight('tower.weight', [n, n], n, 0.8);
    const bt = g.uniform('tower.bias', [n], 0.5);
    for (let layer = 0; layer < towerLayers; layer++) {
      v = g.node('Tanh', [g.node('Add', [g.node('MatMul', [v, wt]), bt])]);
    }
    const wo = g.weight('tower.out.weight', [n, chainOut], n);
    h = g.node('Concat', [h, g.node('MatMul', [v, wo])], { axis: 1 });
    headWidth += chainOut;
  }

  const outputs = actions.horizon * actions.dim;
  const w4 = g.weight('fc2.weight', [headWidth, outputs], headWidth);
  const b4 = g.uniform('fc2.bias', [outputs], 0.1);
  const raw = g.node('Tanh', [g.node('Gemm', [h, w4, b4])]);
  const shape = g.int64('actions.shape', [-1, actions.horizon, actions.dim]);
  // The last node writes the graph output itself.
  g.nodes.push({ name: 'reshape_actions', opType: 'Reshape', input: [raw, shape], output: [actions.name] });
}

/**
 * The ONNX bytes of one model; the same bytes on every call and every machine. `chainLayers` overrides the
 * length of its MatMul chain (tests build a slower variant that way; the shipped files use the default).
 */
export function buildModel(
  name: DemoModelName,
  overrides: { readonly chainLayers?: number } = {},
): Uint8Array {
  const spec = { ...SPECS[name], ...overrides };
  const g = new GraphBuilder(mulberry32(spec.seed));
  buildGraph(g, spec);
  const { image, state, tokens, actions } = DEMO_INTERFACE;
  const model: onnx.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET_VERSION }],
    producerName: 'vla-platform models/scripts/build-models.ts',
    producerVersion: '1',
    modelVersion: 1,
    docString: spec.description,
    graph: {
      name: name.replace(/-/g, '_'),
      node: g.nodes,
      initializer: g.initializers,
      input: [
        tensorValue(image.name, FLOAT, ['batch', image.channels, image.height, image.width]),
        tensorValue(state.name, FLOAT, ['batch', state.size]),
        tensorValue(tokens.name, INT64, ['batch', tokens.maxTokens]),
      ],
      output: [tensorValue(actions.name, FLOAT, ['batch', actions.horizon, actions.dim])],
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

/** Writes every model under `root` (the repository root); returns the paths written. */
export function writeModels(root: string): string[] {
  return MODEL_NAMES.map((name) => {
    const path = join(root, MODEL_FILES[name]);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, buildModel(name));
    return path;
  });
}

if (require.main === module) {
  const root = join(__dirname, '../..');
  for (const path of writeModels(root)) console.log(`wrote ${path.slice(root.length + 1)}`);
}
