import { readYamlConfigFile } from '@app/config-files';
import type { RobotProfile } from '@app/safety';
import { readdirSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, relative, resolve } from 'node:path';
import type { ModelConfig } from './model-config';
import { MODEL_ID_PATTERN, ModelConfigError, parseModelConfig } from './model-config.schema';

/** The one file name a model folder's config goes by. */
export const MODEL_CONFIG_FILE = 'model.yaml';
/** A model config is a few kilobytes; anything much larger is not one. */
const MAX_CONFIG_BYTES = 256 * 1024;

/** `models/x/model.yaml` when under the working directory, the absolute path otherwise. */
function displayPath(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

/**
 * Whether something is at `path`. A path that exists but cannot be stat'ed (EACCES) counts as there, so
 * reading it reports the error rather than skipping the model.
 */
function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code !== 'ENOENT' && code !== 'ENOTDIR';
  }
}

/**
 * Parses and validates `<folder>/model.yaml` (YAML). The folder's name is the model id; `file` resolves
 * against the folder. Throws {@link ModelConfigError} naming the file and the field (or the line and column
 * for YAML syntax). Does not open the model file itself.
 */
export function loadModelConfig(folder: string, cwd = process.cwd()): ModelConfig {
  const dir = resolve(cwd, folder);
  const path = join(dir, MODEL_CONFIG_FILE);
  const source = displayPath(path, cwd);
  if (!MODEL_ID_PATTERN.test(basename(dir))) {
    throw new ModelConfigError(
      source,
      '',
      'the folder name must be the model id (lower-case letters, digits, ., _ and -, at most 64)',
    );
  }
  const raw = readYamlConfigFile(path, MAX_CONFIG_BYTES, (field, reason) => {
    throw new ModelConfigError(source, field, reason);
  });
  return parseModelConfig(raw, { file: source, dir });
}

/**
 * Loads every model of `dir`: each immediate, non-hidden sub-folder holding a `model.yaml`, sorted by id.
 * Other entries (a `scripts` folder, a README) are ignored. Fails closed: a missing folder, a folder without
 * models, or any invalid config throws {@link ModelConfigError}. A model file that is missing or does not
 * load is not checked here: that is a load failure at run time, reported per model.
 */
export function loadModelConfigs(dir: string, cwd = process.cwd()): ModelConfig[] {
  const root = resolve(cwd, dir);
  const shown = displayPath(root, cwd);
  let names: string[];
  try {
    names = readdirSync(root);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ModelConfigError(
      shown,
      '',
      code === 'ENOENT' || code === 'ENOTDIR'
        ? 'is not a folder of models; set MODELS_DIR to one'
        : `cannot be read (${code ?? 'error'})`,
    );
  }
  const folders: string[] = [];
  for (const name of names.filter((n) => !n.startsWith('.')).sort()) {
    const folder = join(root, name);
    // stat, not the directory entry: a model folder may be a symbolic link (a mounted volume).
    if (exists(join(folder, MODEL_CONFIG_FILE))) {
      folders.push(folder);
    } else if (exists(join(folder, 'model.yml'))) {
      throw new ModelConfigError(
        displayPath(join(folder, 'model.yml'), cwd),
        '',
        `is not read: name it ${MODEL_CONFIG_FILE}`,
      );
    }
  }
  if (folders.length === 0) {
    throw new ModelConfigError(
      shown,
      '',
      `holds no models (<id>/${MODEL_CONFIG_FILE}); set MODELS_DIR to a folder of models`,
    );
  }
  // Folder names are unique and equal the ids, so sorting the folders sorts by id.
  return folders.map((folder) => loadModelConfig(folder, cwd));
}

/** What {@link checkModelAgainstProfiles} needs: the `get` of `RobotProfiles`, or a Map of profiles. */
export interface ProfileLookup {
  get(robotType: string): RobotProfile | undefined;
}

/**
 * Checks that a model can drive each of its robot types: a profile exists for each, its action dimensions
 * are as many as the model's `outputs.actions.dim`, and, where the profile requires the robot's state, the
 * state input carries one value per action dimension (what the safety check reads). Throws
 * {@link ModelConfigError} naming the model's config file (relative to `cwd` when under it) and the field.
 */
export function checkModelAgainstProfiles(
  config: ModelConfig,
  profiles: ProfileLookup,
  cwd = process.cwd(),
): void {
  const source = displayPath(join(config.dir, MODEL_CONFIG_FILE), cwd);
  const { dim } = config.outputs.actions;
  config.robotTypes.forEach((robotType, i) => {
    const profile = profiles.get(robotType);
    if (profile === undefined) {
      throw new ModelConfigError(
        source,
        `robot_types[${i}]`,
        `no robot profile ${robotType} in ROBOTS_DIR; add ${robotType}.yaml there or remove it from robot_types`,
      );
    }
    const actionDims = profile.dimensions.length;
    if (actionDims !== dim) {
      throw new ModelConfigError(
        source,
        'outputs.actions.dim',
        `is ${dim}, but robot profile ${robotType} has ${actionDims} action dimensions; they must match`,
      );
    }
    const { size } = config.inputs.state;
    if (profile.requireState && size !== actionDims) {
      throw new ModelConfigError(
        source,
        'inputs.state.size',
        `is ${size}, but robot profile ${robotType} requires the state, and its safety check reads one state value per action dimension (${actionDims}); they must match`,
      );
    }
  });
}
