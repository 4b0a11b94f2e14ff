import type { ActionOutputConfig, ImageInputConfig, StateInputConfig } from './model-config';
import { packImages, packStates, packTokens, unpackActions } from './tensor-prep';

/**
 * The arithmetic between request values and model tensors, checked value by value against positions and
 * formulas written out here (not against the module's own loops).
 */

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

function imageSpec(overrides: Partial<ImageInputConfig> = {}): ImageInputConfig {
  return {
    name: 'front',
    tensor: 'image',
    height: 2,
    width: 2,
    channels: 3,
    layout: 'nchw',
    dtype: 'float32',
    mean: MEAN,
    std: STD,
    resize: 'fill',
    ...overrides,
  };
}

/**
 * A 2x2 RGB image, HWC: pixel (y, x) channel c holds 10 * (1 + 3 * (2y + x) + c), so every value is distinct
 * and its position can be read back from it.
 */
const RGB_2X2 = Uint8Array.from([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]);

/** The HWC value at pixel index i (row-major) and channel c of an image with `channels` channels. */
function hwc(pixels: Uint8Array, i: number, c: number, channels: number): number {
  return pixels[i * channels + c];
}

function normalised(p: number, c: number, mean: readonly number[], std: readonly number[]): number {
  return (p / 255 - mean[c]) / std[c];
}

function expectClose(actual: ArrayLike<number>, expected: readonly number[], tolerance = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => {
    const diff = Math.abs(actual[i] - e);
    if (!(diff <= tolerance))
      throw new Error(`value ${i}: got ${actual[i]}, expected ${e} (within ${tolerance})`);
  });
}

