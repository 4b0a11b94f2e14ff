import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ROBOTS_DIR } from '../test/profile-fixtures';
import { ALWAYS_FATAL } from './robot-profile';
import { loadRobotProfileFile, loadRobotProfiles } from './robot-profile.loader';
import { RobotProfileError } from './robot-profile.schema';

/** The repository root: the working directory the server starts in. */
const REPO_ROOT = join(ROBOTS_DIR, '../..');

/** A valid profile file for `robotType`: one joint. */
const profileYaml = (robotType: string): string =>
  [
    `robot_type: ${robotType}`,
    'action_space: joint_position',
    'dt: 0.1',
    'default_mode: clip',
    'action:',
    '  - name: j1',
    '    kind: joint',
    '    position: [-1, 1]',
    '    velocity: 1',
    '',
  ].join('\n');

/** The error that `load` throws; fails the test when it returns or throws something else. */
function loadError(load: () => unknown): RobotProfileError {
  try {
    load();
  } catch (error) {
    if (error instanceof RobotProfileError) return error;
    throw error;
  }
  throw new Error('loaded without error');
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'robot-profiles-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `text` to `name` in the temp folder and returns its path. */
function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('the shipped profiles in config/robots', () => {
  it('loadRobotProfiles(ROBOTS_DIR) returns exactly the four shipped robot types, each from its file', () => {
    const profiles = loadRobotProfiles(ROBOTS_DIR, REPO_ROOT);

    expect([...profiles.keys()]).toEqual(['aloha', 'franka_panda', 'so100', 'ur5e']);
    for (const [robotType, profile] of profiles) {
      expect(profile.robotType).toBe(robotType);
      expect(profile.source).toBe(`config/robots/${robotType}.yaml`);
    }
  });

  it.each([
    ['franka_panda', 8, 7, 1],
    ['ur5e', 6, 6, 0],
    ['so100', 6, 5, 1],
    ['aloha', 14, 12, 2],
  ])(
    '%s: %i dimensions (%i joints, %i grippers), every limit usable',
    (robotType, dims, joints, grippers) => {
      const profile = loadRobotProfileFile(join(ROBOTS_DIR, `${robotType}.yaml`), REPO_ROOT);

      expect(profile.robotType).toBe(robotType);
      expect(profile.actionSpace).toBe('joint_position');
      expect(profile.workspace).toBeNull();
      expect(profile.requireState).toBe(false);
      expect(profile.fatal).toEqual(ALWAYS_FATAL);
      expect(profile.dt).toBeGreaterThan(0);
      expect(profile.dimensions).toHaveLength(dims);
      expect(profile.dimensions.filter((d) => d.kind === 'joint')).toHaveLength(joints);
      expect(profile.dimensions.filter((d) => d.kind === 'gripper')).toHaveLength(grippers);
      expect(new Set(profile.dimensions.map((d) => d.name)).size).toBe(dims);
      // Finite min < max everywhere; velocity > 0, and finite on joints (a gripper may have none).
      const unusable = profile.dimensions.filter(
        (d) =>
          !(Number.isFinite(d.min) && Number.isFinite(d.max) && d.min < d.max) ||
          !(d.velocity > 0) ||
          (d.kind === 'joint' && !Number.isFinite(d.velocity)),
      );
      expect(unusable).toEqual([]);
    },
  );
});

describe('loadRobotProfiles: the folder', () => {
  it('loads every .yaml and .yml file (any case), keyed by robot type', () => {
    write('b_arm.yaml', profileYaml('b_arm'));
    write('a_arm.yml', profileYaml('a_arm'));
    write('c_arm.YAML', profileYaml('c_arm'));

    const profiles = loadRobotProfiles(dir, dir);

    expect([...profiles.keys()]).toEqual(['a_arm', 'b_arm', 'c_arm']);
    expect(profiles.get('a_arm')?.source).toBe('a_arm.yml');
    expect(profiles.get('b_arm')?.source).toBe('b_arm.yaml');
  });

  it('ignores hidden files, other extensions and sub-folders', () => {
    write('arm.yaml', profileYaml('arm'));
    write('.draft.yaml', 'not: [valid');
    write('.hidden.yml', profileYaml('hidden'));
    write('README.md', '# profiles');
    write('notes.txt', 'robot_type: nope');
    write('arm.yaml.bak', 'not: [valid');
    write('arm.json', '{}');
    mkdirSync(join(dir, 'old'));
    write('old/legacy.yaml', 'not: [valid');

    expect([...loadRobotProfiles(dir, dir).keys()]).toEqual(['arm']);
  });

  const notAFolder = 'is not a folder of robot profiles; set ROBOTS_DIR to one';
  const noProfiles = 'holds no robot profiles (<robot_type>.yaml); safety checks need one';

  it.each<[string, (root: string) => string, string]>([
    ['a missing folder', (root) => join(root, 'missing'), notAFolder],
    ['a file given as the folder', (root) => join(root, 'arm.yaml'), notAFolder],
    ['an empty folder', (root) => join(root, 'empty'), noProfiles],
    ['a folder with only a README.md', (root) => join(root, 'readme_only'), noProfiles],
    ['a folder with only hidden profiles', (root) => join(root, 'hidden_only'), noProfiles],
  ])('%s fails closed', (_case, target, reason) => {
    write('arm.yaml', profileYaml('arm'));
    mkdirSync(join(dir, 'empty'));
    mkdirSync(join(dir, 'readme_only'));
    write('readme_only/README.md', '# robots');
    mkdirSync(join(dir, 'hidden_only'));
    write('hidden_only/.arm.yaml', profileYaml('arm'));
    const path = target(dir);

    const error = loadError(() => loadRobotProfiles(path, dir));

    expect(error.source).toBe(relative(dir, path));
    expect(error.field).toBe('');
    expect(error.message).toBe(`${relative(dir, path)}: ${reason}`);
  });

  it('two files defining the same robot type (x.yaml and x.yml) fail closed, naming both', () => {
    write('x.yaml', profileYaml('x'));
    write('x.yml', profileYaml('x'));

    const error = loadError(() => loadRobotProfiles(dir, dir));

    expect(error.source).toBe('x.yml');
    expect(error.field).toBe('robot_type');
    expect(error.message).toBe('x.yml: robot_type: x is also defined in x.yaml');
  });

  it('one invalid file among valid ones fails the whole folder', () => {
    write('a_arm.yaml', profileYaml('a_arm'));
    write('b_arm.yaml', profileYaml('b_arm').replace('velocity: 1', 'velocity: 0'));
    write('c_arm.yaml', profileYaml('c_arm'));

    const error = loadError(() => loadRobotProfiles(dir, dir));

    expect(error.message).toBe('b_arm.yaml: action[0].velocity: must be greater than 0');
  });
});

describe('loadRobotProfileFile: a file that is not a usable profile fails closed', () => {
  it.each<[string, string, string, string]>([
    [
      'a file name with capitals and a dash',
      'Franka-Panda.yaml',
      profileYaml('franka_panda'),
      'the file name must be <robot_type>.yaml (lower-case letters, digits, _)',
    ],
    [
      'a file name with a space',
      'my arm.yaml',
      profileYaml('my_arm'),
      'the file name must be <robot_type>.yaml (lower-case letters, digits, _)',
    ],
    [
      'a file name starting with _',
      '_arm.yaml',
      profileYaml('_arm'),
      'the file name must be <robot_type>.yaml (lower-case letters, digits, _)',
    ],
    ['an empty file', 'arm.yaml', '', 'must be a mapping of profile fields'],
    ['a file with only a comment', 'arm.yaml', '# todo\n', 'must be a mapping of profile fields'],
    ['a YAML list', 'arm.yaml', '- robot_type: arm\n', 'must be a mapping of profile fields'],
    ['a YAML string', 'arm.yaml', 'robot_type arm\n', 'must be a mapping of profile fields'],
  ])('%s (%s)', (_case, name, text, reason) => {
    const path = write(name, text);

    expect(() => loadRobotProfileFile(path, dir)).toThrow(RobotProfileError);
    const error = loadError(() => loadRobotProfileFile(path, dir));
    expect(error.source).toBe(name);
    expect(error.field).toBe('');
    expect(error.message).toBe(`${name}: ${reason}`);
  });

  it('robot_type different from the file name', () => {
    const path = write('ur5e.yaml', profileYaml('ur10e'));

    const error = loadError(() => loadRobotProfileFile(path, dir));

    expect(error.field).toBe('robot_type');
    expect(error.message).toBe(
      'ur5e.yaml: robot_type: is ur10e, but the file is named ur5e.yaml; they must match',
    );
  });

  it('robot_type different from the name of a .yml file', () => {
    const path = write('ur5e.yml', profileYaml('ur10e'));

    const error = loadError(() => loadRobotProfileFile(path, dir));

    expect(error.source).toBe('ur5e.yml');
    expect(error.field).toBe('robot_type');
    expect(error.reason).toBe('is ur10e, but the file is named ur5e.yml; they must match');
  });

  it('a file over 256 KiB is refused before it is parsed; one of exactly 256 KiB loads', () => {
    const limit = 256 * 1024;
    const body = profileYaml('arm');
    const padded = (size: number) => body + '#'.repeat(size - Buffer.byteLength(body) - 1) + '\n';
    const path = write('arm.yaml', padded(limit + 1));

    const error = loadError(() => loadRobotProfileFile(path, dir));
    expect(error.field).toBe('');
    expect(error.message).toBe('arm.yaml: is larger than 262144 bytes');

    write('arm.yaml', padded(limit));
    expect(loadRobotProfileFile(path, dir).robotType).toBe('arm');
  });

  it('a folder named like a profile cannot be read', () => {
    mkdirSync(join(dir, 'arm.yaml'));

    const error = loadError(() => loadRobotProfiles(dir, dir));

    expect(error.message).toBe('arm.yaml: cannot be read (EISDIR)');
  });

  it('a missing file cannot be read', () => {
    const error = loadError(() => loadRobotProfileFile(join(dir, 'arm.yaml'), dir));

    expect(error.message).toBe('arm.yaml: cannot be read (ENOENT)');
  });
});

describe('loadRobotProfileFile: YAML problems', () => {
  const base = profileYaml('arm');
  /** [case, text, first line of the parser's message, the line and column it points at]. */
  const problems: [string, string, string, string][] = [
    [
      'a duplicate key (an error, not a silent override)',
      base.replace('dt: 0.1\n', 'dt: 0.1\ndt: 5\n'),
      'Map keys must be unique',
      'line 4, column 1',
    ],
    [
      'a duplicate key inside an action entry',
      base.replace('    velocity: 1\n', '    velocity: 1\n    velocity: 100\n'),
      'Map keys must be unique',
      'line 10, column 5',
    ],
    [
      'an unclosed flow sequence',
      base.replace('[-1, 1]', '[-1, 1'),
      'Flow sequence in block collection must be sufficiently indented and end with a ]',
      'line 9, column 5',
    ],
    [
      'a tab as indentation',
      base.replace('  - name', '\t- name'),
      'Tabs are not allowed as indentation',
      'line 6, column 1',
    ],
    [
      'an unclosed quote',
      base.replace('kind: joint', 'kind: "joint'),
      'Missing closing "quote',
      'line 10, column 1',
    ],
    [
      'two documents in one file',
      `${base}---\n${base}`,
      'Source contains multiple documents; please use YAML.parseAllDocuments()',
      'line 10, column 1',
    ],
    [
      'an unknown directive (a warning)',
      `%FOO bar\n---\n${base}`,
      'Unknown directive %FOO',
      'line 1, column 1',
    ],
  ];

  it.each(problems)('%s fails closed with the parser message', (_case, text, reason) => {
    const path = write('arm.yaml', text);

    expect(() => loadRobotProfileFile(path, dir)).toThrow(RobotProfileError);
    const error = loadError(() => loadRobotProfileFile(path, dir));
    expect(error.source).toBe('arm.yaml');
    expect(error.reason).toBe(reason);
    expect(error.message).toContain('arm.yaml: ');
  });

  it.each(problems)('%s names the line and column', (_case, text, reason, where) => {
    const path = write('arm.yaml', text);

    const error = loadError(() => loadRobotProfileFile(path, dir));
    expect(error.field).toBe(where);
    expect(error.message).toBe(`arm.yaml: ${where}: ${reason}`);
  });

  it.each([
    ['NaN', '.nan'],
    ['Infinity', '.inf'],
    ['a quoted number', '"1"'],
  ])('a velocity of %s is refused', (_case, value) => {
    const path = write('arm.yaml', base.replace('velocity: 1', `velocity: ${value}`));

    const error = loadError(() => loadRobotProfileFile(path, dir));
    expect(error.message).toBe('arm.yaml: action[0].velocity: must be a number');
  });
});

/**
 * With `maxAliasCount: 0`, yaml's `toJS` throws on the first alias it meets (`Alias resolution is disabled`),
 * so no document that uses one ever reaches the schema: anchors alone change nothing. The loader turns that
 * into a RobotProfileError naming the file, so start-up says which one to fix.
 */
describe('loadRobotProfileFile: YAML anchors and aliases (maxAliasCount 0)', () => {
  const base = profileYaml('arm');

  it('an anchor that is never referenced is harmless', () => {
    const path = write('arm.yaml', base.replace('position: [-1, 1]', 'position: &limits [-1, 1]'));

    expect(loadRobotProfileFile(path, dir).dimensions).toEqual([
      { name: 'j1', kind: 'joint', min: -1, max: 1, velocity: 1 },
    ]);
  });

  it.each([
    [
      'an aliased limit',
      base.replace('position: [-1, 1]', 'position: &limits [-1, 1]') +
        '  - name: j2\n    kind: joint\n    position: *limits\n    velocity: 1\n',
    ],
    ['an aliased action entry', base.replace('  - name: j1', '  - &j1\n    name: j1') + '  - *j1\n'],
    [
      'a merge key',
      base +
        '  - <<: &joint { kind: joint, position: [-1, 1], velocity: 1 }\n    name: j2\n' +
        '  - <<: *joint\n    name: j3\n',
    ],
    ['an alias to an unknown field', base.replace('dt: 0.1', 'dt: &dt 0.1') + 'extra: *dt\n'],
  ])('%s is refused: the profile does not load', (_case, text) => {
    const path = write('arm.yaml', text);

    expect(() => loadRobotProfileFile(path, dir)).toThrow(RobotProfileError);
    expect(() => loadRobotProfiles(dir, dir)).toThrow(
      /^arm\.yaml: YAML: Alias resolution is disabled: write each value out/,
    );
  });

  it('a billion-laughs document is refused without expanding it', () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++) {
      const [prev, next] = [String.fromCharCode(96 + i), String.fromCharCode(97 + i)];
      lines.push(`${next}: &${next} [${Array.from({ length: 10 }, () => `*${prev}`).join(', ')}]`);
    }
    const path = write('arm.yaml', `${lines.join('\n')}\n`);

    expect(() => loadRobotProfileFile(path, dir)).toThrow(/^arm\.yaml: YAML: Alias resolution is disabled/);
  });
});

