import { type ErrorCode, ERROR_CODES, type FieldError } from './error-codes';

export interface AppErrorOptions {
  readonly fields?: readonly FieldError[];
  /** Safe, structured details for the client (never secrets, stacks or paths). */
  readonly details?: Record<string, unknown>;
  /** Sent as `Retry-After` (seconds). */
  readonly retryAfterSeconds?: number;
  /** Which part of the platform failed, for `vla_errors_total{component}`. */
  readonly component?: string;
  /** Another status the table allows for this code (`invalid_request` as 422); otherwise ignored. */
  readonly status?: number;
  /** The safety report, sent as `error.safety` with `safety_rejected`. */
  readonly safety?: unknown;
  readonly cause?: unknown;
}

/**
 * An error with a stable code. Services throw these (never HTTP exceptions); the global filter maps the
 * code to a status through {@link ERROR_CODES}.
 */
export class AppError extends Error {
  readonly fields?: readonly FieldError[];
  readonly details?: Record<string, unknown>;
  readonly retryAfterSeconds?: number;
  readonly component?: string;
  readonly status?: number;
  readonly safety?: unknown;

  constructor(
    readonly code: ErrorCode,
    message: string = ERROR_CODES[code].message,
    options: AppErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.fields = options.fields;
    this.details = options.details;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.component = options.component;
    this.status = options.status;
    this.safety = options.safety;
  }
}