describe('packImages', () => {
  describe('float32', () => {
    it('NCHW: one plane per channel, each (p / 255 - mean) / std', () => {
      const out = packImages([RGB_2X2], imageSpec({ layout: 'nchw' }));

      expect(out).toBeInstanceOf(Float32Array);
      // Hand-written positions: plane c holds the four pixels of channel c in row-major order.
      const expected = [
        [10, 40, 70, 100],
        [20, 50, 80, 110],
        [30, 60, 90, 120],
      ].flatMap((plane, c) => plane.map((p) => normalised(p, c, MEAN, STD)));
      expectClose(out, expected);
      // Spot checks in plain numbers: R of pixel 0, G of pixel 3, B of pixel 1.
      expect(out[0]).toBeCloseTo((10 / 255 - 0.485) / 0.229, 6);
      expect(out[4 + 3]).toBeCloseTo((110 / 255 - 0.456) / 0.224, 6);
      expect(out[8 + 1]).toBeCloseTo((60 / 255 - 0.406) / 0.225, 6);
    });

    it('NHWC: the pixels keep their order, each normalised with its own channel', () => {
      const out = packImages([RGB_2X2], imageSpec({ layout: 'nhwc' }));

      expect(out).toBeInstanceOf(Float32Array);
      const expected = Array.from(RGB_2X2, (p, i) => normalised(p, i % 3, MEAN, STD));
      expectClose(out, expected);
      expect(out[5]).toBeCloseTo((60 / 255 - 0.406) / 0.225, 6);
    });

    it('mean 0 and std 1 give p / 255', () => {
      const out = packImages([RGB_2X2], imageSpec({ mean: [0, 0, 0], std: [1, 1, 1], layout: 'nhwc' }));

      expectClose(
        out,
        Array.from(RGB_2X2, (p) => p / 255),
      );
      expect(out[11]).toBeCloseTo(120 / 255, 6);
    });

    it('channels 1: NCHW and NHWC are the same single plane', () => {
      const grey = Uint8Array.from([0, 64, 128, 255]);
      const spec = imageSpec({ channels: 1, mean: [0.5], std: [0.25] });
      const expected = [0, 64, 128, 255].map((p) => (p / 255 - 0.5) / 0.25);

      expectClose(packImages([grey], { ...spec, layout: 'nchw' }), expected);
      expectClose(packImages([grey], { ...spec, layout: 'nhwc' }), expected);
      expect(packImages([grey], spec)[3]).toBeCloseTo(2, 6);
    });

    it('a batch of 2 puts the second image at offset height * width * channels, in both layouts', () => {
      const second = RGB_2X2.map((p) => 255 - p);
      for (const layout of ['nchw', 'nhwc'] as const) {
        const spec = imageSpec({ layout });
        const both = packImages([RGB_2X2, second], spec);

        expect(both).toHaveLength(24);
        expectClose(both.subarray(0, 12), Array.from(packImages([RGB_2X2], spec)));
        expectClose(both.subarray(12), Array.from(packImages([second], spec)));
      }
      // NCHW, image 1, channel 2 (B), pixel 0: 255 - 30.
      const nchw = packImages([RGB_2X2, second], imageSpec({ layout: 'nchw' }));
      expect(nchw[12 + 2 * 4 + 0]).toBeCloseTo(normalised(225, 2, MEAN, STD), 6);
    });

    it('an empty batch gives an empty tensor', () => {
      expect(packImages([], imageSpec())).toHaveLength(0);
    });
  });

  describe('uint8', () => {
    it('NCHW: the raw pixels regrouped per channel plane', () => {
      const out = packImages([RGB_2X2], imageSpec({ dtype: 'uint8', layout: 'nchw' }));

      expect(out).toBeInstanceOf(Uint8Array);
      expect(Array.from(out)).toEqual([10, 40, 70, 100, 20, 50, 80, 110, 30, 60, 90, 120]);
    });

    it('NHWC: the raw pixels as given, in a buffer of its own', () => {
      const out = packImages([RGB_2X2], imageSpec({ dtype: 'uint8', layout: 'nhwc' }));

      expect(out).toBeInstanceOf(Uint8Array);
      expect(Array.from(out)).toEqual(Array.from(RGB_2X2));
      expect(out.buffer).not.toBe(RGB_2X2.buffer);
    });

    it('a batch of 2 lands at offsets 0 and 12; channels 1 is copied as is', () => {
      const second = RGB_2X2.map((p) => p + 1);
      const nchw = packImages([RGB_2X2, second], imageSpec({ dtype: 'uint8', layout: 'nchw' }));
      expect(Array.from(nchw.subarray(12))).toEqual([11, 41, 71, 101, 21, 51, 81, 111, 31, 61, 91, 121]);
      const nhwc = packImages([RGB_2X2, second], imageSpec({ dtype: 'uint8', layout: 'nhwc' }));
      expect(Array.from(nhwc)).toEqual([...RGB_2X2, ...second]);

      const grey = Uint8Array.from([1, 2, 3, 4]);
      expect(Array.from(packImages([grey, grey], imageSpec({ dtype: 'uint8', channels: 1 })))).toEqual([
        1, 2, 3, 4, 1, 2, 3, 4,
      ]);
    });
  });

  it('the NCHW value of pixel i, channel c equals the HWC one for every position (3x5 image)', () => {
    const spec = imageSpec({ height: 3, width: 5, dtype: 'uint8' });
    const pixels = Uint8Array.from({ length: 45 }, (_, k) => (k * 7) % 256);
    const out = packImages([pixels], spec);
    for (let i = 0; i < 15; i++) {
      for (let c = 0; c < 3; c++) expect(out[c * 15 + i]).toBe(hwc(pixels, i, c, 3));
    }
  });
});

describe('packStates', () => {
  const states = [Float32Array.of(1, 2, 3), Float32Array.of(-1, 0, 0.5)];

  it('without mean/std: the values as given, one row per request', () => {
    const spec: StateInputConfig = { tensor: 'state', size: 3 };

    expect(Array.from(packStates(states, spec))).toEqual([1, 2, 3, -1, 0, 0.5]);
  });

  it('with mean/std: (x - mean) / std per dimension', () => {
    const spec: StateInputConfig = { tensor: 'state', size: 3, mean: [1, 0, -1], std: [2, 0.5, 4] };

    expectClose(packStates(states, spec), [0, 4, 1, -1, 0, 0.375]);
  });
});

