import { readFileSync, statSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';

/** Raises the caller's own error for a file-level problem: `field` is '' or where in the file. */
export type ConfigFileFailure = (field: string, reason: string) => never;

/**
 * Reads one YAML configuration file strictly and returns its plain value: at most `maxBytes`, repeated keys
 * refused (the yaml package's `uniqueKeys`), the first syntax error or warning reported with its line and
 * column, and no anchors or aliases (configs are small and explicit, and this shuts out alias bombs). Every
 * refusal goes through `fail`, so each caller throws its own error type naming its own file.
 */
export function readYamlConfigFile(path: string, maxBytes: number, fail: ConfigFileFailure): unknown {
  let size: number;
  let text: string;
  try {
    size = statSync(path).size;
    text = size > maxBytes ? '' : readFileSync(path, 'utf8');
  } catch (error) {
    return fail('', `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (size > maxBytes) fail('', `is larger than ${maxBytes} bytes`);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) {
    const at = lineCounter.linePos(problem.pos[0]);
    fail(`line ${at.line}, column ${at.col}`, problem.message.split('\n')[0]);
  }
  try {
    return doc.toJS({ maxAliasCount: 0 });
  } catch (error) {
    return fail(
      'YAML',
      `${error instanceof Error ? error.message : String(error)}: write each value out instead of using anchors and aliases`,
    );
  }
}

/** `action[2].position` from a zod issue path such as `['action', 2, 'position']`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
}

/** The value at a zod issue path inside the raw document, or undefined where there is none. */
export function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let value = raw;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}
