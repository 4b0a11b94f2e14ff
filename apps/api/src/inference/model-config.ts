/**
 * A model as `models/<id>/model.yaml` declares it, after validation (see model-config.schema.ts). Field
 * names are the YAML's in camelCase. Everything a request needs to be checked against, and everything the
 * scheduler needs to serve it, comes from here.
 */
export interface ModelConfig {
  /** Equals the folder name; what clients send as `model`. */
  readonly id: string;
  readonly version: string;
  readonly backend: 'onnx';
  /** Absolute path of the model file. */
  readonly file: string;
  /** The folder the config came from (absolute). */
  readonly dir: string;
  /** Requested device; `cuda` falls back to `cpu` with a warning when the CUDA provider is unusable. */
  readonly device: 'cpu' | 'cuda';
  readonly description: string;
  /** The robot's control rate: one action step lasts 1 / controlHz seconds (the safety check's dt). */
  readonly controlHz: number;
  /** Robot profiles (config/robots) this policy drives; each must match the action dimension. */
  readonly robotTypes: readonly string[];
  readonly inputs: {
    readonly images: readonly ImageInputConfig[];
    readonly state: StateInputConfig;
    /** Absent: the model takes no instruction (a request's instruction is then refused if sent). */
    readonly instruction?: InstructionInputConfig;
  };
  readonly outputs: { readonly actions: ActionOutputConfig };
  /** Serving: requests per forward pass, and how long a worker waits to fill a batch. */
  readonly maxBatchSize: number;
  readonly batchTimeoutMs: number;
  /** Requests waiting for a worker (not counting those running); beyond it: 503 `queue_full`. */
  readonly queueCapacity: number;
  /** Worker threads, each with its own ONNX Runtime session. */
  readonly workers: number;
  /** ONNX Runtime intra-op threads per worker (default 1). */
  readonly intraOpThreads: number;
  readonly defaultDeadlineMs: number;
  readonly maxDeadlineMs: number;
}

export interface ImageInputConfig {
  /** The key in the request's `images` object. */
  readonly name: string;
  /** The ONNX input it feeds. */
  readonly tensor: string;
  readonly height: number;
  readonly width: number;
  /** 3 (RGB) or 1 (grey). */
  readonly channels: 1 | 3;
  /** Tensor layout, batch first: `nchw` or `nhwc`. */
  readonly layout: 'nchw' | 'nhwc';
  /** `float32`: pixel / 255, then (x - mean) / std per channel. `uint8`: the raw pixels. */
  readonly dtype: 'float32' | 'uint8';
  /** Per channel; default 0 (float32 only). */
  readonly mean: readonly number[];
  /** Per channel; default 1 (float32 only). */
  readonly std: readonly number[];
  /** How a decoded image of another size is brought to height x width (sharp's `fit`); default `fill`. */
  readonly resize: 'fill' | 'contain' | 'cover';
}

export interface StateInputConfig {
  readonly tensor: string;
  readonly size: number;
  /** Normalisation applied to the request's state: (x - mean) / std. Absent: identity. */
  readonly mean?: readonly number[];
  readonly std?: readonly number[];
}

export interface InstructionInputConfig {
  readonly tensor: string;
  /** The tokenizer (apps/api/src/inference/tokenizer.ts); `words-fnv1a-v1` is the only one today. */
  readonly tokenizer: 'words-fnv1a-v1';
  readonly vocabSize: number;
  /** Token ids per request, zero-padded (0 is padding). */
  readonly maxTokens: number;
  /** Longest instruction accepted, in characters (UTF-16 code units); longer: 422. */
  readonly maxChars: number;
  readonly dtype: 'int64' | 'int32';
}

export interface ActionOutputConfig {
  /** The ONNX output: float32 of shape [batch, horizon, dim]. */
  readonly tensor: string;
  readonly horizon: number;
  readonly dim: number;
  /** Un-normalisation of the raw output: y * std + mean. Absent: identity. */
  readonly mean?: readonly number[];
  readonly std?: readonly number[];
}
