import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execFile } from 'node:child_process';
import { makeModelsDir, REPO_MODELS_DIR } from './support/models-dir';
import { withDeclaredShape } from './support/onnx-edit';

/**
 * The real command in a child process (ONNX Runtime on its main thread, on the CPU), as `npm run models:check`
 * runs it: a typed array made inside Jest's sandbox is not the one onnxruntime-common checks for.
 */
jest.setTimeout(60_000);

const REPO = resolve(__dirname, '../../..');
const ROBOTS_DIR = join(REPO, 'config/robots');
const ENTRY = join(REPO, 'apps/api/src/inference/model-check.main.ts');
const DEMO_ONNX = join(REPO_MODELS_DIR, 'demo-policy/model.onnx');
const DEMO_INPUTS = 'image (float32 [batch,3,224,224]), state (float32 [batch,8]), tokens (int64 [batch,16])';
const PRIMARY = {
  name: 'primary',
  tensor: 'image',
  height: 224,
  width: 224,
  channels: 3,
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.5, 0.5],
};

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

function modelsDir(models: Parameters<typeof makeModelsDir>[0]): string {
  const root = makeModelsDir(models);
  roots.push(root);
  return root;
}

/** Runs the checker in `cwd` (paths in its output are shown relative to it), capturing both streams. */
function check(cwd: string, ...argv: string[]) {
  return run(process.execPath, ['-r', '@swc-node/register', ENTRY, ...argv], cwd);
}

function run(command: string, args: readonly string[], cwd: string) {
  return new Promise<{ code: number | null; out: string; err: string; lines: string[] }>((done) => {
    execFile(
      command,
      args,
      // The child runs in a folder outside the repository: NODE_PATH finds @swc-node/register, and
      // SWC_NODE_PROJECT the tsconfig with the @app/* paths, both the repository's.
      {
        cwd,
        env: {
          PATH: process.env.PATH,
          ROBOTS_DIR,
          NODE_PATH: join(REPO, 'node_modules'),
          SWC_NODE_PROJECT: join(REPO, 'tsconfig.json'),
        },
      },
      (error, out, err) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        done({ code, out, err, lines: out.split('\n').filter((l) => l !== '') });
      },
    );
  });
}

