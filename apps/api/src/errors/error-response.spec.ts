import {
  BadRequestException,
  ForbiddenException,
  HttpException,
  HttpStatus,
  InternalServerErrorException,
  NotFoundException,
  PayloadTooLargeException,
} from '@nestjs/common';
import { AppError } from './app-error';
import { type ErrorCode, ERROR_CODES } from './error-codes';
import { toErrorResponse } from './error-response';

/** What body-parser and raw-body throw: http-errors with a `type`, a status and a raw message. */
function bodyParserError(type: string, status: number, message: string): Error {
  return Object.assign(new Error(message), { type, status, statusCode: status, expose: true });
}

const CODES = Object.keys(ERROR_CODES) as ErrorCode[];

describe('ERROR_CODES', () => {
  it.each(CODES)('%s is a snake_case code with an error status and a message', (code) => {
    expect(code).toMatch(/^[a-z]+(_[a-z]+)*$/);
    const { status, message } = ERROR_CODES[code];
    expect(Number.isInteger(status)).toBe(true);
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThanOrEqual(599);
    expect(message).not.toBe('');
  });
});

describe('toErrorResponse', () => {
  describe('errors carrying one of our codes', () => {
    it.each(CODES)('answers %s with the status from ERROR_CODES and the error message', (code) => {
      expect(toErrorResponse(new AppError(code, `Specific message for ${code}.`))).toEqual({
        status: ERROR_CODES[code].status,
        code,
        message: `Specific message for ${code}.`,
        component: 'api',
        unexpected: false,
      });
    });

    it('answers invalid_request as 422 when asked, and ignores a status the table does not allow', () => {
      expect(toErrorResponse(new AppError('invalid_request', 'x', { status: 422 })).status).toBe(422);
      expect(toErrorResponse(new AppError('invalid_request', 'x', { status: 500 })).status).toBe(400);
      expect(toErrorResponse(new AppError('queue_full', 'x', { status: 200 })).status).toBe(503);
    });

    it('carries the safety report on safety_rejected only', () => {
      const report = { outcome: 'rejected', score: 0 };
      expect(toErrorResponse(new AppError('safety_rejected', 'x', { safety: report })).safety).toBe(report);
      expect(
        toErrorResponse(new AppError('invalid_request', 'x', { safety: report })).safety,
      ).toBeUndefined();
    });

    it('keeps fields, details, retryAfterSeconds and component', () => {
      const error = new AppError('rate_limited', 'Slow down: 10 requests per second.', {
        fields: [{ path: 'options.deadline_ms', message: 'must be positive' }],
        details: { limit: 10, window_seconds: 1 },
        retryAfterSeconds: 2.5,
        component: 'rate_limit',
      });
      expect(toErrorResponse(error)).toEqual({
        status: 429,
        code: 'rate_limited',
        message: 'Slow down: 10 requests per second.',
        fields: [{ path: 'options.deadline_ms', message: 'must be positive' }],
        details: { limit: 10, window_seconds: 1 },
        retryAfterSeconds: 2.5,
        component: 'rate_limit',
        unexpected: false,
      });
    });

    it.each([NaN, Infinity, -Infinity])(
      'drops a retryAfterSeconds of %p (never a Retry-After: NaN)',
      (value) => {
        const error = new AppError('rate_limited', undefined, { retryAfterSeconds: value });
        expect(toErrorResponse(error).retryAfterSeconds).toBeUndefined();
      },
    );

    it('uses the default message of the code when the error has none', () => {
      expect(toErrorResponse(new AppError('not_ready'))).toMatchObject({
        status: 503,
        message: ERROR_CODES.not_ready.message,
      });
      expect(toErrorResponse(new AppError('forbidden', ''))).toMatchObject({
        status: 403,
        message: ERROR_CODES.forbidden.message,
      });
    });

    it('accepts any error with a known code, as libs throw them', () => {
      class QueueFullError extends Error {
        readonly code = 'rate_limited';
        readonly retryAfterSeconds = 3;
      }
      expect(toErrorResponse(new QueueFullError('The queue is full.'))).toEqual({
        status: 429,
        code: 'rate_limited',
        message: 'The queue is full.',
        retryAfterSeconds: 3,
        component: 'api',
        unexpected: false,
      });
    });

    it('ignores details of the wrong shape', () => {
      const odd = {
        code: 'invalid_request',
        message: 'Bad.',
        fields: 'x',
        details: 'y',
        retryAfterSeconds: '1',
      };
      expect(toErrorResponse(odd)).toEqual({
        status: 400,
        code: 'invalid_request',
        message: 'Bad.',
        component: 'api',
        unexpected: false,
      });
    });
  });

  describe('body-parser errors', () => {
    it.each([
      ['entity.parse.failed', 400, 'invalid_json', ERROR_CODES.invalid_json.message],
      ['entity.too.large', 413, 'payload_too_large', ERROR_CODES.payload_too_large.message],
      ['entity.verify.failed', 403, 'invalid_request', ERROR_CODES.invalid_request.message],
      ['request.size.invalid', 400, 'invalid_request', 'The body length does not match Content-Length.'],
      ['request.aborted', 400, 'invalid_request', 'The client aborted the request body.'],
      ['encoding.unsupported', 415, 'unsupported_media_type', 'Unsupported Content-Encoding.'],
      ['charset.unsupported', 415, 'unsupported_media_type', 'Send the body as UTF-8 JSON.'],
    ])('maps %s (raw status %i) to %s', (type, rawStatus, code, message) => {
      const raw = bodyParserError(type, rawStatus, `Unexpected token } in JSON at position 7 (${type})`);
      expect(toErrorResponse(raw)).toEqual({
        status: ERROR_CODES[code as ErrorCode].status,
        code,
        message,
        component: 'api',
        unexpected: false,
      });
      expect(toErrorResponse({ type })).toMatchObject({
        code,
        status: ERROR_CODES[code as ErrorCode].status,
      });
    });

    it('answers 400 invalid_json and 413 payload_too_large', () => {
      expect(toErrorResponse({ type: 'entity.parse.failed' })).toMatchObject({
        status: 400,
        code: 'invalid_json',
      });
      expect(toErrorResponse({ type: 'entity.too.large' })).toMatchObject({
        status: 413,
        code: 'payload_too_large',
      });
    });

    it('maps a Nest HttpException by the type of the body-parser error it wraps', () => {
      const parse = bodyParserError('entity.parse.failed', 400, 'Unexpected end of JSON input');
      expect(toErrorResponse(new BadRequestException('x', { cause: parse }))).toMatchObject({
        status: 400,
        code: 'invalid_json',
        message: ERROR_CODES.invalid_json.message,
        unexpected: false,
      });
      const tooLarge = bodyParserError('entity.too.large', 413, 'request entity too large');
      expect(toErrorResponse(new BadRequestException('x', { cause: tooLarge }))).toMatchObject({
        status: 413,
        code: 'payload_too_large',
        message: ERROR_CODES.payload_too_large.message,
      });
    });

    it('treats an unknown type like any other error', () => {
      expect(toErrorResponse({ type: 'entity.unknown' })).toMatchObject({
        status: 500,
        code: 'internal_error',
      });
    });
  });

  describe('Nest HTTP exceptions', () => {
    it("answers not_found with our message, not Nest's `Cannot GET ...`", () => {
      const response = toErrorResponse(new NotFoundException('Cannot GET /internal/admin'));
      expect(response).toEqual({
        status: 404,
        code: 'not_found',
        message: ERROR_CODES.not_found.message,
        component: 'api',
        unexpected: false,
      });
      expect(JSON.stringify(response)).not.toContain('/internal/admin');
    });

    it.each([
      [
        'BadRequestException',
        400,
        'invalid_request',
        new BadRequestException('Validation failed: raw detail'),
      ],
      ['ForbiddenException', 403, 'forbidden', new ForbiddenException()],
      ['PayloadTooLargeException', 413, 'payload_too_large', new PayloadTooLargeException()],
      ['HttpException', 429, 'rate_limited', new HttpException('Too Many', HttpStatus.TOO_MANY_REQUESTS)],
      ['HttpException', 422, 'invalid_request', new HttpException('Unprocessable', 422)],
      ['HttpException', 503, 'dependency_unavailable', new HttpException('Unavailable', 503)],
    ])('maps %s to %i %s with the message of the code', (_name, status, code, exception) => {
      const response = toErrorResponse(exception);
      expect(response).toMatchObject({ status, code, message: ERROR_CODES[code as ErrorCode].message });
      expect(response.unexpected).toBe(false);
    });

    it('keeps the status of another client error, as invalid_request', () => {
      expect(toErrorResponse(new HttpException('Gone', HttpStatus.GONE))).toMatchObject({
        status: 410,
        code: 'invalid_request',
        message: ERROR_CODES.invalid_request.message,
      });
    });

    it('answers a server-side HttpException as an unexpected internal_error', () => {
      const response = toErrorResponse(new InternalServerErrorException('db password is hunter2'));
      expect(response).toMatchObject({ status: 500, code: 'internal_error', unexpected: true });
      expect(JSON.stringify(response)).not.toContain('hunter2');
    });
  });

  describe('anything else', () => {
    it('answers 500 internal_error, unexpected, without the original message', () => {
      const response = toErrorResponse(new Error('/secret/path/to/config.json: EACCES'));
      expect(response).toEqual({
        status: 500,
        code: 'internal_error',
        message: ERROR_CODES.internal_error.message,
        component: 'api',
        unexpected: true,
      });
      expect(JSON.stringify(response)).not.toContain('/secret/path');
    });

    it.each([
      ['a string', 'boom at /secret/path'],
      ['null', null],
      ['undefined', undefined],
      ['a number', 42],
      ['a Node system error', Object.assign(new Error('open /secret/path'), { code: 'ENOENT' })],
      [
        'an error with an unknown code',
        Object.assign(new Error('nope /secret/path'), { code: 'no_such_code' }),
      ],
    ])('answers %s as internal_error', (_what, thrown) => {
      const response = toErrorResponse(thrown);
      expect(response).toMatchObject({ status: 500, code: 'internal_error', unexpected: true });
      expect(JSON.stringify(response)).not.toContain('/secret/path');
    });
  });
});
