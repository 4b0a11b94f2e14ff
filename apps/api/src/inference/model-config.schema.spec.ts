import { join, resolve } from 'node:path';
import type { ModelConfig } from './model-config';
import { ModelConfigError, parseModelConfig } from './model-config.schema';

/** What the loader passes: the file as shown to the operator, and the model's folder. */
const DIR = resolve('/srv/models/demo-policy');
const SOURCE = { file: 'models/demo-policy/model.yaml', dir: DIR };

type Doc = Record<string, unknown>;

const image = (fields: Doc = {}): Doc => ({
  name: 'primary',
  tensor: 'image',
  height: 224,
  width: 224,
  channels: 3,
  ...fields,
});

/** A valid document with only the required fields: one image, an 8-value state, 10 x 8 actions. */
function doc(overrides: Doc = {}): Doc {
  return {
    id: 'demo-policy',
    version: '1.0.0',
    backend: 'onnx',
    file: 'model.onnx',
    control_hz: 15,
    robot_types: ['franka_panda'],
    inputs: { images: [image()], state: { tensor: 'state', size: 8 } },
    outputs: { actions: { tensor: 'actions', horizon: 10, dim: 8 } },
    ...overrides,
  };
}

/** `doc()` with `inputs` changed: `images` replaced, `state` and `instruction` merged or set. */
function withInputs(inputs: Doc): Doc {
  const base = doc().inputs as Doc;
  return doc({ inputs: { ...base, ...inputs } });
}

/** `doc()` with the first image's fields merged. */
const withImage = (fields: Doc): Doc => withInputs({ images: [image(fields)] });
/** `doc()` with the state's fields merged. */
const withState = (fields: Doc): Doc => withInputs({ state: { tensor: 'state', size: 8, ...fields } });
/** `doc()` with an instruction block of the given fields (on top of a valid one). */
const withInstruction = (fields: Doc): Doc =>
  withInputs({
    instruction: {
      tensor: 'tokens',
      tokenizer: 'words-fnv1a-v1',
      vocab_size: 1024,
      max_tokens: 16,
      ...fields,
    },
  });
/** `doc()` with the actions' fields merged. */
const withActions = (fields: Doc): Doc =>
  doc({ outputs: { actions: { tensor: 'actions', horizon: 10, dim: 8, ...fields } } });

/** `value` without `key`. */
function without(value: Doc, key: string): Doc {
  const copy = { ...value };
  delete copy[key];
  return copy;
}

/** The error that parsing `raw` throws; fails the test when it parses or throws something else. */
function parseError(raw: unknown, source = SOURCE): ModelConfigError {
  try {
    parseModelConfig(raw, source);
  } catch (error) {
    if (error instanceof ModelConfigError) return error;
    throw error;
  }
  throw new Error('the config was accepted');
}

const eight = (v: number) => new Array<number>(8).fill(v);

