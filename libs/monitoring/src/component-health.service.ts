import { Injectable } from '@nestjs/common';

/** Answers whether a component works; may be async. A throw or a timeout counts as unhealthy. */
export type HealthProbe = () => boolean | Promise<boolean>;

const PROBE_TIMEOUT_MS = 1000;

/**
 * The components whose health `vla_application_health{component}` reports. Each feature registers a
 * cheap probe for its own dependency (database ping, Redis ping, model loaded); probes run at scrape time,
 * concurrently and bounded by a timeout, so a hung dependency reads 0 instead of stalling the scrape.
 */
@Injectable()
export class ComponentHealth {
  private readonly probes = new Map<string, HealthProbe>();

  /** Registers (or replaces) the probe for `component`. */
  register(component: string, probe: HealthProbe): void {
    this.probes.set(component, probe);
  }

  /** Runs every probe; never rejects. */
  async snapshot(timeoutMs = PROBE_TIMEOUT_MS): Promise<Map<string, boolean>> {
    const entries = [...this.probes];
    const results = await Promise.all(entries.map(([, probe]) => runProbe(probe, timeoutMs)));
    return new Map(entries.map(([component], i) => [component, results[i]]));
  }
}

async function runProbe(probe: HealthProbe, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([Promise.resolve().then(probe), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
