import { readYamlConfigFile } from '@app/config-files';
import { readdirSync } from 'node:fs';
import { basename, extname, isAbsolute, join, relative } from 'node:path';
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
  const raw = readYamlConfigFile(path, MAX_PROFILE_BYTES, (field, reason) => {
    throw new RobotProfileError(source, field, reason);
  });
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
