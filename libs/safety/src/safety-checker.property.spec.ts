import fc from 'fast-check';
import type { RobotProfile } from './robot-profile';
import { parseRobotProfile } from './robot-profile.schema';
import { type ActionChunk, checkActionChunk } from './safety-checker';

/**
 * TESTS R3: property invariants over random valid profiles (every action space) and random chunks, NaN, ∞
 * and 1e308 included. Checked against the oracle below, written from the rules in docs/safety.md and
 * independent of the checker's own code.
 */

const RUNS = { numRuns: 400 };

/** Every broken rule in `data` (H × D), read straight from the profile. */
function brokenRules(
  profile: RobotProfile,
  data: ArrayLike<number>,
  state: readonly number[] | null,
  dt: number,
): string[] {
  const dims = profile.dimensions;
  const D = dims.length;
  const broken: string[] = [];
  const position = state === null ? null : [...state];
  for (let t = 0; t < data.length / D; t++) {
    for (let d = 0; d < D; d++) {
      const dim = dims[d];
      const v = data[t * D + d];
      const maxStep = dim.velocity * dt;
      if (!Number.isFinite(v)) broken.push(`t${t} ${dim.name} not finite`);
      const isDelta = dim.kind !== 'gripper' && profile.actionSpace !== 'joint_position';
      if (isDelta) {
        if (Math.abs(v) > maxStep) broken.push(`t${t} ${dim.name} step ${v} > ${maxStep}`);
        if (position !== null) {
          position[d] += v;
          if (position[d] < dim.min || position[d] > dim.max)
            broken.push(`t${t} ${dim.name} at ${position[d]}`);
        }
      } else {
        if (v < dim.min || v > dim.max) broken.push(`t${t} ${dim.name} at ${v}`);
        const previous = t > 0 ? data[(t - 1) * D + d] : state?.[d];
        if (previous !== undefined && Math.abs(v - previous) > maxStep) {
          broken.push(`t${t} ${dim.name} step ${v - previous} > ${maxStep}`);
        }
      }
    }
  }
  return broken;
}

const finite = (min: number, max: number) => fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
const bounds = fc.tuple(finite(-10, 10), finite(1e-3, 20)).map(([lo, width]) => [lo, lo + width] as const);
const velocity = finite(1e-3, 50);

const joint = fc.record({ kind: fc.constant('joint'), position: bounds, velocity });
const gripper = fc.record(
  { kind: fc.constant('gripper'), range: bounds, velocity },
  { requiredKeys: ['kind', 'range'] },
);

const common = {
  dt: finite(1e-3, 0.5),
  default_mode: fc.constantFrom('clip', 'reject'),
  require_state: fc.option(fc.boolean(), { nil: undefined }),
};

const jointSpace = fc.record({
  action_space: fc.constantFrom('joint_position', 'joint_delta'),
  action: fc
    .array(fc.oneof(joint, gripper), { minLength: 1, maxLength: 8 })
    .filter((a) => a.some((d) => d.kind === 'joint')),
  ...common,
});

const eeSpace = fc.record({
  action_space: fc.constant('ee_delta'),
  workspace: fc.tuple(bounds, bounds, bounds).map((axes) => ({
    min: axes.map((a) => a[0]),
    max: axes.map((a) => a[1]),
  })),
  action: fc
    .tuple(
      fc.tuple(velocity, velocity, velocity),
      fc.option(fc.tuple(velocity, velocity, velocity), { nil: null }),
      fc.array(gripper, { maxLength: 2 }),
    )
    .map(([t, r, g]) => [
      ...t.map((v) => ({ kind: 'translation', velocity: v })),
      ...(r ?? []).map((v) => ({ kind: 'rotation', velocity: v })),
      ...g,
    ]),
  ...common,
});

/** Most profiles list no extra fatal types (so clipping gets exercised); one in five lists some. */
const fatalArb = fc.oneof(
  { arbitrary: fc.constant([]), weight: 4 },
  {
    arbitrary: fc.subarray(['position_limit', 'velocity_limit', 'start_jump', 'gripper_range', 'workspace']),
    weight: 1,
  },
);

/** A random valid profile, built through the same parser as a file; `fatal` lists no extra types when off. */
const profileArb = (withFatal: boolean) =>
  fc.tuple(fc.oneof(jointSpace, eeSpace), withFatal ? fatalArb : fc.constant([])).map(([raw, fatal]) =>
    parseRobotProfile(
      {
        ...raw,
        fatal,
        robot_type: 'random',
        action: raw.action.map((d, i) => ({ ...d, name: `d${i}` })),
      },
      'random.yaml',
    ),
  );

const stepOf = (profile: RobotProfile, d: number, dt: number) => profile.dimensions[d].velocity * dt;
const isDelta = (profile: RobotProfile, d: number) =>
  profile.actionSpace !== 'joint_position' && profile.dimensions[d].kind !== 'gripper';

