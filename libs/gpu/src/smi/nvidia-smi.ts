import { execFile, type ExecFileException } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { CollectionError, type CollectOptions, type GpuCollector } from '../gpu-collector';
import type { ComputeMode, GpuDevice, GpuProcess, GpuSnapshot, ProcessGpuMemory } from '../gpu-snapshot';

/** The `--query-gpu` fields `collect()` asks for, in the order they are printed. */
export const GPU_QUERY_FIELDS: readonly string[] = [
  'index',
  'uuid',
  'name',
  'pci.bus_id',
  'driver_version',
  'utilization.gpu',
  'utilization.memory',
  'memory.total',
  'memory.used',
  'memory.free',
  'temperature.gpu',
  'power.draw',
  'enforced.power.limit',
  'compute_mode',
  'clocks.sm',
  'clocks.mem',
];

/** The `--query-compute-apps` fields, in the order they are printed. */
export const COMPUTE_APPS_FIELDS: readonly string[] = ['gpu_uuid', 'pid', 'used_memory'];

/** Where the collector finds the command. */
export interface NvidiaSmiOptions {
  /** The executable: a path, or a name looked up on PATH. */
  readonly path: string;
  /** How long one run may take before it is killed (SIGKILL). */
  readonly timeoutMs: number;
}

/** `--query-gpu` output, parsed. */
export interface ParsedGpuCsv {
  /** One per device line, in the order nvidia-smi printed them. */
  readonly devices: GpuDevice[];
  /** `driver_version` of the first device that printed one. */
  readonly driverVersion?: string;
}

/** One line of `--query-compute-apps=gpu_uuid,pid,used_memory`. */
export interface ComputeApp {
  readonly gpuUuid: string;
  readonly pid: number;
  /** Absent when nvidia-smi printed `[N/A]` (or anything that is not a number). */
  readonly usedMemoryBytes?: number;
}

const CSV_FORMAT = '--format=csv,noheader,nounits';
const SEPARATOR = ', ';
const MIB = 1024 * 1024;
const MAX_BUFFER_BYTES = 1024 * 1024;
const MESSAGE_MAX_CHARS = 200;
/** How long a run may outlive its SIGKILL (a process stuck in the driver, a grandchild holding stdout). */
const KILL_GRACE_MS = 1000;

// ---------------------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------------------

/** How nvidia-smi printed one value. */
type Reading =
  | { readonly kind: 'value'; readonly text: string }
  | { readonly kind: 'absent' }
  | { readonly kind: 'field_error'; readonly error: string }
  | { readonly kind: 'device_lost'; readonly error: string };

/** Values that mean "this device does not have it": the field is absent. */
const ABSENT_TEXTS: ReadonlySet<string> = new Set(['', 'N/A', 'Not Supported', 'Unknown Error']);

/** nvmlErrorString() texts after which the device answers nothing, by the NVML code name. */
const DEVICE_LOST_TEXTS: ReadonlyMap<string, string> = new Map([
  ['GPU is lost', 'gpu_is_lost'],
  ['GPU requires reset', 'reset_required'],
]);

/** nvmlErrorString() texts whose NVML code name is not their snake_case form. */
const ERROR_CODES: ReadonlyMap<string, string> = new Map([
  ['Insufficient Permissions', 'no_permission'],
  ['Unknown Error', 'unknown'],
]);

function errorCode(text: string): string {
  const known = DEVICE_LOST_TEXTS.get(text) ?? ERROR_CODES.get(text);
  if (known !== undefined) return known;
  const snake = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return snake === '' ? 'unknown' : snake;
}

function readValue(raw: string): Reading {
  const text = raw.trim();
  const bracketed = /^\[(.*)\]$/.exec(text);
  const inner = bracketed === null ? text : bracketed[1].trim();
  if (ABSENT_TEXTS.has(inner)) return { kind: 'absent' };
  if (bracketed === null) return { kind: 'value', text };
  const error = `${errorCode(inner)}: ${inner}`;
  return DEVICE_LOST_TEXTS.has(inner) ? { kind: 'device_lost', error } : { kind: 'field_error', error };
}

