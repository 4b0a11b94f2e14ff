import {
  armProfile,
  chunk,
  deltaArmProfile,
  eeProfile,
  rows,
  shippedProfile,
} from '../test/profile-fixtures';
import { MAX_LISTED_VIOLATIONS, checkActionChunk } from './safety-checker';

describe('checkActionChunk: the envelope table (TESTS R1), every dimension of franka_panda', () => {
  const franka = shippedProfile('franka_panda');
  const mid = franka.dimensions.map((d) => (d.min + d.max) / 2);
  /** One step, no state: only the position limits and the gripper range apply. */
  const withValue = (d: number, value: number) => chunk([mid.map((m, i) => (i === d ? value : m))]);

  describe.each(franka.dimensions.map((dim, index) => [dim.name, index, dim] as const))(
    '%s',
    (_name, d, dim) => {
      const type = dim.kind === 'gripper' ? 'gripper_range' : 'position_limit';

      it.each([
        ['inside', mid[d]],
        ['exactly at min', dim.min],
        ['exactly at max', dim.max],
        ['min + 1e-9', dim.min + 1e-9],
        ['max - 1e-9', dim.max - 1e-9],
      ])('%s: pass in both modes, the very same data returned', (_case, value) => {
        for (const mode of ['clip', 'reject'] as const) {
          const input = withValue(d, value);
          const result = checkActionChunk(input, franka, null, mode);
          expect(result.report).toEqual({
            outcome: 'pass',
            mode,
            score: 1,
            violations: [],
            counts: {},
            truncated: false,
          });
          expect(result.chunk).toBe(input);
          expect(Object.is(result.chunk?.data[d], value)).toBe(true);
        }
      });

      it.each([
        ['max + 1e-9', dim.max + 1e-9, dim.max],
        ['min - 1e-9', dim.min - 1e-9, dim.min],
        ['beyond max', dim.max + 0.5, dim.max],
        ['beyond min', dim.min - 0.5, dim.min],
      ])('%s: clip clamps to the limit (modified), reject refuses', (_case, value, limit) => {
        const clipped = checkActionChunk(withValue(d, value), franka, null, 'clip');
        expect(clipped.report.outcome).toBe('modified');
        expect(clipped.report.violations).toEqual([{ type, step: 0, joint: dim.name, value, limit }]);
        expect(clipped.rejection).toBeNull();
        const out = Array.from(clipped.chunk?.data ?? []);
        expect(out).toEqual(mid.map((m, i) => (i === d ? limit : m)));
        expect(clipped.report.score).toBeGreaterThan(0);
        expect(clipped.report.score).toBeLessThan(1);

        const refused = checkActionChunk(withValue(d, value), franka, null, 'reject');
        expect(refused.report.outcome).toBe('rejected');
        expect(refused.rejection).toBe('mode');
        expect(refused.chunk).toBeNull();
        expect(refused.report.violations).toEqual(clipped.report.violations);
      });

      it.each([
        ['NaN', NaN, 'NaN'],
        ['+Infinity', Infinity, 'Infinity'],
        ['-Infinity', -Infinity, '-Infinity'],
      ])('%s: rejected whatever the mode, score 0', (_case, value, shown) => {
        for (const mode of ['clip', 'reject'] as const) {
          const result = checkActionChunk(withValue(d, value), franka, null, mode);
          expect(result.report.outcome).toBe('rejected');
          expect(result.rejection).toBe('fatal');
          expect(result.chunk).toBeNull();
          expect(result.report.score).toBe(0);
          expect(result.report.violations).toEqual([
            { type: 'non_finite', step: 0, joint: dim.name, value: shown, limit: null },
          ]);
        }
      });
    },
  );

  it.each([7, 9, 14])('a chunk of %i dimensions (franka has 8) is rejected as a wrong shape', (dim) => {
    for (const mode of ['clip', 'reject'] as const) {
      const result = checkActionChunk(chunk([Array.from({ length: dim }, () => 0)]), franka, null, mode);
      expect(result.report.outcome).toBe('rejected');
      expect(result.rejection).toBe('fatal');
      expect(result.report.score).toBe(0);
      expect(result.report.violations).toEqual([
        { type: 'shape', step: null, joint: null, value: dim, limit: 8 },
      ]);
    }
  });

  it('refuses a flat chunk whose data does not hold horizon × dim values, or has no steps', () => {
    const bad = [
      { horizon: 2, dim: 8, data: new Float32Array(15) },
      { horizon: 0, dim: 8, data: new Float32Array(0) },
      { horizon: 1.5, dim: 8, data: new Float32Array(12) },
    ];
    for (const input of bad) {
      const result = checkActionChunk(input, franka);
      expect(result.report.violations.map((v) => v.type)).toEqual(['shape']);
      expect(result.chunk).toBeNull();
    }
  });

  it('takes one array per step (as JSON carries it): ragged rows are a shape violation', () => {
    const good = mid.map((m) => m);
    expect(checkActionChunk([good, good], franka).report.outcome).toBe('pass');
    const ragged = checkActionChunk([good, good.slice(1)], franka);
    expect(ragged.report.violations).toEqual([{ type: 'shape', step: 1, joint: null, value: 7, limit: 8 }]);
    expect(checkActionChunk([], franka).report.violations.map((v) => v.type)).toEqual(['shape']);
  });

  it('checks float32 model output as it is and returns it untouched when safe', () => {
    const data = Float32Array.from(mid);
    const input = { horizon: 1, dim: 8, data };
    const result = checkActionChunk(input, franka);
    expect(result.chunk?.data).toBe(data);
  });
});