/** A value for dimension `d`: near its limits, or (in a wild chunk) sometimes anything a float can be. */
function valueArb(profile: RobotProfile, d: number, dt: number, wild: boolean): fc.Arbitrary<number> {
  const dim = profile.dimensions[d];
  const s = stepOf(profile, d, dt);
  const lo = Number.isFinite(dim.min) ? dim.min : -5;
  const hi = Number.isFinite(dim.max) ? dim.max : 5;
  const near = isDelta(profile, d) ? finite(-3 * s, 3 * s) : finite(lo - (hi - lo) / 4, hi + (hi - lo) / 4);
  const edges = fc.constantFrom(lo, hi, 0, s, -s);
  if (!wild) return fc.oneof({ arbitrary: near, weight: 4 }, { arbitrary: edges, weight: 1 });
  return fc.oneof(
    { arbitrary: near, weight: 12 },
    { arbitrary: edges, weight: 3 },
    { arbitrary: fc.constantFrom(1e308, -1e308, NaN, Infinity, -Infinity), weight: 1 },
    { arbitrary: fc.double(), weight: 1 },
  );
}

/** A current state: inside the bounds, or a little or far outside them. */
function stateArb(profile: RobotProfile, dt: number): fc.Arbitrary<number[]> {
  return fc.tuple(
    ...profile.dimensions.map((dim, d) => {
      const s = stepOf(profile, d, dt);
      const lo = Number.isFinite(dim.min) ? dim.min : -5;
      const hi = Number.isFinite(dim.max) ? dim.max : 5;
      return fc.oneof(
        { arbitrary: finite(lo, hi), weight: 10 },
        { arbitrary: fc.constantFrom(lo, hi), weight: 2 },
        { arbitrary: finite(lo - s, hi + s), weight: 2 },
        { arbitrary: finite(lo - 10 * s - 1, hi + 10 * s + 1), weight: 1 },
      );
    }),
  );
}

interface Case {
  readonly profile: RobotProfile;
  readonly dt: number;
  readonly dtOption: number | undefined;
  readonly chunk: ActionChunk;
  readonly state: number[] | null;
}

/** One chunk in four may hold extreme values (NaN, ±∞, 1e308, any double). */
const wildArb = fc.oneof(
  { arbitrary: fc.constant(false), weight: 3 },
  { arbitrary: fc.constant(true), weight: 1 },
);

const caseArbWith = (withFatal: boolean): fc.Arbitrary<Case> =>
  profileArb(withFatal).chain((profile) =>
    fc.option(finite(1e-3, 0.5), { nil: undefined }).chain((dtOption) => {
      const dt = dtOption ?? profile.dt;
      const D = profile.dimensions.length;
      return fc.record({
        profile: fc.constant(profile),
        dt: fc.constant(dt),
        dtOption: fc.constant(dtOption),
        chunk: fc.tuple(fc.integer({ min: 1, max: 12 }), wildArb).chain(([H, wild]) =>
          fc
            .array(fc.tuple(...profile.dimensions.map((_, d) => valueArb(profile, d, dt, wild))), {
              minLength: H,
              maxLength: H,
            })
            .map((steps) => ({ horizon: H, dim: D, data: Float64Array.from(steps.flat()) })),
        ),
        state: fc.option(stateArb(profile, dt), { nil: null }),
      });
    }),
  );
const caseArb = caseArbWith(true);

const stateInBounds = (c: Case) =>
  c.state !== null &&
  c.state.every((v, d) => v >= c.profile.dimensions[d].min && v <= c.profile.dimensions[d].max);

