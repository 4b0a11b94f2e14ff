/**
 * Every error code the API answers with, and its HTTP status: the one table. Codes are stable strings that
 * clients may switch on; they survive any transport (the CLI prints the same codes). Libs throw errors that
 * carry one of these codes (duck-typed `{ code }`), and the global filter turns them into responses.
 */
export const ERROR_CODES = {
  invalid_json: { status: 400, message: 'The request body is not valid JSON.' },
  invalid_request: { status: 400, message: 'The request is invalid.' },
  unauthorized: { status: 401, message: 'Authentication is required.' },
  forbidden: { status: 403, message: 'This credential may not do that.' },
  not_found: { status: 404, message: 'No route matches this method and path.' },
  conflict: { status: 409, message: 'That already exists.' },
  request_timeout: { status: 408, message: 'The request body did not arrive in time.' },
  payload_too_large: { status: 413, message: 'The request body is larger than the limit.' },
  unsupported_media_type: { status: 415, message: 'Send the body as application/json.' },
  expectation_failed: { status: 417, message: 'Only the Expect: 100-continue expectation is supported.' },
  header_too_large: { status: 431, message: 'The request headers are too large.' },
  rate_limited: { status: 429, message: 'Too many requests; retry later.' },
  internal_error: {
    status: 500,
    message: 'An internal error occurred; it has been logged with the request id.',
  },
  not_ready: { status: 503, message: 'The service is not ready.' },
  shutting_down: { status: 503, message: 'The server is shutting down; retry on another replica.' },
  dependency_unavailable: { status: 503, message: 'A dependency is unavailable; retry later.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** One failing field of a request, as `invalid_request` reports it. */
export interface FieldError {
  /** Dotted path into the body (`options.deadline_ms`), or `''` for the body itself. */
  readonly path: string;
  readonly message: string;
}

/** The JSON every error response carries. */
export interface ErrorBody {
  error: {
    code: string;
    message: string;
    request_id: string;
    fields?: FieldError[];
    details?: Record<string, unknown>;
  };
}
