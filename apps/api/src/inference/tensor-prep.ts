import type { ActionOutputConfig, ImageInputConfig, StateInputConfig } from './model-config';

/**
 * The arithmetic between request values and model tensors, shared by the Worker (which runs it) and the
 * tests (which check it). Pure, allocation-light, no ONNX Runtime: images arrive as HWC uint8 at the
 * model's size (image-decoder.ts), states as float32, actions leave as float32 [horizon * dim].
 */

/** What the scheduler hands a Worker for one request: buffers it may transfer, never copy. */
export interface WorkItem {
  /** One HWC uint8 buffer per image input, in the config's order, each height * width * channels long. */
  readonly images: readonly Uint8Array[];
  /** The raw state as the client sent it (normalised in the Worker). */
  readonly state: Float32Array;
  /** Token ids, maxTokens long; null when the model takes no instruction. */
  readonly tokens: Int32Array | null;
}

/** The image tensor's data for a batch: float32 normalised or uint8, in the configured layout. */
export function packImages(
  images: readonly Uint8Array[],
  spec: ImageInputConfig,
): Float32Array<ArrayBuffer> | Uint8Array<ArrayBuffer> {
  const { height, width, channels } = spec;
  const plane = height * width;
  const perImage = plane * channels;
  if (spec.dtype === 'uint8') {
    const out = new Uint8Array(perImage * images.length);
    images.forEach((pixels, b) => {
      if (spec.layout === 'nhwc') {
        out.set(pixels, b * perImage);
        return;
      }
      const base = b * perImage;
      for (let i = 0; i < plane; i++) {
        for (let c = 0; c < channels; c++) out[base + c * plane + i] = pixels[i * channels + c];
      }
    });
    return out;
  }
  const out = new Float32Array(perImage * images.length);
  // (p / 255 - mean) / std as one multiply-add per value.
  const scale = spec.std.map((s) => 1 / (255 * s));
  const offset = spec.mean.map((m, c) => -m / spec.std[c]);
  images.forEach((pixels, b) => {
    const base = b * perImage;
    if (spec.layout === 'nhwc') {
      for (let i = 0; i < perImage; i++) {
        const c = i % channels;
        out[base + i] = pixels[i] * scale[c] + offset[c];
      }
      return;
    }
    if (channels === 3) {
      // One pass over the pixels, writing the three planes: reads stay sequential (about 2.5x faster than
      // a strided pass per channel on a 224 x 224 image).
      const [s0, s1, s2] = scale;
      const [o0, o1, o2] = offset;
      const p1 = base + plane;
      const p2 = base + 2 * plane;
      for (let i = 0, j = 0; i < plane; i++, j += 3) {
        out[base + i] = pixels[j] * s0 + o0;
        out[p1 + i] = pixels[j + 1] * s1 + o1;
        out[p2 + i] = pixels[j + 2] * s2 + o2;
      }
      return;
    }
    for (let c = 0; c < channels; c++) {
      const s = scale[c];
      const o = offset[c];
      const planeBase = base + c * plane;
      for (let i = 0, j = c; i < plane; i++, j += channels) out[planeBase + i] = pixels[j] * s + o;
    }
  });
  return out;
}

/** The state tensor's data for a batch: (x - mean) / std per dimension, or the values as given. */
export function packStates(
  states: readonly Float32Array[],
  spec: StateInputConfig,
): Float32Array<ArrayBuffer> {
  const out = new Float32Array(spec.size * states.length);
  states.forEach((state, b) => {
    const base = b * spec.size;
    for (let i = 0; i < spec.size; i++) {
      out[base + i] =
        spec.mean === undefined || spec.std === undefined
          ? state[i]
          : (state[i] - spec.mean[i]) / spec.std[i];
    }
  });
  return out;
}

/** The token tensor's data for a batch, as int64 or int32. */
export function packTokens(
  tokens: readonly Int32Array[],
  maxTokens: number,
  dtype: 'int64' | 'int32',
): BigInt64Array<ArrayBuffer> | Int32Array<ArrayBuffer> {
  if (dtype === 'int32') {
    const out = new Int32Array(maxTokens * tokens.length);
    tokens.forEach((t, b) => out.set(t.subarray(0, maxTokens), b * maxTokens));
    return out;
  }
  const out = new BigInt64Array(maxTokens * tokens.length);
  tokens.forEach((t, b) => {
    for (let i = 0; i < maxTokens && i < t.length; i++) out[b * maxTokens + i] = BigInt(t[i]);
  });
  return out;
}

/**
 * Splits a batch's raw action output into one chunk per request, un-normalised (y * std + mean). Each
 * chunk is its own buffer, so it can be transferred back to the main thread on its own.
 */
export function unpackActions(
  raw: Float32Array,
  batch: number,
  spec: ActionOutputConfig,
): Float32Array<ArrayBuffer>[] {
  const per = spec.horizon * spec.dim;
  if (raw.length !== per * batch) {
    throw new Error(
      `output ${spec.tensor} has ${raw.length} values; expected ${batch} x ${spec.horizon} x ${spec.dim}`,
    );
  }
  const chunks: Float32Array<ArrayBuffer>[] = [];
  for (let b = 0; b < batch; b++) {
    const chunk = new Float32Array(per);
    for (let i = 0; i < per; i++) {
      const v = raw[b * per + i];
      const d = i % spec.dim;
      chunk[i] = spec.mean === undefined || spec.std === undefined ? v : v * spec.std[d] + spec.mean[d];
    }
    chunks.push(chunk);
  }
  return chunks;
}
