/** The safety lib: robot profiles and the checks every action chunk passes before it leaves the server. */
export { SafetyModule } from './safety.module';
export type { SafetyModuleOptions } from './safety.options';
/** Checks a chunk against a profile and records the outcome in the `vla_safety_*` metrics. */
export { SafetyService, type SafetyCheck } from './safety.service';
/** The loaded profiles by robot type; `get()` is undefined for a robot type without one. */
export { RobotProfiles } from './robot-profiles.service';
/** The pure check, without metrics (benchmarks, offline tools). */
export {
  checkActionChunk,
  MAX_LISTED_VIOLATIONS,
  SAFETY_OUTCOMES,
  type ActionChunk,
  type CheckOptions,
  type ChunkInput,
  type RejectionCause,
  type SafetyOutcome,
  type SafetyReport,
  type SafetyResult,
  type SafetyViolation,
} from './safety-checker';
export {
  ACTION_SPACES,
  DIMENSION_KINDS,
  SAFETY_MODES,
  VIOLATION_TYPES,
  type ActionDimension,
  type ActionSpace,
  type DimensionKind,
  type RobotProfile,
  type SafetyMode,
  type ViolationType,
} from './robot-profile';
/** Profile parsing: a {@link RobotProfileError} names the file and the field that is wrong. */
export { parseRobotProfile, RobotProfileError } from './robot-profile.schema';
export { loadRobotProfileFile, loadRobotProfiles } from './robot-profile.loader';
export {
  SAFETY_METRICS,
  MODIFICATION_TYPES,
  REJECTION_SEVERITIES,
  safetyMetricsIn,
  type SafetyMetrics,
} from './safety.metrics';
