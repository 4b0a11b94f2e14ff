import { ComponentHealth } from './component-health.service';

/** Small, so the hanging probe gives up quickly; the test asserts the result, never the time taken. */
const TIMEOUT_MS = 20;

describe('ComponentHealth', () => {
  it('reports nothing when no probe is registered', async () => {
    expect(await new ComponentHealth().snapshot(TIMEOUT_MS)).toEqual(new Map());
  });

  it('reports each probe: true, false, throwing, rejecting and hanging', async () => {
    const health = new ComponentHealth();
    health.register('sync_up', () => true);
    health.register('sync_down', () => false);
    health.register('async_up', () => Promise.resolve(true));
    health.register('async_down', () => Promise.resolve(false));
    health.register('throws', () => {
      throw new Error('connection refused');
    });
    health.register('rejects', () => Promise.reject(new Error('ECONNRESET')));
    health.register('hangs', () => new Promise<boolean>(() => undefined));

    const snapshot = await health.snapshot(TIMEOUT_MS);

    expect(Object.fromEntries(snapshot)).toEqual({
      sync_up: true,
      sync_down: false,
      async_up: true,
      async_down: false,
      throws: false,
      rejects: false,
      hangs: false,
    });
  });

  it('keeps registration order in the snapshot', async () => {
    const health = new ComponentHealth();
    for (const name of ['redis', 'database', 'model']) health.register(name, () => true);
    expect([...(await health.snapshot(TIMEOUT_MS)).keys()]).toEqual(['redis', 'database', 'model']);
  });

  it('replaces the probe of a component registered twice', async () => {
    const health = new ComponentHealth();
    health.register('database', () => false);
    health.register('database', () => true);
    expect(await health.snapshot(TIMEOUT_MS)).toEqual(new Map([['database', true]]));
  });

  it('runs the probes again on every snapshot', async () => {
    const health = new ComponentHealth();
    let up = true;
    health.register('redis', () => up);
    expect((await health.snapshot(TIMEOUT_MS)).get('redis')).toBe(true);
    up = false;
    expect((await health.snapshot(TIMEOUT_MS)).get('redis')).toBe(false);
  });

  it('answers for the healthy components even while another hangs', async () => {
    const health = new ComponentHealth();
    health.register('hangs', () => new Promise<boolean>(() => undefined));
    health.register('database', () => Promise.resolve(true));
    expect(await health.snapshot(TIMEOUT_MS)).toEqual(
      new Map([
        ['hangs', false],
        ['database', true],
      ]),
    );
  });
});