describe('checkActionChunk: property invariants (TESTS R3)', () => {
  it('clip mode: a modified chunk satisfies every limit, is finite, and checks as pass the second time', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const result = checkActionChunk(c.chunk, c.profile, c.state, 'clip', { dt: c.dtOption });
        if (result.report.outcome !== 'modified') return;
        const out = result.chunk!;
        expect(out.horizon).toBe(c.chunk.horizon);
        expect(out.dim).toBe(c.chunk.dim);
        expect(brokenRules(c.profile, out.data, c.state, c.dt)).toEqual([]);
        // clip(clip(x)) = clip(x): the repaired chunk passes untouched.
        const again = checkActionChunk(out, c.profile, c.state, 'clip', { dt: c.dtOption });
        expect(again.report.outcome).toBe('pass');
        expect(again.chunk).toBe(out);
      }),
      RUNS,
    );
  });

  it('safe input is returned untouched, in either mode; unsafe input never passes', () => {
    fc.assert(
      fc.property(caseArb, fc.constantFrom('clip', 'reject' as const), (c, mode) => {
        const result = checkActionChunk(c.chunk, c.profile, c.state, mode, { dt: c.dtOption });
        const broken = brokenRules(c.profile, c.chunk.data, c.state, c.dt);
        const stateMissing = c.state === null && c.profile.requireState;
        if (broken.length === 0 && !stateMissing) {
          expect(result.report.outcome).toBe('pass');
          expect(result.chunk).toBe(c.chunk);
          expect(result.report.score).toBe(1);
        } else {
          expect(result.report.outcome).not.toBe('pass');
        }
      }),
      RUNS,
    );
  });

  it('reject mode either passes a chunk within every limit or returns no chunk at all', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const result = checkActionChunk(c.chunk, c.profile, c.state, 'reject', { dt: c.dtOption });
        expect(['pass', 'rejected']).toContain(result.report.outcome);
        if (result.report.outcome === 'rejected') expect(result.chunk).toBeNull();
        else expect(brokenRules(c.profile, result.chunk!.data, c.state, c.dt)).toEqual([]);
      }),
      RUNS,
    );
  });

  it('NaN and ±∞ are rejected in every mode, with score 0', () => {
    fc.assert(
      fc.property(caseArb, fc.constantFrom('clip', 'reject' as const), (c, mode) => {
        fc.pre(Array.from(c.chunk.data).some((v) => !Number.isFinite(v)));
        const result = checkActionChunk(c.chunk, c.profile, c.state, mode, { dt: c.dtOption });
        expect(result.report.outcome).toBe('rejected');
        expect(result.chunk).toBeNull();
        expect(result.report.score).toBe(0);
      }),
      { ...RUNS, numRuns: 150 },
    );
  });

  it('clipping always succeeds from a state inside the limits (or without one) unless a type is fatal', () => {
    fc.assert(
      fc.property(caseArbWith(false), (c) => {
        fc.pre(Array.from(c.chunk.data).every(Number.isFinite));
        fc.pre(c.state === null ? !c.profile.requireState : stateInBounds(c));
        const result = checkActionChunk(c.chunk, c.profile, c.state, 'clip', { dt: c.dtOption });
        expect(['pass', 'modified']).toContain(result.report.outcome);
      }),
      RUNS,
    );
  });

  it('clips one joint exactly as ros2 keeps prev_command: each step moves min(needed, velocity × dt)', () => {
    const oneJoint = fc.tuple(bounds, velocity, finite(1e-3, 0.5)).map(([position, v, dt]) =>
      parseRobotProfile(
        {
          robot_type: 'one',
          action_space: 'joint_position',
          dt,
          default_mode: 'clip',
          action: [{ name: 'j', kind: 'joint', position, velocity: v }],
        },
        'one.yaml',
      ),
    );
    fc.assert(
      fc.property(
        oneJoint.chain((p) =>
          fc.record({
            profile: fc.constant(p),
            raw: fc.array(valueArb(p, 0, p.dt, false), { minLength: 1, maxLength: 20 }),
            start: finite(p.dimensions[0].min, p.dimensions[0].max),
          }),
        ),
        ({ profile, raw, start }) => {
          const { min, max } = profile.dimensions[0];
          const s = profile.dimensions[0].velocity * profile.dt;
          const result = checkActionChunk(
            { horizon: raw.length, dim: 1, data: raw },
            profile,
            [start],
            'clip',
          );
          expect(result.chunk).not.toBeNull();
          let previous = start;
          raw.forEach((v, t) => {
            const wanted = Math.min(max, Math.max(min, v));
            const expected = previous + Math.min(s, Math.max(-s, wanted - previous));
            const got = result.chunk!.data[t];
            expect(Math.abs(got - expected)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(expected)));
            previous = got;
          });
        },
      ),
      RUNS,
    );
  });

  it('never throws, whatever the chunk or state, and the score stays in [0, 1]', () => {
    const weird: unknown[] = [
      null,
      undefined,
      {},
      [],
      [[]],
      [[1, 2], 'x'],
      { horizon: 2, dim: 3, data: null },
      { horizon: -1, dim: 3, data: [] },
      { horizon: 1, dim: 3, data: { length: 3 } },
      [['a', {}, null]],
    ];
    fc.assert(
      fc.property(
        caseArb,
        fc.oneof(fc.constantFrom(...weird), fc.anything()),
        fc.oneof(fc.constant(null), fc.anything()),
        (c, chunk, state) => {
          for (const [input, current] of [
            [chunk, c.state],
            [c.chunk, state],
          ] as const) {
            const result = checkActionChunk(
              input as ActionChunk,
              c.profile,
              current as number[] | null,
              'clip',
              { dt: c.dtOption },
            );
            expect(result.report.score).toBeGreaterThanOrEqual(0);
            expect(result.report.score).toBeLessThanOrEqual(1);
            if (result.report.outcome !== 'rejected') {
              expect(
                brokenRules(c.profile, result.chunk!.data, (current as number[] | null) ?? null, c.dt),
              ).toEqual([]);
            }
          }
        },
      ),
      { ...RUNS, numRuns: 200 },
    );
  });
});
