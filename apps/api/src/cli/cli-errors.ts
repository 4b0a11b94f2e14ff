import type { z } from 'zod';
import { type AppConfig, ConfigError } from '../config';
import { AppError } from '../errors/app-error';
import type { ErrorCode, FieldError } from '../errors/error-codes';

/** The CLI's exit statuses; scripts may rely on them. */
export const EXIT = {
  ok: 0,
  /** The operation was refused (invalid input, not found, conflict) or failed. */
  failed: 1,
  /** The command line itself is wrong: unknown command or option, missing argument. */
  usage: 2,
  /** Invalid configuration (environment) or the database is unavailable. */
  unavailable: 3,
} as const;

/** What the CLI prints as `error <code>: <message>` on stderr, and how it exits. */
export interface CliFailure {
  readonly code: ErrorCode | ConfigError['code'];
  readonly message: string;
  readonly exitCode: number;
}

/** Driver error codes meaning the database went away mid-command (Node sockets, PostgreSQL, SQLite). */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EPIPE',
  '57P01',
  '57P02',
  '57P03',
  'SQLITE_BUSY',
  'SQLITE_CANTOPEN',
]);
/** Unique-constraint violations: another admin created the same thing a moment earlier. */
const CONFLICT_CODES = new Set(['23505', 'SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_CONSTRAINT_PRIMARYKEY']);

/** The configuration's secrets, so that no message of the CLI repeats them. */
export function secretsOf(config: AppConfig): string[] {
  const secrets: string[] = [];
  if (config.database.type === 'postgres') {
    secrets.push(config.database.url);
    try {
      const password = decodeURIComponent(new URL(config.database.url).password);
      if (password !== '') secrets.push(password);
    } catch {
      // The loader already refused URLs that do not parse.
    }
  }
  if (config.auth.pepper !== null) secrets.push(config.auth.pepper);
  return secrets;
}

export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (secret !== '') out = out.split(secret).join('***');
  }
  return out;
}

/** Validates input with the admin API's schema; failures name the CLI's options, not the JSON fields. */
export function validate<S extends z.ZodType>(
  schema: S,
  input: unknown,
  optionNames: Readonly<Record<string, string>> = {},
): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const fields: FieldError[] = result.error.issues.map((issue) => {
    const field = issue.path.map(String).join('.');
    const top = issue.path.length > 0 ? String(issue.path[0]) : '';
    return { path: optionNames[top] ?? (field === '' ? 'input' : field), message: issue.message };
  });
  throw new AppError('invalid_request', fields.map((f) => `${f.path}: ${f.message}`).join('; '), { fields });
}

/** Turns `--n 60` into 60; anything but an integer is an invalid_request naming the option. */
export function integerOption(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value.trim())) {
    throw new AppError('invalid_request', `${option}: must be an integer.`, {
      fields: [{ path: option, message: 'must be an integer.' }],
    });
  }
  return Number(value);
}

/** Like {@link integerOption}, and `none` clears the limit (null). */
export function limitOption(value: string | undefined, option: string): number | null | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === 'none') return null;
  if (!/^-?\d+$/.test(value.trim())) {
    throw new AppError('invalid_request', `${option}: must be an integer or none.`, {
      fields: [{ path: option, message: 'must be an integer or none.' }],
    });
  }
  return Number(value);
}

function driverCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { driverError?: unknown; cause?: unknown }).driverError ?? (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Maps anything a command threw to its code, message and exit status; secrets are masked. */
export function describeFailure(error: unknown, secrets: readonly string[] = []): CliFailure {
  if (error instanceof ConfigError) {
    return {
      code: error.code,
      message: `invalid configuration: ${error.message}`,
      exitCode: EXIT.unavailable,
    };
  }
  if (error instanceof AppError) {
    const unavailable = error.code === 'dependency_unavailable' || error.code === 'not_ready';
    return {
      code: error.code,
      message: redact(error.message, secrets),
      exitCode: unavailable ? EXIT.unavailable : EXIT.failed,
    };
  }
  const code = driverCode(error);
  const message = redact(error instanceof Error ? error.message : String(error), secrets);
  if (code !== undefined && CONFLICT_CODES.has(code)) {
    return { code: 'conflict', message: `That already exists: ${message}`, exitCode: EXIT.failed };
  }
  if (code !== undefined && UNAVAILABLE_CODES.has(code)) {
    return {
      code: 'dependency_unavailable',
      message: `The database is unavailable: ${message}`,
      exitCode: EXIT.unavailable,
    };
  }
  const name = error instanceof Error ? error.name : typeof error;
  return { code: 'internal_error', message: `${name}: ${message}`, exitCode: EXIT.failed };
}
