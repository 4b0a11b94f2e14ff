import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, isAbsolute, join, relative } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { RobotProfile } from './robot-profile';
import { ROBOT_TYPE_PATTERN, RobotProfileError, parseRobotProfile } from './robot-profile.schema';

const PROFILE_EXTENSIONS = new Set(['.yaml', '.yml']);
const isProfileFile = (name: string) =>
  !name.startsWith('.') && PROFILE_EXTENSIONS.has(extname(name).toLowerCase());
/** A profile is a few kilobytes; anything much larger is not one. */
const MAX_PROFILE_BYTES = 256 * 1024;

/** `config/robots/x.yaml` when under the working directory, the absolute path otherwise. */
function displayPath(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

/**
 * Parses and validates one profile file (YAML). The file name without its extension is the robot type.
 * Throws {@link RobotProfileError} naming the file and the field (or line and column for YAML syntax).
 */
export function loadRobotProfileFile(path: string, cwd = process.cwd()): RobotProfile {
  const source = displayPath(path, cwd);
  const robotType = basename(path, extname(path));
  if (!ROBOT_TYPE_PATTERN.test(robotType)) {
    throw new RobotProfileError(
      source,
      '',
      'the file name must be <robot_type>.yaml (lower-case letters, digits, _)',
    );
  }
  let text: string;
  try {
    if (statSync(path).size > MAX_PROFILE_BYTES) {
      throw new RobotProfileError(source, '', `is larger than ${MAX_PROFILE_BYTES} bytes`);
    }
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof RobotProfileError) throw error;
    throw new RobotProfileError(
      source,
      '',
      `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  // uniqueKeys (the default) makes a repeated key an error rather than a silent override.
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) {
    const at = lineCounter.linePos(problem.pos[0]);
    throw new RobotProfileError(source, `line ${at.line}, column ${at.col}`, problem.message.split('\n')[0]);
  }
  let raw: unknown;
  try {
    // No aliases: a profile is small and explicit, and this shuts out alias bombs.
    raw = doc.toJS({ maxAliasCount: 0 });
  } catch (error) {
    throw new RobotProfileError(
      source,
      'YAML',
      `${error instanceof Error ? error.message : String(error)}: write each value out instead of using anchors and aliases`,
    );
  }
  return parseRobotProfile(raw, source, robotType, basename(path));
}

/**
 * Loads every `*.yaml` / `*.yml` profile in `dir`, keyed by robot type. Fails closed: a missing folder, a
 * folder without profiles, or any invalid file throws {@link RobotProfileError}, so the server never starts
 * with safety checks it cannot perform.
 */
export function loadRobotProfiles(dir: string, cwd = process.cwd()): ReadonlyMap<string, RobotProfile> {
  const shown = displayPath(dir, cwd);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new RobotProfileError(
      shown,
      '',
      code === 'ENOENT' || code === 'ENOTDIR'
        ? 'is not a folder of robot profiles; set ROBOTS_DIR to one'
        : `cannot be read (${code ?? 'error'})`,
    );
  }
  const files = names
    .filter(isProfileFile)
    .sort()
    .map((n) => join(dir, n));
  if (files.length === 0) {
    throw new RobotProfileError(
      shown,
      '',
      'holds no robot profiles (<robot_type>.yaml); safety checks need one',
    );
  }
  const profiles = new Map<string, RobotProfile>();
  for (const file of files) {
    const profile = loadRobotProfileFile(file, cwd);
    const other = profiles.get(profile.robotType);
    if (other !== undefined) {
      throw new RobotProfileError(
        profile.source,
        'robot_type',
        `${profile.robotType} is also defined in ${other.source}`,
      );
    }
    profiles.set(profile.robotType, profile);
  }
  return profiles;
}
