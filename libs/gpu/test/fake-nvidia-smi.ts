import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One device: nvidia-smi field names (`index`, `utilization.gpu`, `memory.total`) → the value printed. */
export interface FakeSmiGpu {
  [field: string]: string | number;
}

/** One compute app; `pid: 'self'` prints the pid of the process that ran the fake. */
export interface FakeSmiApp {
  gpu_uuid: string;
  pid: number | 'self';
  used_memory: number | string;
}

/** How one run ends, whatever it was asked. */
export interface FakeSmiBehaviour {
  /** The exit code (0 when absent); the requested lines are still printed unless `rawStdout` is set. */
  exitCode?: number;
  /** Printed verbatim on stderr. */
  stderr?: string;
  /** Sleeps this long before answering. */
  hangMs?: number;
  /** Printed verbatim on stdout instead of the requested lines. */
  rawStdout?: string;
}

/** What the fake prints; `computeApps` overrides the behaviour of `--query-compute-apps` runs only. */
export interface FakeSmiState extends FakeSmiBehaviour {
  gpus: FakeSmiGpu[];
  apps?: FakeSmiApp[];
  computeApps?: FakeSmiBehaviour;
}

/** Two H100-like devices with every field `NvidiaSmiCollector` queries; the second one idle. */
export function twoGpuSmiState(): FakeSmiState {
  const shared = { driver_version: '550.54.15', 'memory.total': 81559, 'clocks.mem': 2619 };
  return {
    gpus: [
      {
        index: 0,
        uuid: 'GPU-5c1f3a2e-7d4b-4e8a-9f60-1b2c3d4e5f60',
        name: 'NVIDIA H100 80GB HBM3',
        'pci.bus_id': '00000000:17:00.0',
        ...shared,
        'utilization.gpu': 87,
        'utilization.memory': 41,
        'memory.used': 40960,
        'memory.free': 40085,
        'temperature.gpu': 63,
        'power.draw': '512.37',
        'enforced.power.limit': '700.00',
        compute_mode: 'Default',
        'clocks.sm': 1980,
      },
      {
        index: 1,
        uuid: 'GPU-a9e8d7c6-b5a4-4938-8271-605f4e3d2c1b',
        name: 'NVIDIA H100 80GB HBM3',
        'pci.bus_id': '00000000:2A:00.0',
        ...shared,
        'utilization.gpu': 0,
        'utilization.memory': 0,
        'memory.used': 1,
        'memory.free': 81044,
        'temperature.gpu': 31,
        'power.draw': '71.84',
        'enforced.power.limit': '700.00',
        compute_mode: 'Exclusive_Process',
        'clocks.sm': 345,
      },
    ],
    apps: [],
  };
}

/**
 * The generated executable (CommonJS, plain node). Logs its argv and pid next to itself, reads
 * `state.json` there, and answers `--query-gpu=` / `--query-compute-apps=` in nvidia-smi's CSV format.
 */
