// `npm run bench`: builds the API, runs every benchmark below and writes
// bench/results/<YYYY-MM-DD>-<hostname>.{json,md}. Not part of `npm test`: timings belong here, as ratios.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  type BenchFactory,
  type BenchResult,
  expectedLoadSeconds,
  killAllServers,
  pinLoadGenerator,
  readSettings,
  REPO_ROOT,
  runBench,
  secondsSince,
  runEntryPoint,
} from './harness';
import { authOverheadBench } from './auth-overhead.bench';
import { httpOverheadBench } from './http-overhead.bench';
import { machineInfo, resultBaseName, type RunReport, toMarkdown } from './report';

/** Every benchmark, in the order they run. Add new ones here. */
const BENCHES: BenchFactory[] = [httpOverheadBench, authOverheadBench];

/** Start-up and shutdown allowance per bench on top of its load time, for the run's hard deadline. */
const OVERHEAD_PER_BENCH_S = 60;

async function main(): Promise<void> {
  const settings = readSettings(process.env);
  const only = process.env.BENCH_ONLY?.split(',').filter((s) => s !== '');
  const started = performance.now();
  const date = new Date().toISOString();
  const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'vla-bench-'));
  process.once('exit', () => {
    killAllServers();
    rmSync(tmpDir, { recursive: true, force: true });
  });

  const specs = BENCHES.map((factory) => factory({ tmpDir })).filter((s) => !only || only.includes(s.name));
  if (specs.length === 0) throw new Error(`BENCH_ONLY matched no benchmark`);

  // Bounded in time: a hung server or client ends the run instead of holding the machine.
  const deadlineS = specs.reduce(
    (sum, s) => sum + 2 * expectedLoadSeconds(s, settings) + OVERHEAD_PER_BENCH_S,
    0,
  );
  setTimeout(() => {
    process.stderr.write(`bench: still running after ${deadlineS} s, giving up\n`);
    process.exit(1);
  }, deadlineS * 1000).unref();

  const pinning = pinLoadGenerator();
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  log(
    `bench: ${specs.map((s) => s.name).join(', ')}; ${settings.rounds} rounds × ${settings.durationS} s per arm; ` +
      (pinning ? `servers on CPU ${pinning.serverCpu}, load on CPU ${pinning.loadGeneratorCpu}` : 'unpinned'),
  );

  const benches: BenchResult[] = [];
  for (const spec of specs) benches.push(await runBench(spec, settings, pinning, log));

  const report: RunReport = {
    schemaVersion: 1,
    date,
    durationS: secondsSince(started),
    machine: machineInfo(REPO_ROOT),
    settings: { ...settings, host: '127.0.0.1', pinning },
    benches,
  };
  const dir = path.join(REPO_ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const base = path.join(dir, resultBaseName(report));
  writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
  const markdown = toMarkdown(report);
  writeFileSync(`${base}.md`, markdown);
  process.stdout.write(`\n${markdown}\nwrote ${path.relative(REPO_ROOT, base)}.json and .md\n`);

  const missed = benches.flatMap((b) => b.comparisons.filter((c) => c.target && !c.target.met));
  for (const c of missed) {
    log(
      `bench: target missed: ${c.name}, median ${c.throughputRatio.median.toFixed(3)} < ${c.target?.minThroughputRatio}`,
    );
  }
}

runEntryPoint(main);
