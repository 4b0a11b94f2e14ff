import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { IncomingMessage } from 'node:http';
import { AppError } from '../errors/app-error';

const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]*\+)?json\s*(?:;|$)/i;
/** Set by `verify` when the raw body could hide a forbidden key, so clean bodies skip the walk. */
const MAY_HIDE_FORBIDDEN_KEY = Symbol('mayHideForbiddenKey');

type MarkedRequest = IncomingMessage & { [MAY_HIDE_FORBIDDEN_KEY]?: boolean };

function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Whether a request announcing `Expect: 100-continue` may send its body: JSON, and no larger than the
 * limit by its Content-Length. Otherwise the client gets the final 413 or 415 instead of `100 Continue`,
 * and never uploads a body we would refuse.
 */
export function bodyWorthReceiving(req: IncomingMessage, limitBytes: number): boolean {
  const length = Number(req.headers['content-length'] ?? 0);
  return (
    JSON_MEDIA_TYPE.test(req.headers['content-type'] ?? '') && Number.isFinite(length) && length <= limitBytes
  );
}

/**
 * Refuses a body before reading a byte of it: 415 when it is not JSON (we never guess at a media type),
 * 413 when its Content-Length is over the limit. body-parser would read (and discard) the whole upload
 * before answering, and wait forever for a client that asked `Expect: 100-continue`.
 */
function screenBody(limitBytes: number) {
  return (req: Request, _res: Response, next: NextFunction): void => {
    if (!hasBody(req)) {
      next();
      return;
    }
    if (!JSON_MEDIA_TYPE.test(req.headers['content-type'] ?? '')) {
      next(new AppError('unsupported_media_type', 'Send the body as application/json.'));
      return;
    }
    if (Number(req.headers['content-length'] ?? 0) > limitBytes) {
      next(
        new AppError(
          'payload_too_large',
          `The request body is larger than the limit of ${limitBytes} bytes.`,
        ),
      );
      return;
    }
    next();
  };
}

interface Frame {
  readonly value: object;
  readonly parent: Frame | undefined;
  readonly key: string | number;
}

function pathOf(frame: Frame | undefined, key: string | number): string {
  const keys: (string | number)[] = [key];
  for (let f = frame; f !== undefined && f.parent !== undefined; f = f.parent) keys.push(f.key);
  let path = '';
  for (let i = keys.length - 1; i >= 0; i--) {
    const k = keys[i];
    path += typeof k === 'number' ? `[${k}]` : path === '' ? k : `.${k}`;
  }
  return path;
}

/**
 * Finds `__proto__` keys and `constructor` keys holding an object, anywhere in a parsed body; returns the
 * dotted path of the first one. Iterative (100 000 levels of nesting cannot overflow the stack), and it
 * allocates only for objects and arrays, never per primitive: an 8 MiB array of numbers costs one pass.
 */
export function findForbiddenKey(body: unknown): string | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  const stack: Frame[] = [{ value: body, parent: undefined, key: '' }];
  while (stack.length > 0) {
    const frame = stack.pop()!;
    const value = frame.value;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) {
        const child: unknown = value[i];
        if (child !== null && typeof child === 'object') stack.push({ value: child, parent: frame, key: i });
      }
      continue;
    }
    for (const key of Object.keys(value)) {
      const child: unknown = (value as Record<string, unknown>)[key];
      const isObject = child !== null && typeof child === 'object';
      if (key === '__proto__' || (key === 'constructor' && isObject)) return pathOf(frame, key);
      if (isObject) stack.push({ value: child, parent: frame, key });
    }
  }
  return undefined;
}

/** 400 for bodies carrying prototype-pollution keys (`__proto__`, `constructor.prototype`). */
function refuseForbiddenKeys(req: Request, _res: Response, next: NextFunction): void {
  if ((req as MarkedRequest)[MAY_HIDE_FORBIDDEN_KEY] === true) {
    const path = findForbiddenKey(req.body);
    if (path !== undefined) {
      next(
        new AppError('invalid_request', 'The body contains a forbidden key.', {
          fields: [{ path, message: 'Keys named __proto__ or constructor are not accepted.' }],
        }),
      );
      return;
    }
  }
  next();
}

/**
 * JSON body parsing for every route, registered at the Express level in place of Nest's parser so that
 * every failure (bad JSON, too large, wrong media type, forbidden keys) becomes our JSON error, never 500
 * or an HTML page.
 */
export function jsonBodyMiddleware(limitBytes: number): RequestHandler[] {
  const parse = express.json({
    limit: limitBytes,
    strict: true,
    type: (req) => JSON_MEDIA_TYPE.test(req.headers['content-type'] ?? ''),
    verify: (req, _res, buf) => {
      // A raw scan is far cheaper than walking a large body; `\u` catches escaped spellings of the keys.
      (req as MarkedRequest)[MAY_HIDE_FORBIDDEN_KEY] =
        buf.includes('__proto__') || buf.includes('constructor') || buf.includes('\\u');
    },
  });
  return [screenBody(limitBytes), parse, refuseForbiddenKeys];
}
