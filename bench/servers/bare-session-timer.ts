// The inference bench's floor: `session.run` alone, in-process, with the tensors of the bench's request built
// once up front. Started by bench/inference.bench.ts on the servers' CPU; it opens the models, prints
// {"msg":"ready"}, then answers one JSON line on stdout for each JSON line on stdin:
//
//   {"model":"demo-policy","durationS":3}  ->  {"model":..,"calls":..,"durationS":..,"p50Ms":..,"p99Ms":..}
//   {"model":"demo-policy","durationS":3,"pack":true}: the same, each call also packing the tensors from the
//       request's values first and unpacking the actions after, as the API's Worker does for every batch
//   {"model":"demo-policy","durationS":3,"batch":8}: session.run of a batch of 8 copies of the request
//       (callsPerSec counts calls; itemsPerSec counts requests)
//   {"model":"demo-policy","actions":true} ->  {"model":..,"actions":[[..], ..]}
//
// Environment: MODELS_DIR, MODELS (comma-separated ids), INPUT_FILE (a JSON file: {"pixels": "<base64 HWC
// uint8 at the model's size>", "state": [..], "instruction": ".."}).
import { type Tensor } from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { createHistogram, performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { unpackActions } from '../../apps/api/src/inference/tensor-prep';
import { feedsOf, openPolicy, type Policy, type PolicyInputs, runPolicy } from './policy-session';

interface Command {
  model: string;
  durationS?: number;
  pack?: boolean;
  batch?: number;
  actions?: boolean;
}

interface Loaded {
  policy: Policy;
  inputs: PolicyInputs;
  feeds: Record<string, Tensor>;
}

const modelsDir = process.env.MODELS_DIR ?? 'models';
const ids = (process.env.MODELS ?? 'demo-policy').split(',').filter((id) => id !== '');
const inputFile = process.env.INPUT_FILE;

const reply = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);

/**
 * Calls `session.run` back to back for `durationS` seconds; with `pack`, each call also builds its feeds
 * from the request's values and unpacks the output, as the Worker does; with `batch` > 1, each call runs
 * that many copies at once. Latencies in microseconds, per call.
 */
async function time(model: Loaded, durationS: number, pack: boolean, batch: number): Promise<unknown> {
  const { policy } = model;
  const batchFeeds = batch === 1 ? model.feeds : feedsOf(policy.config, model.inputs, batch);
  const spec = policy.config.outputs.actions;
  const latencyUs = createHistogram({ lowest: 1, highest: 60_000_000, figures: 3 });
  const started = performance.now();
  const until = started + durationS * 1000;
  let calls = 0;
  for (let now = started; now < until; calls++) {
    const t0 = performance.now();
    if (pack) {
      const results = await policy.session.run(feedsOf(policy.config, model.inputs), [spec.tensor]);
      unpackActions(results[spec.tensor].data as Float32Array, 1, spec);
    } else {
      await policy.session.run(batchFeeds, [spec.tensor]);
    }
    now = performance.now();
    latencyUs.record(Math.max(1, Math.round((now - t0) * 1000)));
  }
  const elapsedS = (performance.now() - started) / 1000;
  return {
    model: policy.config.id,
    calls,
    durationS: elapsedS,
    callsPerSec: calls / elapsedS,
    itemsPerSec: (calls * batch) / elapsedS,
    p50Ms: latencyUs.percentile(50) / 1000,
    p99Ms: latencyUs.percentile(99) / 1000,
  };
}

async function main(): Promise<void> {
  if (inputFile === undefined) throw new Error('INPUT_FILE is required');
  const input = JSON.parse(readFileSync(inputFile, 'utf8')) as {
    pixels: string;
    state: number[];
    instruction?: string;
  };
  const pixels = new Uint8Array(Buffer.from(input.pixels, 'base64'));
  const loaded = new Map<string, Loaded>();
  for (const id of ids) {
    const policy = await openPolicy(modelsDir, id);
    const inputs: PolicyInputs = {
      images: policy.config.inputs.images.map(() => pixels),
      state: input.state,
      instruction: input.instruction,
    };
    loaded.set(id, { policy, inputs, feeds: feedsOf(policy.config, inputs) });
  }
  reply({ msg: 'ready' });

  // One command at a time: the next line is read only after this one is answered.
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === '') continue;
    const command = JSON.parse(line) as Command;
    const entry = loaded.get(command.model);
    if (entry === undefined) {
      reply({ error: `model ${command.model} is not open` });
      continue;
    }
    if (command.actions === true) {
      reply({ model: command.model, actions: await runPolicy(entry.policy, entry.feeds) });
    } else {
      reply(await time(entry, command.durationS ?? 1, command.pack === true, command.batch ?? 1));
    }
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bare-session-timer: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
