import { checkActionChunk, loadRobotProfileFile, type RobotProfile } from '@app/safety';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { onnx } from 'onnx-proto';
import { parse } from 'yaml';
import {
  MODEL_FILES,
  MODEL_NAMES,
  buildModel,
  mulberry32,
  type DemoModelName,
} from '../../../../models/scripts/build-models';
import { checkModelAgainstProfiles, loadModelConfig } from './model-config.loader';
import { tokenize } from './tokenizer';

const REPO_ROOT = join(__dirname, '../../../..');
const modelPath = (name: DemoModelName) => join(REPO_ROOT, MODEL_FILES[name]);
const yamlPath = (name: DemoModelName) => join(dirname(modelPath(name)), 'model.yaml');

/** The model.yaml fields this spec reads, as they are written (snake_case). */
interface ModelYaml {
  id: string;
  backend: string;
  file: string;
  control_hz: number;
  robot_types: string[];
  inputs: {
    images: {
      name: string;
      tensor: string;
      height: number;
      width: number;
      channels: number;
      layout: string;
      dtype: string;
      mean: number[];
      std: number[];
    }[];
    state: { tensor: string; size: number; mean: number[]; std: number[] };
    instruction: { tensor: string; tokenizer: string; vocab_size: number; max_tokens: number; dtype: string };
  };
  outputs: { actions: { tensor: string; horizon: number; dim: number; mean: number[]; std: number[] } };
  max_batch_size: number;
  [key: string]: unknown;
}

const readYaml = (name: DemoModelName) => parse(readFileSync(yamlPath(name), 'utf8')) as ModelYaml;

const TOP_LEVEL_KEYS = [
  'id',
  'version',
  'backend',
  'file',
  'device',
  'description',
  'control_hz',
  'robot_types',
  'inputs',
  'outputs',
  'max_batch_size',
  'batch_timeout_ms',
  'queue_capacity',
  'workers',
  'intra_op_threads',
  'default_deadline_ms',
  'max_deadline_ms',
].sort();

const franka = (): RobotProfile =>
  loadRobotProfileFile(join(REPO_ROOT, 'config/robots/franka_panda.yaml'), REPO_ROOT);

/** Shapes of a decoded graph's inputs or outputs: name -> [elemType, dims], `batch` for the symbolic one. */
function shapes(values: onnx.IValueInfoProto[]): Record<string, [number, (number | string)[]]> {
  return Object.fromEntries(
    values.map((v) => [
      v.name ?? '',
      [
        v.type?.tensorType?.elemType ?? -1,
        (v.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimParam || Number(d.dimValue)),
      ],
    ]),
  );
}

/**
 * Feeds for `batch` requests: a different random image per row (uint8 pixels normalised as the yaml says),
 * the same state and instruction in every row, so rows differ by their image only.
 */
function feeds(config: ModelYaml, batch: number, firstImage = 0): Feed[] {
  const image = config.inputs.images[0];
  const plane = image.height * image.width;
  const pixels = new Float32Array(batch * image.channels * plane);
  for (let row = 0; row < batch; row++) {
    const random = mulberry32(1000 + firstImage + row);
    for (let i = 0; i < image.channels * plane; i++) {
      const c = Math.floor(i / plane);
      const value = Math.floor(random() * 256) / 255;
      pixels[row * image.channels * plane + i] = (value - image.mean[c]) / image.std[c];
    }
  }
  const { state, instruction } = config.inputs;
  const raw = state.mean.map((m, i) => m + 0.01 * (i + 1));
  const states = new Float32Array(batch * state.size);
  for (let row = 0; row < batch; row++) {
    raw.forEach((x, i) => (states[row * state.size + i] = (x - state.mean[i]) / state.std[i]));
  }
  const ids = tokenize('pick up the red block', instruction.vocab_size, instruction.max_tokens);
  const tokens = new BigInt64Array(batch * instruction.max_tokens);
  for (let row = 0; row < batch; row++) ids.forEach((id, i) => (tokens[row * ids.length + i] = BigInt(id)));
  return [
    {
      name: image.tensor,
      type: 'float32',
      data: pixels,
      dims: [batch, image.channels, image.height, image.width],
    },
    { name: state.tensor, type: 'float32', data: states, dims: [batch, state.size] },
    { name: instruction.tensor, type: 'int64', data: tokens, dims: [batch, instruction.max_tokens] },
  ];
}

interface Feed {
  name: string;
  type: 'float32' | 'int64';
  data: Float32Array | BigInt64Array;
  dims: number[];
}