describe('parseModelConfig: valid configs build the ModelConfig', () => {
  it('the required fields alone: every default applied, file resolved inside the folder', () => {
    expect(parseModelConfig(doc(), SOURCE)).toEqual<ModelConfig>({
      id: 'demo-policy',
      version: '1.0.0',
      backend: 'onnx',
      file: join(DIR, 'model.onnx'),
      dir: DIR,
      device: 'cpu',
      description: '',
      controlHz: 15,
      robotTypes: ['franka_panda'],
      inputs: {
        images: [
          {
            name: 'primary',
            tensor: 'image',
            height: 224,
            width: 224,
            channels: 3,
            layout: 'nchw',
            dtype: 'float32',
            mean: [0, 0, 0],
            std: [1, 1, 1],
            resize: 'fill',
          },
        ],
        state: { tensor: 'state', size: 8 },
      },
      outputs: { actions: { tensor: 'actions', horizon: 10, dim: 8 } },
      maxBatchSize: 8,
      batchTimeoutMs: 2,
      queueCapacity: 64,
      workers: 1,
      intraOpThreads: 1,
      defaultDeadlineMs: 5000,
      maxDeadlineMs: 30000,
    });
  });

  it('every field given: the values in camelCase, normalisations kept, the instruction block built', () => {
    const config = parseModelConfig(
      doc({
        file: 'weights/policy.onnx',
        device: 'cuda',
        description: 'A demo policy',
        control_hz: 50.5,
        robot_types: ['franka_panda', 'ur5e'],
        inputs: {
          images: [
            image({ layout: 'nhwc', mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3], resize: 'cover' }),
            { name: 'wrist', tensor: 'wrist_image', height: 96, width: 128, channels: 1, dtype: 'uint8' },
          ],
          state: { tensor: 'state', size: 8, mean: eight(0.1), std: eight(2) },
          instruction: {
            tensor: 'tokens',
            tokenizer: 'words-fnv1a-v1',
            vocab_size: 1024,
            max_tokens: 16,
            max_chars: 500,
            dtype: 'int32',
          },
        },
        outputs: { actions: { tensor: 'actions', horizon: 4, dim: 8, mean: eight(-1), std: eight(0.5) } },
        max_batch_size: 32,
        batch_timeout_ms: 0,
        queue_capacity: 1000,
        workers: 4,
        intra_op_threads: 2,
        default_deadline_ms: 2000,
        max_deadline_ms: 10000,
      }),
      SOURCE,
    );

    expect(config).toEqual<ModelConfig>({
      id: 'demo-policy',
      version: '1.0.0',
      backend: 'onnx',
      file: join(DIR, 'weights', 'policy.onnx'),
      dir: DIR,
      device: 'cuda',
      description: 'A demo policy',
      controlHz: 50.5,
      robotTypes: ['franka_panda', 'ur5e'],
      inputs: {
        images: [
          {
            name: 'primary',
            tensor: 'image',
            height: 224,
            width: 224,
            channels: 3,
            layout: 'nhwc',
            dtype: 'float32',
            mean: [0.5, 0.4, 0.3],
            std: [0.2, 0.25, 0.3],
            resize: 'cover',
          },
          {
            name: 'wrist',
            tensor: 'wrist_image',
            height: 96,
            width: 128,
            channels: 1,
            layout: 'nchw',
            dtype: 'uint8',
            mean: [0],
            std: [1],
            resize: 'fill',
          },
        ],
        state: { tensor: 'state', size: 8, mean: eight(0.1), std: eight(2) },
        instruction: {
          tensor: 'tokens',
          tokenizer: 'words-fnv1a-v1',
          vocabSize: 1024,
          maxTokens: 16,
          maxChars: 500,
          dtype: 'int32',
        },
      },
      outputs: { actions: { tensor: 'actions', horizon: 4, dim: 8, mean: eight(-1), std: eight(0.5) } },
      maxBatchSize: 32,
      batchTimeoutMs: 0,
      queueCapacity: 1000,
      workers: 4,
      intraOpThreads: 2,
      defaultDeadlineMs: 2000,
      maxDeadlineMs: 10000,
    });
  });

  it('an instruction block takes max_chars 2000 and int64 by default', () => {
    expect(parseModelConfig(withInstruction({}), SOURCE).inputs.instruction).toEqual({
      tensor: 'tokens',
      tokenizer: 'words-fnv1a-v1',
      vocabSize: 1024,
      maxTokens: 16,
      maxChars: 2000,
      dtype: 'int64',
    });
  });

  it('without an instruction block there is no instruction key at all', () => {
    expect(Object.keys(parseModelConfig(doc(), SOURCE).inputs)).toEqual(['images', 'state']);
  });

  it('a relative dir resolves against the working directory', () => {
    const config = parseModelConfig(doc(), { file: 'x/model.yaml', dir: 'some/demo-policy' });
    expect(config.dir).toBe(resolve('some/demo-policy'));
    expect(config.file).toBe(resolve('some/demo-policy/model.onnx'));
  });

  it('a file path with ./ and inner folders stays inside the folder', () => {
    expect(parseModelConfig(doc({ file: './a/./b/model.onnx' }), SOURCE).file).toBe(
      join(DIR, 'a', 'b', 'model.onnx'),
    );
  });

  /** [field, value] pairs on the bounds of their range: each must be accepted. */
  it.each<[string, Doc]>([
    ['control_hz 10000', doc({ control_hz: 10_000 })],
    ['control_hz 0.5', doc({ control_hz: 0.5 })],
    ['height 1 and width 4096', withImage({ height: 1, width: 4096 })],
    [
      'eight images',
      withInputs({
        images: [1, 2, 3, 4, 5, 6, 7, 8].map((i) => image({ name: `cam${i}`, tensor: `image${i}` })),
      }),
    ],
    ['state size 1024', withState({ size: 1024 })],
    [
      'vocab_size 2, max_tokens 4096, max_chars 100000',
      withInstruction({ vocab_size: 2, max_tokens: 4096, max_chars: 100_000 }),
    ],
    ['vocab_size 10000000', withInstruction({ vocab_size: 10_000_000 })],
    ['horizon 10000, dim 1024', withActions({ horizon: 10_000, dim: 1024 })],
    ['max_batch_size 1024, batch_timeout_ms 10000', doc({ max_batch_size: 1024, batch_timeout_ms: 10_000 })],
    [
      'queue_capacity 1000000, workers 64, intra_op_threads 256',
      doc({ queue_capacity: 1_000_000, workers: 64, intra_op_threads: 256 }),
    ],
    ['default == max deadline', doc({ default_deadline_ms: 600_000, max_deadline_ms: 600_000 })],
    ['a version with + and a letter', doc({ version: 'v2.1.0+build.7' })],
    ['a negative mean and a tiny std', withImage({ mean: [-1, -2, -3], std: [1e-9, 1, 1] })],
  ])('%s is accepted', (_case, raw) => {
    expect(parseModelConfig(raw, SOURCE).id).toBe('demo-policy');
  });

  it('an id of 64 characters, in a folder of that name, is accepted', () => {
    const id = `a${'.-_9'.repeat(15)}bcd`;
    expect(id).toHaveLength(64);
    expect(parseModelConfig(doc({ id }), { file: 'model.yaml', dir: `/srv/models/${id}` }).id).toBe(id);
  });

  it('is frozen, and later changes to the document do not reach it', () => {
    const raw = withState({ mean: eight(0), std: eight(1) });
    const config = parseModelConfig(raw, SOURCE);
    ((raw.inputs as Doc).state as { mean: number[] }).mean[0] = 99;

    expect(config.inputs.state.mean?.[0]).toBe(0);
    const frozen = [
      config,
      config.robotTypes,
      config.inputs,
      config.inputs.images,
      config.inputs.images[0],
      config.inputs.images[0].mean,
      config.inputs.images[0].std,
      config.inputs.state,
      config.inputs.state.mean,
      config.inputs.state.std,
      config.outputs,
      config.outputs.actions,
    ];
    expect(frozen.every((o) => Object.isFrozen(o))).toBe(true);
  });
});

