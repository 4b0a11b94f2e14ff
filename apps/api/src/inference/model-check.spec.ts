import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { makeModelsDir } from '../../test/support/models-dir';
import { runModelCheck } from './model-check';

const ROBOTS_DIR = resolve(__dirname, '../../../../config/robots');

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
async function check(cwd: string, ...argv: string[]) {
  let out = '';
  let err = '';
  const code = await runModelCheck(argv, {
    env: { ROBOTS_DIR },
    cwd,
    out: (text) => (out += text),
    err: (text) => (err += text),
  });
  return { code, out, err, lines: out.split('\n').filter((l) => l !== '') };
}

// What is decided before ONNX Runtime opens anything: the command line, the profiles, the yaml. (The rest
// runs the real command: apps/api/test/models-check.e2e-spec.ts.)
describe('runModelCheck before the model file', () => {
  it('reports an invalid yaml as the server does, with the file and the field', async () => {
    const root = modelsDir({ typo: { from: 'demo-policy', yaml: { control_hz: 'fast' } } });
    expect((await check(root, 'typo')).lines).toEqual([
      'typo/model.yaml: control_hz: must be a finite number',
      'typo: invalid: 1 problem',
    ]);
    renameSync(join(root, 'typo/model.yaml'), join(root, 'typo/model.yml'));
    expect(await check(root, 'typo')).toMatchObject({
      code: 1,
      lines: ['typo/model.yml: is not read: name it model.yaml', 'typo: invalid: 1 problem'],
    });
  });

  it.each([
    ['no folder', [], 'give at least one model folder', true],
    ['an unknown option', ['--jsn', 'x'], 'unknown option --jsn', true],
    ['a folder that does not exist', ['nope'], 'nope does not exist', false],
    ['a file instead of a folder', ['m/model.yaml'], 'm/model.yaml is not a folder', false],
    ['a folder without models', ['empty'], 'empty holds no model.yaml, nor do its sub-folders', false],
  ])('exits 2 for %s, on stderr, checking nothing', async (_name, argv, message, withUsage) => {
    const root = modelsDir({ m: { from: 'demo-policy' } });
    mkdirSync(join(root, 'empty'));
    const result = await check(root, ...argv);
    expect(result.code).toBe(2);
    expect(result.out).toBe('');
    expect(result.err).toContain(`models:check: ${message}`);
    expect(result.err.includes('usage: npm run models:check')).toBe(withUsage);
  });

  it('exits 2 when the robot profiles cannot be loaded', async () => {
    const root = modelsDir({ m: { from: 'demo-policy' } });
    const result = await check(root, '--robots-dir', 'no-robots', 'm');
    expect(result.code).toBe(2);
    expect(result.err).toContain('no-robots: is not a folder of robot profiles');
  });
});
