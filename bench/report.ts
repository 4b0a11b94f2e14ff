import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BenchResult, BenchSettings, Pinning } from './harness';
import type { Summary } from './stats';

export interface MachineInfo {
  hostname: string;
  cpuModel: string;
  cores: number;
  nodeVersion: string;
  os: string;
  totalMemoryBytes: number;
  commit: string;
  /** Whether the working tree had uncommitted changes: the numbers may not be the commit's alone. */
  dirty: boolean;
}

export interface RunReport {
  schemaVersion: 1;
  /** ISO 8601, UTC, when the run started. */
  date: string;
  durationS: number;
  machine: MachineInfo;
  settings: BenchSettings & { host: '127.0.0.1'; pinning: Pinning | null };
  benches: BenchResult[];
}

export function machineInfo(repoRoot: string): MachineInfo {
  const git = (...args: string[]): string | null => {
    const result = spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' });
    return result.status === 0 ? result.stdout.trim() : null;
  };
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    nodeVersion: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    totalMemoryBytes: os.totalmem(),
    commit: git('rev-parse', '--short', 'HEAD') ?? 'unknown',
    dirty: (git('status', '--porcelain') ?? '') !== '',
  };
}

/** `<YYYY-MM-DD>-<hostname>`, the date in UTC and the host name reduced to file-name-safe characters. */
export function resultBaseName(report: RunReport): string {
  const host = report.machine.hostname.replace(/[^A-Za-z0-9._-]+/g, '_') || 'unknown-host';
  return `${report.date.slice(0, 10)}-${host}`;
}

const fixed = (digits: number) => (value: number) => value.toFixed(digits);
const spread = (s: Summary, format: (v: number) => string): string => `${format(s.min)}–${format(s.max)}`;

/** The head of a results table: the run's date and the machine it ran on, one row each. */
export function machineRows(date: string, machine: MachineInfo): string[] {
  return [
    '| | |',
    '|---|---|',
    `| Date | ${date} |`,
    `| CPU | ${machine.cpuModel} |`,
    `| Cores | ${machine.cores} |`,
    `| Node | ${machine.nodeVersion} |`,
    `| Commit | ${machine.commit}${machine.dirty ? ' (working tree had uncommitted changes)' : ''} |`,
    `| OS | ${machine.os} |`,
  ];
}

export function toMarkdown(report: RunReport): string {
  const { machine, settings } = report;
  const lines: string[] = [
    `# Benchmarks, ${report.date.slice(0, 10)}, ${machine.hostname}`,
    '',
    ...machineRows(report.date, machine),
    `| Pinning | ${
      settings.pinning
        ? `servers on CPU ${settings.pinning.serverCpu}, load generator on CPU ${settings.pinning.loadGeneratorCpu} (taskset)`
        : 'none (taskset or a second core missing)'
    } |`,
    `| Load | autocannon, ${settings.connections} connections to ${settings.host}, closed loop |`,
    `| Rounds | ${settings.rounds} × ${settings.durationS} s per arm, interleaved; ${settings.warmupS} s warm-up before each measured run, ${settings.initialWarmupS} s per arm before round 1 |`,
    `| Run time | ${Math.round(report.durationS)} s |`,
    '',
    'Ratios are candidate / baseline, computed per round (both measured in the same round) and then reduced',
    'to their median; the spread is the smallest and largest per-round ratio. Throughput ratio < 1 means the',
    'candidate serves fewer requests per second; latency ratio > 1 means it answers more slowly.',
  ];

  for (const bench of report.benches) {
    const noise = bench.interference;
    lines.push(
      '',
      `## ${bench.name}: ${bench.title}`,
      '',
      noise
        ? `While it ran (${Math.round(noise.wallS)} s), other processes used ${noise.otherCpuS.toFixed(1)} CPU-s, ` +
            `${(noise.otherShare * 100).toFixed(1)}% of the machine's CPU time${
              noise.otherShare > 0.05 ? ' (a busy machine: expect a wide spread)' : ''
            }; steal ${noise.stealS.toFixed(1)} s.`
        : 'CPU use by other processes was not measured (no /proc).',
      '',
      '| comparison | throughput ratio, median | spread (min–max) | p50 ratio | p99 ratio | target | met |',
      '|---|---:|---:|---:|---:|---:|---|',
    );
    for (const c of bench.comparisons) {
      lines.push(
        `| ${c.name}: \`${c.candidate}\` / \`${c.baseline}\` | ${c.throughputRatio.median.toFixed(3)} | ` +
          `${spread(c.throughputRatio, fixed(3))} | ${c.p50Ratio.median.toFixed(2)} | ${c.p99Ratio.median.toFixed(2)} | ` +
          `${c.target ? `≥ ${c.target.minThroughputRatio}` : '–'} | ${c.target ? (c.target.met ? 'yes' : '**no**') : '–'} |`,
      );
    }
    lines.push(
      '',
      '| arm | req/s, median | req/s spread | p50 ms, median (min–max) | p99 ms, median (min–max) | what it is |',
      '|---|---:|---:|---:|---:|---|',
    );
    for (const arm of bench.arms) {
      lines.push(
        `| \`${arm.name}\` | ${arm.reqPerSec.median.toFixed(0)} | ${spread(arm.reqPerSec, fixed(0))} | ` +
          `${arm.p50Ms.median.toFixed(3)} (${spread(arm.p50Ms, fixed(3))}) | ` +
          `${arm.p99Ms.median.toFixed(3)} (${spread(arm.p99Ms, fixed(3))}) | ${arm.description} |`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Writes a benchmark's results as `bench/results/<date>-<host>-<name>.json` and `.md` and prints the
 * table; returns the base path (without extension).
 */
export function writeResultFiles(
  repoRoot: string,
  name: string,
  report: { readonly date: string; readonly machine: MachineInfo },
  markdown: string,
): string {
  const dir = path.join(repoRoot, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const host = report.machine.hostname.replace(/[^A-Za-z0-9._-]+/g, '_') || 'unknown-host';
  const base = path.join(dir, `${report.date.slice(0, 10)}-${host}-${name}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(`${base}.md`, markdown);
  process.stdout.write(`${markdown}\nwrote ${path.relative(repoRoot, base)}.json and .md\n`);
  return base;
}

/** A median with its spread, e.g. `12.34 (12.00–13.10)`; values are divided by `scale` first. */
export function medianWithSpread(s: Summary, digits: number, scale = 1): string {
  const f = (v: number) => (v / scale).toFixed(digits);
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

/** The CPU, cores, Node version and commit line of an in-process benchmark's report. */
export function machineLine(machine: MachineInfo): string {
  return `${machine.cpuModel}, ${machine.cores} cores, Node ${machine.nodeVersion}, commit ${machine.commit}${machine.dirty ? ' (dirty)' : ''}.`;
}

/** An in-process benchmark's two tables: each arm's time per call, and each comparison's ratio. */
export function armAndRatioTables(
  armHeader: string,
  arms: readonly { readonly name: string; readonly value: string }[],
  comparisons: readonly { readonly candidate: string; readonly baseline: string; readonly ratio: string }[],
): string[] {
  return [
    `| arm | ${armHeader} |`,
    '|---|---|',
    ...arms.map((a) => `| ${a.name} | ${a.value} |`),
    '',
    '| comparison | ratio, median of per-round ratios (spread) |',
    '|---|---|',
    ...comparisons.map((c) => `| ${c.candidate} / ${c.baseline} | ${c.ratio} |`),
  ];
}