/** A decimal number, with the unit nvidia-smi prints without `nounits` tolerated. */
const NUMBER = /^([+-]?\d+(?:\.\d+)?)(?:\s*(?:MiB|%|W|MHz|C))?$/;

function parseNumber(text: string): number | undefined {
  const match = NUMBER.exec(text);
  return match === null ? undefined : Number(match[1]);
}

function parseInteger(text: string): number | undefined {
  const value = parseNumber(text);
  return value !== undefined && Number.isSafeInteger(value) ? value : undefined;
}

function truncate(text: string): string {
  return text.length > MESSAGE_MAX_CHARS ? `${text.slice(0, MESSAGE_MAX_CHARS - 1)}…` : text;
}

function notANumber(text: string): string {
  return truncate(`parse_error: not a number: "${text}"`);
}

// ---------------------------------------------------------------------------------------------------------
// --query-gpu lines
// ---------------------------------------------------------------------------------------------------------

type DeviceDraft = { -readonly [K in keyof GpuDevice]: GpuDevice[K] };
type NumericKey =
  | 'utilizationGpuPercent'
  | 'utilizationMemoryPercent'
  | 'memoryTotalBytes'
  | 'memoryUsedBytes'
  | 'memoryFreeBytes'
  | 'temperatureCelsius'
  | 'powerWatts'
  | 'powerLimitWatts'
  | 'smClockMhz'
  | 'memoryClockMhz';
type TextKey = 'uuid' | 'name' | 'pciBusId';

const NUMERIC_FIELDS: ReadonlyMap<string, { readonly key: NumericKey; readonly scale: number }> = new Map([
  ['utilization.gpu', { key: 'utilizationGpuPercent', scale: 1 }],
  ['utilization.memory', { key: 'utilizationMemoryPercent', scale: 1 }],
  ['memory.total', { key: 'memoryTotalBytes', scale: MIB }],
  ['memory.used', { key: 'memoryUsedBytes', scale: MIB }],
  ['memory.free', { key: 'memoryFreeBytes', scale: MIB }],
  ['temperature.gpu', { key: 'temperatureCelsius', scale: 1 }],
  ['power.draw', { key: 'powerWatts', scale: 1 }],
  ['enforced.power.limit', { key: 'powerLimitWatts', scale: 1 }],
  ['clocks.sm', { key: 'smClockMhz', scale: 1 }],
  ['clocks.mem', { key: 'memoryClockMhz', scale: 1 }],
]);

const TEXT_FIELDS: ReadonlyMap<string, TextKey> = new Map([
  ['uuid', 'uuid'],
  ['name', 'name'],
  ['pci.bus_id', 'pciBusId'],
]);

const COMPUTE_MODES_BY_NAME: ReadonlyMap<string, ComputeMode> = new Map([
  ['Default', 'default'],
  ['Exclusive_Thread', 'exclusive_thread'],
  ['Prohibited', 'prohibited'],
  ['Exclusive_Process', 'exclusive_process'],
]);

interface ParsedGpuLine {
  readonly device: GpuDevice;
  readonly driverVersion?: string;
}

/** `GPU0000:17:00.0` (the handle-error message's form) → `00000000:17:00.0` (the `pci.bus_id` form). */
function normalizePciBusId(id: string): string {
  const [domain, ...rest] = id.split(':');
  return [domain.padStart(8, '0'), ...rest].join(':');
}

const HANDLE_ERROR = /^Unable to determine the device handle for (.+?): (.+)$/;
const PCI_BUS_ID = /([0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f])/i;

/** `Unable to determine the device handle for GPU0000:17:00.0: GPU is lost.  Reboot ...`. */
function parseHandleError(line: string, position: number): GpuDevice | undefined {
  const match = HANDLE_ERROR.exec(line.trim());
  if (match === null) return undefined;
  const pci = PCI_BUS_ID.exec(match[1]);
  const reason = match[2].split(/\.\s/)[0].replace(/\.$/, '').trim();
  return {
    index: position,
    ...(pci === null ? {} : { pciBusId: normalizePciBusId(pci[1]) }),
    healthy: false,
    error: truncate(`${errorCode(reason)}: ${reason}`),
  };
}