/** The values of a token tensor, whichever dtype it came out as. */
function values(tensor: BigInt64Array | Int32Array): (bigint | number)[] {
  return tensor instanceof BigInt64Array ? Array.from(tensor) : Array.from(tensor);
}

describe('packTokens', () => {
  const tokens = [Int32Array.of(5, 6, 7), Int32Array.of(1, 2, 3, 4, 9, 9), Int32Array.of(2_147_483_647)];

  it('int64: BigInt64Array, zero-padded to maxTokens and truncated beyond it', () => {
    const out = packTokens(tokens, 4, 'int64');

    expect(out).toBeInstanceOf(BigInt64Array);
    expect(values(out)).toEqual([5n, 6n, 7n, 0n, 1n, 2n, 3n, 4n, 2_147_483_647n, 0n, 0n, 0n]);
  });

  it('int32: Int32Array, zero-padded and truncated the same way', () => {
    const out = packTokens(tokens, 4, 'int32');

    expect(out).toBeInstanceOf(Int32Array);
    expect(values(out)).toEqual([5, 6, 7, 0, 1, 2, 3, 4, 2_147_483_647, 0, 0, 0]);
  });

  it('exactly maxTokens long is copied whole', () => {
    expect(values(packTokens([Int32Array.of(8, 9)], 2, 'int64'))).toEqual([8n, 9n]);
    expect(values(packTokens([Int32Array.of(8, 9)], 2, 'int32'))).toEqual([8, 9]);
  });
});

describe('unpackActions', () => {
  const spec: ActionOutputConfig = {
    tensor: 'actions',
    horizon: 2,
    dim: 3,
    mean: [1, 2, 3],
    std: [10, 100, 0.5],
  };
  // Batch 2 x horizon 2 x dim 3.
  const raw = Float32Array.of(0, 0, 0, 1, 1, 1, 0.5, -0.5, 2, -1, 0.01, 4);

  it('splits per request and applies y * std + mean per dimension', () => {
    const [first, second] = unpackActions(raw, 2, spec);

    expectClose(first, [1, 2, 3, 11, 102, 3.5]);
    expectClose(second, [6, -48, 4, -9, 3, 5], 1e-5);
  });

  it('without mean/std: the raw values, split', () => {
    const chunks = unpackActions(raw, 2, { tensor: 'actions', horizon: 2, dim: 3 });

    expect(chunks.map((c) => Array.from(c))).toEqual([
      Array.from(raw.subarray(0, 6)),
      Array.from(raw.subarray(6)),
    ]);
  });

  it('each chunk has its own ArrayBuffer at offset 0, so one can be transferred without the others', () => {
    const chunks = unpackActions(raw, 2, spec);

    for (const chunk of chunks) {
      expect(chunk.byteOffset).toBe(0);
      expect(chunk.buffer.byteLength).toBe(6 * Float32Array.BYTES_PER_ELEMENT);
      expect(chunk.buffer).not.toBe(raw.buffer);
    }
    expect(chunks[0].buffer).not.toBe(chunks[1].buffer);

    const moved = structuredClone(chunks[0], { transfer: [chunks[0].buffer] });
    expect(chunks[0]).toHaveLength(0); // detached
    expect(Array.from(moved)).toHaveLength(6);
    expect(chunks[1]).toHaveLength(6);
    expect(raw).toHaveLength(12);
  });

  it('a length that is not batch x horizon x dim throws, naming the tensor and the shape', () => {
    expect(() => unpackActions(raw.subarray(0, 11), 2, spec)).toThrow(
      'output actions has 11 values; expected 2 x 2 x 3',
    );
    expect(() => unpackActions(raw, 3, spec)).toThrow('expected 3 x 2 x 3');
  });

  it('an empty batch of an empty output gives no chunks', () => {
    expect(unpackActions(new Float32Array(0), 0, spec)).toEqual([]);
  });
});