/**
 * ONNX Runtime in a worker thread, as the server runs it. Not in the spec itself: Jest runs a spec in a VM
 * context with typed-array classes of its own, and onnxruntime-common there refuses the output tensors that
 * the native binding allocates in the main realm ("A float32 tensor's data must be type of Float32Array").
 */
const RUNTIME_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ort);
let session;
parentPort.on('message', async (message) => {
  try {
    if (message.kind === 'open') {
      session = await ort.InferenceSession.create(message.path, { intraOpNumThreads: 1, interOpNumThreads: 1 });
      parentPort.postMessage({ inputNames: session.inputNames, outputNames: session.outputNames });
    } else if (message.kind === 'run') {
      const feeds = {};
      for (const f of message.feeds) feeds[f.name] = new ort.Tensor(f.type, f.data, f.dims);
      const output = (await session.run(feeds))[message.output];
      parentPort.postMessage({ type: output.type, dims: output.dims, data: output.data });
    } else {
      await session.release();
      parentPort.postMessage({});
    }
  } catch (error) {
    parentPort.postMessage({ error: String((error && error.stack) || error) });
  }
});
`;

interface RuntimeOutput {
  type: string;
  dims: number[];
  data: Float32Array;
}

class RuntimeWorker {
  private readonly worker = new Worker(RUNTIME_WORKER, {
    eval: true,
    workerData: { ort: require.resolve('onnxruntime-node') },
  });
  inputNames: string[] = [];
  outputNames: string[] = [];

  constructor() {
    // Never what keeps Jest from exiting, even if a test leaves it open.
    this.worker.unref();
  }

  async open(path: string): Promise<void> {
    const reply = await this.call<{ inputNames: string[]; outputNames: string[] }>({ kind: 'open', path });
    this.inputNames = reply.inputNames;
    this.outputNames = reply.outputNames;
  }

  run(input: Feed[], output: string): Promise<RuntimeOutput> {
    return this.call<RuntimeOutput>({ kind: 'run', feeds: input, output });
  }

  async close(): Promise<void> {
    await this.call({ kind: 'close' });
    await this.worker.terminate();
  }

  /** One request at a time: each reply answers the message before it. */
  private call<T>(message: object): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.worker.once('message', (reply: T & { error?: string }) =>
        reply.error === undefined ? resolve(reply) : reject(new Error(reply.error)),
      );
      this.worker.postMessage(message);
    });
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

describe.each(MODEL_NAMES)('the committed model %s', (name) => {
  it('is exactly what models/scripts/build-models.ts builds (run `npm run models:build` after a change)', () => {
    const committed = readFileSync(modelPath(name));
    const built = buildModel(name);
    expect(built.length).toBe(committed.length);
    expect(Buffer.compare(Buffer.from(built), committed)).toBe(0);
  });

  it('is small enough to commit: the demo under 500 KB, the others under 1 MB', () => {
    expect(statSync(modelPath(name)).size).toBeLessThan(name === 'demo-policy' ? 500_000 : 1_000_000);
  });

  it('has a model.yaml that declares the ONNX graph it sits next to', () => {
    const config = readYaml(name);
    const model = onnx.ModelProto.decode(readFileSync(modelPath(name)));
    const graph = model.graph as onnx.GraphProto;
    const image = config.inputs.images[0];
    const { state, instruction } = config.inputs;
    const actions = config.outputs.actions;
    const FLOAT = onnx.TensorProto.DataType.FLOAT;
    const INT64 = onnx.TensorProto.DataType.INT64;

    expect(Object.keys(config).sort()).toEqual(TOP_LEVEL_KEYS);
    expect(config.id).toBe(name);
    expect(config.backend).toBe('onnx');
    expect(join(dirname(yamlPath(name)), config.file)).toBe(modelPath(name));
    expect(config.inputs.images).toHaveLength(1);
    expect(image.layout).toBe('nchw');
    expect(image.dtype).toBe('float32');
    expect(instruction.dtype).toBe('int64');
    expect(shapes(graph.input)).toEqual({
      [image.tensor]: [FLOAT, ['batch', image.channels, image.height, image.width]],
      [state.tensor]: [FLOAT, ['batch', state.size]],
      [instruction.tensor]: [INT64, ['batch', instruction.max_tokens]],
    });
    expect(shapes(graph.output)).toEqual({
      [actions.tensor]: [FLOAT, ['batch', actions.horizon, actions.dim]],
    });
    // Token ids go up to vocab_size - 1: the embedding table must have vocab_size rows.
    const table = graph.initializer.find((t) => t.name === 'token_embedding');
    expect(table?.dims?.map(Number)).toEqual([instruction.vocab_size, 16]);
    expect(instruction.tokenizer).toBe('words-fnv1a-v1');
    for (const values of [image.mean, image.std]) expect(values).toHaveLength(image.channels);
    for (const values of [state.mean, state.std]) expect(values).toHaveLength(state.size);
    for (const values of [actions.mean, actions.std]) expect(values).toHaveLength(actions.dim);
    expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17]]);
    expect(Number(model.irVersion)).toBe(8);
  });

  it("passes the server's model config validation, against the franka_panda profile", () => {
    const config = loadModelConfig(dirname(modelPath(name)), REPO_ROOT);
    expect(config.id).toBe(name);
    expect(config.file).toBe(modelPath(name));
    expect(() => checkModelAgainstProfiles(config, new Map([['franka_panda', franka()]]))).not.toThrow();
  });

  it('keeps every chunk its Tanh output can give inside the franka_panda limits, from a state at the mean', () => {
    const config = readYaml(name);
    const profile = franka();
    const { mean, std, horizon, dim } = config.outputs.actions;
    expect(config.robot_types).toEqual(['franka_panda']);
    expect(1 / config.control_hz).toBeCloseTo(profile.dt, 5);
    expect(dim).toBe(profile.dimensions.length);
    // The worst chunks: every dimension at -1, +1, or swinging between them from step to step.
    const worst = [(_: number) => -1, (_: number) => 1, (t: number) => (t % 2 === 0 ? -1 : 1)];
    for (const rawAt of worst) {
      const data = Array.from({ length: horizon * dim }, (_, i) => {
        const d = i % dim;
        return rawAt(Math.floor(i / dim)) * std[d] + mean[d];
      });
      const result = checkActionChunk({ horizon, dim, data }, profile, mean, 'reject');
      expect(result.report.violations).toEqual([]);
      expect(result.report.outcome).toBe('pass');
    }
  });
});

describe.each(MODEL_NAMES)('model %s in ONNX Runtime', (name) => {
  let runtime: RuntimeWorker;
  const config = readYaml(name);
  const actionsOf = (input: Feed[]) => runtime.run(input, config.outputs.actions.tensor);

  beforeAll(async () => {
    runtime = new RuntimeWorker();
    await runtime.open(modelPath(name));
  });
  afterAll(async () => {
    await runtime?.close();
  });

  it('takes the inputs and gives the output the yaml names', () => {
    const { images, state, instruction } = config.inputs;
    expect([...runtime.inputNames].sort()).toEqual(
      [images[0].tensor, state.tensor, instruction.tensor].sort(),
    );
    expect(runtime.outputNames).toEqual([config.outputs.actions.tensor]);
  });

  it('answers a batch of 3 with the rows that 3 single runs give; different images, different actions', async () => {
    const { horizon, dim, mean, std } = config.outputs.actions;
    const step = horizon * dim;
    const batched = await actionsOf(feeds(config, 3));
    expect(batched.type).toBe('float32');
    expect(batched.dims).toEqual([3, horizon, dim]);
    const rows = [0, 1, 2].map((r) => batched.data.subarray(r * step, (r + 1) * step));
    for (const row of rows) expect(row.every((v) => Number.isFinite(v) && Math.abs(v) <= 1)).toBe(true);

    // The slow model runs twice at most (about 0.2 s per row): one single run, of the middle row.
    const singles = name === 'demo-policy-slow' ? [1] : [0, 1, 2];
    for (const r of singles) {
      const single = await actionsOf(feeds(config, 1, r));
      expect(single.dims).toEqual([1, horizon, dim]);
      expect(maxAbsDiff(single.data, rows[r])).toBeLessThan(1e-5);
    }

    expect(maxAbsDiff(rows[0], rows[1])).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(rows[1], rows[2])).toBeGreaterThan(1e-3);
    // And what the server sends, un-normalised, passes the robot's limits from a state at the mean.
    const profile = franka();
    for (const row of rows) {
      const data = Array.from(row, (v, i) => v * std[i % dim] + mean[i % dim]);
      expect(checkActionChunk({ horizon, dim, data }, profile, mean, 'reject').report.outcome).toBe('pass');
    }
  });
});

describe('the model.yaml serving settings', () => {
  it('run the slow model one request at a time with long deadlines, and batch the others by 8', () => {
    const slow = readYaml('demo-policy-slow');
    expect([slow.max_batch_size, slow.workers, slow.queue_capacity, slow.batch_timeout_ms]).toEqual([
      1, 1, 4, 0,
    ]);
    expect([slow.default_deadline_ms, slow.max_deadline_ms]).toEqual([10000, 30000]);
    for (const name of ['demo-policy', 'demo-policy-10ms'] as const) {
      const config = readYaml(name);
      expect([config.max_batch_size, config.workers, config.intra_op_threads]).toEqual([8, 1, 1]);
    }
  });
});
