import {
  type RobotProfile,
  type SafetyMode,
  type ViolationType,
  VIOLATION_TYPES,
  isDeltaDimension,
} from './robot-profile';

/** H steps by D dimensions, row-major: step `t`, dimension `d` is `data[t * dim + d]`. */
export interface ActionChunk {
  readonly horizon: number;
  readonly dim: number;
  readonly data: ArrayLike<number>;
}

/** A chunk as the model gives it (flat) or as JSON carries it (one array per step). */
export type ChunkInput = ActionChunk | readonly (readonly number[])[];

/** One broken limit. `step` and `joint` are null for whole-chunk problems (shape, state). */
export interface SafetyViolation {
  readonly type: ViolationType;
  readonly step: number | null;
  /** The dimension's name from the profile (a joint, a gripper, or an end-effector axis). */
  readonly joint: string | null;
  /**
   * Position limits: the position reached. Step limits: the change from the previous action (or the state).
   * Shape: the size received. A value that is not a finite number is given as a string (`"NaN"`, `"Infinity"`).
   */
  readonly value: number | string | null;
  /** The bound that was crossed (signed like the value for step limits); the expected size for shape. */
  readonly limit: number | null;
}

export type SafetyOutcome = 'pass' | 'modified' | 'rejected';
export const SAFETY_OUTCOMES = ['pass', 'modified', 'rejected'] as const satisfies readonly SafetyOutcome[];

/**
 * Why a chunk was rejected: a violation type that is fatal in every mode, `reject` mode, or a chunk that
 * clipping could not make safe (the current state is further outside a limit than one step can recover).
 */
export type RejectionCause = 'fatal' | 'mode' | 'unclippable';

/** What the client sees in the response's `safety` block. */
export interface SafetyReport {
  readonly outcome: SafetyOutcome;
  readonly mode: SafetyMode;
  /** 1 for a chunk within every limit, falling towards 0 as violations grow; 0 for NaN, ∞ or a bad shape. */
  readonly score: number;
  /** The first {@link MAX_LISTED_VIOLATIONS}, in step order; `counts` has them all. */
  readonly violations: readonly SafetyViolation[];
  readonly counts: Readonly<Partial<Record<ViolationType, number>>>;
  readonly truncated: boolean;
}

export interface SafetyResult {
  readonly report: SafetyReport;
  /**
   * `pass`: the input's own data, untouched. `modified`: a new chunk (float64) that satisfies every limit.
   * `rejected`: null, so no part of a refused chunk can be sent.
   */
  readonly chunk: ActionChunk | null;
  readonly rejection: RejectionCause | null;
}

export interface CheckOptions {
  /** Seconds between actions when the model's control rate differs from the profile's `dt`. */
  readonly dt?: number;
}

/** Keeps a response small when a chunk is wildly off: 50 × 14 steps could otherwise list 1,400 entries. */
export const MAX_LISTED_VIOLATIONS = 64;
const MAX_NUDGES = 8;

/** The profile compiled for one `dt`: flat typed arrays, so the hot loop touches no objects. */
interface Plan {
  readonly dim: number;
  readonly names: readonly string[];
  readonly lo: Float64Array;
  readonly hi: Float64Array;
  readonly step: Float64Array;
  /** 1 where the action is a change to integrate, 0 where it is the position itself. */
  readonly delta: Uint8Array;
  /** 1 for arm dimensions, whose oversized steps are scaled together; grippers are clamped on their own. */
  readonly arm: Uint8Array;
  readonly boundType: readonly ViolationType[];
  readonly fatal: ReadonlySet<ViolationType>;
  readonly requireState: boolean;
  /** Reused by every check of this plan (one at a time: JavaScript runs a check to its end). */
  readonly stateScratch: Float64Array;
  readonly prevScratch: Float64Array;
}

const plans = new WeakMap<RobotProfile, Map<number, Plan>>();

function planFor(profile: RobotProfile, dt: number): Plan {
  let byDt = plans.get(profile);
  if (byDt === undefined) plans.set(profile, (byDt = new Map<number, Plan>()));
  let plan = byDt.get(dt);
  if (plan !== undefined) return plan;
  const dims = profile.dimensions;
  const n = dims.length;
  plan = {
    dim: n,
    names: dims.map((d) => d.name),
    lo: Float64Array.from(dims, (d) => d.min),
    hi: Float64Array.from(dims, (d) => d.max),
    step: Float64Array.from(dims, (d) => d.velocity * dt),
    delta: Uint8Array.from(dims, (d) => (isDeltaDimension(profile.actionSpace, d.kind) ? 1 : 0)),
    arm: Uint8Array.from(dims, (d) => (d.kind === 'gripper' ? 0 : 1)),
    boundType: dims.map((d) =>
      d.kind === 'gripper' ? 'gripper_range' : d.kind === 'joint' ? 'position_limit' : 'workspace',
    ),
    fatal: new Set(profile.fatal),
    requireState: profile.requireState,
    stateScratch: new Float64Array(n),
    prevScratch: new Float64Array(n),
  };
  if (byDt.size < 16) byDt.set(dt, plan);
  return plan;
}