/** Splits a line into one value per field; the surplus of a name holding `, ` is joined back into it. */
function splitLine(line: string, fields: readonly string[]): string[] | undefined {
  const values = line.split(SEPARATOR);
  if (values.length === fields.length) return values;
  const nameAt = fields.indexOf('name');
  if (values.length < fields.length || nameAt < 0) return undefined;
  const nameEnd = nameAt + values.length - fields.length + 1;
  return [
    ...values.slice(0, nameAt),
    values.slice(nameAt, nameEnd).join(SEPARATOR),
    ...values.slice(nameEnd),
  ];
}

function isHeader(values: readonly string[], fields: readonly string[]): boolean {
  const first = values[0].trim();
  return first === fields[0] || first.startsWith(`${fields[0]} [`);
}

/** The index nvidia-smi printed, or the line's position among the device lines when it printed none. */
function indexOf(readings: ReadonlyMap<string, Reading>, position: number): number {
  const reading = readings.get('index');
  return (reading?.kind === 'value' ? parseInteger(reading.text) : undefined) ?? position;
}

/** A device whose fields read `[GPU is lost]` or the like: only what identifies it is kept. */
function lostDevice(readings: ReadonlyMap<string, Reading>, position: number, error: string): GpuDevice {
  const draft: DeviceDraft = { index: indexOf(readings, position), healthy: false, error };
  for (const [field, key] of TEXT_FIELDS) {
    const reading = readings.get(field);
    if (reading?.kind === 'value') draft[key] = reading.text;
  }
  return draft;
}

/** The GpuDevice key a field fills, which also names it in `fieldErrors`. */
function deviceKeyOf(field: string): string | undefined {
  if (field === 'index') return 'index';
  if (field === 'compute_mode') return 'computeMode';
  return TEXT_FIELDS.get(field) ?? NUMERIC_FIELDS.get(field)?.key;
}

/** Sets the reading of one field on the draft; returns why it could not (the value is not a number). */
function setValue(draft: DeviceDraft, field: string, text: string): string | undefined {
  const textKey = TEXT_FIELDS.get(field);
  const numeric = NUMERIC_FIELDS.get(field);
  if (textKey !== undefined) {
    draft[textKey] = text;
  } else if (numeric !== undefined) {
    const value = parseNumber(text);
    if (value === undefined) return notANumber(text);
    draft[numeric.key] = value * numeric.scale;
  } else if (field === 'compute_mode') {
    const mode = COMPUTE_MODES_BY_NAME.get(text);
    if (mode === undefined) return truncate(`parse_error: unknown compute mode "${text}"`);
    draft.computeMode = mode;
  } else if (field === 'index' && parseInteger(text) === undefined) {
    return notANumber(text);
  }
  return undefined;
}

function applyReading(
  draft: DeviceDraft,
  field: string,
  reading: Reading,
  errors: Record<string, string>,
): void {
  const key = deviceKeyOf(field);
  if (key === undefined || reading.kind === 'absent') return;
  const error = reading.kind === 'value' ? setValue(draft, field, reading.text) : reading.error;
  if (error !== undefined) errors[key] = error;
}

function healthyDevice(readings: ReadonlyMap<string, Reading>, position: number): GpuDevice {
  const draft: DeviceDraft = { index: indexOf(readings, position), healthy: true };
  const errors: Record<string, string> = {};
  for (const [field, reading] of readings) applyReading(draft, field, reading, errors);
  if (Object.keys(errors).length > 0) draft.fieldErrors = errors;
  return draft;
}

function deviceFromValues(
  values: readonly string[],
  fields: readonly string[],
  position: number,
): ParsedGpuLine {
  const readings = new Map(fields.map((field, i): [string, Reading] => [field, readValue(values[i])]));
  const driver = readings.get('driver_version');
  const driverVersion = driver?.kind === 'value' ? driver.text : undefined;
  const lost = [...readings.values()].find((reading) => reading.kind === 'device_lost');
  const device =
    lost?.kind === 'device_lost'
      ? lostDevice(readings, position, lost.error)
      : healthyDevice(readings, position);
  return driverVersion === undefined ? { device } : { device, driverVersion };
}

