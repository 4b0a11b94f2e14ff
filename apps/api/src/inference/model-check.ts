/**
 * `npm run models:check`: validates a model folder the way the server loads it, without starting the server.
 * The same loader and schema read `model.yaml`, the same robot-profile check runs, ONNX Runtime opens the file
 * on the CPU, the same comparison of the yaml with the file's inputs and outputs runs, and then batches of
 * zeros of the configured shapes go through it (the server's warm-up, and a batch of 2 when the model
 * batches). The entry point with the arguments and exit codes is model-check.main.ts.
 */
import { loadRobotProfiles, RobotProfileError } from '@app/safety';
import type { InferenceSession } from 'onnxruntime-node';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { ModelConfig } from './model-config';
import {
  checkModelAgainstProfiles,
  MODEL_CONFIG_FILE,
  type ProfileLookup,
  loadModelConfig,
} from './model-config.loader';
import { ModelConfigError } from './model-config.schema';
import { describeValue, ModelLoadError } from './model-interface';
import { dryRun, openSession } from './onnx-session';

/** One thing to fix: the file it is in (as shown: relative to the working directory when under it), the field. */
export interface CheckProblem {
  readonly file: string;
  /** A `model.yaml` field (`inputs.images[0].tensor`), or `''` for the file as a whole. */
  readonly field: string;
  readonly message: string;
}

/** What checking one model folder found. */
export interface FolderReport {
  readonly folder: string;
  /** The model id, once its `model.yaml` parsed. */
  readonly model: string | null;
  readonly ok: boolean;
  readonly problems: readonly CheckProblem[];
  /** The file's inputs and outputs (`image (float32 [batch,3,224,224])`), once ONNX Runtime opened it. */
  readonly inputs: readonly string[] | null;
  readonly outputs: readonly string[] | null;
  /** Batch sizes of zeros that ran through the model. */
  readonly dryRuns: readonly number[];
  /** The device the yaml asks for; the check always runs on the CPU. */
  readonly device: 'cpu' | 'cuda' | null;
}

/** An argument that names nothing to check: exit code 2, before any folder is checked. */
export class CheckUsageError extends Error {
  readonly code = 'usage';
  constructor(message: string) {
    super(message);
    this.name = 'CheckUsageError';
  }
}