/** Collects violations (the first few in full, all of them counted) and the score's total excess. */
class Findings {
  readonly listed: SafetyViolation[] = [];
  readonly counts: Partial<Record<ViolationType, number>> = {};
  total = 0;
  excess = 0;

  add(
    type: ViolationType,
    step: number | null,
    joint: string | null,
    value: number | null,
    limit: number | null,
    excess: number,
  ): void {
    this.total++;
    this.counts[type] = (this.counts[type] ?? 0) + 1;
    this.excess += excess;
    if (this.listed.length < MAX_LISTED_VIOLATIONS) {
      this.listed.push({
        type,
        step,
        joint,
        value: value === null || Number.isFinite(value) ? value : String(value),
        limit,
      });
    }
  }
}

/** The violation types present in a report's `counts`, in {@link VIOLATION_TYPES} order. */
export function violationTypes(counts: SafetyReport['counts']): ViolationType[] {
  return VIOLATION_TYPES.filter((t) => counts[t] !== undefined);
}

/** Reads the chunk's shape; returns the flat data, or records why the shape is wrong. */
function flatten(input: ChunkInput, dim: number, found: Findings): ArrayLike<number> | null {
  if (Array.isArray(input)) {
    const rows = input as readonly unknown[];
    if (rows.length === 0) {
      found.add('shape', null, null, 0, 1, Infinity);
      return null;
    }
    const data = new Float64Array(rows.length * dim);
    for (let t = 0; t < rows.length; t++) {
      const row = rows[t];
      if (!Array.isArray(row) || row.length !== dim) {
        found.add('shape', t, null, Array.isArray(row) ? row.length : null, dim, Infinity);
        return null;
      }
      for (let d = 0; d < dim; d++) {
        const v: unknown = row[d];
        data[t * dim + d] = typeof v === 'number' ? v : NaN;
      }
    }
    return data;
  }
  const chunk = input as Partial<ActionChunk> | null;
  const horizon = chunk?.horizon;
  const data = chunk?.data;
  if (chunk?.dim !== dim) {
    found.add('shape', null, null, typeof chunk?.dim === 'number' ? chunk.dim : null, dim, Infinity);
    return null;
  }
  if (typeof horizon !== 'number' || !Number.isSafeInteger(horizon) || horizon < 1) {
    found.add('shape', null, null, typeof horizon === 'number' ? horizon : null, 1, Infinity);
    return null;
  }
  if (data === null || typeof data !== 'object' || data.length !== horizon * dim) {
    found.add(
      'shape',
      null,
      null,
      typeof data?.length === 'number' ? data.length : null,
      horizon * dim,
      Infinity,
    );
    return null;
  }
  return data;
}

function readState(
  state: ArrayLike<number> | null | undefined,
  plan: Plan,
  found: Findings,
): Float64Array | null {
  if (state === null || state === undefined) {
    if (plan.requireState) found.add('invalid_state', null, null, null, plan.dim, Infinity);
    return null;
  }
  if (typeof state.length !== 'number' || state.length !== plan.dim) {
    found.add(
      'invalid_state',
      null,
      null,
      typeof state.length === 'number' ? state.length : null,
      plan.dim,
      Infinity,
    );
    return null;
  }
  // Scratch owned by the plan: checks run one at a time on this thread, and nothing keeps it past a check.
  const out = plan.stateScratch;
  for (let d = 0; d < plan.dim; d++) {
    const v = state[d];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      found.add('invalid_state', null, plan.names[d], typeof v === 'number' ? v : null, null, Infinity);
      return null;
    }
    out[d] = v;
  }
  return out;
}

/** Whether no value is NaN or ±∞: its own small function, so it optimises into a tight loop. */
function allFinite(data: ArrayLike<number>): boolean {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return false;
  return true;
}

/**
 * Sets `prev` (scratch space of `dim` entries) to each dimension's position before step 0: the state, or,
 * without one, step 0's own value for absolute dimensions (so step 0 has nothing to be compared with).
 * Positions of delta dimensions are integrated from the state; without one they are unknown, and only their
 * step limits can be checked.
 */
function startFrom(
  data: ArrayLike<number>,
  plan: Plan,
  state: Float64Array | null,
  prev: Float64Array,
): void {
  for (let d = 0; d < plan.dim; d++) prev[d] = state !== null ? state[d] : plan.delta[d] === 1 ? 0 : data[d];
}

/**
 * Whether every step of the chunk is within every limit. The hot path: no allocation and no reporting,
 * which keeps the optimised loop tight (with the reporting calls in it, the same loop runs about three
 * times slower even when they never run).
 */
