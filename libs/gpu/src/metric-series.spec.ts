import { Counter, Gauge, Registry } from 'prom-client';
import { CounterSeries, GaugeSeries } from './metric-series';

type Labels = Record<string, string>;

/** The metric's samples, as label sets with values, in a stable order. */
async function samples(
  metric: Gauge<string> | Counter<string>,
): Promise<{ labels: Labels; value: number }[]> {
  const { values } = await metric.get();
  return values
    .map((v) => ({ labels: v.labels as Labels, value: v.value }))
    .sort((a, b) => JSON.stringify(a.labels).localeCompare(JSON.stringify(b.labels)));
}

describe('GaugeSeries', () => {
  let gauge: Gauge<string>;
  beforeEach(() => {
    gauge = new Gauge({
      name: 'test_gauge',
      help: 'h',
      labelNames: ['gpu', 'clock'],
      registers: [new Registry()],
    });
  });

  it('keeps what this round set and removes what the previous round set and this one did not', async () => {
    const series = new GaugeSeries(gauge);
    series.set({ gpu: '0' }, 10);
    series.set({ gpu: '1' }, 11);
    series.commit();
    expect(await samples(gauge)).toEqual([
      { labels: { gpu: '0' }, value: 10 },
      { labels: { gpu: '1' }, value: 11 },
    ]);

    series.set({ gpu: '0' }, 20);
    series.commit();
    expect(await samples(gauge)).toEqual([{ labels: { gpu: '0' }, value: 20 }]);

    series.commit();
    expect(await samples(gauge)).toEqual([]);
  });

  it('treats the same labels in another order as the same series', async () => {
    const series = new GaugeSeries(gauge);
    series.set({ gpu: '0', clock: 'sm' }, 1);
    series.commit();
    series.set({ clock: 'sm', gpu: '0' }, 2);
    series.commit();
    expect(await samples(gauge)).toEqual([{ labels: { gpu: '0', clock: 'sm' }, value: 2 }]);
  });

  it('tells series apart by every label', async () => {
    const series = new GaugeSeries(gauge);
    series.set({ gpu: '0', clock: 'sm' }, 1);
    series.set({ gpu: '0', clock: 'memory' }, 2);
    series.commit();
    series.set({ gpu: '0', clock: 'memory' }, 3);
    series.commit();
    expect(await samples(gauge)).toEqual([{ labels: { gpu: '0', clock: 'memory' }, value: 3 }]);
  });

  it('brings a removed series back when a later round sets it', async () => {
    const series = new GaugeSeries(gauge);
    series.set({ gpu: '0' }, 1);
    series.commit();
    series.commit();
    series.set({ gpu: '0' }, 5);
    series.commit();
    expect(await samples(gauge)).toEqual([{ labels: { gpu: '0' }, value: 5 }]);
  });
});

describe('CounterSeries', () => {
  let counter: Counter<string>;
  beforeEach(() => {
    counter = new Counter({
      name: 'test_total',
      help: 'h',
      labelNames: ['gpu'],
      registers: [new Registry()],
    });
  });

  it('starts at the reading and adds what the reading grew by', async () => {
    const series = new CounterSeries(counter);
    series.set({ gpu: '0' }, 1000);
    series.commit();
    expect(await samples(counter)).toEqual([{ labels: { gpu: '0' }, value: 1000 }]);
    series.set({ gpu: '0' }, 1250.5);
    series.commit();
    series.set({ gpu: '0' }, 1250.5);
    series.commit();
    expect(await samples(counter)).toEqual([{ labels: { gpu: '0' }, value: 1250.5 }]);
  });

  it('adds the whole reading after it went backwards (the driver was reloaded), never going down', async () => {
    const series = new CounterSeries(counter);
    series.set({ gpu: '0' }, 500);
    series.commit();
    series.set({ gpu: '0' }, 30);
    series.commit();
    expect(await samples(counter)).toEqual([{ labels: { gpu: '0' }, value: 530 }]);
    series.set({ gpu: '0' }, 45);
    series.commit();
    expect(await samples(counter)).toEqual([{ labels: { gpu: '0' }, value: 545 }]);
  });

  it('keeps each series’ own reading', async () => {
    const series = new CounterSeries(counter);
    series.set({ gpu: '0' }, 100);
    series.set({ gpu: '1' }, 7);
    series.commit();
    series.set({ gpu: '0' }, 110);
    series.set({ gpu: '1' }, 9);
    series.commit();
    expect(await samples(counter)).toEqual([
      { labels: { gpu: '0' }, value: 110 },
      { labels: { gpu: '1' }, value: 9 },
    ]);
  });

  it('removes a series not set by a round, which comes back from its reading', async () => {
    const series = new CounterSeries(counter);
    series.set({ gpu: '0' }, 100);
    series.set({ gpu: '1' }, 200);
    series.commit();
    series.set({ gpu: '1' }, 210);
    series.commit();
    expect(await samples(counter)).toEqual([{ labels: { gpu: '1' }, value: 210 }]);

    series.set({ gpu: '0' }, 150);
    series.set({ gpu: '1' }, 220);
    series.commit();
    expect(await samples(counter)).toEqual([
      { labels: { gpu: '0' }, value: 150 },
      { labels: { gpu: '1' }, value: 220 },
    ]);
  });
});
