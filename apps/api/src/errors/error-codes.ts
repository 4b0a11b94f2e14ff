/**
 * Every error code the API answers with, and its HTTP status: the one table. Codes are stable strings that
 * clients may switch on; they survive any transport (the CLI prints the same codes). Libs throw errors that
 * carry one of these codes (duck-typed `{ code }`), and the global filter turns them into responses.
 */
export const ERROR_CODES = {
  invalid_json: { status: 400, message: 'The request body is not valid JSON.' },
  invalid_request: {
    status: 400,
    message: 'The request is invalid.',
    // 400: not the shape of the contract; 422: shaped right but not what the model or robot takes.
    otherStatuses: [422],
  },
  unauthorized: { status: 401, message: 'Authentication is required.' },
  forbidden: { status: 403, message: 'This credential may not do that.' },
  not_found: { status: 404, message: 'No route matches this method and path.' },
  model_not_found: { status: 404, message: 'No model has that id.' },
  method_not_allowed: { status: 405, message: 'This path does not take that method; see the Allow header.' },
  conflict: { status: 409, message: 'That already exists.' },
  request_timeout: { status: 408, message: 'The request body did not arrive in time.' },
  payload_too_large: { status: 413, message: 'The request body is larger than the limit.' },
  unsupported_media_type: { status: 415, message: 'Send the body as application/json.' },
  expectation_failed: { status: 417, message: 'Only the Expect: 100-continue expectation is supported.' },
  header_too_large: { status: 431, message: 'The request headers are too large.' },
  rate_limited: { status: 429, message: 'Too many requests; retry later.' },
  quota_exceeded: {
    status: 429,
    message: "The tenant's daily request quota is used up; it resets at midnight UTC.",
  },
  unsupported_image_format: { status: 415, message: 'Images must be JPEG or PNG.' },
  image_too_large: { status: 422, message: 'The image has more pixels than the limit.' },
  invalid_image: { status: 422, message: 'The image could not be decoded.' },
  safety_rejected: { status: 422, message: 'The action chunk failed the safety checks.' },
  client_closed: { status: 499, message: 'The client closed the connection before the answer.' },
  internal_error: {
    status: 500,
    message: 'An internal error occurred; it has been logged with the request id.',
  },
  not_ready: { status: 503, message: 'The service is not ready.' },
  shutting_down: { status: 503, message: 'The server is shutting down; retry on another replica.' },
  dependency_unavailable: { status: 503, message: 'A dependency is unavailable; retry later.' },
  database_unavailable: { status: 503, message: 'The database is unavailable; retry later.' },
  rate_limit_unavailable: {
    status: 503,
    message: 'Rate limits cannot be checked right now, so requests are refused; retry later.',
  },
  model_unavailable: { status: 503, message: 'The model is not loaded on this replica.' },
  queue_full: { status: 503, message: "The model's queue is full; retry later." },
  usage_unavailable: {
    status: 503,
    message: 'Usage cannot be recorded right now, so billable work is refused; retry later.',
  },
  deadline_exceeded: { status: 504, message: 'The request waited past its deadline and was not run.' },
} as const satisfies Record<string, { status: number; message: string; otherStatuses?: readonly number[] }>;

/** The status `code` answers with; `status` when the table allows it for that code, else its default. */
export function statusFor(code: ErrorCode, status?: number): number {
  const entry: { status: number; otherStatuses?: readonly number[] } = ERROR_CODES[code];
  return status !== undefined && entry.otherStatuses?.includes(status) === true ? status : entry.status;
}

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
    /** The safety report, on `safety_rejected`. */
    safety?: unknown;
  };
}
