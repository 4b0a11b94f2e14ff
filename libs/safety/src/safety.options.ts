import type { RobotProfile } from './robot-profile';

/** Either a folder of `<robot_type>.yaml` profiles, or profiles built in code (tests, embedding). */
export type SafetyModuleOptions =
  { readonly robotsDir: string; readonly cwd?: string } | { readonly profiles: readonly RobotProfile[] };

export const SAFETY_OPTIONS = Symbol('SAFETY_OPTIONS');
