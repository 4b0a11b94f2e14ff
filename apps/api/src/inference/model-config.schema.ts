import { fieldPath, valueAt } from '@app/config-files';
import { basename, isAbsolute, relative, resolve, win32 } from 'node:path';
import { z } from 'zod';
import type {
  ActionOutputConfig,
  ImageInputConfig,
  InstructionInputConfig,
  ModelConfig,
  StateInputConfig,
} from './model-config';

/** A model config that cannot be used; names the file and the field, so start-up can say what to fix. */
export class ModelConfigError extends Error {
  readonly code = 'invalid_model_config';
  constructor(
    readonly source: string,
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${source}: ${field === '' ? '' : `${field}: `}${reason}`);
    this.name = 'ModelConfigError';
  }
}

/** A model id, which is also its folder's name and what clients send as `model`. */
export const MODEL_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const ROBOT_TYPE = /^[a-z0-9_]{1,64}$/;
const IMAGE_NAME = /^[a-z][a-z0-9_]{0,31}$/;
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
const MAX_IMAGES = 8;
const BACKENDS = ['onnx'] as const;
const DEVICES = ['cpu', 'cuda'] as const;
const LAYOUTS = ['nchw', 'nhwc'] as const;
const IMAGE_DTYPES = ['float32', 'uint8'] as const;
const RESIZE_FITS = ['fill', 'contain', 'cover'] as const;
const TOKENIZERS = ['words-fnv1a-v1'] as const;
const TOKEN_DTYPES = ['int64', 'int32'] as const;

const oneOf = (values: readonly string[]) => `must be one of ${values.join(', ')}`;

/**
 * A string field. YAML reads an unquoted `1.0` as a number and `true` as a boolean, which is the usual way a
 * version or an id ends up with the wrong type: say so rather than just "must be a string".
 */
const text = () =>
  z.string({
    error: (issue) =>
      typeof issue.input === 'number'
        ? 'must be a string: put it in quotes (YAML reads 1.0 as a number)'
        : typeof issue.input === 'boolean'
          ? 'must be a string: put it in quotes (YAML reads true and false as booleans)'
          : 'must be a string',
  });

/** An integer from `min` to `max` inclusive; one message for every way of missing it. */
const int = (min: number, max: number) => {
  const error = `must be an integer from ${min} to ${max}`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
};

const finite = z.number({ error: 'must be a finite number' });
const positive = finite.positive({ error: 'must be greater than 0' });
const numbers = z.array(finite, { error: 'must be a list of numbers' });
const positives = z.array(positive, { error: 'must be a list of numbers' });
const tensorName = text()
  .min(1, { error: 'must name a tensor of the model (a non-empty string)' })
  .max(256, { error: 'must be at most 256 characters' });

const imageSchema = z
  .object({
    name: text().regex(IMAGE_NAME, {
      error: 'must start with a lower-case letter, then lower-case letters, digits and _ (at most 32)',
    }),
    tensor: tensorName,
    height: int(1, 4096),
    width: int(1, 4096),
    channels: z.literal([1, 3], { error: 'must be 1 (grey) or 3 (RGB)' }),
    layout: z.enum(LAYOUTS, { error: oneOf(LAYOUTS) }).default('nchw'),
    dtype: z.enum(IMAGE_DTYPES, { error: oneOf(IMAGE_DTYPES) }).default('float32'),
    mean: numbers.optional(),
    std: positives.optional(),
    resize: z.enum(RESIZE_FITS, { error: oneOf(RESIZE_FITS) }).default('fill'),
  })
  .strict();

const stateSchema = z
  .object({ tensor: tensorName, size: int(1, 1024), mean: numbers.optional(), std: positives.optional() })
  .strict();

const instructionSchema = z
  .object({
    tensor: tensorName,
    tokenizer: z.enum(TOKENIZERS, { error: oneOf(TOKENIZERS) }),
    vocab_size: int(2, 10_000_000),
    max_tokens: int(1, 4096),
    max_chars: int(1, 100_000).default(2000),
    dtype: z.enum(TOKEN_DTYPES, { error: oneOf(TOKEN_DTYPES) }).default('int64'),
  })
  .strict();

const actionsSchema = z
  .object({
    tensor: tensorName,
    horizon: int(1, 10_000),
    dim: int(1, 1024),
    mean: numbers.optional(),
    std: positives.optional(),
  })
  .strict();

const configSchema = z
  .object({
    id: text().regex(MODEL_ID_PATTERN, {
      error: 'must be lower-case letters, digits, ., _ and - (at most 64), starting with a letter or digit',
    }),
    version: text().regex(VERSION, {
      error: 'must be 1-64 characters of A-Za-z0-9._+-, starting with a letter or digit',
    }),
    backend: z.enum(BACKENDS, { error: `${oneOf(BACKENDS)} (the only backend today)` }),
    file: text().min(1, { error: 'must name the model file, relative to the model folder' }),
    device: z.enum(DEVICES, { error: oneOf(DEVICES) }).default('cpu'),
    description: text().max(500, { error: 'must be at most 500 characters' }).default(''),
    control_hz: positive.max(10_000, { error: 'must be at most 10000' }),
    robot_types: z
      .array(text().regex(ROBOT_TYPE, { error: 'must be lower-case letters, digits and _ (at most 64)' }), {
        error: 'must be a list of robot types',
      })
      .min(1, { error: 'must list at least one robot type' }),
    inputs: z
      .object({
        images: z
          .array(imageSchema, { error: 'must be a list of image inputs' })
          .min(1, { error: 'must list at least one image input' })
          .max(MAX_IMAGES, { error: `must list at most ${MAX_IMAGES} image inputs` }),
        state: stateSchema,
        instruction: instructionSchema.optional(),
      })
      .strict(),
    outputs: z.object({ actions: actionsSchema }).strict(),
    max_batch_size: int(1, 1024).default(8),
    batch_timeout_ms: int(0, 10_000).default(2),
    queue_capacity: int(1, 1_000_000).default(64),
    workers: int(1, 64).default(1),
    intra_op_threads: int(1, 256).default(1),
    default_deadline_ms: int(1, 600_000).default(5000),
    max_deadline_ms: int(1, 600_000).default(30_000),
  })
  .strict();

type RawConfig = z.infer<typeof configSchema>;
type Fail = (field: string, reason: string) => never;

/**
 * Validates a parsed `model.yaml` document and builds the {@link ModelConfig}. `source.file` names the file
 * in every error (as given: the loader passes it relative to the working directory); `source.dir` is the
 * model's folder, whose name `id` must equal and inside which `file` must stay (a relative `dir` resolves
 * against the process's working directory). Does not look at the file system: a missing or corrupt model
 * file is a load failure at run time, not a config error. Throws {@link ModelConfigError}.
 */
export function parseModelConfig(raw: unknown, source: { file: string; dir: string }): ModelConfig {
  const fail: Fail = (field, reason) => {
    throw new ModelConfigError(source.file, field, reason);
  };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    fail('', 'must be a mapping of model config fields');
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    // A misspelt key also shows up as a missing one: name the misspelling, the likelier cause.
    const issue = parsed.error.issues.find((i) => i.code === 'unrecognized_keys') ?? parsed.error.issues[0];
    if (issue.code === 'unrecognized_keys') {
      fail(fieldPath([...issue.path, issue.keys[0]]), 'is not a model config field');
    }
    fail(fieldPath(issue.path), valueAt(raw, issue.path) === undefined ? 'is required' : issue.message);
  }
  const c = parsed.data;
  const dir = resolve(source.dir);
  const folder = basename(dir);
  if (c.id !== folder) fail('id', `is ${c.id}, but the folder is named ${folder}; they must match`);
  const file = modelFile(c.file, dir, fail);

  c.robot_types.forEach((robotType, i) => {
    const first = c.robot_types.indexOf(robotType);
    if (first !== i) fail(`robot_types[${i}]`, `${robotType} is also robot_types[${first}]; list each once`);
  });

  const images = c.inputs.images.map((_, i) => buildImage(c, i, fail));
  uniqueAcross(
    images.map((image, i): [string, string] => [`inputs.images[${i}].name`, image.name]),
    'image input names must be unique',
    fail,
  );
  const state = buildState(c, fail);
  const instruction = c.inputs.instruction === undefined ? undefined : buildInstruction(c.inputs.instruction);
  const actions = buildActions(c, fail);
  uniqueAcross(
    [
      ...images.map((image, i): [string, string] => [`inputs.images[${i}].tensor`, image.tensor]),
      ['inputs.state.tensor', state.tensor],
      ...(instruction === undefined
        ? []
        : [['inputs.instruction.tensor', instruction.tensor] as [string, string]]),
      ['outputs.actions.tensor', actions.tensor],
    ],
    'tensor names must be distinct',
    fail,
  );

  if (c.default_deadline_ms > c.max_deadline_ms) {
    const given = (raw as Record<string, unknown>).default_deadline_ms === undefined ? ' (the default)' : '';
    fail(
      'default_deadline_ms',
      `is ${c.default_deadline_ms}${given}, more than max_deadline_ms (${c.max_deadline_ms}); it must be at most that`,
    );
  }

  return Object.freeze({
    id: c.id,
    version: c.version,
    backend: c.backend,
    file,
    dir,
    device: c.device,
    description: c.description,
    controlHz: c.control_hz,
    robotTypes: Object.freeze([...c.robot_types]),
    inputs: Object.freeze({
      images: Object.freeze(images),
      state,
      ...(instruction === undefined ? {} : { instruction }),
    }),
    outputs: Object.freeze({ actions }),
    maxBatchSize: c.max_batch_size,
    batchTimeoutMs: c.batch_timeout_ms,
    queueCapacity: c.queue_capacity,
    workers: c.workers,
    intraOpThreads: c.intra_op_threads,
    defaultDeadlineMs: c.default_deadline_ms,
    maxDeadlineMs: c.max_deadline_ms,
  });
}

/** The absolute path of `file`, which must name something strictly inside `dir`. */
function modelFile(file: string, dir: string, fail: Fail): string {
  if (isAbsolute(file) || win32.isAbsolute(file)) {
    fail('file', 'must be relative to the model folder, not an absolute path');
  }
  if (file.includes('\0')) fail('file', 'must not contain a NUL character');
  if (file.split(/[\\/]/).includes('..')) fail('file', 'must stay inside the model folder (no ..)');
  const path = resolve(dir, file);
  const inside = relative(dir, path);
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) {
    fail('file', 'must name a file inside the model folder');
  }
  return path;
}

/** Fails on the first `[field, value]` whose value an earlier entry already has. */
function uniqueAcross(entries: readonly (readonly [string, string])[], rule: string, fail: Fail): void {
  const seen = new Map<string, string>();
  for (const [field, value] of entries) {
    const first = seen.get(value);
    if (first !== undefined) fail(field, `${value} is also ${first}; ${rule}`);
    seen.set(value, field);
  }
}

/** Fails unless `values` (when given) has `expected` entries; `per` says what one entry stands for. */
function checkLength(
  values: readonly number[] | undefined,
  expected: number,
  field: string,
  per: string,
  fail: Fail,
): void {
  if (values !== undefined && values.length !== expected) {
    fail(field, `has ${values.length} values; it needs one per ${per} (${expected})`);
  }
}

function buildImage(c: RawConfig, index: number, fail: Fail): ImageInputConfig {
  const image = c.inputs.images[index];
  const at = `inputs.images[${index}]`;
  if (image.dtype === 'uint8') {
    for (const key of ['mean', 'std'] as const) {
      if (image[key] !== undefined) {
        fail(`${at}.${key}`, 'applies to float32 inputs only; a uint8 input takes the raw pixels');
      }
    }
  }
  checkLength(image.mean, image.channels, `${at}.mean`, 'channel', fail);
  checkLength(image.std, image.channels, `${at}.std`, 'channel', fail);
  return Object.freeze({
    name: image.name,
    tensor: image.tensor,
    height: image.height,
    width: image.width,
    channels: image.channels,
    layout: image.layout,
    dtype: image.dtype,
    mean: Object.freeze(
      image.mean === undefined ? new Array<number>(image.channels).fill(0) : [...image.mean],
    ),
    std: Object.freeze(image.std === undefined ? new Array<number>(image.channels).fill(1) : [...image.std]),
    resize: image.resize,
  });
}

/**
 * `mean` and `std` of a state or action vector: both or neither (half a normalisation is a mistake), one value
 * per element. Returns the frozen pair, or an empty object for the identity.
 */
function normalisation(
  block: { mean?: number[]; std?: number[] },
  size: number,
  at: string,
  per: string,
  fail: Fail,
): { mean?: readonly number[]; std?: readonly number[] } {
  const { mean, std } = block;
  if (mean === undefined && std === undefined) return {};
  if (std === undefined) fail(`${at}.std`, 'is required with mean (give both or neither)');
  if (mean === undefined) fail(`${at}.mean`, 'is required with std (give both or neither)');
  checkLength(mean, size, `${at}.mean`, per, fail);
  checkLength(std, size, `${at}.std`, per, fail);
  return { mean: Object.freeze([...mean]), std: Object.freeze([...std]) };
}

function buildState(c: RawConfig, fail: Fail): StateInputConfig {
  const s = c.inputs.state;
  return Object.freeze({
    tensor: s.tensor,
    size: s.size,
    ...normalisation(s, s.size, 'inputs.state', 'state value (size)', fail),
  });
}

function buildInstruction(i: NonNullable<RawConfig['inputs']['instruction']>): InstructionInputConfig {
  return Object.freeze({
    tensor: i.tensor,
    tokenizer: i.tokenizer,
    vocabSize: i.vocab_size,
    maxTokens: i.max_tokens,
    maxChars: i.max_chars,
    dtype: i.dtype,
  });
}

function buildActions(c: RawConfig, fail: Fail): ActionOutputConfig {
  const a = c.outputs.actions;
  return Object.freeze({
    tensor: a.tensor,
    horizon: a.horizon,
    dim: a.dim,
    ...normalisation(a, a.dim, 'outputs.actions', 'action dimension (dim)', fail),
  });
}