describe('parseModelConfig: a misconfigured model fails closed, naming the file and the field', () => {
  const int = (min: number, max: number) => `must be an integer from ${min} to ${max}`;
  /** [case, document, the field named, the reason given]. */
  const misconfigurations: [string, unknown, string, string][] = [
    // The document itself.
    ['a list', [doc()], '', 'must be a mapping of model config fields'],
    ['a string', 'id: demo-policy', '', 'must be a mapping of model config fields'],
    ['null (an empty file)', null, '', 'must be a mapping of model config fields'],

    // Required fields.
    ['missing id', without(doc(), 'id'), 'id', 'is required'],
    ['missing version', without(doc(), 'version'), 'version', 'is required'],
    ['missing backend', without(doc(), 'backend'), 'backend', 'is required'],
    ['missing file', without(doc(), 'file'), 'file', 'is required'],
    ['missing control_hz', without(doc(), 'control_hz'), 'control_hz', 'is required'],
    ['missing robot_types', without(doc(), 'robot_types'), 'robot_types', 'is required'],
    ['missing inputs', without(doc(), 'inputs'), 'inputs', 'is required'],
    ['missing outputs', without(doc(), 'outputs'), 'outputs', 'is required'],
    ['missing inputs.images', withInputs({ images: undefined }), 'inputs.images', 'is required'],
    ['missing inputs.state', withInputs({ state: undefined }), 'inputs.state', 'is required'],
    ['missing outputs.actions', doc({ outputs: {} }), 'outputs.actions', 'is required'],
    [
      'missing image height',
      withInputs({ images: [without(image(), 'height')] }),
      'inputs.images[0].height',
      'is required',
    ],
    [
      'missing image tensor',
      withInputs({ images: [without(image(), 'tensor')] }),
      'inputs.images[0].tensor',
      'is required',
    ],
    ['missing state size', withInputs({ state: { tensor: 'state' } }), 'inputs.state.size', 'is required'],
    [
      'missing instruction tokenizer',
      withInstruction({ tokenizer: undefined }),
      'inputs.instruction.tokenizer',
      'is required',
    ],
    [
      'missing instruction vocab_size',
      withInstruction({ vocab_size: undefined }),
      'inputs.instruction.vocab_size',
      'is required',
    ],
    [
      'missing actions horizon',
      doc({ outputs: { actions: { tensor: 'a', dim: 8 } } }),
      'outputs.actions.horizon',
      'is required',
    ],

    // Unknown and misspelt keys are refused, not ignored.
    ['unknown top-level key', doc({ gpu: 0 }), 'gpu', 'is not a model config field'],
    [
      'misspelt top-level key',
      without(doc({ control_hertz: 15 }), 'control_hz'),
      'control_hertz',
      'is not a model config field',
    ],
    ['misspelt optional key', doc({ max_batch: 4 }), 'max_batch', 'is not a model config field'],
    ['unknown key in inputs', withInputs({ audio: {} }), 'inputs.audio', 'is not a model config field'],
    [
      'unknown key in an image',
      withImage({ crop: true }),
      'inputs.images[0].crop',
      'is not a model config field',
    ],
    [
      'unknown key in the state',
      withState({ dtype: 'float32' }),
      'inputs.state.dtype',
      'is not a model config field',
    ],
    [
      'unknown key in the instruction',
      withInstruction({ lowercase: true }),
      'inputs.instruction.lowercase',
      'is not a model config field',
    ],
    [
      'unknown key in outputs',
      doc({ outputs: { actions: { tensor: 'a', horizon: 1, dim: 8 }, value: {} } }),
      'outputs.value',
      'is not a model config field',
    ],
    [
      'unknown key in the actions',
      withActions({ clip: true }),
      'outputs.actions.clip',
      'is not a model config field',
    ],

    // id.
    [
      'id not the folder name',
      doc({ id: 'other-policy' }),
      'id',
      'is other-policy, but the folder is named demo-policy; they must match',
    ],
    [
      'id with capitals',
      doc({ id: 'Demo-Policy' }),
      'id',
      'must be lower-case letters, digits, ., _ and - (at most 64), starting with a letter or digit',
    ],
    [
      'id starting with -',
      doc({ id: '-demo' }),
      'id',
      'must be lower-case letters, digits, ., _ and - (at most 64), starting with a letter or digit',
    ],
    [
      'id of 65 characters',
      doc({ id: 'a'.repeat(65) }),
      'id',
      'must be lower-case letters, digits, ., _ and - (at most 64), starting with a letter or digit',
    ],
    ['id a number', doc({ id: 7 }), 'id', 'must be a string: put it in quotes (YAML reads 1.0 as a number)'],

    // version.
    [
      'version a YAML number',
      doc({ version: 1.0 }),
      'version',
      'must be a string: put it in quotes (YAML reads 1.0 as a number)',
    ],
    [
      'version a boolean',
      doc({ version: true }),
      'version',
      'must be a string: put it in quotes (YAML reads true and false as booleans)',
    ],
    [
      'version empty',
      doc({ version: '' }),
      'version',
      'must be 1-64 characters of A-Za-z0-9._+-, starting with a letter or digit',
    ],
    [
      'version with a space',
      doc({ version: '1.0 beta' }),
      'version',
      'must be 1-64 characters of A-Za-z0-9._+-, starting with a letter or digit',
    ],
    ['version a list', doc({ version: ['1'] }), 'version', 'must be a string'],

    // backend, device, file.
    ['backend llm', doc({ backend: 'llm' }), 'backend', 'must be one of onnx (the only backend today)'],
    [
      'backend ONNX in capitals',
      doc({ backend: 'ONNX' }),
      'backend',
      'must be one of onnx (the only backend today)',
    ],
    ['device gpu', doc({ device: 'gpu' }), 'device', 'must be one of cpu, cuda'],
    ['file empty', doc({ file: '' }), 'file', 'must name the model file, relative to the model folder'],
    ['file ../x.onnx', doc({ file: '../x.onnx' }), 'file', 'must stay inside the model folder (no ..)'],
    [
      'file a/../../x.onnx',
      doc({ file: 'a/../../x.onnx' }),
      'file',
      'must stay inside the model folder (no ..)',
    ],
    [
      'file a\\..\\x.onnx (Windows separators)',
      doc({ file: 'a\\..\\x.onnx' }),
      'file',
      'must stay inside the model folder (no ..)',
    ],
    [
      'file an absolute path',
      doc({ file: '/etc/passwd' }),
      'file',
      'must be relative to the model folder, not an absolute path',
    ],
    [
      'file a Windows absolute path',
      doc({ file: 'C:\\models\\x.onnx' }),
      'file',
      'must be relative to the model folder, not an absolute path',
    ],
    ['file the folder itself', doc({ file: '.' }), 'file', 'must name a file inside the model folder'],
    ['file with a NUL', doc({ file: 'model\u0000.onnx' }), 'file', 'must not contain a NUL character'],
    [
      'description a number',
      doc({ description: 5 }),
      'description',
      'must be a string: put it in quotes (YAML reads 1.0 as a number)',
    ],
    [
      'description over 500 characters',
      doc({ description: 'x'.repeat(501) }),
      'description',
      'must be at most 500 characters',
    ],

    // control_hz.
    ['control_hz 0', doc({ control_hz: 0 }), 'control_hz', 'must be greater than 0'],
    ['control_hz negative', doc({ control_hz: -15 }), 'control_hz', 'must be greater than 0'],
    ['control_hz over 10000', doc({ control_hz: 10_000.5 }), 'control_hz', 'must be at most 10000'],
    ['control_hz a string', doc({ control_hz: '15' }), 'control_hz', 'must be a finite number'],
    ['control_hz NaN (YAML .nan)', doc({ control_hz: NaN }), 'control_hz', 'must be a finite number'],
    [
      'control_hz Infinity (YAML .inf)',
      doc({ control_hz: Infinity }),
      'control_hz',
      'must be a finite number',
    ],

    // robot_types.
    ['robot_types empty', doc({ robot_types: [] }), 'robot_types', 'must list at least one robot type'],
    [
      'robot_types a string',
      doc({ robot_types: 'franka_panda' }),
      'robot_types',
      'must be a list of robot types',
    ],
    [
      'robot_types with a dash',
      doc({ robot_types: ['franka-panda'] }),
      'robot_types[0]',
      'must be lower-case letters, digits and _ (at most 64)',
    ],
    [
      'robot_types with capitals',
      doc({ robot_types: ['ur5e', 'UR10'] }),
      'robot_types[1]',
      'must be lower-case letters, digits and _ (at most 64)',
    ],
    [
      'robot_types repeated',
      doc({ robot_types: ['ur5e', 'so100', 'ur5e'] }),
      'robot_types[2]',
      'ur5e is also robot_types[0]; list each once',
    ],

    // Images.
    ['no images', withInputs({ images: [] }), 'inputs.images', 'must list at least one image input'],
    [
      'nine images',
      withInputs({ images: Array.from({ length: 9 }, (_, i) => image({ name: `c${i}`, tensor: `t${i}` })) }),
      'inputs.images',
      'must list at most 8 image inputs',
    ],
    [
      'images a mapping',
      withInputs({ images: { primary: image() } }),
      'inputs.images',
      'must be a list of image inputs',
    ],
    [
      'image name with capitals',
      withImage({ name: 'Primary' }),
      'inputs.images[0].name',
      'must start with a lower-case letter, then lower-case letters, digits and _ (at most 32)',
    ],
    [
      'image name starting with a digit',
      withImage({ name: '1cam' }),
      'inputs.images[0].name',
      'must start with a lower-case letter, then lower-case letters, digits and _ (at most 32)',
    ],
    [
      'image name of 33 characters',
      withImage({ name: `a${'b'.repeat(32)}` }),
      'inputs.images[0].name',
      'must start with a lower-case letter, then lower-case letters, digits and _ (at most 32)',
    ],
    [
      'image tensor empty',
      withImage({ tensor: '' }),
      'inputs.images[0].tensor',
      'must name a tensor of the model (a non-empty string)',
    ],
    [
      'image tensor over 256 characters',
      withImage({ tensor: 't'.repeat(257) }),
      'inputs.images[0].tensor',
      'must be at most 256 characters',
    ],
    ['image height 0', withImage({ height: 0 }), 'inputs.images[0].height', int(1, 4096)],
    ['image height 4097', withImage({ height: 4097 }), 'inputs.images[0].height', int(1, 4096)],
    ['image height 224.5', withImage({ height: 224.5 }), 'inputs.images[0].height', int(1, 4096)],
    ['image height a string', withImage({ height: '224' }), 'inputs.images[0].height', int(1, 4096)],
    ['image width 0', withImage({ width: 0 }), 'inputs.images[0].width', int(1, 4096)],
    ['image width 5000', withImage({ width: 5000 }), 'inputs.images[0].width', int(1, 4096)],
    [
      'image channels 4',
      withImage({ channels: 4 }),
      'inputs.images[0].channels',
      'must be 1 (grey) or 3 (RGB)',
    ],
    [
      'image channels "3"',
      withImage({ channels: '3' }),
      'inputs.images[0].channels',
      'must be 1 (grey) or 3 (RGB)',
    ],
    [
      'image layout chw',
      withImage({ layout: 'chw' }),
      'inputs.images[0].layout',
      'must be one of nchw, nhwc',
    ],
    [
      'image dtype float16',
      withImage({ dtype: 'float16' }),
      'inputs.images[0].dtype',
      'must be one of float32, uint8',
    ],
    [
      'image resize crop',
      withImage({ resize: 'crop' }),
      'inputs.images[0].resize',
      'must be one of fill, contain, cover',
    ],
    [
      'image mean of two values for 3 channels',
      withImage({ mean: [0.5, 0.5] }),
      'inputs.images[0].mean',
      'has 2 values; it needs one per channel (3)',
    ],
    [
      'image std of three values for 1 channel',
      withImage({ channels: 1, std: [1, 1, 1] }),
      'inputs.images[0].std',
      'has 3 values; it needs one per channel (1)',
    ],
    [
      'image mean NaN',
      withImage({ mean: [0.5, NaN, 0.5] }),
      'inputs.images[0].mean[1]',
      'must be a finite number',
    ],
    [
      'image mean a number, not a list',
      withImage({ mean: 0.5 }),
      'inputs.images[0].mean',
      'must be a list of numbers',
    ],
    ['image std 0', withImage({ std: [0.5, 0, 0.5] }), 'inputs.images[0].std[1]', 'must be greater than 0'],
    [
      'image std negative',
      withImage({ std: [-0.5, 0.5, 0.5] }),
      'inputs.images[0].std[0]',
      'must be greater than 0',
    ],
    [
      'image std Infinity',
      withImage({ std: [0.5, 0.5, Infinity] }),
      'inputs.images[0].std[2]',
      'must be a finite number',
    ],
    [
      'image mean with uint8',
      withImage({ dtype: 'uint8', mean: [0, 0, 0] }),
      'inputs.images[0].mean',
      'applies to float32 inputs only; a uint8 input takes the raw pixels',
    ],
    [
      'image std with uint8',
      withImage({ dtype: 'uint8', std: [1, 1, 1] }),
      'inputs.images[0].std',
      'applies to float32 inputs only; a uint8 input takes the raw pixels',
    ],
    [
      'two images with one name',
      withInputs({ images: [image(), image({ tensor: 'image2' })] }),
      'inputs.images[1].name',
      'primary is also inputs.images[0].name; image input names must be unique',
    ],
    [
      'two images with one tensor',
      withInputs({ images: [image(), image({ name: 'wrist' })] }),
      'inputs.images[1].tensor',
      'image is also inputs.images[0].tensor; tensor names must be distinct',
    ],

    // State.
    ['state size 0', withState({ size: 0 }), 'inputs.state.size', int(1, 1024)],
    ['state size 1025', withState({ size: 1025 }), 'inputs.state.size', int(1, 1024)],
    [
      'state mean without std',
      withState({ mean: eight(0) }),
      'inputs.state.std',
      'is required with mean (give both or neither)',
    ],
    [
      'state std without mean',
      withState({ std: eight(1) }),
      'inputs.state.mean',
      'is required with std (give both or neither)',
    ],
    [
      'state mean of 7 values',
      withState({ mean: eight(0).slice(1), std: eight(1) }),
      'inputs.state.mean',
      'has 7 values; it needs one per state value (size) (8)',
    ],
    [
      'state std of 9 values',
      withState({ mean: eight(0), std: [...eight(1), 1] }),
      'inputs.state.std',
      'has 9 values; it needs one per state value (size) (8)',
    ],
    [
      'state std 0',
      withState({ mean: eight(0), std: [...eight(1).slice(1), 0] }),
      'inputs.state.std[7]',
      'must be greater than 0',
    ],
    [
      'state mean Infinity',
      withState({ mean: [Infinity, ...eight(0).slice(1)], std: eight(1) }),
      'inputs.state.mean[0]',
      'must be a finite number',
    ],
    [
      'state tensor shared with an image',
      withState({ tensor: 'image' }),
      'inputs.state.tensor',
      'image is also inputs.images[0].tensor; tensor names must be distinct',
    ],

    // Instruction.
    [
      'tokenizer unknown',
      withInstruction({ tokenizer: 'bpe' }),
      'inputs.instruction.tokenizer',
      'must be one of words-fnv1a-v1',
    ],
    ['vocab_size 1', withInstruction({ vocab_size: 1 }), 'inputs.instruction.vocab_size', int(2, 10_000_000)],
    [
      'vocab_size over 10 million',
      withInstruction({ vocab_size: 10_000_001 }),
      'inputs.instruction.vocab_size',
      int(2, 10_000_000),
    ],
    ['max_tokens 0', withInstruction({ max_tokens: 0 }), 'inputs.instruction.max_tokens', int(1, 4096)],
    ['max_tokens 4097', withInstruction({ max_tokens: 4097 }), 'inputs.instruction.max_tokens', int(1, 4096)],
    ['max_chars 0', withInstruction({ max_chars: 0 }), 'inputs.instruction.max_chars', int(1, 100_000)],
    [
      'max_chars 100001',
      withInstruction({ max_chars: 100_001 }),
      'inputs.instruction.max_chars',
      int(1, 100_000),
    ],
    [
      'instruction dtype float32',
      withInstruction({ dtype: 'float32' }),
      'inputs.instruction.dtype',
      'must be one of int64, int32',
    ],
    [
      'instruction tensor shared with the state',
      withInstruction({ tensor: 'state' }),
      'inputs.instruction.tensor',
      'state is also inputs.state.tensor; tensor names must be distinct',
    ],

    // Actions.
    ['horizon 0', withActions({ horizon: 0 }), 'outputs.actions.horizon', int(1, 10_000)],
    ['horizon 10001', withActions({ horizon: 10_001 }), 'outputs.actions.horizon', int(1, 10_000)],
    ['dim 0', withActions({ dim: 0 }), 'outputs.actions.dim', int(1, 1024)],
    ['dim 1025', withActions({ dim: 1025 }), 'outputs.actions.dim', int(1, 1024)],
    ['dim 7.5', withActions({ dim: 7.5 }), 'outputs.actions.dim', int(1, 1024)],
    [
      'actions mean without std',
      withActions({ mean: eight(0) }),
      'outputs.actions.std',
      'is required with mean (give both or neither)',
    ],
    [
      'actions std without mean',
      withActions({ std: eight(1) }),
      'outputs.actions.mean',
      'is required with std (give both or neither)',
    ],
    [
      'actions mean of 3 values',
      withActions({ mean: [0, 0, 0], std: eight(1) }),
      'outputs.actions.mean',
      'has 3 values; it needs one per action dimension (dim) (8)',
    ],
    [
      'actions std -1',
      withActions({ mean: eight(0), std: [-1, ...eight(1).slice(1)] }),
      'outputs.actions.std[0]',
      'must be greater than 0',
    ],
    [
      'actions tensor shared with an input',
      withActions({ tensor: 'image' }),
      'outputs.actions.tensor',
      'image is also inputs.images[0].tensor; tensor names must be distinct',
    ],
    [
      'actions tensor shared with the instruction',
      { ...withInstruction({}), outputs: { actions: { tensor: 'tokens', horizon: 1, dim: 8 } } },
      'outputs.actions.tensor',
      'tokens is also inputs.instruction.tensor; tensor names must be distinct',
    ],

    // Serving.
    ['max_batch_size 0', doc({ max_batch_size: 0 }), 'max_batch_size', int(1, 1024)],
    ['max_batch_size 1025', doc({ max_batch_size: 1025 }), 'max_batch_size', int(1, 1024)],
    ['batch_timeout_ms -1', doc({ batch_timeout_ms: -1 }), 'batch_timeout_ms', int(0, 10_000)],
    ['batch_timeout_ms 10001', doc({ batch_timeout_ms: 10_001 }), 'batch_timeout_ms', int(0, 10_000)],
    ['batch_timeout_ms 1.5', doc({ batch_timeout_ms: 1.5 }), 'batch_timeout_ms', int(0, 10_000)],
    ['queue_capacity 0', doc({ queue_capacity: 0 }), 'queue_capacity', int(1, 1_000_000)],
    ['queue_capacity 1000001', doc({ queue_capacity: 1_000_001 }), 'queue_capacity', int(1, 1_000_000)],
    ['workers 0', doc({ workers: 0 }), 'workers', int(1, 64)],
    ['workers 65', doc({ workers: 65 }), 'workers', int(1, 64)],
    ['workers null', doc({ workers: null }), 'workers', int(1, 64)],
    ['intra_op_threads 0', doc({ intra_op_threads: 0 }), 'intra_op_threads', int(1, 256)],
    ['intra_op_threads 257', doc({ intra_op_threads: 257 }), 'intra_op_threads', int(1, 256)],
    ['default_deadline_ms 0', doc({ default_deadline_ms: 0 }), 'default_deadline_ms', int(1, 600_000)],
    ['max_deadline_ms 600001', doc({ max_deadline_ms: 600_001 }), 'max_deadline_ms', int(1, 600_000)],
    ['max_deadline_ms Infinity', doc({ max_deadline_ms: Infinity }), 'max_deadline_ms', int(1, 600_000)],
    [
      'default_deadline_ms above max_deadline_ms',
      doc({ default_deadline_ms: 2000, max_deadline_ms: 1000 }),
      'default_deadline_ms',
      'is 2000, more than max_deadline_ms (1000); it must be at most that',
    ],
    [
      'max_deadline_ms below the default default_deadline_ms',
      doc({ max_deadline_ms: 3000 }),
      'default_deadline_ms',
      'is 5000 (the default), more than max_deadline_ms (3000); it must be at most that',
    ],
  ];

  it('the table covers at least 60 cases', () => {
    expect(misconfigurations.length).toBeGreaterThanOrEqual(60);
  });

  it.each(misconfigurations)('%s', (_case, raw, field, reason) => {
    const error = parseError(raw);

    expect(error).toBeInstanceOf(ModelConfigError);
    expect(error.code).toBe('invalid_model_config');
    expect(error.source).toBe(SOURCE.file);
    expect(error.field).toBe(field);
    expect(error.reason).toBe(reason);
    expect(error.message).toBe(`${SOURCE.file}: ${field === '' ? '' : `${field}: `}${reason}`);
  });

  it('names the misspelling rather than the missing field it leaves', () => {
    const raw = without(doc({ robot_type: ['franka_panda'] }), 'robot_types');
    expect(parseError(raw).message).toBe(
      'models/demo-policy/model.yaml: robot_type: is not a model config field',
    );
  });

  it('an id that would pass the pattern but not equal a folder with another name', () => {
    const error = parseError(doc(), { file: 'm.yaml', dir: '/srv/models/demo-policy-v2' });
    expect(error.message).toBe(
      'm.yaml: id: is demo-policy, but the folder is named demo-policy-v2; they must match',
    );
  });

  it('is an Error named ModelConfigError', () => {
    const error = parseError(doc({ workers: 0 }));
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('ModelConfigError');
  });
});
