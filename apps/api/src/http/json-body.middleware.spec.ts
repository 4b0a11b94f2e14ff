import { findForbiddenKey } from './json-body.middleware';

/** mulberry32: a tiny seeded PRNG, so every run walks the same bodies and a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Harmless keys, near-misses of the forbidden ones, and the forbidden ones themselves. */
const KEYS = [
  'a',
  'items',
  'options',
  'prototype',
  'proto',
  '__proto',
  '_proto_',
  '__PROTO__',
  'Constructor',
  'constructors',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'constructor',
  '__proto__',
];

/** Random JSON text (so `__proto__` becomes an own key when parsed, as body-parser's JSON.parse does). */
function randomJson(next: () => number, depth: number): string {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)];
  const r = next();
  if (depth === 0 || r < 0.3) {
    return pick(['null', 'true', '0', '1.5', '"text"', '"__proto__"', '"constructor"', '{}', '[]']);
  }
  if (r < 0.5) {
    const n = Math.floor(next() * 4);
    return `[${Array.from({ length: n }, () => randomJson(next, depth - 1)).join(',')}]`;
  }
  const n = 1 + Math.floor(next() * 4);
  return `{${Array.from({ length: n }, () => `${JSON.stringify(pick(KEYS))}:${randomJson(next, depth - 1)}`).join(',')}}`;
}

/** Every forbidden path in `value`, found recursively (an independent oracle for shallow bodies). */
function forbiddenPaths(value: unknown, path = ''): string[] {
  if (value === null || typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap((item, i) => forbiddenPaths(item, `${path}[${i}]`));
  return Object.keys(value).flatMap((key) => {
    const child: unknown = (value as Record<string, unknown>)[key];
    const childPath = path === '' ? key : `${path}.${key}`;
    const forbidden =
      key === '__proto__' || (key === 'constructor' && child !== null && typeof child === 'object');
    return forbidden ? [childPath] : forbiddenPaths(child, childPath);
  });
}

describe('findForbiddenKey', () => {
  it('finds a nested __proto__ key', () => {
    expect(findForbiddenKey(JSON.parse('{"a":{"b":{"__proto__":{"isAdmin":true}}}}'))).toBe('a.b.__proto__');
    expect(findForbiddenKey(JSON.parse('{"__proto__":{"polluted":1}}'))).toBe('__proto__');
  });

  it('finds __proto__ whatever its value, and written with escapes', () => {
    expect(findForbiddenKey(JSON.parse('{"x":{"__proto__":null}}'))).toBe('x.__proto__');
    expect(findForbiddenKey(JSON.parse('{"x":{"__proto__":"str"}}'))).toBe('x.__proto__');
    expect(findForbiddenKey(JSON.parse('{"x":{"\\u005f_proto__":{}}}'))).toBe('x.__proto__');
  });

  it('finds constructor holding an object, such as constructor.prototype', () => {
    expect(findForbiddenKey(JSON.parse('{"constructor":{"prototype":{"polluted":1}}}'))).toBe('constructor');
    expect(findForbiddenKey(JSON.parse('{"options":{"constructor":{"prototype":{}}}}'))).toBe(
      'options.constructor',
    );
    expect(findForbiddenKey(JSON.parse('{"constructor":[]}'))).toBe('constructor');
  });

  it('accepts constructor holding a plain value', () => {
    expect(
      findForbiddenKey(JSON.parse('{"constructor":"Pi0","options":{"constructor":null}}')),
    ).toBeUndefined();
  });

  it('reports paths through arrays', () => {
    const body = JSON.parse('{"items":[{"a":1},{"b":2},{"__proto__":{"x":1}}]}') as unknown;
    expect(findForbiddenKey(body)).toBe('items[2].__proto__');
    expect(findForbiddenKey(JSON.parse('[[1],[2,{"constructor":{}}]]'))).toBe('[1][1].constructor');
    expect(findForbiddenKey(JSON.parse('{"a":[[{"b":[{"__proto__":1}]}]]}'))).toBe('a[0][0].b[0].__proto__');
  });

  it('returns undefined for clean bodies', () => {
    for (const text of [
      'null',
      '42',
      '"__proto__"',
      '[]',
      '{}',
      '{"model":"pi0","inputs":{"prompt":"pick up the cup","images":["aGVsbG8="]}}',
      '{"prototype":{"a":1},"proto":{},"__PROTO__":{},"Constructor":{}}',
      '["__proto__","constructor",{"key":"__proto__"}]',
    ]) {
      expect(findForbiddenKey(JSON.parse(text))).toBeUndefined();
    }
  });

  it('walks 100000 levels of nested arrays without overflowing the stack', () => {
    const depth = 100_000;
    expect(findForbiddenKey(JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`))).toBeUndefined();
  });

  it('finds a key at the bottom of 100000 levels of nesting', () => {
    const depth = 100_000;
    const arrays = JSON.parse(`${'['.repeat(depth)}{"__proto__":1}${']'.repeat(depth)}`) as unknown;
    expect(findForbiddenKey(arrays)).toBe(`${'[0]'.repeat(depth)}.__proto__`);
    const objects = JSON.parse(`${'{"a":'.repeat(depth)}{"constructor":{}}${'}'.repeat(depth)}`) as unknown;
    expect(findForbiddenKey(objects)).toBe(`${'a.'.repeat(depth)}constructor`);
  });

  it('agrees with a recursive walk on a few hundred random bodies', () => {
    const next = prng(20_240_611);
    let flagged = 0;
    for (let run = 0; run < 500; run++) {
      const text = randomJson(next, 5);
      const expected = forbiddenPaths(JSON.parse(text));
      const found = findForbiddenKey(JSON.parse(text));
      if (expected.length === 0) {
        expect({ text, found }).toEqual({ text, found: undefined });
      } else {
        flagged++;
        expect({ text, found: expected.includes(found ?? '') }).toEqual({ text, found: true });
      }
    }
    // The generator must exercise both outcomes for the comparison to mean anything.
    expect(flagged).toBeGreaterThan(50);
    expect(flagged).toBeLessThan(450);
  });
});
