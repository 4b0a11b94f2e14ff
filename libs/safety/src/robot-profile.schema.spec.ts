import { ALWAYS_FATAL, type ActionSpace, type RobotProfile } from './robot-profile';
import { RobotProfileError, parseRobotProfile } from './robot-profile.schema';

/** What the loader passes: the file as shown to the operator, and the robot type its name implies. */
const SOURCE = 'config/robots/test_arm.yaml';
const EXPECTED_TYPE = 'test_arm';

type Doc = Record<string, unknown>;

/** A valid joint-space document: two joints and a gripper with a velocity, one gripper without. */
function jointDoc(overrides: Doc = {}): Doc {
  return {
    robot_type: 'test_arm',
    action_space: 'joint_position',
    dt: 0.1,
    default_mode: 'clip',
    action: [
      { name: 'j1', kind: 'joint', position: [-1, 1], velocity: 1 },
      { name: 'j2', kind: 'joint', position: [-2, 0.5], velocity: 2 },
      { name: 'grip', kind: 'gripper', range: [0, 0.08], velocity: 0.1 },
      { name: 'aux_grip', kind: 'gripper', range: [0, 1] },
    ],
    ...overrides,
  };
}

const EE_ACTION = [
  { name: 'x', kind: 'translation', velocity: 0.5 },
  { name: 'y', kind: 'translation', velocity: 0.5 },
  { name: 'z', kind: 'translation', velocity: 0.25 },
  { name: 'roll', kind: 'rotation', velocity: 2 },
  { name: 'pitch', kind: 'rotation', velocity: 2 },
  { name: 'yaw', kind: 'rotation', velocity: 3 },
  { name: 'gripper', kind: 'gripper', range: [0, 1] },
];

/** A valid end-effector document: x, y, z in a box, roll, pitch, yaw, and a gripper. */
function eeDoc(overrides: Doc = {}): Doc {
  return {
    robot_type: 'test_arm',
    action_space: 'ee_delta',
    dt: 0.05,
    default_mode: 'reject',
    workspace: { min: [0.2, -0.4, 0], max: [0.8, 0.4, 0.6] },
    action: EE_ACTION,
    ...overrides,
  };
}

/** `doc` with `action[index]` replaced (or, with `dimension` undefined, removed). */
function withDimension(doc: Doc, index: number, dimension: Doc | undefined): Doc {
  const action = [...(doc.action as Doc[])];
  if (dimension === undefined) action.splice(index, 1);
  else action[index] = dimension;
  return { ...doc, action };
}

/** `doc` without `key`. */
function without(doc: Doc, key: string): Doc {
  const copy = { ...doc };
  delete copy[key];
  return copy;
}

/** The error that parsing `raw` throws; fails the test when it parses or throws something else. */
function parseError(raw: unknown, expectedType: string | undefined = EXPECTED_TYPE): RobotProfileError {
  try {
    parseRobotProfile(raw, SOURCE, expectedType);
  } catch (error) {
    if (error instanceof RobotProfileError) return error;
    throw error;
  }
  throw new Error('the profile was accepted');
}

