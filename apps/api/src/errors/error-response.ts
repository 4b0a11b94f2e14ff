import { HttpException } from '@nestjs/common';
import type { Response } from 'express';
import {
  type ErrorBody,
  type ErrorCode,
  ERROR_CODES,
  type FieldError,
  isErrorCode,
  statusFor,
} from './error-codes';

/** What the filter needs to answer one failure. */
export interface ErrorResponse {
  readonly status: number;
  readonly code: ErrorCode;
  readonly message: string;
  readonly fields?: readonly FieldError[];
  readonly details?: Record<string, unknown>;
  readonly retryAfterSeconds?: number;
  readonly component: string;
  readonly safety?: unknown;
  /** True for failures nobody anticipated: logged with their stack and counted as exceptions. */
  readonly unexpected: boolean;
}

interface CodedError {
  code: unknown;
  message?: unknown;
  fields?: unknown;
  details?: unknown;
  retryAfterSeconds?: unknown;
  component?: unknown;
  status?: unknown;
  safety?: unknown;
}

/** body-parser's and raw-body's error types (http-errors `type`), mapped to our codes. */
const BODY_ERROR_CODES: Record<string, { code: ErrorCode; message?: string }> = {
  'entity.parse.failed': { code: 'invalid_json' },
  'entity.too.large': { code: 'payload_too_large' },
  'entity.verify.failed': { code: 'invalid_request' },
  'request.size.invalid': {
    code: 'invalid_request',
    message: 'The body length does not match Content-Length.',
  },
  'request.aborted': { code: 'invalid_request', message: 'The client aborted the request body.' },
  'encoding.unsupported': { code: 'unsupported_media_type', message: 'Unsupported Content-Encoding.' },
  'charset.unsupported': { code: 'unsupported_media_type', message: 'Send the body as UTF-8 JSON.' },
};

const STATUS_CODES: Record<number, ErrorCode> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  408: 'request_timeout',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'invalid_request',
  429: 'rate_limited',
  431: 'header_too_large',
  503: 'dependency_unavailable',
};

const fromCode = (code: ErrorCode, rest: Partial<ErrorResponse> = {}): ErrorResponse => ({
  status: ERROR_CODES[code].status,
  code,
  message: ERROR_CODES[code].message,
  component: 'api',
  unexpected: false,
  ...rest,
});

/** Maps anything thrown to the response we send; never exposes stacks, paths or raw framework messages. */
export function toErrorResponse(exception: unknown): ErrorResponse {
  if (typeof exception === 'object' && exception !== null) {
    const e = exception as CodedError & { type?: unknown };
    if (isErrorCode(e.code)) {
      return fromCode(e.code, {
        message: typeof e.message === 'string' && e.message !== '' ? e.message : ERROR_CODES[e.code].message,
        fields: Array.isArray(e.fields) ? (e.fields as FieldError[]) : undefined,
        details:
          typeof e.details === 'object' && e.details !== null
            ? (e.details as Record<string, unknown>)
            : undefined,
        retryAfterSeconds:
          typeof e.retryAfterSeconds === 'number' && Number.isFinite(e.retryAfterSeconds)
            ? e.retryAfterSeconds
            : undefined,
        component: typeof e.component === 'string' ? e.component : 'api',
        status: statusFor(e.code, typeof e.status === 'number' ? e.status : undefined),
        safety: e.code === 'safety_rejected' ? e.safety : undefined,
      });
    }
    if (typeof e.type === 'string' && Object.hasOwn(BODY_ERROR_CODES, e.type)) {
      const mapped = BODY_ERROR_CODES[e.type];
      return fromCode(mapped.code, mapped.message === undefined ? {} : { message: mapped.message });
    }
  }
  if (exception instanceof HttpException) {
    // Express's adapter wraps body-parser errors in an HttpException; the cause keeps their `type`.
    const cause = exception.cause as { type?: unknown } | undefined;
    if (typeof cause?.type === 'string' && Object.hasOwn(BODY_ERROR_CODES, cause.type)) {
      return toErrorResponse(cause);
    }
    const status = exception.getStatus();
    const code = STATUS_CODES[status];
    if (code !== undefined) return { ...fromCode(code), status };
    if (status < 500) return { ...fromCode('invalid_request'), status };
  }
  return fromCode('internal_error', { unexpected: true });
}

/** Writes the envelope; used by the filter and by the Express-level middleware that run before Nest. */
export function sendError(res: Response, requestId: string, error: ErrorResponse): void {
  const body: ErrorBody = { error: { code: error.code, message: error.message, request_id: requestId } };
  if (error.fields !== undefined) body.error.fields = [...error.fields];
  if (error.details !== undefined) body.error.details = error.details;
  if (error.safety !== undefined) body.error.safety = error.safety;
  if (error.retryAfterSeconds !== undefined) {
    res.setHeader('Retry-After', String(Math.max(0, Math.ceil(error.retryAfterSeconds))));
  }
  if (error.status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
  // The body was refused unread: close the connection rather than read (and discard) the rest of it.
  if (error.code === 'payload_too_large' || error.code === 'unsupported_media_type') {
    res.setHeader('Connection', 'close');
  }
  res.status(error.status).json(body);
}