describe('the source shown in profiles and errors', () => {
  it('is relative to cwd for a file inside it', () => {
    mkdirSync(join(dir, 'config/robots'), { recursive: true });
    const path = write('config/robots/arm.yaml', profileYaml('arm'));

    expect(loadRobotProfileFile(path, dir).source).toBe(join('config', 'robots', 'arm.yaml'));
    expect(loadRobotProfiles(join(dir, 'config/robots'), dir).get('arm')?.source).toBe(
      join('config', 'robots', 'arm.yaml'),
    );
  });

  it('is absolute for a file outside cwd', () => {
    const path = write('arm.yaml', profileYaml('arm'));
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(elsewhere);

    expect(loadRobotProfileFile(path, elsewhere).source).toBe(path);
    expect(loadRobotProfiles(dir, elsewhere).get('arm')?.source).toBe(path);
  });

  it('is absolute in errors about a folder outside cwd', () => {
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(elsewhere);
    const missing = join(dir, 'missing');

    expect(loadError(() => loadRobotProfiles(missing, elsewhere)).message).toBe(
      `${missing}: is not a folder of robot profiles; set ROBOTS_DIR to one`,
    );
  });

  it('is absolute for the cwd folder itself', () => {
    expect(loadError(() => loadRobotProfiles(dir, dir)).source).toBe(dir);
  });

  it('is relative in errors about a file inside cwd, and names the file', () => {
    mkdirSync(join(dir, 'robots'));
    const path = write('robots/arm.yaml', profileYaml('arm').replace('[-1, 1]', '[1, -1]'));

    const error = loadError(() => loadRobotProfileFile(path, dir));
    expect(error.message).toBe(
      `${join('robots', 'arm.yaml')}: action[0].position: min (1) must be less than max (-1)`,
    );
  });
});