describe('npm run models:check (a model folder checked without the server)', () => {
  it('passes the demo model: exit 0, one line with what the file takes and gives', async () => {
    const root = modelsDir({ 'demo-policy': { from: 'demo-policy' } });
    expect(await check(root, 'demo-policy')).toEqual({
      code: 0,
      err: '',
      out: expect.any(String) as string,
      lines: [
        `demo-policy: valid: inputs ${DEMO_INPUTS}; outputs actions (float32 [batch,10,8]); dry run of batches of 1 and 2 passed`,
      ],
    });
  });

  it('prints one line per problem, each naming the yaml field and what the file has, and exits 1', async () => {
    const root = modelsDir({
      'wrong-name': {
        from: 'demo-policy',
        yaml: { inputs: { images: [{ ...PRIMARY, tensor: 'img' }] }, outputs: { actions: { horizon: 12 } } },
      },
    });
    const result = await check(root, 'wrong-name');
    expect(result.code).toBe(1);
    expect(result.lines).toEqual([
      `wrong-name/model.yaml: inputs.images[0].tensor: the file has no input "img"; its inputs are ${DEMO_INPUTS}`,
      'wrong-name/model.yaml: outputs.actions: the file\'s output "actions" is [batch,10,8] but horizon x dim is 12 x 8',
      'wrong-name: invalid: 2 problems',
    ]);
  });

  it('gives the same report as one JSON document with --json', async () => {
    const root = modelsDir({
      'wrong-name': { from: 'demo-policy', yaml: { inputs: { images: [{ ...PRIMARY, tensor: 'img' }] } } },
    });
    const result = await check(root, '--json', 'wrong-name');
    expect(result.code).toBe(1);
    expect(result.lines).toHaveLength(1);
    expect(JSON.parse(result.out)).toEqual({
      ok: false,
      folders: [
        {
          folder: 'wrong-name',
          model: 'wrong-name',
          ok: false,
          device: 'cpu',
          problems: [
            {
              file: 'wrong-name/model.yaml',
              field: 'inputs.images[0].tensor',
              message: `the file has no input "img"; its inputs are ${DEMO_INPUTS}`,
            },
          ],
          inputs: DEMO_INPUTS.split(/, (?=[a-z]+ \()/),
          outputs: ['actions (float32 [batch,10,8])'],
          dry_run_batch_sizes: [],
        },
      ],
    });
  });

  it('checks several folders, or every model of a models folder, and exits 1 when any is invalid', async () => {
    const root = modelsDir({
      good: { from: 'demo-policy' },
      corrupt: { from: 'demo-policy', onnx: 'corrupt' },
      gone: { from: 'demo-policy', onnx: 'missing' },
      cuda: { from: 'demo-policy', yaml: { device: 'cuda' } },
    });
    mkdirSync(join(root, 'scripts'));
    const whole = await check(root, '.');
    expect(whole.code).toBe(1);
    expect(whole.lines).toEqual([
      'corrupt/model.onnx: ONNX Runtime cannot open it: Load model from model.onnx failed:Protobuf parsing failed.',
      'corrupt: invalid: 1 problem',
      `cuda: valid: inputs ${DEMO_INPUTS}; outputs actions (float32 [batch,10,8]); dry run of batches of 1 and 2 passed; device cuda, checked on the CPU`,
      'gone/model.yaml: file: names gone/model.onnx, which does not exist',
      'gone: invalid: 1 problem',
      `good: valid: inputs ${DEMO_INPUTS}; outputs actions (float32 [batch,10,8]); dry run of batches of 1 and 2 passed`,
    ]);
    const two = await check(root, 'good', 'cuda', 'good');
    expect(two.code).toBe(0);
    expect(two.lines.map((l) => l.split(':')[0])).toEqual(['good', 'cuda']);
  });

  it('checks robot_types against the robot profiles, and still compares the file', async () => {
    const root = modelsDir({
      arm: {
        from: 'demo-policy',
        yaml: { robot_types: ['ur5e'], inputs: { images: [{ ...PRIMARY, tensor: 'img' }] } },
      },
    });
    const result = await check(root, 'arm');
    expect(result.code).toBe(1);
    expect(result.lines[0]).toMatch(
      /^arm\/model\.yaml: outputs\.actions\.dim: is 8, but robot profile ur5e has \d+ action dimensions; they must match$/,
    );
    expect(result.lines[1]).toMatch(
      /^arm\/model\.yaml: inputs\.images\[0\]\.tensor: the file has no input "img"/,
    );
  });

  it('refuses a file that fixes the batch at 1 unless max_batch_size is 1', async () => {
    const root = modelsDir({
      single: { from: 'demo-policy' },
      'single-ok': { from: 'demo-policy', yaml: { max_batch_size: 1 } },
    });
    for (const id of ['single', 'single-ok']) {
      let bytes: Buffer = readFileSync(DEMO_ONNX);
      for (const [name, dims] of [
        ['image', [1, 3, 224, 224]],
        ['state', [1, 8]],
        ['tokens', [1, 16]],
        ['actions', [1, 10, 8]],
      ] as const) {
        bytes = withDeclaredShape(bytes, name, dims);
      }
      writeFileSync(join(root, id, 'model.onnx'), bytes);
    }
    const result = await check(root, 'single', 'single-ok');
    expect(result.code).toBe(1);
    expect(result.lines).toEqual([
      'single/model.yaml: max_batch_size: is 8, but the file fixes the batch (first) dimension at 1 (image [1,3,224,224], state [1,8], tokens [1,16], actions [1,10,8]): set max_batch_size: 1, or export the model with a dynamic batch dimension',
      'single: invalid: 1 problem',
      'single-ok: valid: inputs image (float32 [1,3,224,224]), state (float32 [1,8]), tokens (int64 [1,16]); outputs actions (float32 [1,10,8]); dry run of a batch of 1 passed',
    ]);
  });

  it('finds by its dry run a graph that cannot take the shapes its declaration allows', async () => {
    const nine = { size: 9, mean: new Array<number>(9).fill(0), std: new Array<number>(9).fill(1) };
    const root = modelsDir({ symbolic: { from: 'demo-policy', yaml: { inputs: { state: nine } } } });
    writeFileSync(
      join(root, 'symbolic/model.onnx'),
      withDeclaredShape(readFileSync(DEMO_ONNX), 'state', [{ param: 'batch' }, { param: 'n' }]),
    );
    const result = await check(root, 'symbolic');
    expect(result.code).toBe(1);
    expect(result.lines[0]).toMatch(/^symbolic\/model\.onnx: a batch of 1 zero requests failed: .*GEMM/);
  });

  it('exits 2 for a folder that does not exist, checking nothing', async () => {
    const result = await check(modelsDir({ m: { from: 'demo-policy' } }), 'm', 'nope');
    expect(result).toMatchObject({ code: 2, out: '', err: 'models:check: nope does not exist\n' });
  });

  it('runs as npm run models:check, the line in package.json', async () => {
    const root = modelsDir({ m: { from: 'demo-policy' } });
    const result = await run('npm', ['run', '--silent', 'models:check', '--', join(root, 'm')], REPO);
    expect(result.code).toBe(0);
    expect(result.lines).toEqual([expect.stringMatching(/^\/.*\/m: valid: inputs image /) as string]);
  });
});
