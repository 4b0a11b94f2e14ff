import { counterProvider, histogramProvider } from '@app/monitoring';
import { Counter, Histogram, type Registry } from 'prom-client';

/** The safety metrics (names from the catalogue in seed 003), registered by this lib's module. */
export const SAFETY_METRICS = {
  checks: 'vla_safety_checks_total',
  rejections: 'vla_safety_rejections_total',
  modifications: 'vla_safety_modifications_total',
  score: 'vla_safety_score',
  duration: 'vla_safety_check_duration_seconds',
} as const;

/**
 * `critical`: the chunk would have been refused in clip mode too (a fatal violation type, or one clipping
 * could not repair); `major`: refused only because the request asked for reject mode.
 */
export const REJECTION_SEVERITIES = ['critical', 'major'] as const;
export type RejectionSeverity = (typeof REJECTION_SEVERITIES)[number];

/** What clip mode did to a chunk; one count per kind of repair per modified chunk. */
export const MODIFICATION_TYPES = [
  'position_clamp',
  'gripper_clamp',
  'workspace_clamp',
  'step_limit',
] as const;
export type ModificationType = (typeof MODIFICATION_TYPES)[number];

/** 0 is its own bucket (NaN, ∞, bad shape); 1 is a clean chunk. */
export const SCORE_BUCKETS = [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1];
/** Seconds; a 50 × 14 chunk takes a few microseconds, so the buckets start at one. */
export const CHECK_DURATION_BUCKETS_SECONDS = [
  1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2,
];

/** Each metric's declaration, once: the providers below register them, {@link safetyMetricsIn} too. */
const DECLARATIONS = {
  checks: {
    name: SAFETY_METRICS.checks,
    help: 'Action chunks checked, by result (pass, modified, rejected).',
    labelNames: ['result'],
  },
  rejections: {
    name: SAFETY_METRICS.rejections,
    help: 'Rejected chunks, once per violation type they broke; severity critical (refused in any mode) or major (refused because the mode was reject).',
    labelNames: ['severity', 'violation_type'],
  },
  modifications: {
    name: SAFETY_METRICS.modifications,
    help: 'Chunks repaired in clip mode, once per kind of repair (position_clamp, gripper_clamp, workspace_clamp, step_limit).',
    labelNames: ['modification_type'],
  },
  score: {
    name: SAFETY_METRICS.score,
    help: 'Safety score of each checked chunk, 0-1 (1: within every limit; see docs/safety.md).',
    buckets: SCORE_BUCKETS,
  },
  duration: {
    name: SAFETY_METRICS.duration,
    help: 'Time to check one action chunk, in seconds.',
    buckets: CHECK_DURATION_BUCKETS_SECONDS,
  },
} as const;

export const safetyMetricProviders = [
  counterProvider({ ...DECLARATIONS.checks, labelNames: [...DECLARATIONS.checks.labelNames] }),
  counterProvider({ ...DECLARATIONS.rejections, labelNames: [...DECLARATIONS.rejections.labelNames] }),
  counterProvider({ ...DECLARATIONS.modifications, labelNames: [...DECLARATIONS.modifications.labelNames] }),
  histogramProvider({ ...DECLARATIONS.score, buckets: [...DECLARATIONS.score.buckets] }),
  histogramProvider({ ...DECLARATIONS.duration, buckets: [...DECLARATIONS.duration.buckets] }),
];

/** The safety metrics, as SafetyService takes them. */
export interface SafetyMetrics {
  readonly checks: Counter<'result'>;
  readonly rejections: Counter<'severity' | 'violation_type'>;
  readonly modifications: Counter<'modification_type'>;
  readonly score: Histogram;
  readonly duration: Histogram;
}

/**
 * The same metrics in a registry of the caller's, outside Nest (benchmarks, tests, offline tools); inside
 * the app they are the providers above, in the process-wide registry.
 */
export function safetyMetricsIn(registry: Registry): SafetyMetrics {
  const registers = [registry];
  return {
    checks: new Counter({
      ...DECLARATIONS.checks,
      labelNames: [...DECLARATIONS.checks.labelNames],
      registers,
    }),
    rejections: new Counter({
      ...DECLARATIONS.rejections,
      labelNames: [...DECLARATIONS.rejections.labelNames],
      registers,
    }),
    modifications: new Counter({
      ...DECLARATIONS.modifications,
      labelNames: [...DECLARATIONS.modifications.labelNames],
      registers,
    }),
    score: new Histogram({ ...DECLARATIONS.score, buckets: [...DECLARATIONS.score.buckets], registers }),
    duration: new Histogram({
      ...DECLARATIONS.duration,
      buckets: [...DECLARATIONS.duration.buckets],
      registers,
    }),
  };
}
