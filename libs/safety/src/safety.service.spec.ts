import { Registry } from 'prom-client';
import { armProfile, chunk } from '../test/profile-fixtures';
import { SafetyService } from './safety.service';
import { safetyMetricsIn } from './safety.metrics';

/** A service over the safety metrics in a registry of its own. */
function serviceWithRegistry() {
  const registry = new Registry();
  const service = SafetyService.withMetrics(safetyMetricsIn(registry));
  /** `name{labels}` → value, for every series the registry exports. */
  const values = async (): Promise<Record<string, number>> => {
    const out: Record<string, number> = {};
    for (const metric of await registry.getMetricsAsJSON()) {
      for (const v of metric.values) {
        const name = (v as { metricName?: string }).metricName ?? metric.name;
        const labels = Object.entries(v.labels)
          .map(([k, l]) => `${k}=${String(l)}`)
          .sort()
          .join(',');
        out[`${name}{${labels}}`] = v.value;
      }
    }
    return out;
  };
  return { service, values };
}

const arm = armProfile();
const safe = chunk([[0, 0, 0.04]]);
const beyond = chunk([[2, 0, 0.04]]);

describe('SafetyService', () => {
  it('exports every result, severity × violation type and modification type at 0 from the start', async () => {
    const { values } = serviceWithRegistry();
    const v = await values();
    expect(v['vla_safety_checks_total{result=pass}']).toBe(0);
    expect(v['vla_safety_checks_total{result=modified}']).toBe(0);
    expect(v['vla_safety_checks_total{result=rejected}']).toBe(0);
    expect(Object.keys(v).filter((k) => k.startsWith('vla_safety_rejections_total{'))).toHaveLength(2 * 8);
    expect(v['vla_safety_rejections_total{severity=critical,violation_type=non_finite}']).toBe(0);
    expect(v['vla_safety_modifications_total{modification_type=workspace_clamp}']).toBe(0);
    expect(v['vla_safety_score_count{}']).toBe(0);
  });

  it('counts each outcome, the repairs of a modified chunk, and each rejection by severity and type', async () => {
    const { service, values } = serviceWithRegistry();
    expect(service.check(safe, arm).report.outcome).toBe('pass');
    // Position beyond j1's limit and a start jump of the gripper: two repairs in one chunk.
    expect(service.check(chunk([[2, 0, 0.06]]), arm, [0.95, 0, 0.04], 'clip').report.outcome).toBe(
      'modified',
    );
    expect(service.check(beyond, arm, null, 'reject').report.outcome).toBe('rejected');
    expect(service.check(chunk([[NaN, 0, 0.04]]), arm, null, 'clip').report.outcome).toBe('rejected');
    expect(service.check(chunk([[0.9, 0, 0.04]]), arm, [1.5, 0, 0.04], 'clip').rejection).toBe('unclippable');

    const v = await values();
    expect(v['vla_safety_checks_total{result=pass}']).toBe(1);
    expect(v['vla_safety_checks_total{result=modified}']).toBe(1);
    expect(v['vla_safety_checks_total{result=rejected}']).toBe(3);
    expect(v['vla_safety_modifications_total{modification_type=position_clamp}']).toBe(1);
    expect(v['vla_safety_modifications_total{modification_type=step_limit}']).toBe(1);
    expect(v['vla_safety_modifications_total{modification_type=gripper_clamp}']).toBe(0);
    expect(v['vla_safety_rejections_total{severity=major,violation_type=position_limit}']).toBe(1);
    expect(v['vla_safety_rejections_total{severity=critical,violation_type=non_finite}']).toBe(1);
    // Unclippable: refused in clip mode, so critical, under the type that could not be repaired.
    expect(v['vla_safety_rejections_total{severity=critical,violation_type=velocity_limit}']).toBe(0);
    expect(v['vla_safety_rejections_total{severity=critical,violation_type=start_jump}']).toBe(1);
    expect(v['vla_safety_rejections_total{severity=critical,violation_type=position_limit}']).toBe(0);

    expect(v['vla_safety_score_count{}']).toBe(5);
    expect(v['vla_safety_score_bucket{le=0}']).toBe(1); // the NaN chunk
    expect(v['vla_safety_score_bucket{le=1}']).toBe(5);
    expect(v['vla_safety_score_bucket{le=0.99}']).toBe(4); // all but the clean one
    expect(v['vla_safety_check_duration_seconds_count{}']).toBe(5);
  });

  it('returns the check with its duration and never throws for a malformed chunk', () => {
    const { service } = serviceWithRegistry();
    const result = service.check({ horizon: 1, dim: 2, data: [0, 0] }, arm);
    expect(result.report.violations).toEqual([
      { type: 'shape', step: null, joint: null, value: 2, limit: 3 },
    ]);
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
  });
});
