import { Injectable } from '@nestjs/common';
import { InjectMetric } from '@app/monitoring';
import type { Counter, Histogram } from 'prom-client';
import { performance } from 'node:perf_hooks';
import { type RobotProfile, type SafetyMode, VIOLATION_TYPES, type ViolationType } from './robot-profile';
import {
  type CheckOptions,
  type ChunkInput,
  SAFETY_OUTCOMES,
  type SafetyOutcome,
  type SafetyResult,
  checkActionChunk,
  violationTypes,
} from './safety-checker';
import {
  MODIFICATION_TYPES,
  type ModificationType,
  REJECTION_SEVERITIES,
  type RejectionSeverity,
  SAFETY_METRICS,
  type SafetyMetrics,
} from './safety.metrics';

/** A check's result and how long it took. */
export interface SafetyCheck extends SafetyResult {
  /** Milliseconds, from the monotonic clock. */
  readonly durationMs: number;
}

/** The repair clip mode makes for each violation type it can repair. */
const REPAIRS: Partial<Record<ViolationType, ModificationType>> = {
  position_limit: 'position_clamp',
  gripper_range: 'gripper_clamp',
  workspace: 'workspace_clamp',
  velocity_limit: 'step_limit',
  start_jump: 'step_limit',
};

/** Checks action chunks (see {@link checkActionChunk}) and records every decision in the safety metrics. */
@Injectable()
export class SafetyService {
  /** One child per outcome, bound once: `inc()` on it skips hashing the labels on every check. */
  private readonly byOutcome: Record<SafetyOutcome, Counter.Internal>;

  constructor(
    @InjectMetric(SAFETY_METRICS.checks) checks: Counter<'result'>,
    @InjectMetric(SAFETY_METRICS.rejections)
    private readonly rejections: Counter<'severity' | 'violation_type'>,
    @InjectMetric(SAFETY_METRICS.modifications) private readonly modifications: Counter<'modification_type'>,
    @InjectMetric(SAFETY_METRICS.score) private readonly score: Histogram,
    @InjectMetric(SAFETY_METRICS.duration) private readonly duration: Histogram,
  ) {
    // Every known series exists from the start, so a rate over it is defined before the first event.
    this.byOutcome = {
      pass: checks.labels({ result: 'pass' }),
      modified: checks.labels({ result: 'modified' }),
      rejected: checks.labels({ result: 'rejected' }),
    };
    for (const result of SAFETY_OUTCOMES) this.byOutcome[result].inc(0);
    for (const severity of REJECTION_SEVERITIES) {
      for (const violation_type of VIOLATION_TYPES) rejections.inc({ severity, violation_type }, 0);
    }
    for (const modification_type of MODIFICATION_TYPES) modifications.inc({ modification_type }, 0);
  }

  /** A service recording into `metrics` ({@link safetyMetricsIn}), for use outside Nest. */
  static withMetrics(metrics: SafetyMetrics): SafetyService {
    return new SafetyService(
      metrics.checks,
      metrics.rejections,
      metrics.modifications,
      metrics.score,
      metrics.duration,
    );
  }

  /**
   * Checks a chunk of H steps by D dimensions against `profile` (mode defaults to the profile's), with the
   * robot's current state when known, and records the outcome. Never throws for any chunk or state.
   */
  check(
    chunk: ChunkInput,
    profile: RobotProfile,
    currentState?: ArrayLike<number> | null,
    mode: SafetyMode = profile.defaultMode,
    options?: CheckOptions,
  ): SafetyCheck {
    const started = performance.now();
    const result = checkActionChunk(chunk, profile, currentState, mode, options);
    const durationMs = performance.now() - started;
    this.record(result, durationMs);
    return { report: result.report, chunk: result.chunk, rejection: result.rejection, durationMs };
  }

  private record(result: SafetyResult, durationMs: number): void {
    const { report } = result;
    this.byOutcome[report.outcome].inc();
    this.score.observe(report.score);
    this.duration.observe(durationMs / 1000);
    const types = violationTypes(report.counts);
    if (result.rejection !== null) {
      const severity: RejectionSeverity = result.rejection === 'mode' ? 'major' : 'critical';
      for (const violation_type of types) this.rejections.inc({ severity, violation_type });
    } else if (report.outcome === 'modified') {
      const repairs = new Set(types.map((t) => REPAIRS[t]));
      for (const modification_type of MODIFICATION_TYPES) {
        if (repairs.has(modification_type)) this.modifications.inc({ modification_type });
      }
    }
  }
}
