import { Linter } from 'eslint';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const REPO = join(__dirname, '../../..');
const FILES = ['apps/api/src/x.ts', 'libs/monitoring/src/x.ts'];

/**
 * The `no-restricted-imports` entry ESLint computes from the repository's config for each file. Computed in
 * a child process: the flat config is an ES module, which Jest's sandbox cannot import.
 */
const restrictedImports = JSON.parse(
  execFileSync(
    process.execPath,
    [
      '-e',
      `const { ESLint } = require('eslint');
       const eslint = new ESLint({ cwd: ${JSON.stringify(REPO)} });
       Promise.all(${JSON.stringify(FILES)}.map((f) => eslint.calculateConfigForFile(f)))
         .then((configs) => process.stdout.write(JSON.stringify(configs.map((c) => c.rules['no-restricted-imports']))));`,
    ],
    { cwd: REPO, encoding: 'utf8' },
  ),
) as Linter.RuleEntry[];

/**
 * Runs the repository's own `no-restricted-imports` configuration, as ESLint computes it for a file at
 * `path`, over `source`. Returns the messages (empty when the import is allowed).
 */
function importErrors(path: string, source: string): string[] {
  const rule = restrictedImports[FILES.indexOf(path)];
  expect(rule).toBeDefined();
  const messages = new Linter().verify(source, {
    languageOptions: { ecmaVersion: 2023, sourceType: 'module' },
    rules: { 'no-restricted-imports': rule },
  });
  return messages.map((m) => m.message);
}

describe('import boundaries (lint)', () => {
  it('apps import a lib through its alias only', () => {
    expect(importErrors('apps/api/src/x.ts', "import { MonitoringModule } from '@app/monitoring';")).toEqual(
      [],
    );
    expect(
      importErrors('apps/api/src/x.ts', "import { x } from '@app/monitoring/metrics.controller';"),
    ).toEqual([expect.stringContaining('through its alias')]);
    expect(importErrors('apps/api/src/x.ts', "import { x } from '../../../libs/monitoring/src';")).toEqual([
      expect.stringContaining('through its alias'),
    ]);
  });

  it('a lib never imports from apps/', () => {
    expect(
      importErrors('libs/monitoring/src/x.ts', "import { x } from '../../../apps/api/src/config';"),
    ).toEqual([expect.stringContaining('never imports from apps/')]);
    expect(importErrors('libs/monitoring/src/x.ts', "import { Injectable } from '@nestjs/common';")).toEqual(
      [],
    );
  });
});
