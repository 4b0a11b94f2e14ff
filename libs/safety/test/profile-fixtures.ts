import { join } from 'node:path';
import { type RobotProfile, loadRobotProfileFile, parseRobotProfile } from '../src';

/** The profiles shipped in config/robots. */
export const ROBOTS_DIR = join(__dirname, '../../../config/robots');
export const shippedProfile = (robotType: string): RobotProfile =>
  loadRobotProfileFile(join(ROBOTS_DIR, `${robotType}.yaml`));

type Raw = Record<string, unknown>;

/** Two joints (rad) and a gripper, absolute targets; step limits 0.1 and 0.2 per step at dt 0.1. */
export function armProfile(overrides: Raw = {}): RobotProfile {
  return parseRobotProfile(
    {
      robot_type: 'test_arm',
      action_space: 'joint_position',
      dt: 0.1,
      default_mode: 'clip',
      action: [
        { name: 'j1', kind: 'joint', position: [-1, 1], velocity: 1 },
        { name: 'j2', kind: 'joint', position: [-2, 0.5], velocity: 2 },
        { name: 'grip', kind: 'gripper', range: [0, 0.08], velocity: 0.1 },
      ],
      ...overrides,
    },
    'test_arm.yaml',
  );
}

/** The same two joints as deltas (the gripper stays absolute). */
export function deltaArmProfile(overrides: Raw = {}): RobotProfile {
  return armProfile({ robot_type: 'test_delta_arm', action_space: 'joint_delta', ...overrides });
}

/** End-effector deltas: x, y, z (m) in a box, roll, pitch, yaw (rad), and a gripper in [0, 1]. */
export function eeProfile(overrides: Raw = {}): RobotProfile {
  return parseRobotProfile(
    {
      robot_type: 'test_ee',
      action_space: 'ee_delta',
      dt: 0.1,
      default_mode: 'clip',
      workspace: { min: [0.2, -0.4, 0.0], max: [0.8, 0.4, 0.6] },
      action: [
        { name: 'x', kind: 'translation', velocity: 0.5 },
        { name: 'y', kind: 'translation', velocity: 0.5 },
        { name: 'z', kind: 'translation', velocity: 0.5 },
        { name: 'roll', kind: 'rotation', velocity: 2 },
        { name: 'pitch', kind: 'rotation', velocity: 2 },
        { name: 'yaw', kind: 'rotation', velocity: 2 },
        { name: 'gripper', kind: 'gripper', range: [0, 1] },
      ],
      ...overrides,
    },
    'test_ee.yaml',
  );
}

/** A flat chunk from rows. */
export function chunk(rows: readonly (readonly number[])[]): {
  horizon: number;
  dim: number;
  data: Float64Array;
} {
  const dim = rows[0]?.length ?? 0;
  return { horizon: rows.length, dim, data: Float64Array.from(rows.flat()) };
}

/** Rows of a flat chunk's data. */
export function rows(data: ArrayLike<number>, dim: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < data.length; i += dim) out.push(Array.from({ length: dim }, (_, d) => data[i + d]));
  return out;
}
