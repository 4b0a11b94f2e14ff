import type { Registry } from 'prom-client';

/** One metric as the registry declares it. */
export interface MetricDescription {
  readonly name: string;
  readonly type: string;
  readonly labels: readonly string[];
  readonly help: string;
}

interface RegistryMetric {
  name: string;
  help: string;
  type?: string;
  labelNames?: readonly string[];
  constructor: { name: string };
}

/** Every metric in `registry`, sorted by name. */
export function describeMetrics(registry: Registry): MetricDescription[] {
  return (registry.getMetricsAsArray() as unknown as RegistryMetric[])
    .map((m) => ({
      name: m.name,
      type: m.type ?? m.constructor.name.toLowerCase(),
      labels: [...(m.labelNames ?? [])].sort(),
      help: m.help,
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * `docs/metrics.md`, generated from the live registry: the platform's `vla_*` metrics in a table, and a note
 * on prom-client's default process metrics. Deterministic, so a test can compare it with the file.
 */
export function renderMetricsCatalogue(registry: Registry): string {
  const all = describeMetrics(registry);
  const own = all.filter((m) => m.name.startsWith('vla_'));
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const lines = [
    '# Metrics',
    '',
    '<!-- Generated from the live registry by `npm run metrics:docs`; a test fails when it is stale. -->',
    '',
    'Served at `GET /monitoring/metrics` in the Prometheus text format (`text/plain; version=0.0.4`).',
    'Label values are bounded: `route` is the route template (`unmatched` for requests that matched no route),',
    '`method` is one of the standard methods or `OTHER`. `tenant` is capped: the first `METRICS_MAX_TENANTS`',
    'tenants get series of their own and later ones count under `__other__`; with `METRICS_TENANT_LABELS=off`',
    'no metric has a `tenant` label (the table shows the default, on).',
    '',
    '| name | type | labels | help |',
    '|---|---|---|---|',
    ...own.map(
      (m) =>
        `| \`${m.name}\` | ${m.type} | ${m.labels.map((l) => `\`${l}\``).join(', ')} | ${cell(m.help)} |`,
    ),
    '',
    '## Process metrics',
    '',
    "prom-client's default metrics are exported too, under their standard names (`process_*`, `nodejs_*`:",
    'CPU, resident memory, open file descriptors, event-loop lag, heap and GC); the exact set depends on the',
    'Node.js version and the operating system, so it is not listed here.',
    '',
  ];
  return lines.join('\n');
}
