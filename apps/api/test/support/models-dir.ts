import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { buildModel } from '../../../../models/scripts/build-models';

/** The repository's models folder. */
export const REPO_MODELS_DIR = resolve(__dirname, '../../../../models');

type Yaml = Record<string, unknown>;

/** One model of a test MODELS_DIR: a shipped model's files, with parts of its model.yaml replaced. */
export interface TestModel {
  /** The shipped model whose .onnx and model.yaml this starts from. */
  readonly from: 'demo-policy' | 'demo-policy-slow';
  /** Top-level model.yaml keys replaced (deep-merged for plain objects). `id` is set to the folder. */
  readonly yaml?: Yaml;
  /** `missing`: no .onnx file; `corrupt`: a file that is not a model. */
  readonly onnx?: 'missing' | 'corrupt';
  /** Rebuilds the .onnx with this many chain layers (the slow model has 440: about 70-200 ms by CPU). */
  readonly chainLayers?: number;
}

function merge(base: Yaml, over: Yaml): Yaml {
  const out: Yaml = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    out[key] =
      value !== null &&
      typeof value === 'object' &&
      !Array.isArray(value) &&
      prev !== null &&
      typeof prev === 'object' &&
      !Array.isArray(prev)
        ? merge(prev as Yaml, value as Yaml)
        : value;
  }
  return out;
}

/** Writes a temporary MODELS_DIR holding `models` (id -> definition) and returns its path. */
export function makeModelsDir(models: Record<string, TestModel>): string {
  const root = mkdtempSync(join(tmpdir(), 'vla-models-'));
  for (const [id, model] of Object.entries(models)) {
    const source = join(REPO_MODELS_DIR, model.from);
    const dir = join(root, id);
    mkdirSync(dir);
    const yaml = merge(parse(readFileSync(join(source, 'model.yaml'), 'utf8')) as Yaml, {
      ...(model.yaml ?? {}),
      id,
    });
    writeFileSync(join(dir, 'model.yaml'), stringify(yaml));
    const file = String(yaml.file);
    if (model.onnx === 'corrupt') writeFileSync(join(dir, file), 'this is not an ONNX model\n');
    else if (model.chainLayers !== undefined)
      writeFileSync(join(dir, file), buildModel(model.from, { chainLayers: model.chainLayers }));
    else if (model.onnx !== 'missing') copyFileSync(join(source, 'model.onnx'), join(dir, file));
  }
  return root;
}
