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

/** 415 for a body that is not JSON: we never guess at a media type. */
function requireJsonMediaType(req: Request, _res: Response, next: NextFunction): void {
  if (hasBody(req) && !JSON_MEDIA_TYPE.test(req.headers['content-type'] ?? '')) {
    next(new AppError('unsupported_media_type', 'Send the body as application/json.'));
    return;
  }
  next();
}

/**
 * Finds `__proto__` keys and `constructor` keys holding an object, anywhere in a parsed body. Iterative, so
 * 100 000 levels of nesting cannot overflow the stack. Returns the dotted path of the first one found.
 */
export function findForbiddenKey(body: unknown): string | undefined {
  const stack: { value: unknown; path: string }[] = [{ value: body, path: '' }];
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    if (value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], path: `${path}[${i}]` });
      continue;
    }
    for (const key of Object.keys(value)) {
      const child: unknown = (value as Record<string, unknown>)[key];
      const childPath = path === '' ? key : `${path}.${key}`;
      if (key === '__proto__' || (key === 'constructor' && child !== null && typeof child === 'object')) {
        return childPath;
      }
      stack.push({ value: child, path: childPath });
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
  return [requireJsonMediaType, parse, refuseForbiddenKeys];
}
