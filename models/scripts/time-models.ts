/**
 * Times one forward pass of each demo model with ONNX Runtime on one intra-op thread, as the server runs
 * them by default: `node -r @swc-node/register models/scripts/time-models.ts [runs]`. Prints the median and
 * the fastest run, in milliseconds, for batch 1 and batch 8. A measurement aid, not a test.
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DEMO_INTERFACE, MODEL_FILES, MODEL_NAMES, mulberry32 } from './build-models';

function feeds(batch: number, seed: number): Record<string, Tensor> {
  const { image, state, tokens } = DEMO_INTERFACE;
  const random = mulberry32(seed);
  const pixels = Float32Array.from(
    { length: batch * image.channels * image.height * image.width },
    () => random() * 2 - 1,
  );
  const states = Float32Array.from({ length: batch * state.size }, () => random() * 2 - 1);
  const ids = BigInt64Array.from({ length: batch * tokens.maxTokens }, () =>
    BigInt(Math.floor(random() * tokens.vocabSize)),
  );
  return {
    [image.name]: new Tensor('float32', pixels, [batch, image.channels, image.height, image.width]),
    [state.name]: new Tensor('float32', states, [batch, state.size]),
    [tokens.name]: new Tensor('int64', ids, [batch, tokens.maxTokens]),
  };
}

async function time(session: InferenceSession, batch: number, runs: number): Promise<string> {
  const input = feeds(batch, batch);
  await session.run(input);
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await session.run(input);
    ms.push(performance.now() - start);
  }
  ms.sort((a, b) => a - b);
  return `batch ${batch}: median ${ms[Math.floor(runs / 2)].toFixed(2)} ms, min ${ms[0].toFixed(2)} ms`;
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 20);
  const root = join(__dirname, '../..');
  for (const name of MODEL_NAMES) {
    const session = await InferenceSession.create(join(root, MODEL_FILES[name]), {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
    });
    const slow = name === 'demo-policy-slow';
    const lines = [await time(session, 1, slow ? Math.min(runs, 5) : runs)];
    lines.push(await time(session, 8, slow ? Math.min(runs, 3) : runs));
    console.log(`${name}: ${lines.join('; ')}`);
    await session.release();
  }
}

void main();
