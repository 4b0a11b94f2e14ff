import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The runtime the project declares, and every native dependency loading under it: a native addon built
 * for another Node ABI fails here with its own name, not deep inside an e2e test.
 */
const REPO = join(__dirname, '../../..');
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  engines: { node: string };
  allowScripts: Record<string, boolean>;
};

describe('runtime', () => {
  it('is the Node.js major the package declares', () => {
    const declared = /^>=(\d+)\./.exec(pkg.engines.node)?.[1];
    expect(declared).toBeDefined();
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(Number(declared));
  });

  it('loads better-sqlite3 and runs a query', async () => {
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(':memory:');
    try {
      expect(db.prepare('SELECT 6 * 7 AS answer').get()).toEqual({ answer: 42 });
    } finally {
      db.close();
    }
  });

  it('loads onnxruntime-node with its CPU execution provider', async () => {
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(join(REPO, 'models/demo-policy/model.onnx'));
    try {
      expect(session.inputNames.length).toBeGreaterThan(0);
    } finally {
      await session.release();
    }
  });

  it('loads sharp and encodes an image', async () => {
    const { default: sharp } = await import('sharp');
    const png = await sharp({ create: { width: 2, height: 2, channels: 3, background: '#123456' } })
      .png()
      .toBuffer();
    expect((await sharp(png).metadata()).width).toBe(2);
  });

  it('loads koffi and calls into libc', async () => {
    const { default: koffi } = await import('koffi');
    const libc = koffi.load('libc.so.6');
    const getpid = libc.func('int getpid(void)') as () => number;
    expect(getpid()).toBe(process.pid);
    libc.unload();
  });

  it('loads the swc compiler the tests and the CLI run on', async () => {
    const swc = await import('@swc/core');
    const { code } = swc.transformSync('const x: number = 1;', {
      jsc: { parser: { syntax: 'typescript' } },
    });
    expect(code).toMatch(/(const|var) x = 1/);
  });

  it('runs the install scripts of the native packages it builds, and no others', () => {
    expect(Object.entries(pkg.allowScripts).filter(([, allowed]) => allowed)).toEqual([
      ['better-sqlite3', true],
      ['koffi', true],
      ['@swc/core', true],
    ]);
  });
});
