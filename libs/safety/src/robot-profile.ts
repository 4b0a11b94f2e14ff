/** How a policy's action vector is meant: absolute joint targets, joint deltas, or end-effector deltas. */
export const ACTION_SPACES = ['joint_position', 'joint_delta', 'ee_delta'] as const;
export type ActionSpace = (typeof ACTION_SPACES)[number];

/** `clip` repairs a chunk that breaks a limit; `reject` refuses it. Neither turns the checks off. */
export const SAFETY_MODES = ['clip', 'reject'] as const;
export type SafetyMode = (typeof SAFETY_MODES)[number];

/**
 * What one action dimension drives. `joint` and `gripper` appear in joint spaces; `translation` (x, y, z, in
 * that order) and `rotation` (roll, pitch, yaw) in `ee_delta`, with grippers after them.
 */
export const DIMENSION_KINDS = ['joint', 'gripper', 'translation', 'rotation'] as const;
export type DimensionKind = (typeof DIMENSION_KINDS)[number];

/**
 * Every kind of violation the checker reports. The first three are always fatal: there is nothing to clip
 * in a NaN, a chunk of the wrong shape, or a state that cannot be read.
 */
export const VIOLATION_TYPES = [
  'non_finite',
  'shape',
  'invalid_state',
  'position_limit',
  'velocity_limit',
  'start_jump',
  'gripper_range',
  'workspace',
] as const;
export type ViolationType = (typeof VIOLATION_TYPES)[number];

/** Rejected in every mode, whatever the profile says. */
export const ALWAYS_FATAL: readonly ViolationType[] = ['non_finite', 'shape', 'invalid_state'];
/** The violation types a profile may add to its `fatal` list (the others can be clipped). */
export const CLIPPABLE_VIOLATIONS = [
  'position_limit',
  'velocity_limit',
  'start_jump',
  'gripper_range',
  'workspace',
] as const satisfies readonly ViolationType[];

/** One dimension of the action vector, with its limits in the policy's own units. */
export interface ActionDimension {
  readonly name: string;
  readonly kind: DimensionKind;
  /**
   * Lowest and highest allowed position: the joint's position limit, the gripper's range, or the workspace
   * box along this axis. `-Infinity`/`Infinity` for rotations, which have no position limit.
   */
  readonly min: number;
  readonly max: number;
  /** Largest rate of change in units per second; `Infinity` for a gripper without one. */
  readonly velocity: number;
}

/** A validated robot profile (`config/robots/<robot_type>.yaml`). Frozen. */
export interface RobotProfile {
  readonly robotType: string;
  readonly description: string;
  readonly actionSpace: ActionSpace;
  /** Seconds between consecutive actions of a chunk: the per-step limit is `velocity × dt`. */
  readonly dt: number;
  readonly defaultMode: SafetyMode;
  /** Violation types rejected in every mode: the always-fatal ones plus the profile's own list. */
  readonly fatal: readonly ViolationType[];
  /**
   * Whether a chunk is refused without the robot's current state. On by default for delta spaces, where
   * position limits and the workspace can only be checked from the state.
   */
  readonly requireState: boolean;
  /** One entry per action dimension, in the order the policy emits them. */
  readonly dimensions: readonly ActionDimension[];
  /** The end-effector box (metres, robot base frame) for `ee_delta`; null for joint spaces. */
  readonly workspace: { readonly min: readonly number[]; readonly max: readonly number[] } | null;
  /** Where the profile came from (a file path, or a label for profiles built in code). */
  readonly source: string;
}

/**
 * Whether a dimension's action is a change to add to the current position (`true`) or the position itself.
 * Grippers are absolute in every space, as in the policies that use deltas for the arm (Bridge, OpenVLA).
 */
export function isDeltaDimension(space: ActionSpace, kind: DimensionKind): boolean {
  return kind !== 'gripper' && space !== 'joint_position';
}