describe('parseRobotProfile: valid profiles build the RobotProfile', () => {
  it('joint_position: joints and grippers with their limits, Infinity for a gripper without a velocity', () => {
    const profile = parseRobotProfile(
      jointDoc({ description: 'Two joints and two grippers' }),
      SOURCE,
      EXPECTED_TYPE,
    );

    expect(profile).toEqual<RobotProfile>({
      robotType: 'test_arm',
      description: 'Two joints and two grippers',
      actionSpace: 'joint_position',
      dt: 0.1,
      defaultMode: 'clip',
      fatal: ['non_finite', 'shape', 'invalid_state'],
      requireState: false,
      dimensions: [
        { name: 'j1', kind: 'joint', min: -1, max: 1, velocity: 1 },
        { name: 'j2', kind: 'joint', min: -2, max: 0.5, velocity: 2 },
        { name: 'grip', kind: 'gripper', min: 0, max: 0.08, velocity: 0.1 },
        { name: 'aux_grip', kind: 'gripper', min: 0, max: 1, velocity: Infinity },
      ],
      workspace: null,
      source: SOURCE,
    });
  });

  it('joint_delta: the listed fatal types follow the always-fatal ones, state required by default', () => {
    const profile = parseRobotProfile(
      jointDoc({ action_space: 'joint_delta', fatal: ['velocity_limit', 'position_limit'] }),
      SOURCE,
      EXPECTED_TYPE,
    );

    expect(profile).toEqual<RobotProfile>({
      robotType: 'test_arm',
      description: '',
      actionSpace: 'joint_delta',
      dt: 0.1,
      defaultMode: 'clip',
      fatal: ['non_finite', 'shape', 'invalid_state', 'velocity_limit', 'position_limit'],
      requireState: true,
      dimensions: [
        { name: 'j1', kind: 'joint', min: -1, max: 1, velocity: 1 },
        { name: 'j2', kind: 'joint', min: -2, max: 0.5, velocity: 2 },
        { name: 'grip', kind: 'gripper', min: 0, max: 0.08, velocity: 0.1 },
        { name: 'aux_grip', kind: 'gripper', min: 0, max: 1, velocity: Infinity },
      ],
      workspace: null,
      source: SOURCE,
    });
  });

  it('ee_delta: translations take the workspace axes, rotations are unbounded', () => {
    const profile = parseRobotProfile(eeDoc({ fatal: ['workspace'] }), SOURCE, EXPECTED_TYPE);

    expect(profile).toEqual<RobotProfile>({
      robotType: 'test_arm',
      description: '',
      actionSpace: 'ee_delta',
      dt: 0.05,
      defaultMode: 'reject',
      fatal: ['non_finite', 'shape', 'invalid_state', 'workspace'],
      requireState: true,
      dimensions: [
        { name: 'x', kind: 'translation', min: 0.2, max: 0.8, velocity: 0.5 },
        { name: 'y', kind: 'translation', min: -0.4, max: 0.4, velocity: 0.5 },
        { name: 'z', kind: 'translation', min: 0, max: 0.6, velocity: 0.25 },
        { name: 'roll', kind: 'rotation', min: -Infinity, max: Infinity, velocity: 2 },
        { name: 'pitch', kind: 'rotation', min: -Infinity, max: Infinity, velocity: 2 },
        { name: 'yaw', kind: 'rotation', min: -Infinity, max: Infinity, velocity: 3 },
        { name: 'gripper', kind: 'gripper', min: 0, max: 1, velocity: Infinity },
      ],
      workspace: { min: [0.2, -0.4, 0], max: [0.8, 0.4, 0.6] },
      source: SOURCE,
    });
  });

  it('ee_delta without rotations: three translations, then grippers', () => {
    const profile = parseRobotProfile(
      eeDoc({ action: EE_ACTION.filter((d) => d.kind !== 'rotation') }),
      SOURCE,
      EXPECTED_TYPE,
    );

    expect(profile.dimensions).toEqual([
      { name: 'x', kind: 'translation', min: 0.2, max: 0.8, velocity: 0.5 },
      { name: 'y', kind: 'translation', min: -0.4, max: 0.4, velocity: 0.5 },
      { name: 'z', kind: 'translation', min: 0, max: 0.6, velocity: 0.25 },
      { name: 'gripper', kind: 'gripper', min: 0, max: 1, velocity: Infinity },
    ]);
  });

  const docOf = (space: ActionSpace, overrides: Doc): Doc =>
    space === 'ee_delta' ? eeDoc(overrides) : jointDoc({ action_space: space, ...overrides });

  it.each<[ActionSpace, boolean | undefined, boolean]>([
    ['joint_position', undefined, false],
    ['joint_position', true, true],
    ['joint_position', false, false],
    ['joint_delta', undefined, true],
    ['joint_delta', false, false],
    ['joint_delta', true, true],
    ['ee_delta', undefined, true],
    ['ee_delta', false, false],
    ['ee_delta', true, true],
  ])('%s with require_state %p: requireState is %p', (space, requireState, expected) => {
    const overrides = requireState === undefined ? {} : { require_state: requireState };
    expect(parseRobotProfile(docOf(space, overrides), SOURCE, EXPECTED_TYPE).requireState).toBe(expected);
  });

  it('a violation type listed twice is fatal once', () => {
    const profile = parseRobotProfile(
      jointDoc({ fatal: ['start_jump', 'gripper_range', 'start_jump'] }),
      SOURCE,
      EXPECTED_TYPE,
    );
    expect(profile.fatal).toEqual([...ALWAYS_FATAL, 'start_jump', 'gripper_range']);
  });

  it('every clippable violation type may be listed as fatal', () => {
    const listed = ['position_limit', 'velocity_limit', 'start_jump', 'gripper_range', 'workspace'];
    const profile = parseRobotProfile(eeDoc({ fatal: listed }), SOURCE, EXPECTED_TYPE);
    expect(profile.fatal).toEqual([...ALWAYS_FATAL, ...listed]);
  });

  it('without an expected type, robot_type is not compared with a file name', () => {
    expect(parseRobotProfile(jointDoc({ robot_type: 'built_in_code' }), 'inline').robotType).toBe(
      'built_in_code',
    );
  });

  it('is frozen, and later changes to the document do not reach it', () => {
    const doc = eeDoc({ workspace: { min: [0.2, -0.4, 0], max: [0.8, 0.4, 0.6] } });
    const profile = parseRobotProfile(doc, SOURCE, EXPECTED_TYPE);
    (doc.workspace as { min: number[] }).min[0] = -5;

    expect(profile.workspace?.min).toEqual([0.2, -0.4, 0]);
    expect(Object.isFrozen(profile)).toBe(true);
    expect(Object.isFrozen(profile.dimensions)).toBe(true);
    expect(profile.dimensions.every((d) => Object.isFrozen(d))).toBe(true);
    expect(Object.isFrozen(profile.fatal)).toBe(true);
    expect(Object.isFrozen(profile.workspace)).toBe(true);
    expect(Object.isFrozen(profile.workspace?.min)).toBe(true);
    expect(Object.isFrozen(profile.workspace?.max)).toBe(true);
  });
});