describe('checkActionChunk: steps, start jumps and chunk semantics (TESTS R2)', () => {
  const arm = armProfile(); // step limits: j1 0.1, j2 0.2, grip 0.01 per step (dt 0.1)

  it('compares the first action with the measured state: a start jump', () => {
    const state = [0, 0, 0.04];
    const input = chunk([
      [0.5, 0, 0.04],
      [0.5, 0, 0.04],
    ]);
    const refused = checkActionChunk(input, arm, state, 'reject');
    expect(refused.report.violations).toEqual([
      { type: 'start_jump', step: 0, joint: 'j1', value: 0.5, limit: 0.1 },
    ]);
    expect(refused.chunk).toBeNull();

    const clipped = checkActionChunk(input, arm, state, 'clip');
    expect(clipped.report.outcome).toBe('modified');
    // Each step moves at most 0.1 from the previous *clipped* action: 0.1 then 0.2, towards 0.5.
    expect(rows(clipped.chunk!.data, 3)).toEqual([
      [0.1, 0, 0.04],
      [0.2, 0, 0.04],
    ]);
    // Without a state, step 0 has nothing to be compared with.
    expect(checkActionChunk(input, arm, null).report.outcome).toBe('pass');
  });

  it('clamps a mid-chunk jump relative to the previous clipped action, keeping the chunk continuous', () => {
    const raw = [0, 0, 0, 0.35, 0.35, 0.35, 0.35, 0];
    const input = chunk(raw.map((j1) => [j1, 0, 0.04]));
    const result = checkActionChunk(input, arm, [0, 0, 0.04], 'clip');
    expect(result.report.violations.map((v) => [v.type, v.step, v.joint])).toEqual([
      ['velocity_limit', 3, 'j1'],
      ['velocity_limit', 7, 'j1'],
    ]);
    const j1 = rows(result.chunk!.data, 3).map((r) => r[0]);
    expect(j1.map((v) => Number(v.toFixed(12)))).toEqual([0, 0, 0, 0.1, 0.2, 0.3, 0.35, 0.25]);
    for (let t = 1; t < j1.length; t++) expect(Math.abs(j1[t] - j1[t - 1])).toBeLessThanOrEqual(0.1);
  });

  it('scales an oversized step of the arm as one vector, so the direction of motion is kept', () => {
    // j1 asks for 0.4 (4 × its 0.1 limit), j2 for 0.2 (1 × its limit): both scaled by 1/4.
    const result = checkActionChunk(chunk([[0.4, -0.2, 0.04]]), arm, [0, 0, 0.04]);
    const [j1, j2, grip] = Array.from(result.chunk!.data);
    expect(j1).toBeCloseTo(0.1, 12);
    expect(j2).toBeCloseTo(-0.05, 12);
    expect(grip).toBe(0.04);
    expect(result.report.violations.map((v) => v.joint)).toEqual(['j1']);
  });

  it('limits the gripper by its own range and rate, without slowing the arm', () => {
    const result = checkActionChunk(
      chunk([
        [0.05, 0, 0.08],
        [0.1, 0, 0.2],
      ]),
      arm,
      [0, 0, 0.04],
    );
    expect(result.report.violations.map((v) => [v.type, v.step, v.joint])).toEqual([
      ['start_jump', 0, 'grip'],
      ['velocity_limit', 1, 'grip'],
      ['gripper_range', 1, 'grip'],
    ]);
    const out = rows(result.chunk!.data, 3);
    expect(out.map((r) => r[0])).toEqual([0.05, 0.1]);
    expect(out[0][2]).toBeCloseTo(0.05, 12);
    expect(out[1][2]).toBeCloseTo(0.06, 12);
  });

  it('takes dt from the model when it differs from the profile: a faster control rate is a tighter step', () => {
    const input = chunk([
      [0, 0, 0.04],
      [0.05, 0, 0.04],
    ]);
    expect(checkActionChunk(input, arm, null, 'reject').report.outcome).toBe('pass');
    const fast = checkActionChunk(input, arm, null, 'reject', { dt: 0.02 });
    expect(fast.report.violations).toEqual([
      { type: 'velocity_limit', step: 1, joint: 'j1', value: 0.05, limit: 0.02 },
    ]);
    expect(() => checkActionChunk(input, arm, null, 'clip', { dt: 0 })).toThrow(RangeError);
  });

  it('refuses the whole chunk in reject mode: no part of it is returned', () => {
    const input = chunk([
      [0, 0, 0.04],
      [0, 0, 0.04],
      [2, 0, 0.04],
    ]);
    const result = checkActionChunk(input, arm, null, 'reject');
    expect(result).toMatchObject({
      chunk: null,
      rejection: 'mode',
      report: { outcome: 'rejected', mode: 'reject' },
    });
  });

  it('uses the profile default mode when none is given', () => {
    const input = chunk([[2, 0, 0.04]]);
    expect(checkActionChunk(input, armProfile({ default_mode: 'reject' })).report.outcome).toBe('rejected');
    expect(checkActionChunk(input, armProfile({ default_mode: 'clip' })).report.outcome).toBe('modified');
  });

  it('rejects in clip mode too when a violation type is fatal in the profile', () => {
    const strict = armProfile({ fatal: ['start_jump'] });
    const jump = checkActionChunk(chunk([[0.5, 0, 0.04]]), strict, [0, 0, 0.04], 'clip');
    expect(jump).toMatchObject({ chunk: null, rejection: 'fatal' });
    // Other violation types are still clipped.
    expect(checkActionChunk(chunk([[2, 0, 0.04]]), strict, null, 'clip').report.outcome).toBe('modified');
  });

  it('rejects a chunk clipping cannot make safe: the state is further outside a limit than one step', () => {
    const result = checkActionChunk(chunk([[0.9, 0, 0.04]]), arm, [1.5, 0, 0.04], 'clip');
    expect(result).toMatchObject({ chunk: null, rejection: 'unclippable', report: { outcome: 'rejected' } });
    // Within one step of the range, clipping brings it back in.
    const back = checkActionChunk(chunk([[0.9, 0, 0.04]]), arm, [1.05, 0, 0.04], 'clip');
    expect(back.report.outcome).toBe('modified');
    expect(back.chunk!.data[0]).toBeCloseTo(0.95, 12);
  });

  it('refuses a state of the wrong length or with a non-finite value', () => {
    for (const state of [
      [0, 0],
      [0, 0, 0, 0],
      [0, NaN, 0],
    ]) {
      const result = checkActionChunk(chunk([[0, 0, 0.04]]), arm, state);
      expect(result.report.violations.map((v) => v.type)).toEqual(['invalid_state']);
      expect(result.rejection).toBe('fatal');
    }
  });
});