/** `models/x` when under `cwd`, the absolute path otherwise. */
export function shownPath(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return rel === '' ? '.' : !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

const isFolder = (path: string) => {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
};
const holdsConfig = (folder: string) =>
  existsSync(join(folder, MODEL_CONFIG_FILE)) || existsSync(join(folder, 'model.yml'));

/**
 * The model folders `args` name, in order: a folder holding a `model.yaml` (or a misnamed `model.yml`, which
 * the check then reports), or a folder of such folders (a whole `MODELS_DIR`), each of its model folders in
 * name order, each once. Throws {@link CheckUsageError} for a path that does not exist, is not a folder, or holds no
 * model.
 */
export function modelFolders(args: readonly string[], cwd: string): string[] {
  const out: string[] = [];
  for (const arg of args) {
    const path = resolve(cwd, arg);
    if (!existsSync(path)) throw new CheckUsageError(`${arg} does not exist`);
    if (!isFolder(path)) {
      throw new CheckUsageError(
        `${arg} is not a folder: give a model folder (models/<id>), not a file in it`,
      );
    }
    if (holdsConfig(path)) {
      out.push(path);
      continue;
    }
    const inner = readdirSync(path)
      .filter((name) => !name.startsWith('.'))
      .sort()
      .map((name) => join(path, name))
      .filter((folder) => isFolder(folder) && holdsConfig(folder));
    if (inner.length === 0) {
      throw new CheckUsageError(
        `${arg} holds no ${MODEL_CONFIG_FILE}, nor do its sub-folders: give a model folder (models/<id>)`,
      );
    }
    out.push(...inner);
  }
  return [...new Set(out)];
}

/** Checks one model folder; never throws for what is wrong with the model (that is a problem in the report). */
export async function checkModelFolder(
  folder: string,
  options: { readonly profiles: ProfileLookup; readonly cwd?: string },
): Promise<FolderReport> {
  const cwd = options.cwd ?? process.cwd();
  const dir = resolve(cwd, folder);
  const yaml = shownPath(join(dir, MODEL_CONFIG_FILE), cwd);
  const problems: CheckProblem[] = [];
  const report = (
    config: ModelConfig | null,
    found: Partial<Pick<FolderReport, 'inputs' | 'outputs' | 'dryRuns'>> = {},
  ): FolderReport => ({
    folder: shownPath(dir, cwd),
    model: config?.id ?? null,
    ok: problems.length === 0,
    problems,
    inputs: found.inputs ?? null,
    outputs: found.outputs ?? null,
    dryRuns: found.dryRuns ?? [],
    device: config?.device ?? null,
  });

  if (!existsSync(join(dir, MODEL_CONFIG_FILE)) && existsSync(join(dir, 'model.yml'))) {
    problems.push({
      file: shownPath(join(dir, 'model.yml'), cwd),
      field: '',
      message: `is not read: name it ${MODEL_CONFIG_FILE}`,
    });
    return report(null);
  }
  let config: ModelConfig;
  try {
    config = loadModelConfig(dir, cwd);
  } catch (error) {
    if (!(error instanceof ModelConfigError)) throw error;
    problems.push({ file: error.source, field: error.field, message: error.reason });
    return report(null);
  }
  try {
    checkModelAgainstProfiles(config, options.profiles, cwd);
  } catch (error) {
    if (!(error instanceof ModelConfigError)) throw error;
    // Not fatal to the check: the file can still be compared with the yaml.
    problems.push({ file: error.source, field: error.field, message: error.reason });
  }

  const onnxFile = shownPath(config.file, cwd);
  let session: InferenceSession;
  try {
    session = await openSession(config, ['cpu']);
  } catch (error) {
    if (!(error instanceof ModelLoadError)) throw error;
    switch (error.stage) {
      case 'file':
        problems.push({ file: yaml, field: 'file', message: `names ${onnxFile}, which does not exist` });
        break;
      case 'interface':
        for (const p of error.problems) problems.push({ file: yaml, ...p });
        return report(config, error.found ?? {});
      case 'session':
      case 'dry_run':
        problems.push({ file: onnxFile, field: '', message: `ONNX Runtime cannot open it: ${error.reason}` });
        break;
    }
    return report(config);
  }
  const found = {
    inputs: session.inputMetadata.map(describeValue),
    outputs: session.outputMetadata.map(describeValue),
    dryRuns: [] as number[],
  };
  try {
    // The server's warm-up is a batch of 1; a batch of 2 finds a graph that fixes the batch inside it (a
    // reshape to 1 row, say) behind a dynamic declared dimension.
    for (const size of config.maxBatchSize > 1 ? [1, 2] : [1]) {
      try {
        await dryRun(session, config, size);
        found.dryRuns.push(size);
      } catch (error) {
        if (!(error instanceof ModelLoadError)) throw error;
        problems.push({ file: onnxFile, field: '', message: error.reason });
        break;
      }
    }
  } finally {
    await session.release();
  }
  return report(config, found);
}

/** The text form: one line per problem, then one line per folder saying whether it is valid. */
export function formatReports(reports: readonly FolderReport[]): string {
  const lines: string[] = [];
  for (const r of reports) {
    for (const p of r.problems) lines.push(`${p.file}: ${p.field === '' ? '' : `${p.field}: `}${p.message}`);
    if (r.ok) {
      const runs =
        r.dryRuns.length === 1 ? `a batch of ${r.dryRuns[0]}` : `batches of ${r.dryRuns.join(' and ')}`;
      const cuda = r.device === 'cuda' ? '; device cuda, checked on the CPU' : '';
      lines.push(
        `${r.folder}: valid: inputs ${(r.inputs ?? []).join(', ')}; outputs ${(r.outputs ?? []).join(', ')}; dry run of ${runs} passed${cuda}`,
      );
    } else {
      const n = r.problems.length;
      lines.push(`${r.folder}: invalid: ${n} ${n === 1 ? 'problem' : 'problems'}`);
    }
  }
  return lines.map((l) => `${l}\n`).join('');
}

/** The `--json` form: one JSON document, snake_case keys. */
export function formatReportsJson(reports: readonly FolderReport[]): string {
  return `${JSON.stringify({
    ok: reports.every((r) => r.ok),
    folders: reports.map((r) => ({
      folder: r.folder,
      model: r.model,
      ok: r.ok,
      device: r.device,
      problems: r.problems,
      inputs: r.inputs,
      outputs: r.outputs,
      dry_run_batch_sizes: r.dryRuns,
    })),
  })}\n`;
}

export const CHECK_USAGE = `usage: npm run models:check -- [--json] [--robots-dir <dir>] <model folder>...

Checks each model folder (models/<id>, or a folder of them) as the server would load it: model.yaml, its
robot profiles, the ONNX file opened on the CPU and compared with model.yaml, and batches of zeros run.
Exit status: 0 every folder is valid, 1 one is not, 2 usage (no folder, a folder missing, a bad option).
  --json              print one JSON document instead of one line per problem
  --robots-dir <dir>  robot profiles to check robot_types against (default: ROBOTS_DIR, or config/robots)
`;

export interface CheckIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

/** Exit status: 0 every folder is valid, 1 at least one is not, 2 usage (nothing was checked). */
export async function runModelCheck(argv: readonly string[], io: CheckIo): Promise<0 | 1 | 2> {
  // The whole usage text where the command line was wrong; just the message where a path was.
  const usage = (message: string, withUsage = true): 2 => {
    io.err(`models:check: ${message}\n${withUsage ? CHECK_USAGE : ''}`);
    return 2;
  };
  let json = false;
  let robotsDir = io.env.ROBOTS_DIR ?? 'config/robots';
  const folders: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      io.out(CHECK_USAGE);
      return 0;
    } else if (arg === '--json') {
      json = true;
    } else if (arg === '--robots-dir') {
      const value = argv[++i];
      if (value === undefined || value === '') return usage('--robots-dir needs a folder');
      robotsDir = value;
    } else if (arg.startsWith('--robots-dir=')) {
      robotsDir = arg.slice('--robots-dir='.length);
    } else if (arg === '--') {
      folders.push(...argv.slice(i + 1));
      break;
    } else if (arg.startsWith('-')) {
      return usage(`unknown option ${arg}`);
    } else {
      folders.push(arg);
    }
  }
  if (folders.length === 0) return usage('give at least one model folder');
  let targets: string[];
  let profiles: ProfileLookup;
  try {
    targets = modelFolders(folders, io.cwd);
    profiles = loadRobotProfiles(resolve(io.cwd, robotsDir), io.cwd);
  } catch (error) {
    if (error instanceof CheckUsageError) return usage(error.message, false);
    // The profiles are not the model's to fix, and without them robot_types cannot be checked.
    if (error instanceof RobotProfileError)
      return usage(`${error.message} (set --robots-dir or ROBOTS_DIR)`, false);
    throw error;
  }
  const reports: FolderReport[] = [];
  for (const folder of targets) reports.push(await checkModelFolder(folder, { profiles, cwd: io.cwd }));
  io.out(json ? formatReportsJson(reports) : formatReports(reports));
  return reports.every((r) => r.ok) ? 0 : 1;
}
