import { RobotProfiles, SafetyService } from '@app/safety';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChildServer } from './support/child-server';
import { parsePrometheusText, sampleValue } from './support/prom-text';
import { startTestApp, type TestApp } from './support/test-app';

const TOKEN = 'metrics-token-for-e2e-tests-0001';
const SHIPPED = join(__dirname, '../../../config/robots');

describe('safety in the running app', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ METRICS_TOKEN: TOKEN });
  });
  afterAll(async () => {
    await t.close();
  });

  const scrape = async () => {
    const res = await t.fetch('/monitoring/metrics', { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    return parsePrometheusText(res.text);
  };

  it('loads the shipped robot profiles from ROBOTS_DIR', () => {
    const profiles = t.app.get(RobotProfiles);
    expect(profiles.robotTypes()).toEqual(['aloha', 'franka_panda', 'so100', 'ur5e']);
    expect(profiles.get('aloha')?.dimensions).toHaveLength(14);
    expect(profiles.get('unknown_robot')).toBeUndefined();
  });

  it('exports the safety metrics at 0, and each check moves them', async () => {
    const before = await scrape();
    for (const result of ['pass', 'modified', 'rejected']) {
      expect(sampleValue(before, 'vla_safety_checks_total', { result })).toBe(0);
    }
    expect(
      sampleValue(before, 'vla_safety_rejections_total', {
        severity: 'critical',
        violation_type: 'non_finite',
      }),
    ).toBe(0);
    expect(sampleValue(before, 'vla_safety_score_count')).toBe(0);

    const franka = t.app.get(RobotProfiles).get('franka_panda')!;
    const safety = t.app.get(SafetyService);
    const home = [0, 0, 0, -1.5, 0, 1.5, 0, 0.04];
    expect(safety.check([home, home], franka, home).report.outcome).toBe('pass');
    expect(safety.check([home.map((v, i) => (i === 0 ? 3 : v))], franka).report.outcome).toBe('modified');
    expect(safety.check([home.map((v, i) => (i === 6 ? NaN : v))], franka).report.outcome).toBe('rejected');

    const after = await scrape();
    expect(sampleValue(after, 'vla_safety_checks_total', { result: 'pass' })).toBe(1);
    expect(sampleValue(after, 'vla_safety_checks_total', { result: 'modified' })).toBe(1);
    expect(sampleValue(after, 'vla_safety_checks_total', { result: 'rejected' })).toBe(1);
    expect(
      sampleValue(after, 'vla_safety_modifications_total', { modification_type: 'position_clamp' }),
    ).toBe(1);
    expect(
      sampleValue(after, 'vla_safety_rejections_total', {
        severity: 'critical',
        violation_type: 'non_finite',
      }),
    ).toBe(1);
    expect(sampleValue(after, 'vla_safety_score_count')).toBe(3);
    expect(sampleValue(after, 'vla_safety_check_duration_seconds_count')).toBe(3);
  });
});

describe('start-up with robot profiles that cannot be used (TESTS R4)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vla-robots-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the real entry point with ROBOTS_DIR=`robotsDir` and returns its last (fatal) log line. */
  async function failedStart(robotsDir: string): Promise<{ msg: string; file?: string; field?: string }> {
    const child = ChildServer.spawn('apps/api/src/main.ts', { ROBOTS_DIR: robotsDir, BOOTSTRAP_KEY: 'off' });
    try {
      expect(await child.exit()).toEqual({ code: 1, signal: null });
      const lines = child.stderr.join('').trim().split('\n');
      const line = JSON.parse(lines[lines.length - 1]) as {
        level: string;
        msg: string;
        code?: string;
        file?: string;
        field?: string;
      };
      expect(line.level).toBe('fatal');
      expect(line.code).toBe('invalid_robot_profile');
      expect(child.records().some((r) => typeof r.msg === 'string' && r.msg.startsWith('listening'))).toBe(
        false,
      );
      return line;
    } finally {
      await child.dispose();
    }
  }

  it('a joint with min > max stops start, naming the file and the field', async () => {
    for (const name of ['ur5e.yaml', 'aloha.yaml']) copyFileSync(join(SHIPPED, name), join(dir, name));
    const franka = readFileSync(join(SHIPPED, 'franka_panda.yaml'), 'utf8').replace(
      'position: [-1.7628, 1.7628]',
      'position: [1.7628, -1.7628]',
    );
    writeFileSync(join(dir, 'franka_panda.yaml'), franka);
    const line = await failedStart(dir);
    expect(line.file).toBe(join(dir, 'franka_panda.yaml'));
    expect(line.field).toBe('action[1].position');
    expect(line.msg).toBe(
      `invalid robot profile: ${join(dir, 'franka_panda.yaml')}: action[1].position: min (1.7628) must be less than max (-1.7628)`,
    );
  });

  it('a joint without its velocity limit stops start', async () => {
    const ur5e = readFileSync(join(SHIPPED, 'ur5e.yaml'), 'utf8');
    // Drop the first joint's velocity line.
    writeFileSync(join(dir, 'ur5e.yaml'), ur5e.replace(/\n\s+velocity: [^\n]+/, ''));
    const line = await failedStart(dir);
    expect(line.field).toBe('action[0].velocity');
  });

  it('a missing or empty profile folder stops start: safety is never silently off', async () => {
    expect((await failedStart(join(dir, 'missing'))).msg).toContain('set ROBOTS_DIR');
    expect((await failedStart(dir)).msg).toContain('holds no robot profiles');
  });
});
