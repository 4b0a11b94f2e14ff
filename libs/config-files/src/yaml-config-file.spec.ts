import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fieldPath, readYamlConfigFile, valueAt } from './yaml-config-file';

class Refused extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}
const fail = (field: string, reason: string): never => {
  throw new Refused(field, reason);
};

describe('readYamlConfigFile', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vla-yaml-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const refusal = (path: string, maxBytes = 1024) => {
    try {
      readYamlConfigFile(path, maxBytes, fail);
    } catch (error) {
      if (error instanceof Refused) return { field: error.field, reason: error.reason };
      throw error;
    }
    throw new Error('not refused');
  };

  it('returns the plain value of a valid file', () => {
    expect(readYamlConfigFile(file('ok.yaml', 'a: 1\nb: [x, y]\n'), 1024, fail)).toEqual({
      a: 1,
      b: ['x', 'y'],
    });
  });

  it('refuses a repeated key, naming its line and column', () => {
    expect(refusal(file('dup.yaml', 'a: 1\na: 2\n'))).toMatchObject({ field: 'line 2, column 1' });
  });

  it('refuses anchors and aliases', () => {
    expect(refusal(file('alias.yaml', 'a: &x 1\nb: *x\n'))).toMatchObject({ field: 'YAML' });
  });

  it('refuses a file over the size limit without reading it, and a missing file', () => {
    expect(refusal(file('big.yaml', `a: ${'x'.repeat(100)}\n`), 50)).toEqual({
      field: '',
      reason: 'is larger than 50 bytes',
    });
    expect(refusal(join(dir, 'missing.yaml'))).toEqual({ field: '', reason: 'cannot be read (ENOENT)' });
  });
});

describe('fieldPath and valueAt', () => {
  it('spell a zod path as a dotted field and find its value', () => {
    expect(fieldPath(['action', 2, 'position'])).toBe('action[2].position');
    expect(valueAt({ action: [0, 0, { position: 7 }] }, ['action', 2, 'position'])).toBe(7);
    expect(valueAt({ action: null }, ['action', 2])).toBeUndefined();
  });
});