describe('checkActionChunk: delta action spaces', () => {
  it('joint_delta integrates the deltas from the state and keeps the positions inside the limits', () => {
    const profile = deltaArmProfile();
    // j1 starts at 0.85 and adds 0.1 per step: past its max of 1 from step 1 on.
    const input = chunk([
      [0.1, 0, 0.04],
      [0.1, 0, 0.04],
      [0.1, 0, 0.04],
    ]);
    const refused = checkActionChunk(input, profile, [0.85, 0, 0.04], 'reject');
    expect(
      refused.report.violations.map((v) => ({ ...v, value: Number((v.value as number).toFixed(12)) })),
    ).toEqual([
      { type: 'position_limit', step: 1, joint: 'j1', value: 1.05, limit: 1 },
      { type: 'position_limit', step: 2, joint: 'j1', value: 1.15, limit: 1 },
    ]);
    const clipped = checkActionChunk(input, profile, [0.85, 0, 0.04], 'clip');
    const j1 = rows(clipped.chunk!.data, 3).map((r) => r[0]);
    expect(0.85 + j1[0] + j1[1] + j1[2]).toBeLessThanOrEqual(1);
    expect(j1[2]).toBe(0);
  });

  it('limits each delta to velocity × dt, and needs the state unless the profile says otherwise', () => {
    const input = chunk([[0.3, 0, 0.04]]);
    expect(checkActionChunk(input, deltaArmProfile(), null).report.violations).toEqual([
      { type: 'invalid_state', step: null, joint: null, value: null, limit: 3 },
    ]);
    const loose = deltaArmProfile({ require_state: false });
    const result = checkActionChunk(input, loose, null);
    expect(result.report.violations).toEqual([
      { type: 'velocity_limit', step: 0, joint: 'j1', value: 0.3, limit: 0.1 },
    ]);
    expect(result.chunk!.data[0]).toBeCloseTo(0.1, 12);
  });

  it('ee_delta keeps the end effector in its workspace box and limits every axis per step', () => {
    const profile = eeProfile(); // 0.05 m and 0.2 rad per step
    const state = [0.78, 0, 0.3, 0, 0, 0, 0.5];
    const input = chunk([
      [0.04, 0, 0, 0.3, 0, 0, 1],
      [0.04, 0, 0, 0, 0, 0, 1],
    ]);
    const result = checkActionChunk(input, profile, state, 'clip');
    expect(result.report.violations.map((v) => [v.type, v.step, v.joint])).toEqual([
      ['workspace', 0, 'x'],
      ['velocity_limit', 0, 'roll'],
      ['workspace', 1, 'x'],
    ]);
    const out = rows(result.chunk!.data, 7);
    expect(state[0] + out[0][0] + out[1][0]).toBeLessThanOrEqual(0.8);
    expect(Math.abs(out[0][3])).toBeLessThanOrEqual(0.2);
    expect(out[1][6]).toBe(1);
  });
});