const SCRIPT = String.raw`#!/usr/bin/env node
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dir = path.dirname(__filename);
fs.appendFileSync(path.join(dir, 'pids.log'), process.pid + '\n');
const args = process.argv.slice(2);
fs.appendFileSync(path.join(dir, 'invocations.log'), JSON.stringify(args) + '\n');
const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'));

const GPU_FIELDS = [
  'index', 'uuid', 'name', 'pci.bus_id', 'driver_version', 'utilization.gpu', 'utilization.memory',
  'memory.total', 'memory.used', 'memory.free', 'temperature.gpu', 'power.draw', 'enforced.power.limit',
  'compute_mode', 'clocks.sm', 'clocks.mem', 'count', 'serial', 'pstate', 'fan.speed', 'clocks.gr',
];
const APP_FIELDS = ['gpu_uuid', 'pid', 'used_memory', 'process_name', 'gpu_name', 'gpu_bus_id', 'gpu_serial'];

function unitOf(field) {
  if (field.startsWith('memory.') || field === 'used_memory') return 'MiB';
  if (field.startsWith('utilization.')) return '%';
  if (field.includes('power')) return 'W';
  if (field.startsWith('clocks.')) return 'MHz';
  return undefined;
}

function fail(message, code) {
  process.stdout.write(message + '\n');
  process.exitCode = code;
}

function parseArgs() {
  const request = { kind: undefined, fields: [], format: undefined };
  for (const arg of args) {
    const at = arg.indexOf('=');
    if (at < 0) return undefined;
    const name = arg.slice(0, at);
    const value = arg.slice(at + 1);
    if (name === '--query-gpu' || name === '--query-compute-apps') {
      request.kind = name === '--query-gpu' ? 'gpu' : 'apps';
      request.fields = value.split(',');
    } else if (name === '--format') {
      request.format = value.split(',');
    } else {
      return undefined;
    }
  }
  return request.kind === undefined || request.format === undefined ? undefined : request;
}

function formatValue(field, value, withUnits) {
  if (value === undefined) return '[N/A]';
  const text = String(value);
  const unit = unitOf(field);
  return withUnits && unit !== undefined && /^-?\d+(\.\d+)?$/.test(text) ? text + ' ' + unit : text;
}

function rowsOf(request) {
  if (request.kind === 'gpu') return state.gpus;
  return (state.apps || []).map((app) => Object.assign({}, app, { pid: app.pid === 'self' ? process.ppid : app.pid }));
}

function answer(request) {
  const known = request.kind === 'gpu'
    ? new Set(GPU_FIELDS.concat(...state.gpus.map((gpu) => Object.keys(gpu))))
    : new Set(APP_FIELDS);
  const unknown = request.fields.find((field) => !known.has(field));
  if (unknown !== undefined) return fail('Field "' + unknown + '" is not a valid field to query.', 2);
  if (!request.format.includes('csv')) return fail('"--format" must include "csv".', 2);
  const withUnits = !request.format.includes('nounits');
  const lines = [];
  if (!request.format.includes('noheader')) {
    lines.push(request.fields.map((field) => (unitOf(field) ? field + ' [' + unitOf(field) + ']' : field)).join(', '));
  }
  for (const row of rowsOf(request)) {
    lines.push(request.fields.map((field) => formatValue(field, row[field], withUnits)).join(', '));
  }
  if (lines.length > 0) process.stdout.write(lines.join('\n') + '\n');
}

function respond(request, behaviour) {
  if (behaviour.stderr !== undefined) process.stderr.write(behaviour.stderr);
  if (behaviour.rawStdout !== undefined) process.stdout.write(behaviour.rawStdout);
  else answer(request);
  if (process.exitCode === undefined || process.exitCode === 0) process.exitCode = behaviour.exitCode || 0;
}

const request = parseArgs();
if (request === undefined) {
  fail("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.", 2);
} else {
  const behaviour = request.kind === 'apps' && state.computeApps ? state.computeApps : state;
  setTimeout(() => respond(request, behaviour), behaviour.hangMs || 0);
}
`;

/** A fake `nvidia-smi` executable in a temp dir of its own, driven by a rewritable `state.json`. */
export class FakeNvidiaSmi {
  /** The executable. */
  readonly path: string;

  private constructor(readonly dir: string) {
    this.path = join(dir, 'nvidia-smi');
  }

  /** Writes the executable and its state into a fresh temp dir. */
  static create(state: FakeSmiState): FakeNvidiaSmi {
    const fake = new FakeNvidiaSmi(mkdtempSync(join(tmpdir(), 'fake-nvidia-smi-')));
    // An extensionless script is CommonJS only when no package.json above it says otherwise.
    writeFileSync(join(fake.dir, 'package.json'), '{ "type": "commonjs" }\n');
    writeFileSync(fake.path, SCRIPT);
    chmodSync(fake.path, 0o755);
    fake.write(state);
    return fake;
  }

  /** Replaces the state atomically (a run never reads half of it). */
  write(state: FakeSmiState): void {
    const temporary = join(this.dir, 'state.json.tmp');
    writeFileSync(temporary, JSON.stringify(state));
    renameSync(temporary, join(this.dir, 'state.json'));
  }

  /** The argv of each run so far, in order. */
  invocations(): string[][] {
    return this.logLines('invocations.log').map((line) => JSON.parse(line) as string[]);
  }

  /** The pid of each run so far, in order (to check that a killed run is gone). */
  pids(): number[] {
    return this.logLines('pids.log').map(Number);
  }

  /** Deletes the temp dir. */
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private logLines(name: string): string[] {
    const file = join(this.dir, name);
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line !== '');
  }
}
