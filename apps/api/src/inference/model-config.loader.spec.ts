import { type RobotProfile, loadRobotProfiles } from '@app/safety';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelConfig } from './model-config';
import { checkModelAgainstProfiles, loadModelConfig, loadModelConfigs } from './model-config.loader';
import { ModelConfigError, parseModelConfig } from './model-config.schema';

/** The repository root, and the robot profiles it ships. */
const REPO_ROOT = join(__dirname, '../../../..');
const ROBOTS_DIR = join(REPO_ROOT, 'config/robots');

/** A valid model.yaml for `id`: one image, an 8-value state, 10 x 8 actions, for franka_panda. */
const modelYaml = (id: string, extra = ''): string =>
  [
    `id: ${id}`,
    'version: "1.0.0"',
    'backend: onnx',
    'file: model.onnx',
    'control_hz: 15',
    'robot_types: [franka_panda]',
    'inputs:',
    '  images:',
    '    - name: primary',
    '      tensor: image',
    '      height: 224',
    '      width: 224',
    '      channels: 3',
    '  state:',
    '    tensor: state',
    '    size: 8',
    'outputs:',
    '  actions:',
    '    tensor: actions',
    '    horizon: 10',
    '    dim: 8',
    extra,
  ].join('\n');

/** The error that `load` throws; fails the test when it returns or throws something else. */
function loadError(load: () => unknown): ModelConfigError {
  try {
    load();
  } catch (error) {
    if (error instanceof ModelConfigError) return error;
    throw error;
  }
  throw new Error('loaded without error');
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'model-configs-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `text` to `name` (folders created) in the temp folder and returns its path. */
function write(name: string, text: string): string {
  const path = join(dir, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
  return path;
}

/** Writes `models/<id>/model.yaml` and returns the model folder. */
function writeModel(id: string, text = modelYaml(id)): string {
  write(`models/${id}/model.yaml`, text);
  return join(dir, 'models', id);
}

describe('loadModelConfigs: a folder of models', () => {
  it('loads every sub-folder holding a model.yaml, sorted by id, and ignores everything else', () => {
    writeModel('zeta-policy');
    writeModel('alpha.v2');
    writeModel('mid_policy');
    write('models/scripts/build-demo-model.ts', '// builds the demo model\n');
    write('models/README.md', '# models\n');
    write('models/.cache/model.yaml', 'not: a model\n');

    const configs = loadModelConfigs(join(dir, 'models'), dir);

    expect(configs.map((c) => c.id)).toEqual(['alpha.v2', 'mid_policy', 'zeta-policy']);
    expect(configs.map((c) => c.dir)).toEqual([
      join(dir, 'models', 'alpha.v2'),
      join(dir, 'models', 'mid_policy'),
      join(dir, 'models', 'zeta-policy'),
    ]);
  });

  it('builds the whole config, file resolved to an absolute path that need not exist yet', () => {
    writeModel('demo-policy');

    const [config] = loadModelConfigs(join(dir, 'models'), dir);

    expect(config).toEqual(
      parseModelConfig(
        {
          id: 'demo-policy',
          version: '1.0.0',
          backend: 'onnx',
          file: 'model.onnx',
          control_hz: 15,
          robot_types: ['franka_panda'],
          inputs: {
            images: [{ name: 'primary', tensor: 'image', height: 224, width: 224, channels: 3 }],
            state: { tensor: 'state', size: 8 },
          },
          outputs: { actions: { tensor: 'actions', horizon: 10, dim: 8 } },
        },
        { file: 'unused', dir: join(dir, 'models', 'demo-policy') },
      ),
    );
    expect(config.file).toBe(join(dir, 'models', 'demo-policy', 'model.onnx'));
  });

  it('a relative folder resolves against cwd', () => {
    writeModel('demo-policy');

    expect(loadModelConfigs('models', dir)[0].file).toBe(join(dir, 'models', 'demo-policy', 'model.onnx'));
  });

  it('follows a model folder that is a symbolic link (a mounted volume)', () => {
    write('elsewhere/linked-policy/model.yaml', modelYaml('linked-policy'));
    mkdirSync(join(dir, 'models'));
    symlinkSync(join(dir, 'elsewhere', 'linked-policy'), join(dir, 'models', 'linked-policy'), 'dir');

    const [config] = loadModelConfigs(join(dir, 'models'), dir);

    expect(config.id).toBe('linked-policy');
    expect(config.file).toBe(join(dir, 'models', 'linked-policy', 'model.onnx'));
  });

  const notAFolder = 'is not a folder of models; set MODELS_DIR to one';
  const noModels = 'holds no models (<id>/model.yaml); set MODELS_DIR to a folder of models';

  it.each<[string, string, string]>([
    ['a missing folder', 'missing', notAFolder],
    ['a file given as the folder', 'README.md', notAFolder],
    ['an empty folder', 'empty', noModels],
    ['a folder with only a scripts folder and a README', 'scripts_only', noModels],
    ['a folder with only a hidden model', 'hidden_only', noModels],
  ])('%s fails closed, saying to set MODELS_DIR', (_case, target, reason) => {
    write('README.md', '# readme\n');
    mkdirSync(join(dir, 'empty'));
    write('scripts_only/scripts/build.ts', '// build\n');
    write('scripts_only/README.md', '# models\n');
    write('hidden_only/.demo/model.yaml', modelYaml('demo'));

    const error = loadError(() => loadModelConfigs(join(dir, target), dir));

    expect(error.code).toBe('invalid_model_config');
    expect(error.source).toBe(target);
    expect(error.field).toBe('');
    expect(error.message).toBe(`${target}: ${reason}`);
  });

  it('a missing folder outside cwd is named by its absolute path', () => {
    const missing = join(dir, 'missing');
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(elsewhere);

    expect(loadError(() => loadModelConfigs(missing, elsewhere)).message).toBe(`${missing}: ${notAFolder}`);
  });

  it('a config named model.yml is not skipped silently', () => {
    writeModel('a-policy');
    write('models/b-policy/model.yml', modelYaml('b-policy'));

    const error = loadError(() => loadModelConfigs(join(dir, 'models'), dir));

    expect(error.message).toBe(`${join('models', 'b-policy', 'model.yml')}: is not read: name it model.yaml`);
  });

  it('one invalid model among valid ones fails the whole folder, naming its file and field', () => {
    writeModel('a-policy');
    writeModel('b-policy', modelYaml('b-policy').replace('height: 224', 'height: 0'));
    writeModel('c-policy');

    const error = loadError(() => loadModelConfigs(join(dir, 'models'), dir));

    expect(error.source).toBe(join('models', 'b-policy', 'model.yaml'));
    expect(error.field).toBe('inputs.images[0].height');
    expect(error.message).toBe(
      `${join('models', 'b-policy', 'model.yaml')}: inputs.images[0].height: must be an integer from 1 to 4096`,
    );
  });

  it('a model.yaml that is a folder cannot be read', () => {
    mkdirSync(join(dir, 'models', 'demo', 'model.yaml'), { recursive: true });

    expect(loadError(() => loadModelConfigs(join(dir, 'models'), dir)).message).toBe(
      `${join('models', 'demo', 'model.yaml')}: cannot be read (EISDIR)`,
    );
  });
});

describe('loadModelConfig: one model folder', () => {
  const source = join('models', 'demo-policy', 'model.yaml');
  const load = (text: string) => loadModelConfig(writeModel('demo-policy', text), dir);

  it('file: ../x.onnx is refused', () => {
    const error = loadError(() =>
      load(modelYaml('demo-policy').replace('file: model.onnx', 'file: ../x.onnx')),
    );

    expect(error.message).toBe(`${source}: file: must stay inside the model folder (no ..)`);
  });

  it('file: an absolute path is refused', () => {
    const error = loadError(() =>
      load(modelYaml('demo-policy').replace('file: model.onnx', 'file: /srv/models/x.onnx')),
    );

    expect(error.message).toBe(`${source}: file: must be relative to the model folder, not an absolute path`);
  });

  it('an id different from the folder name is refused', () => {
    const error = loadError(() => load(modelYaml('other-policy')));

    expect(error.field).toBe('id');
    expect(error.message).toBe(
      `${source}: id: is other-policy, but the folder is named demo-policy; they must match`,
    );
  });

  it('a folder whose name cannot be an id is refused before its config is read', () => {
    const folder = join(dir, 'models', 'Demo Policy');
    write('models/Demo Policy/model.yaml', modelYaml('demo-policy'));

    const error = loadError(() => loadModelConfig(folder, dir));

    expect(error.source).toBe(join('models', 'Demo Policy', 'model.yaml'));
    expect(error.message).toBe(
      `${join('models', 'Demo Policy', 'model.yaml')}: the folder name must be the model id (lower-case letters, digits, ., _ and -, at most 64)`,
    );
  });

  it('an unquoted version that YAML reads as a number gets a hint to quote it', () => {
    const error = loadError(() => load(modelYaml('demo-policy').replace('version: "1.0.0"', 'version: 1.0')));

    expect(error.message).toBe(
      `${source}: version: must be a string: put it in quotes (YAML reads 1.0 as a number)`,
    );
  });

  it.each([
    ['.nan', 'must be a finite number'],
    ['.inf', 'must be a finite number'],
    ['-.inf', 'must be a finite number'],
    ['-15', 'must be greater than 0'],
    ['"15"', 'must be a finite number'],
  ])('control_hz: %s is refused', (value, reason) => {
    const error = loadError(() =>
      load(modelYaml('demo-policy').replace('control_hz: 15', `control_hz: ${value}`)),
    );

    expect(error.message).toBe(`${source}: control_hz: ${reason}`);
  });

  it.each([
    ['an empty file', ''],
    ['a file with only a comment', '# todo\n'],
    ['a YAML list', '- id: demo-policy\n'],
  ])('%s is not a mapping of fields', (_case, text) => {
    expect(loadError(() => load(text)).message).toBe(`${source}: must be a mapping of model config fields`);
  });

  it('a misspelt key is named', () => {
    const error = loadError(() =>
      load(modelYaml('demo-policy').replace('    horizon: 10', '    horizen: 10')),
    );

    expect(error.message).toBe(`${source}: outputs.actions.horizen: is not a model config field`);
  });

  it('a file over 256 KiB is refused before it is parsed; one of exactly 256 KiB loads', () => {
    const limit = 256 * 1024;
    const body = modelYaml('demo-policy');
    const padded = (size: number) => body + '#'.repeat(size - Buffer.byteLength(body) - 1) + '\n';

    expect(loadError(() => load(padded(limit + 1))).message).toBe(`${source}: is larger than 262144 bytes`);
    expect(load(padded(limit)).id).toBe('demo-policy');
  });

  it('a missing model.yaml cannot be read', () => {
    mkdirSync(join(dir, 'models', 'demo-policy'), { recursive: true });

    expect(loadError(() => loadModelConfig(join(dir, 'models', 'demo-policy'), dir)).message).toBe(
      `${source}: cannot be read (ENOENT)`,
    );
  });
});

describe('loadModelConfig: YAML problems name the line and column', () => {
  const base = modelYaml('demo-policy');
  const source = join('models', 'demo-policy', 'model.yaml');

  it.each<[string, string, string, string]>([
    [
      'a duplicate key (an error, not a silent override)',
      base.replace('control_hz: 15\n', 'control_hz: 15\ncontrol_hz: 500\n'),
      'line 6, column 1',
      'Map keys must be unique',
    ],
    [
      'a duplicate key inside an image',
      base.replace('      height: 224\n', '      height: 224\n      height: 4000\n'),
      'line 12, column 7',
      'Map keys must be unique',
    ],
    [
      'an unclosed flow sequence',
      base.replace('[franka_panda]', '[franka_panda'),
      'line 7, column 1',
      'Flow sequence in block collection must be sufficiently indented and end with a ]',
    ],
    [
      'a tab as indentation',
      base.replace('  state:', '\tstate:'),
      'line 14, column 1',
      'Tabs are not allowed as indentation',
    ],
    [
      'two documents in one file',
      `${base}\n---\n${base}`,
      'line 23, column 1',
      'Source contains multiple documents; please use YAML.parseAllDocuments()',
    ],
  ])('%s', (_case, text, where, reason) => {
    const error = loadError(() => loadModelConfig(writeModel('demo-policy', text), dir));

    expect(error.field).toBe(where);
    expect(error.reason).toBe(reason);
    expect(error.message).toBe(`${source}: ${where}: ${reason}`);
  });

  it.each([
    [
      'an aliased value',
      base.replace('height: 224', 'height: &side 224').replace('width: 224', 'width: *side'),
    ],
    [
      'a merge key',
      base.replace('  state:\n    tensor: state', '  state:\n    <<: &s { tensor: state }') + 'extra: *s\n',
    ],
  ])('%s is refused: anchors and aliases are not allowed', (_case, text) => {
    const error = loadError(() => loadModelConfig(writeModel('demo-policy', text), dir));

    expect(error.field).toBe('YAML');
    expect(error.message).toMatch(
      /^models\/demo-policy\/model\.yaml: YAML: Alias resolution is disabled: write each value out/,
    );
  });

  it('an anchor that is never referenced is harmless', () => {
    const text = base.replace('height: 224', 'height: &side 224');

    expect(loadModelConfig(writeModel('demo-policy', text), dir).inputs.images[0].height).toBe(224);
  });
});

describe('checkModelAgainstProfiles: a model against the shipped robot profiles', () => {
  const profiles = loadRobotProfiles(ROBOTS_DIR, REPO_ROOT);

  /** A model for `robotTypes` with `dim` action dimensions and a state of `size` values. */
  function model(robotTypes: string[], dim: number, size = dim): ModelConfig {
    writeModel(
      'demo-policy',
      modelYaml('demo-policy')
        .replace('[franka_panda]', `[${robotTypes.join(', ')}]`)
        .replace('dim: 8', `dim: ${dim}`)
        .replace('size: 8', `size: ${size}`),
    );
    return loadModelConfig(join(dir, 'models', 'demo-policy'), dir);
  }
  const source = join('models', 'demo-policy', 'model.yaml');

  it('the shipped profiles have the action dimensions these tests assume', () => {
    expect(
      Object.fromEntries([...profiles].map(([robotType, p]) => [robotType, p.dimensions.length])),
    ).toEqual({ aloha: 14, franka_panda: 8, so100: 6, ur5e: 6 });
  });

  it.each<[string[], number]>([
    [['franka_panda'], 8],
    [['ur5e', 'so100'], 6],
    [['aloha'], 14],
  ])('%p with dim %p passes', (robotTypes, dim) => {
    expect(() => checkModelAgainstProfiles(model(robotTypes, dim), profiles, dir)).not.toThrow();
  });

  it('a state of another size is fine where the profile does not require the state', () => {
    expect(profiles.get('franka_panda')?.requireState).toBe(false);
    expect(() => checkModelAgainstProfiles(model(['franka_panda'], 8, 3), profiles, dir)).not.toThrow();
  });

  it('a robot type without a profile is refused, naming its place in robot_types', () => {
    const error = loadError(() => checkModelAgainstProfiles(model(['ur5e', 'kuka_iiwa'], 6), profiles, dir));

    expect(error.code).toBe('invalid_model_config');
    expect(error.source).toBe(source);
    expect(error.field).toBe('robot_types[1]');
    expect(error.message).toBe(
      `${source}: robot_types[1]: no robot profile kuka_iiwa in ROBOTS_DIR; add kuka_iiwa.yaml there or remove it from robot_types`,
    );
  });

  it('a dim that does not match the profile is refused', () => {
    const error = loadError(() => checkModelAgainstProfiles(model(['franka_panda'], 7), profiles, dir));

    expect(error.field).toBe('outputs.actions.dim');
    expect(error.message).toBe(
      `${source}: outputs.actions.dim: is 7, but robot profile franka_panda has 8 action dimensions; they must match`,
    );
  });

  it('a dim that matches the first robot type but not the second is refused, naming the second', () => {
    const error = loadError(() =>
      checkModelAgainstProfiles(model(['ur5e', 'franka_panda'], 6), profiles, dir),
    );

    expect(error.reason).toBe(
      'is 6, but robot profile franka_panda has 8 action dimensions; they must match',
    );
  });

  describe('a profile that requires the state', () => {
    /** The shipped franka_panda profile with `require_state: true`, from a folder of its own. */
    function statefulProfiles(): ReadonlyMap<string, RobotProfile> {
      const text = readFileSync(join(ROBOTS_DIR, 'franka_panda.yaml'), 'utf8');
      write('robots/franka_panda.yaml', `${text}\nrequire_state: true\n`);
      return loadRobotProfiles(join(dir, 'robots'), dir);
    }

    it('takes a state of one value per action dimension', () => {
      const stateful = statefulProfiles();
      expect(stateful.get('franka_panda')?.requireState).toBe(true);

      expect(() => checkModelAgainstProfiles(model(['franka_panda'], 8, 8), stateful, dir)).not.toThrow();
    });

    it('refuses a state of another size', () => {
      const error = loadError(() =>
        checkModelAgainstProfiles(model(['franka_panda'], 8, 7), statefulProfiles(), dir),
      );

      expect(error.field).toBe('inputs.state.size');
      expect(error.message).toBe(
        `${source}: inputs.state.size: is 7, but robot profile franka_panda requires the state, and its safety check reads one state value per action dimension (8); they must match`,
      );
    });
  });

  it('names the config by its absolute path when it lies outside cwd', () => {
    const config = model(['kuka_iiwa'], 8);
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(elsewhere);

    expect(loadError(() => checkModelAgainstProfiles(config, profiles, elsewhere)).source).toBe(
      join(dir, 'models', 'demo-policy', 'model.yaml'),
    );
  });
});