describe('parseRobotProfile: a misconfigured profile fails closed, naming the file and the field (TESTS R4)', () => {
  const joint = (fields: Doc): Doc => ({ name: 'j1', kind: 'joint', ...fields });
  const gripper = (fields: Doc): Doc => ({ name: 'grip', kind: 'gripper', ...fields });
  const ee = (index: number, dimension: Doc | undefined): Doc => withDimension(eeDoc(), index, dimension);

  /** [case, document, the field named, the reason given]. */
  const misconfigurations: [string, unknown, string, string][] = [
    // Limits: min must be strictly below max.
    [
      'joint position min > max',
      withDimension(jointDoc(), 0, joint({ position: [1, -1], velocity: 1 })),
      'action[0].position',
      'min (1) must be less than max (-1)',
    ],
    [
      'joint position min == max',
      withDimension(jointDoc(), 1, joint({ name: 'j2', position: [0.5, 0.5], velocity: 1 })),
      'action[1].position',
      'min (0.5) must be less than max (0.5)',
    ],
    [
      'gripper range min > max',
      withDimension(jointDoc(), 2, gripper({ range: [0.08, 0] })),
      'action[2].range',
      'min (0.08) must be less than max (0)',
    ],
    [
      'gripper range min == max',
      withDimension(jointDoc(), 3, gripper({ name: 'aux_grip', range: [0, 0] })),
      'action[3].range',
      'min (0) must be less than max (0)',
    ],
    [
      'joint position with three numbers',
      withDimension(jointDoc(), 0, joint({ position: [-1, 0, 1], velocity: 1 })),
      'action[0].position',
      'must be [min, max], two numbers',
    ],
    [
      'joint position with a string bound',
      withDimension(jointDoc(), 0, joint({ position: ['-1', 1], velocity: 1 })),
      'action[0].position[0]',
      'must be a number',
    ],
    [
      'joint position with an infinite bound',
      withDimension(jointDoc(), 0, joint({ position: [-Infinity, 1], velocity: 1 })),
      'action[0].position[0]',
      'must be a number',
    ],

    // A joint needs both its position limit and its velocity.
    [
      'joint without position',
      withDimension(jointDoc(), 0, joint({ velocity: 1 })),
      'action[0].position',
      'is required for a joint: [min, max]',
    ],
    [
      'joint without velocity',
      withDimension(jointDoc(), 1, joint({ name: 'j2', position: [-2, 0.5] })),
      'action[1].velocity',
      'is required for a joint (units per second)',
    ],
    [
      'gripper without range',
      withDimension(jointDoc(), 2, gripper({ velocity: 0.1 })),
      'action[2].range',
      'is required for a gripper: [min, max]',
    ],
    [
      'joint with a range instead of a position',
      withDimension(jointDoc(), 0, joint({ range: [-1, 1], velocity: 1 })),
      'action[0].range',
      'is for grippers; a joint has position: [min, max]',
    ],
    [
      'gripper with a position',
      withDimension(jointDoc(), 2, gripper({ position: [0, 0.08], range: [0, 0.08] })),
      'action[2].position',
      'is for joints; a gripper has range: [min, max]',
    ],

    // Velocities must be finite numbers above zero.
    [
      'joint velocity 0',
      withDimension(jointDoc(), 0, joint({ position: [-1, 1], velocity: 0 })),
      'action[0].velocity',
      'must be greater than 0',
    ],
    [
      'joint velocity negative',
      withDimension(jointDoc(), 0, joint({ position: [-1, 1], velocity: -1 })),
      'action[0].velocity',
      'must be greater than 0',
    ],
    [
      'joint velocity a string',
      withDimension(jointDoc(), 0, joint({ position: [-1, 1], velocity: '1' })),
      'action[0].velocity',
      'must be a number',
    ],
    [
      'joint velocity NaN (YAML .nan)',
      withDimension(jointDoc(), 0, joint({ position: [-1, 1], velocity: NaN })),
      'action[0].velocity',
      'must be a number',
    ],
    [
      'joint velocity Infinity (YAML .inf)',
      withDimension(jointDoc(), 0, joint({ position: [-1, 1], velocity: Infinity })),
      'action[0].velocity',
      'must be a number',
    ],
    [
      'joint velocity the string ".nan"',
      withDimension(jointDoc(), 0, joint({ position: [-1, 1], velocity: '.nan' })),
      'action[0].velocity',
      'must be a number',
    ],
    [
      'joint velocity null',
      withDimension(jointDoc(), 0, joint({ position: [-1, 1], velocity: null })),
      'action[0].velocity',
      'must be a number',
    ],
    [
      'gripper velocity 0',
      withDimension(jointDoc(), 2, gripper({ range: [0, 0.08], velocity: 0 })),
      'action[2].velocity',
      'must be greater than 0',
    ],
    [
      'translation velocity negative',
      ee(2, { name: 'z', kind: 'translation', velocity: -0.5 }),
      'action[2].velocity',
      'must be greater than 0',
    ],

    // Unknown keys are refused, not ignored.
    ['unknown top-level key', jointDoc({ max_speed: 1 }), 'max_speed', 'is not a profile field'],
    [
      'misspelt top-level key',
      without(jointDoc({ defualt_mode: 'clip' }), 'default_mode'),
      'defualt_mode',
      'is not a profile field',
    ],
    [
      'unknown key in an action entry',
      withDimension(jointDoc(), 1, joint({ name: 'j2', position: [-2, 0.5], velocity: 2, accel: 5 })),
      'action[1].accel',
      'is not a profile field',
    ],
    [
      'unknown key in the workspace',
      eeDoc({ workspace: { min: [0, 0, 0], max: [1, 1, 1], frame: 'base' } }),
      'workspace.frame',
      'is not a profile field',
    ],

    // Required top-level fields.
    ['missing robot_type', without(jointDoc(), 'robot_type'), 'robot_type', 'is required'],
    ['missing action_space', without(jointDoc(), 'action_space'), 'action_space', 'is required'],
    ['missing dt', without(jointDoc(), 'dt'), 'dt', 'is required'],
    ['missing default_mode', without(jointDoc(), 'default_mode'), 'default_mode', 'is required'],
    ['missing action', without(jointDoc(), 'action'), 'action', 'is required'],
    ['dt 0', jointDoc({ dt: 0 }), 'dt', 'must be greater than 0'],
    ['dt negative', jointDoc({ dt: -0.1 }), 'dt', 'must be greater than 0'],
    ['dt a string', jointDoc({ dt: '0.1' }), 'dt', 'must be a number'],
    ['dt over 10 s', jointDoc({ dt: 10.5 }), 'dt', 'must be at most 10 seconds'],
    ['require_state a string', jointDoc({ require_state: 'yes' }), 'require_state', 'must be true or false'],
    ['description a number', jointDoc({ description: 5 }), 'description', 'must be a string'],

    // Enumerations.
    [
      'action_space unknown',
      jointDoc({ action_space: 'cartesian' }),
      'action_space',
      'must be one of joint_position, joint_delta, ee_delta',
    ],
    ['default_mode off', jointDoc({ default_mode: 'off' }), 'default_mode', 'must be one of clip, reject'],
    [
      'default_mode in capitals',
      jointDoc({ default_mode: 'CLIP' }),
      'default_mode',
      'must be one of clip, reject',
    ],
    [
      'kind unknown',
      withDimension(jointDoc(), 0, joint({ kind: 'wheel', position: [-1, 1], velocity: 1 })),
      'action[0].kind',
      'must be one of joint, gripper, translation, rotation',
    ],
    [
      'kind missing',
      withDimension(jointDoc(), 0, { name: 'j1', position: [-1, 1], velocity: 1 }),
      'action[0].kind',
      'is required',
    ],
    [
      'fatal lists non_finite (always fatal, not listable)',
      jointDoc({ fatal: ['non_finite'] }),
      'fatal[0]',
      'must be one of position_limit, velocity_limit, start_jump, gripper_range, workspace',
    ],
    [
      'fatal lists shape after a valid entry',
      jointDoc({ fatal: ['workspace', 'shape'] }),
      'fatal[1]',
      'must be one of position_limit, velocity_limit, start_jump, gripper_range, workspace',
    ],
    [
      'fatal lists an unknown type',
      jointDoc({ fatal: ['everything'] }),
      'fatal[0]',
      'must be one of position_limit, velocity_limit, start_jump, gripper_range, workspace',
    ],

    // The action list.
    ['empty action list', jointDoc({ action: [] }), 'action', 'must list at least one action dimension'],
    [
      'action a mapping',
      jointDoc({ action: { j1: { kind: 'joint' } } }),
      'action',
      'must be a list of action dimensions',
    ],
    [
      'duplicate dimension names',
      withDimension(jointDoc(), 1, joint({ position: [-2, 0.5], velocity: 2 })),
      'action[1].name',
      'j1 is also action[0]; names must be unique',
    ],
    [
      'dimension name with a space',
      withDimension(jointDoc(), 0, joint({ name: 'joint 1', position: [-1, 1], velocity: 1 })),
      'action[0].name',
      'must be 1-64 characters of A-Za-z0-9_.-',
    ],
    [
      'dimension without a name',
      withDimension(jointDoc(), 0, { kind: 'joint', position: [-1, 1], velocity: 1 }),
      'action[0].name',
      'is required',
    ],

    // robot_type.
    [
      'robot_type not matching the file name',
      jointDoc({ robot_type: 'other_arm' }),
      'robot_type',
      'is other_arm, but the file is named test_arm.yaml; they must match',
    ],
    [
      'robot_type with capitals',
      jointDoc({ robot_type: 'Test_Arm' }),
      'robot_type',
      'must be lower-case letters, digits and _ (at most 64)',
    ],

    // ee_delta structure.
    [
      'ee_delta without workspace',
      without(eeDoc(), 'workspace'),
      'workspace',
      'is required for ee_delta: the box the end effector stays in',
    ],
    [
      'ee_delta with two translations',
      ee(2, undefined),
      'action',
      'ee_delta needs exactly three translation dimensions (x, y, z)',
    ],
    [
      'ee_delta with four translations',
      ee(3, { name: 'w', kind: 'translation', velocity: 0.5 }),
      'action',
      'ee_delta needs exactly three translation dimensions (x, y, z)',
    ],
    [
      'ee_delta with two rotations',
      ee(5, undefined),
      'action',
      'ee_delta needs zero or three rotation dimensions (roll, pitch, yaw)',
    ],
    [
      'ee_delta with a rotation before the last translation',
      eeDoc({ action: [EE_ACTION[0], EE_ACTION[1], EE_ACTION[3], EE_ACTION[2], ...EE_ACTION.slice(4)] }),
      'action[2].kind',
      'ee_delta lists translations first, then rotations, then grippers',
    ],
    [
      'ee_delta with the gripper first',
      eeDoc({ action: [EE_ACTION[6], ...EE_ACTION.slice(0, 6)] }),
      'action[0].kind',
      'ee_delta lists translations first, then rotations, then grippers',
    ],
    [
      'ee_delta with a joint',
      ee(6, { name: 'elbow', kind: 'joint', position: [-1, 1], velocity: 1 }),
      'action[6].kind',
      'ee_delta has translation, rotation and gripper dimensions',
    ],
    [
      'ee_delta translation without velocity',
      ee(0, { name: 'x', kind: 'translation' }),
      'action[0].velocity',
      'is required for a translation (units per second)',
    ],
    [
      'ee_delta rotation without velocity',
      ee(3, { name: 'roll', kind: 'rotation' }),
      'action[3].velocity',
      'is required for a rotation (units per second)',
    ],
    [
      'ee_delta translation with a position',
      ee(0, { name: 'x', kind: 'translation', position: [0, 1], velocity: 0.5 }),
      'action[0].position',
      'does not apply: the workspace box bounds translations',
    ],
    [
      'ee_delta rotation with a range',
      ee(3, { name: 'roll', kind: 'rotation', range: [-1, 1], velocity: 2 }),
      'action[3].range',
      'does not apply to an end-effector axis',
    ],
    [
      'workspace min > max on y',
      eeDoc({ workspace: { min: [0.2, 0.4, 0], max: [0.8, -0.4, 0.6] } }),
      'workspace',
      'min[1] (0.4) must be less than max[1] (-0.4)',
    ],
    [
      'workspace min == max on z',
      eeDoc({ workspace: { min: [0.2, -0.4, 0.6], max: [0.8, 0.4, 0.6] } }),
      'workspace',
      'min[2] (0.6) must be less than max[2] (0.6)',
    ],
    [
      'workspace with two numbers',
      eeDoc({ workspace: { min: [0.2, -0.4], max: [0.8, 0.4, 0.6] } }),
      'workspace.min',
      'must be [x, y, z], three numbers',
    ],
    ['workspace without max', eeDoc({ workspace: { min: [0.2, -0.4, 0] } }), 'workspace.max', 'is required'],

    // Joint spaces.
    [
      'workspace on joint_position',
      jointDoc({ workspace: { min: [0, 0, 0], max: [1, 1, 1] } }),
      'workspace',
      'applies to ee_delta only',
    ],
    [
      'workspace on joint_delta',
      jointDoc({ action_space: 'joint_delta', workspace: { min: [0, 0, 0], max: [1, 1, 1] } }),
      'workspace',
      'applies to ee_delta only',
    ],
    [
      'translation in joint_position',
      withDimension(jointDoc(), 3, { name: 'x', kind: 'translation', velocity: 0.5 }),
      'action[3].kind',
      'translation dimensions belong to ee_delta',
    ],
    [
      'rotation in joint_delta',
      withDimension(jointDoc({ action_space: 'joint_delta' }), 0, {
        name: 'roll',
        kind: 'rotation',
        velocity: 1,
      }),
      'action[0].kind',
      'rotation dimensions belong to ee_delta',
    ],
    [
      'joint_position with grippers only',
      jointDoc({ action: [{ name: 'grip', kind: 'gripper', range: [0, 1] }] }),
      'action',
      'joint_position needs at least one joint',
    ],
    [
      'joint_delta with grippers only',
      jointDoc({ action_space: 'joint_delta', action: [{ name: 'grip', kind: 'gripper', range: [0, 1] }] }),
      'action',
      'joint_delta needs at least one joint',
    ],

    // Not a mapping at all.
    ['document null (empty file)', null, '', 'must be a mapping of profile fields'],
    ['document a list', [jointDoc()], '', 'must be a mapping of profile fields'],
    ['document a string', 'robot_type: test_arm', '', 'must be a mapping of profile fields'],
    ['document a number', 42, '', 'must be a mapping of profile fields'],
    ['document undefined', undefined, '', 'must be a mapping of profile fields'],
  ];

  it.each(misconfigurations.map(([name, raw, field, reason]) => ({ name, raw, field, reason })))(
    '$name: field $field',
    ({ raw, field, reason }) => {
      expect(() => parseRobotProfile(raw, SOURCE, EXPECTED_TYPE)).toThrow(RobotProfileError);

      const error = parseError(raw);
      expect(error.field).toBe(field);
      expect(error.reason).toBe(reason);
      expect(error.source).toBe(SOURCE);
      expect(error.code).toBe('invalid_robot_profile');
      expect(error.name).toBe('RobotProfileError');
      expect(error.message).toBe(field === '' ? `${SOURCE}: ${reason}` : `${SOURCE}: ${field}: ${reason}`);
      expect(error.message).toContain('test_arm.yaml');
      expect(error.message).toContain(field);
    },
  );

  it('an empty document (no fields) names robot_type first', () => {
    expect(parseError({}).field).toBe('robot_type');
  });

  it('with several mistakes, one error names the first of them', () => {
    const error = parseError(jointDoc({ action_space: 'cartesian', dt: 0, default_mode: 'off' }));
    expect(error.message).toBe(
      `${SOURCE}: action_space: must be one of joint_position, joint_delta, ee_delta`,
    );
  });
});
