import { fieldPath, valueAt } from '@app/config-files';
import { z } from 'zod';
import {
  ACTION_SPACES,
  ALWAYS_FATAL,
  type ActionDimension,
  CLIPPABLE_VIOLATIONS,
  DIMENSION_KINDS,
  type RobotProfile,
  SAFETY_MODES,
  type ViolationType,
} from './robot-profile';

/** A robot profile that cannot be used; names the file and the field, so start-up can say what to fix. */
export class RobotProfileError extends Error {
  readonly code = 'invalid_robot_profile';
  constructor(
    readonly source: string,
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${source}: ${field === '' ? '' : `${field}: `}${reason}`);
    this.name = 'RobotProfileError';
  }
}

export const ROBOT_TYPE_PATTERN = /^[a-z0-9][a-z0-9_]{0,63}$/;

const finite = z.number({ error: 'must be a number' }).finite({ error: 'must be a finite number' });
const positive = finite.positive({ error: 'must be greater than 0' });
const range = z.tuple([finite, finite], { error: 'must be [min, max], two numbers' });
const xyz = z.tuple([finite, finite, finite], { error: 'must be [x, y, z], three numbers' });

const dimensionSchema = z
  .object({
    name: z
      .string({ error: 'must be a string' })
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: 'must be 1-64 characters of A-Za-z0-9_.-' }),
    kind: z.enum(DIMENSION_KINDS, { error: `must be one of ${DIMENSION_KINDS.join(', ')}` }),
    position: range.optional(),
    range: range.optional(),
    velocity: positive.optional(),
  })
  .strict();

const profileSchema = z
  .object({
    robot_type: z
      .string({ error: 'must be a string' })
      .regex(ROBOT_TYPE_PATTERN, { error: 'must be lower-case letters, digits and _ (at most 64)' }),
    description: z.string({ error: 'must be a string' }).max(500).default(''),
    action_space: z.enum(ACTION_SPACES, { error: `must be one of ${ACTION_SPACES.join(', ')}` }),
    dt: positive.max(10, { error: 'must be at most 10 seconds' }),
    default_mode: z.enum(SAFETY_MODES, { error: `must be one of ${SAFETY_MODES.join(', ')}` }),
    fatal: z
      .array(z.enum(CLIPPABLE_VIOLATIONS, { error: `must be one of ${CLIPPABLE_VIOLATIONS.join(', ')}` }))
      .default([]),
    require_state: z.boolean({ error: 'must be true or false' }).optional(),
    workspace: z.object({ min: xyz, max: xyz }).strict().optional(),
    action: z.array(dimensionSchema, { error: 'must be a list of action dimensions' }).min(1, {
      error: 'must list at least one action dimension',
    }),
  })
  .strict();

type RawProfile = z.infer<typeof profileSchema>;
type RawDimension = z.infer<typeof dimensionSchema>;

/**
 * Validates a parsed profile document and builds the {@link RobotProfile}. `source` names the file in every
 * error; `expectedType`, when given, must equal `robot_type` (taken from `fileName`). Throws
 * {@link RobotProfileError}.
 */
export function parseRobotProfile(
  raw: unknown,
  source: string,
  expectedType?: string,
  fileName = `${expectedType}.yaml`,
): RobotProfile {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new RobotProfileError(source, '', 'must be a mapping of profile fields');
  }
  const parsed = profileSchema.safeParse(raw);
  if (!parsed.success) {
    // A misspelt key also shows up as a missing one: name the misspelling, the likelier cause.
    const issue = parsed.error.issues.find((i) => i.code === 'unrecognized_keys') ?? parsed.error.issues[0];
    if (issue.code === 'unrecognized_keys') {
      throw new RobotProfileError(
        source,
        fieldPath([...issue.path, issue.keys[0]]),
        'is not a profile field',
      );
    }
    const missing = valueAt(raw, issue.path) === undefined;
    throw new RobotProfileError(source, fieldPath(issue.path), missing ? 'is required' : issue.message);
  }
  const p = parsed.data;
  const fail = (field: string, reason: string): never => {
    throw new RobotProfileError(source, field, reason);
  };
  if (expectedType !== undefined && p.robot_type !== expectedType) {
    fail('robot_type', `is ${p.robot_type}, but the file is named ${fileName}; they must match`);
  }
  const dimensions = p.action.map((d, i) => buildDimension(p, i, fail));

  const seen = new Map<string, number>();
  dimensions.forEach((d, i) => {
    const first = seen.get(d.name);
    if (first !== undefined)
      fail(`action[${i}].name`, `${d.name} is also action[${first}]; names must be unique`);
    seen.set(d.name, i);
  });

  if (p.action_space === 'ee_delta') {
    const kinds = p.action.map((d) => d.kind);
    const translations = kinds.filter((k) => k === 'translation').length;
    const rotations = kinds.filter((k) => k === 'rotation').length;
    if (translations !== 3) fail('action', 'ee_delta needs exactly three translation dimensions (x, y, z)');
    if (rotations !== 0 && rotations !== 3) {
      fail('action', 'ee_delta needs zero or three rotation dimensions (roll, pitch, yaw)');
    }
    const armEnd = 3 + rotations;
    const order = kinds.findIndex((k, i) =>
      i < 3 ? k !== 'translation' : i < armEnd ? k !== 'rotation' : k !== 'gripper',
    );
    if (order !== -1) {
      fail(`action[${order}].kind`, 'ee_delta lists translations first, then rotations, then grippers');
    }
    if (p.workspace === undefined)
      fail('workspace', 'is required for ee_delta: the box the end effector stays in');
  } else {
    if (p.workspace !== undefined) fail('workspace', 'applies to ee_delta only');
    if (!p.action.some((d) => d.kind === 'joint'))
      fail('action', `${p.action_space} needs at least one joint`);
  }

  const fatal = [...new Set<ViolationType>([...ALWAYS_FATAL, ...p.fatal])];
  const workspace =
    p.workspace === undefined
      ? null
      : Object.freeze({
          min: Object.freeze([...p.workspace.min]),
          max: Object.freeze([...p.workspace.max]),
        });
  return Object.freeze({
    robotType: p.robot_type,
    description: p.description,
    actionSpace: p.action_space,
    dt: p.dt,
    defaultMode: p.default_mode,
    requireState: p.require_state ?? p.action_space !== 'joint_position',
    fatal: Object.freeze(fatal),
    dimensions: Object.freeze(dimensions),
    workspace,
    source,
  });
}

function buildDimension(
  p: RawProfile,
  index: number,
  fail: (field: string, reason: string) => never,
): ActionDimension {
  const d: RawDimension = p.action[index];
  const at = `action[${index}]`;
  const ordered = (field: 'position' | 'range', value: readonly [number, number]) => {
    if (!(value[0] < value[1])) {
      fail(`${at}.${field}`, `min (${value[0]}) must be less than max (${value[1]})`);
    }
    return value;
  };
  const forbid = (field: 'position' | 'range' | 'velocity', why: string) => {
    if (d[field] !== undefined) fail(`${at}.${field}`, why);
  };
  let limits: readonly [number, number];
  let velocity: number;
  switch (d.kind) {
    case 'joint': {
      if (p.action_space === 'ee_delta')
        fail(`${at}.kind`, 'ee_delta has translation, rotation and gripper dimensions');
      forbid('range', 'is for grippers; a joint has position: [min, max]');
      if (d.position === undefined) fail(`${at}.position`, 'is required for a joint: [min, max]');
      if (d.velocity === undefined) fail(`${at}.velocity`, 'is required for a joint (units per second)');
      limits = ordered('position', d.position);
      velocity = d.velocity;
      break;
    }
    case 'gripper': {
      forbid('position', 'is for joints; a gripper has range: [min, max]');
      if (d.range === undefined) fail(`${at}.range`, 'is required for a gripper: [min, max]');
      limits = ordered('range', d.range);
      velocity = d.velocity ?? Infinity;
      break;
    }
    case 'translation':
    case 'rotation': {
      if (p.action_space !== 'ee_delta') fail(`${at}.kind`, `${d.kind} dimensions belong to ee_delta`);
      forbid('position', 'does not apply: the workspace box bounds translations');
      forbid('range', 'does not apply to an end-effector axis');
      if (d.velocity === undefined) fail(`${at}.velocity`, `is required for a ${d.kind} (units per second)`);
      velocity = d.velocity;
      if (d.kind === 'translation') {
        const axis = p.action.slice(0, index).filter((x) => x.kind === 'translation').length;
        const box = p.workspace;
        if (box !== undefined && axis < 3) {
          if (!(box.min[axis] < box.max[axis])) {
            fail(
              `workspace`,
              `min[${axis}] (${box.min[axis]}) must be less than max[${axis}] (${box.max[axis]})`,
            );
          }
          limits = [box.min[axis], box.max[axis]];
        } else {
          limits = [-Infinity, Infinity];
        }
      } else {
        limits = [-Infinity, Infinity];
      }
      break;
    }
  }
  return Object.freeze({ name: d.name, kind: d.kind, min: limits[0], max: limits[1], velocity });
}
