import type { Counter, Gauge } from 'prom-client';

type Labels = Record<string, string>;

function keyOf(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * The series of one gauge that a collection sets: `set` them, then `commit()` removes every series the
 * previous collection set and this one did not (a device gone, a field no longer read), so nothing
 * stays frozen at a stale value.
 */
export class GaugeSeries {
  private current = new Map<string, Labels>();
  private next = new Map<string, Labels>();

  constructor(private readonly gauge: Gauge<string>) {}

  set(labels: Labels, value: number): void {
    this.gauge.set(labels, value);
    this.next.set(keyOf(labels), labels);
  }

  commit(): void {
    for (const [key, labels] of this.current) if (!this.next.has(key)) this.gauge.remove(labels);
    this.current = this.next;
    this.next = new Map();
  }
}

/**
 * A counter that mirrors a monotonic reading (NVML's energy since driver load): each `set` adds what the
 * reading grew by, or the whole reading after it went backwards (the driver was reloaded). Series not
 * set by a collection are removed at `commit()`, and start from their reading when they come back.
 */
export class CounterSeries {
  private current = new Map<string, { labels: Labels; reading: number }>();
  private next = new Map<string, { labels: Labels; reading: number }>();

  constructor(private readonly counter: Counter<string>) {}

  set(labels: Labels, reading: number): void {
    const key = keyOf(labels);
    const previous = this.current.get(key)?.reading;
    const grown = previous === undefined || reading < previous ? reading : reading - previous;
    this.counter.inc(labels, grown);
    this.next.set(key, { labels, reading });
  }

  commit(): void {
    for (const [key, { labels }] of this.current) if (!this.next.has(key)) this.counter.remove(labels);
    this.current = this.next;
    this.next = new Map();
  }
}