describe('checkActionChunk: score and report', () => {
  const arm = armProfile();

  it('falls as violations grow in number and in size', () => {
    const score = (j1s: number[]) =>
      checkActionChunk(chunk(j1s.map((j1) => [j1, 0, 0.04])), arm, null).report.score;
    const one = score([1.1]);
    const bigger = score([1.5]);
    const two = score([1.1, 1.1]);
    expect(one).toBeLessThan(1);
    expect(bigger).toBeLessThan(one);
    expect(two).toBeLessThan(one);
    // 1 / (1 + Σ excess): 0.1 beyond a range of 2 is 0.05; a step of 0.2 against a 0.1 limit is 1 more.
    expect(one).toBeCloseTo(1 / (1 + 0.05), 12);
    expect(score([1.1, 0.9])).toBeCloseTo(1 / (1 + 0.05 + 1), 12);
  });

  it('lists at most MAX_LISTED_VIOLATIONS and counts them all', () => {
    const input = chunk(Array.from({ length: 50 }, (_, t) => [t % 2 === 0 ? 5 : -5, 3, 1]));
    const result = checkActionChunk(input, arm, null, 'reject');
    expect(result.report.violations).toHaveLength(MAX_LISTED_VIOLATIONS);
    expect(result.report.truncated).toBe(true);
    expect(result.report.counts).toEqual({ position_limit: 100, velocity_limit: 49, gripper_range: 50 });
  });

  it('serialises to JSON without losing anything (non-finite values are strings)', () => {
    const result = checkActionChunk(chunk([[Infinity, 0, 0.04]]), arm);
    expect(JSON.parse(JSON.stringify(result.report))).toEqual(result.report);
  });
});
