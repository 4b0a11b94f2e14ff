import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadModelConfig } from './model-config.loader';
import type { ModelConfig } from './model-config';
import { BatchFailedError, ModelWorkers, WorkerCrashedError } from './model-workers';
import type { WorkItem } from './tensor-prep';
import { ModelLoadError } from './model-interface';
import { withDeclaredShape } from '../../test/support/onnx-edit';

/** Real Worker threads running the real demo model with ONNX Runtime. */
jest.setTimeout(60_000);

const DEMO = loadModelConfig(resolve(__dirname, '../../../../models/demo-policy'));

function item(fill = 100): WorkItem {
  return {
    images: [new Uint8Array(224 * 224 * 3).fill(fill)],
    state: Float32Array.from([0, -0.785, 0, -2.356, 0, 1.571, 0.785, 0.04]),
    tokens: new Int32Array(16).fill(3),
  };
}

describe('ModelWorkers (real ONNX Runtime in Worker threads)', () => {
  let workers: ModelWorkers | undefined;
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'vla-model-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(async () => {
    await workers?.close();
    workers = undefined;
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('loads the model, runs a batch and answers one chunk per request, un-normalised', async () => {
    workers = new ModelWorkers(DEMO, { executionProviders: ['cpu'] });
    const info = await workers.start();
    expect(info.loadMs).toBeGreaterThan(0);
    expect(workers.active).toBe(1);
    expect(workers.idle).toBe(1);
    const result = await workers.run([item(10), item(200)]);
    expect(result.actions).toHaveLength(2);
    for (const chunk of result.actions) {
      expect(chunk).toHaveLength(80);
      expect(chunk.every(Number.isFinite)).toBe(true);
      // Around the neutral pose of the yaml's action mean (raw Tanh output times std 0.05 at most).
      expect(Math.abs(chunk[3] - -2.356)).toBeLessThanOrEqual(0.05 + 1e-6);
    }
    expect(Array.from(result.actions[0])).not.toEqual(Array.from(result.actions[1]));
    expect(result.computeMs).toBeGreaterThan(0);
    expect(result.taskMs).toBeGreaterThanOrEqual(result.computeMs);
  });

  it('transfers the request buffers to the Worker instead of copying them', async () => {
    workers = new ModelWorkers(DEMO, { executionProviders: ['cpu'] });
    await workers.start();
    const sent = item();
    await workers.run([sent]);
    // A transferred ArrayBuffer is detached on this side. (State and tokens are listed too, but V8 keeps
    // typed arrays this small on its heap and copies them: 32 and 64 bytes.)
    expect(sent.images[0].byteLength).toBe(0);
    // A view into a shared buffer cannot be transferred without taking its neighbours: it is copied.
    const shared = new Uint8Array(224 * 224 * 3 + 16);
    const view = shared.subarray(16);
    await workers.run([{ ...item(), images: [view] }]);
    expect(view.byteLength).toBe(224 * 224 * 3);
  });

  it('fails a batch the model cannot run, and the Worker serves the next one', async () => {
    // The file declares the state as [batch, n], which a size of 9 matches, but its graph needs 8: ONNX
    // Runtime fails the run, as with a model exported with a dimension left symbolic by mistake.
    const dir = tempDir();
    const file = join(dir, 'model.onnx');
    writeFileSync(
      file,
      withDeclaredShape(readFileSync(DEMO.file), 'state', [{ param: 'batch' }, { param: 'n' }]),
    );
    const wrong: ModelConfig = {
      ...DEMO,
      file,
      dir,
      inputs: { ...DEMO.inputs, state: { tensor: 'state', size: 9 } },
    };
    workers = new ModelWorkers(wrong, { executionProviders: ['cpu'], warmUp: false });
    await workers.start();
    await expect(workers.run([{ ...item(), state: new Float32Array(9) }])).rejects.toBeInstanceOf(
      BatchFailedError,
    );
    expect(workers.active).toBe(1);
    expect(workers.idle).toBe(1);
  });

  it('replaces a Worker that dies mid-batch; that batch fails, the replacement serves', async () => {
    const crashes: string[] = [];
    let available = 0;
    workers = new ModelWorkers(DEMO, {
      executionProviders: ['cpu'],
      onCrash: (reason) => crashes.push(reason),
      onAvailable: () => available++,
    });
    await workers.start();
    const running = workers.run([item()]);
    workers.crashOne();
    await expect(running).rejects.toBeInstanceOf(WorkerCrashedError);
    expect(crashes).toHaveLength(1);
    const before = available;
    while (workers.idle === 0) await new Promise((r) => setTimeout(r, 20));
    expect(available).toBeGreaterThan(before);
    expect((await workers.run([item()])).actions[0]).toHaveLength(80);
  });

  it('close() lets a running batch finish before the Worker exits', async () => {
    workers = new ModelWorkers(DEMO, { executionProviders: ['cpu'] });
    await workers.start();
    const running = workers.run([item()]);
    const closing = workers.close();
    expect((await running).actions[0]).toHaveLength(80);
    await closing;
    expect(workers.active).toBe(0);
    workers = undefined;
  });

  it('rejects start() with every mismatch, per field, when model.yaml does not match the file', async () => {
    const wrong: ModelConfig = {
      ...DEMO,
      inputs: { ...DEMO.inputs, images: [{ ...DEMO.inputs.images[0], tensor: 'img' }] },
      outputs: { actions: { ...DEMO.outputs.actions, horizon: 12 } },
    };
    const failing = new ModelWorkers(wrong, { executionProviders: ['cpu'] });
    const error = (await failing.start().catch((e: unknown) => e)) as ModelLoadError;
    expect(error).toBeInstanceOf(ModelLoadError);
    expect(error.stage).toBe('interface');
    expect(error.problems).toEqual([
      {
        field: 'inputs.images[0].tensor',
        message:
          'the file has no input "img"; its inputs are image (float32 [batch,3,224,224]), state (float32 [batch,8]), tokens (int64 [batch,16])',
      },
      {
        field: 'outputs.actions',
        message: 'the file\'s output "actions" is [batch,10,8] but horizon x dim is 12 x 8',
      },
    ]);
    expect(error.message).toMatch(
      /^model\.yaml does not match the model file: inputs\.images\[0\]\.tensor: /,
    );
    expect(failing.active).toBe(0);
  });

  it("rejects start() at the warm-up when a batch of zeros fails, with ONNX Runtime's path-free reason", async () => {
    const dir = tempDir();
    const file = join(dir, 'model.onnx');
    writeFileSync(
      file,
      withDeclaredShape(readFileSync(DEMO.file), 'state', [{ param: 'batch' }, { param: 'n' }]),
    );
    const wrong: ModelConfig = {
      ...DEMO,
      file,
      dir,
      inputs: { ...DEMO.inputs, state: { tensor: 'state', size: 9 } },
    };
    const error = (await new ModelWorkers(wrong, { executionProviders: ['cpu'] })
      .start()
      .catch((e: unknown) => e)) as ModelLoadError;
    expect(error).toBeInstanceOf(ModelLoadError);
    expect(error.stage).toBe('dry_run');
    expect(error.message).toMatch(/^a batch of 1 zero requests failed: .*GEMM/);
    expect(error.message).not.toContain(dir);
  });

  it('rejects start() with a path-free reason when the model file is corrupt', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vla-model-'));
    try {
      copyFileSync(resolve(__dirname, '../../../../models/demo-policy/model.yaml'), join(dir, 'model.yaml'));
      writeFileSync(join(dir, 'model.onnx'), 'not a model');
      const broken: ModelConfig = { ...DEMO, file: join(dir, 'model.onnx'), dir };
      const failing = new ModelWorkers(broken, { executionProviders: ['cpu'] });
      const error = (await failing.start().catch((e: unknown) => e)) as Error;
      expect(error).toBeInstanceOf(Error);
      expect(error.message).not.toContain(dir);
      expect(failing.active).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