function withinLimits(
  data: ArrayLike<number>,
  plan: Plan,
  state: Float64Array | null,
  prev: Float64Array,
): boolean {
  const { dim, lo, hi, step, delta } = plan;
  const integrate = state !== null;
  startFrom(data, plan, state, prev);
  for (let i = 0, d = 0; i < data.length; i++) {
    const v = data[i];
    let change = v;
    let position = v;
    if (delta[d] === 0) change = v - prev[d];
    else position = prev[d] + v;
    if (change > step[d] || -change > step[d]) return false;
    if ((position < lo[d] || position > hi[d]) && (integrate || delta[d] === 0)) return false;
    prev[d] = position;
    if (++d === dim) d = 0;
  }
  return true;
}

/** The same walk as {@link withinLimits}, reporting every broken limit into `found`. */
function scan(
  data: ArrayLike<number>,
  plan: Plan,
  state: Float64Array | null,
  prev: Float64Array,
  found: Findings,
): void {
  const { dim, lo, hi, step, delta } = plan;
  const integrate = state !== null;
  startFrom(data, plan, state, prev);
  for (let i = 0, d = 0, t = 0; i < data.length; i++) {
    const v = data[i];
    let change = v;
    let position = v;
    if (delta[d] === 0) change = v - prev[d];
    else position = prev[d] + v;
    const s = step[d];
    if (change > s || -change > s) {
      const type = t === 0 && delta[d] === 0 ? 'start_jump' : 'velocity_limit';
      found.add(type, t, plan.names[d], change, change < 0 ? -s : s, (Math.abs(change) - s) / s);
    }
    if ((position < lo[d] || position > hi[d]) && (integrate || delta[d] === 0)) {
      const bound = position < lo[d] ? lo[d] : hi[d];
      const excess = Math.abs(position - bound) / (hi[d] - lo[d]);
      found.add(plan.boundType[d], t, plan.names[d], position, bound, excess);
    }
    prev[d] = position;
    if (++d === dim) {
      d = 0;
      t++;
    }
  }
}

const scratch = new Float64Array(1);
const scratchBits = new BigUint64Array(scratch.buffer);

/** The next float64 after `x` in the direction of `target`. */
function nextToward(x: number, target: number): number {
  if (x === target) return target;
  if (x === 0) return target > 0 ? Number.MIN_VALUE : -Number.MIN_VALUE;
  scratch[0] = x;
  // For x > 0 a larger bit pattern is a larger number; for x < 0 (sign bit set), a larger magnitude.
  scratchBits[0] += target > x === x > 0 ? 1n : -1n;
  return scratch[0];
}

const clamp = (x: number, lo: number, hi: number): number => (x < lo ? lo : x > hi ? hi : x);

/**
 * Repairs a chunk (clip mode): each step is clamped to the position limits, and an oversized step is scaled
 * down, all arm dimensions by one factor so the direction of motion is kept, relative to the previous
 * *clipped* action (as ros2_control keeps its previous command), so the chunk stays continuous. Every
 * comparison is made in the same float64 arithmetic as {@link withinLimits}, and a result one rounding step over a
 * bound is moved back by one ulp, so the output passes the checker exactly; the caller verifies it anyway.
 */