function parseGpuLine(line: string, fields: readonly string[], position: number): ParsedGpuLine | undefined {
  const handleError = parseHandleError(line, position);
  if (handleError !== undefined) return { device: handleError };
  const values = splitLine(line, fields);
  if (values === undefined || isHeader(values, fields)) return undefined;
  return deviceFromValues(values, fields, position);
}

/** The non-blank lines, untrimmed: a line ending in `, ` holds an empty last value. */
function meaningfulLines(text: string): string[] {
  return text.split(/\r?\n/).filter((line) => line.trim() !== '');
}

function firstLine(text: string): string | undefined {
  const line = meaningfulLines(text)[0];
  return line === undefined ? undefined : truncate(line.trim());
}

function parseError(what: string, text: string): CollectionError {
  const first = firstLine(text);
  const seen = first === undefined ? 'it printed nothing' : `first line: ${first}`;
  return new CollectionError(
    'parse_error',
    `nvidia-smi printed no ${what} line this parser understands (${seen})`,
  );
}

/**
 * Parses `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` output: one device per line
 * with the expected number of values (a name holding `, ` is joined back), or per
 * `Unable to determine the device handle ...` line (unhealthy, indexed by its position). `[N/A]`-like
 * values are absent, `[GPU is lost]`-like ones make the device unhealthy, other bracketed errors and
 * non-numbers go to `fieldErrors`. Lines it does not recognize are skipped.
 * @throws CollectionError `parse_error` when no line is recognized.
 */
export function parseGpuCsv(text: string, fields: readonly string[] = GPU_QUERY_FIELDS): ParsedGpuCsv {
  const devices: GpuDevice[] = [];
  let driverVersion: string | undefined;
  for (const line of meaningfulLines(text)) {
    const parsed = parseGpuLine(line, fields, devices.length);
    if (parsed === undefined) continue;
    devices.push(parsed.device);
    driverVersion ??= parsed.driverVersion;
  }
  if (devices.length === 0) throw parseError('device', text);
  return driverVersion === undefined ? { devices } : { devices, driverVersion };
}

// ---------------------------------------------------------------------------------------------------------
// --query-compute-apps lines
// ---------------------------------------------------------------------------------------------------------

const NO_PROCESSES = /^No running (compute )?processes found/i;

function parseComputeAppLine(line: string): ComputeApp | undefined {
  if (NO_PROCESSES.test(line.trim()) || HANDLE_ERROR.test(line.trim())) return undefined;
  const values = line.split(SEPARATOR);
  if (values.length !== COMPUTE_APPS_FIELDS.length) throw parseError('compute-app', line);
  const [uuid, pidValue, memoryValue] = values.map(readValue);
  if (uuid.kind !== 'value' || pidValue.kind !== 'value') return undefined;
  const pid = parseInteger(pidValue.text);
  if (pid === undefined) throw parseError('compute-app', line);
  const memory = memoryValue.kind === 'value' ? parseNumber(memoryValue.text) : undefined;
  return memory === undefined
    ? { gpuUuid: uuid.text, pid }
    : { gpuUuid: uuid.text, pid, usedMemoryBytes: Math.round(memory * MIB) };
}

/**
 * Parses `nvidia-smi --query-compute-apps=gpu_uuid,pid,used_memory --format=csv,noheader,nounits`
 * output (empty when nothing runs). A line whose uuid or pid reads `[N/A]`-like is skipped.
 * @throws CollectionError `parse_error` on a line with another field count or a pid that is not a number.
 */
export function parseComputeAppsCsv(text: string): ComputeApp[] {
  return meaningfulLines(text).flatMap((line) => parseComputeAppLine(line) ?? []);
}

// ---------------------------------------------------------------------------------------------------------
// Running the command
// ---------------------------------------------------------------------------------------------------------