function clip(
  data: ArrayLike<number>,
  horizon: number,
  plan: Plan,
  state: Float64Array | null,
): Float64Array {
  const { dim, lo, hi, step, delta, arm } = plan;
  const out = new Float64Array(horizon * dim);
  // prev: each dimension's previous clipped position (the state before step 0), where it is known.
  const prev = new Float64Array(dim);
  // target: the position (absolute dimensions) or change (delta dimensions) asked for, clamped to bounds.
  const target = new Float64Array(dim);
  const change = new Float64Array(dim);
  if (state !== null) prev.set(state);
  for (let t = 0; t < horizon; t++) {
    const row = t * dim;
    const known = t > 0 || state !== null;
    // Pass 1: what each dimension asks for once clamped to its bounds, and the arm's common scale factor.
    let k = 1;
    for (let d = 0; d < dim; d++) {
      const v = data[row + d];
      if (delta[d] === 0) {
        target[d] = clamp(v, lo[d], hi[d]);
        change[d] = known ? target[d] - prev[d] : 0;
      } else if (state === null) {
        target[d] = change[d] = v;
      } else {
        const reached = prev[d] + v;
        const clamped = clamp(reached, lo[d], hi[d]);
        target[d] = change[d] = clamped === reached ? v : clamped - prev[d];
      }
      const c = Math.abs(change[d]);
      if (arm[d] === 1 && c > step[d]) k = Math.min(k, step[d] / c);
    }
    // Pass 2: scale the arm's steps, clamp each gripper's own, and settle every value inside its limits.
    for (let d = 0; d < dim; d++) {
      const s = step[d];
      const c = change[d];
      if (delta[d] === 0) {
        let p = target[d];
        if (known) {
          const base = prev[d];
          if (arm[d] === 1 && k < 1) p = clamp(base + k * c, lo[d], hi[d]);
          else if (arm[d] === 0 && Math.abs(c) > s) p = clamp(base + (c < 0 ? -s : s), lo[d], hi[d]);
          for (let i = 0; Math.abs(p - base) > s; i++) p = i < MAX_NUDGES ? nextToward(p, base) : base;
        }
        out[row + d] = prev[d] = p;
        continue;
      }
      let x = arm[d] === 1 && k < 1 ? k * c : target[d];
      if (state !== null) {
        const base = prev[d];
        if (base + x > hi[d]) {
          x = hi[d] - base;
          for (let i = 0; i < MAX_NUDGES && base + x > hi[d]; i++) x = nextToward(x, -Infinity);
        } else if (base + x < lo[d]) {
          x = lo[d] - base;
          for (let i = 0; i < MAX_NUDGES && base + x < lo[d]; i++) x = nextToward(x, Infinity);
        }
        // Still outside: the state itself is beyond the bound; the verification refuses the chunk.
      }
      for (let i = 0; Math.abs(x) > s; i++) x = i < MAX_NUDGES ? nextToward(x, 0) : 0;
      if (state !== null) prev[d] = prev[d] + x;
      out[row + d] = x;
    }
  }
  return out;
}

/**
 * Checks one action chunk against a robot profile, before it leaves the server.
 *
 * - NaN or ±∞ anywhere, a chunk of the wrong shape, or an unreadable state: `rejected`, whatever the mode.
 * - Position limits per joint, gripper range, workspace box (end-effector spaces, integrated from the state),
 *   and per-step change at most `velocity × dt`; the first step is compared with `currentState` when given.
 * - `clip` mode: violations are repaired (outcome `modified`, and the returned chunk satisfies every limit);
 *   `reject` mode, or a violation type the profile marks fatal: `rejected`.
 *
 * `currentState` holds one value per action dimension, in the profile's order: the current joint positions,
 * gripper positions, and for `ee_delta` the end-effector position (x, y, z) and orientation. Never throws
 * for any chunk or state; throws only for a `dt` option that is not a positive number.
 */
export function checkActionChunk(
  input: ChunkInput,
  profile: RobotProfile,
  currentState?: ArrayLike<number> | null,
  mode: SafetyMode = profile.defaultMode,
  options: CheckOptions = {},
): SafetyResult {
  const dt = options.dt ?? profile.dt;
  if (typeof dt !== 'number' || !(dt > 0) || !Number.isFinite(dt)) {
    throw new RangeError('dt must be a positive number of seconds');
  }
  const plan = planFor(profile, dt);
  const found = new Findings();
  const data = flatten(input, plan.dim, found);
  const state = readState(currentState, plan, found);
  if (data === null || found.total > 0) return reject(found, mode);
  const horizon = data.length / plan.dim;

  if (!allFinite(data)) {
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (Number.isFinite(v)) continue;
      const d = i % plan.dim;
      found.add('non_finite', (i - d) / plan.dim, plan.names[d], v, null, Infinity);
    }
    return reject(found, mode);
  }

  const prev = plan.prevScratch;
  if (withinLimits(data, plan, state, prev)) {
    const chunk = Array.isArray(input) ? { horizon, dim: plan.dim, data } : (input as ActionChunk);
    return { report: report('pass', mode, found), chunk, rejection: null };
  }
  scan(data, plan, state, prev, found);
  if (violationTypes(found.counts).some((t) => plan.fatal.has(t))) return reject(found, mode, 'fatal');
  if (mode === 'reject') return reject(found, mode, 'mode');

  const clipped = clip(data, horizon, plan, state);
  if (!withinLimits(clipped, plan, state, prev)) return reject(found, mode, 'unclippable');
  return {
    report: report('modified', mode, found),
    chunk: { horizon, dim: plan.dim, data: clipped },
    rejection: null,
  };
}

function reject(found: Findings, mode: SafetyMode, cause: RejectionCause = 'fatal'): SafetyResult {
  return { report: report('rejected', mode, found), chunk: null, rejection: cause };
}

/** Score: 1 / (1 + Σ excess), each violation's excess relative to its limit (see docs/safety.md). */
function report(outcome: SafetyOutcome, mode: SafetyMode, found: Findings): SafetyReport {
  const score = found.total === 0 ? 1 : Number.isFinite(found.excess) ? 1 / (1 + found.excess) : 0;
  return {
    outcome,
    mode,
    score,
    violations: found.listed,
    counts: found.counts,
    truncated: found.total > found.listed.length,
  };
}