interface CommandOutput {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

const START_FAILURES: ReadonlyMap<string, string> = new Map([
  ['ENOENT', 'nvidia-smi was not found'],
  ['EACCES', 'nvidia-smi is not executable (permission denied)'],
]);

/** Why a run produced no exit code. The message names the command, never its path. */
function runFailure(error: ExecFileException, timeoutMs: number): CollectionError {
  if (error.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') {
    return new CollectionError('command_failed', `nvidia-smi printed more than ${MAX_BUFFER_BYTES} bytes`);
  }
  if (error.killed === true && error.signal === 'SIGKILL') {
    return new CollectionError('timeout', `nvidia-smi did not finish within ${timeoutMs} ms and was killed`);
  }
  if (error.signal) return new CollectionError('command_failed', `nvidia-smi was killed by ${error.signal}`);
  const code = typeof error.code === 'string' ? error.code : 'unknown error';
  const known = START_FAILURES.get(code);
  return new CollectionError('command_failed', known ?? `nvidia-smi could not be started (${code})`);
}

function exitFailure(output: CommandOutput): CollectionError {
  const detail = firstLine(output.stderr) ?? firstLine(output.stdout);
  const suffix = detail === undefined ? '' : `: ${detail}`;
  return new CollectionError('command_failed', `nvidia-smi exited with code ${output.exitCode}${suffix}`);
}

/** Rejects with `timeout` when the promise has not settled after `ms` (the child ignored its SIGKILL). */
async function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new CollectionError('timeout', `nvidia-smi did not exit within ${ms} ms of being started`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs nvidia-smi without a shell. Resolves with its output and exit code (non-zero included); rejects
 * with CollectionError when it could not start, was killed (`timeout` for its own timeout) or printed
 * too much.
 */
function runNvidiaSmi(path: string, args: readonly string[], timeoutMs: number): Promise<CommandOutput> {
  const run = new Promise<CommandOutput>((resolve, reject) => {
    const options = {
      encoding: 'utf8' as const,
      timeout: timeoutMs,
      killSignal: 'SIGKILL' as const,
      maxBuffer: MAX_BUFFER_BYTES,
      // Only what the tool needs: the platform's secrets stay out of a child chosen by NVIDIA_SMI_PATH.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' },
      windowsHide: true,
    };
    try {
      execFile(path, args, options, (error, stdout, stderr) => {
        if (error === null) resolve({ stdout, stderr, exitCode: 0 });
        else if (typeof error.code === 'number') resolve({ stdout, stderr, exitCode: error.code });
        else reject(runFailure(error, timeoutMs));
      });
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      reject(new CollectionError('command_failed', truncate(`nvidia-smi could not be started: ${detail}`)));
    }
  });
  return withDeadline(run, timeoutMs + KILL_GRACE_MS);
}

function gpuQueryArgs(fields: readonly string[]): string[] {
  return [`--query-gpu=${fields.join(',')}`, CSV_FORMAT];
}

const COMPUTE_APPS_ARGS = [`--query-compute-apps=${COMPUTE_APPS_FIELDS.join(',')}`, CSV_FORMAT];

/** A zero exit must parse; a non-zero one (15: a GPU is lost) is kept when its output still parses. */
function gpuCsvOf(output: CommandOutput, fields: readonly string[]): ParsedGpuCsv {
  if (output.exitCode === 0) return parseGpuCsv(output.stdout, fields);
  try {
    return parseGpuCsv(output.stdout, fields);
  } catch {
    throw exitFailure(output);
  }
}

function uuidMapOf(devices: readonly GpuDevice[]): ReadonlyMap<string, number> {
  return new Map(
    devices.flatMap((device) => (device.uuid === undefined ? [] : [[device.uuid, device.index]])),
  );
}

function processOf(app: ComputeApp): GpuProcess {
  return app.usedMemoryBytes === undefined
    ? { pid: app.pid }
    : { pid: app.pid, usedMemoryBytes: app.usedMemoryBytes };
}

/** Healthy devices with a uuid get their apps (`[]` for none); without an app list, nothing changes. */
function withProcesses(devices: readonly GpuDevice[], apps: readonly ComputeApp[] | undefined): GpuDevice[] {
  if (apps === undefined) return [...devices];
  return devices.map((device) =>
    device.healthy && device.uuid !== undefined
      ? { ...device, processes: apps.filter((app) => app.gpuUuid === device.uuid).map(processOf) }
      : device,
  );
}

function memoryOf(
  pid: number,
  apps: readonly ComputeApp[],
  uuidToIndex: ReadonlyMap<string, number>,
): ProcessGpuMemory {
  const perDevice: Record<number, number> = {};
  let totalBytes = 0;
  for (const app of apps) {
    const index = uuidToIndex.get(app.gpuUuid);
    if (app.pid !== pid || app.usedMemoryBytes === undefined || index === undefined) continue;
    perDevice[index] = (perDevice[index] ?? 0) + app.usedMemoryBytes;
    totalBytes += app.usedMemoryBytes;
  }
  return { perDevice, totalBytes };
}

/** Waits for both runs to end (no child outlives the call), then rejects with the first failure. */
async function bothEnded<A, B>(first: Promise<A>, second: Promise<B>): Promise<[A, B]> {
  const [a, b] = await Promise.allSettled([first, second]);
  if (a.status === 'rejected') throw a.reason;
  if (b.status === 'rejected') throw b.reason;
  return [a.value, b.value];
}

// ---------------------------------------------------------------------------------------------------------
// The collector
// ---------------------------------------------------------------------------------------------------------

/**
 * Reads the GPUs through the `nvidia-smi` command: the fallback when NVML cannot be loaded. Each
 * `collect()` runs `--query-gpu` and `--query-compute-apps` in parallel; a failing app list only leaves
 * `processes` absent.
 */
export class NvidiaSmiCollector implements GpuCollector {
  readonly source = 'nvidia-smi' as const;
  private uuidToIndex: ReadonlyMap<string, number> | undefined;
  private closed = false;

  constructor(private readonly options: NvidiaSmiOptions) {}

  /** Reads every device (`skipDevices` is ignored: one command reads them all). */
  async collect(_options?: CollectOptions): Promise<GpuSnapshot> {
    this.assertOpen();
    const started = performance.now();
    const [gpus, apps] = await bothEnded(
      this.queryGpus(GPU_QUERY_FIELDS),
      this.queryComputeApps().catch(() => undefined),
    );
    this.uuidToIndex = uuidMapOf(gpus.devices);
    const devices = withProcesses(gpus.devices, apps);
    const durationMs = performance.now() - started;
    const driver = gpus.driverVersion === undefined ? {} : { driverVersion: gpus.driverVersion };
    return { source: this.source, collectedAt: Date.now(), durationMs, ...driver, devices };
  }

  /** This pid's memory per device index, from the compute-apps list and the last uuid → index map. */
  async processMemory(pid: number): Promise<ProcessGpuMemory> {
    this.assertOpen();
    const [apps, uuidToIndex] = await bothEnded(this.queryComputeApps(), this.knownUuidMap());
    return memoryOf(pid, apps, uuidToIndex);
  }

  /** Nothing to release; later calls reject. */
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  private assertOpen(): void {
    if (this.closed) throw new CollectionError('command_failed', 'collector closed');
  }

  private run(args: readonly string[]): Promise<CommandOutput> {
    return runNvidiaSmi(this.options.path, args, this.options.timeoutMs);
  }

  private async queryGpus(fields: readonly string[]): Promise<ParsedGpuCsv> {
    return gpuCsvOf(await this.run(gpuQueryArgs(fields)), fields);
  }

  private async queryComputeApps(): Promise<ComputeApp[]> {
    const output = await this.run(COMPUTE_APPS_ARGS);
    if (output.exitCode !== 0) throw exitFailure(output);
    return parseComputeAppsCsv(output.stdout);
  }

  private async knownUuidMap(): Promise<ReadonlyMap<string, number>> {
    if (this.uuidToIndex === undefined) {
      this.uuidToIndex = uuidMapOf((await this.queryGpus(['index', 'uuid'])).devices);
    }
    return this.uuidToIndex;
  }
}

/** Resolves true when `nvidia-smi --query-gpu=index` exits 0 (false when missing, failing or hung). */
export async function nvidiaSmiAvailable(path: string, timeoutMs: number): Promise<boolean> {
  try {
    return (await runNvidiaSmi(path, gpuQueryArgs(['index']), timeoutMs)).exitCode === 0;
  } catch {
    return false;
  }
}
