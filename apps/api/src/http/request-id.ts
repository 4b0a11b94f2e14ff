import type { IncomingMessage } from 'node:http';
import { randomUUID } from 'node:crypto';

/** Bounded length and charset: UUIDs, ULIDs, W3C trace ids and the like. Nothing that can split a header. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:+/=-]{1,128}$/;

/** The client's `X-Request-Id` when it is sane, else a new UUID. */
export function resolveRequestId(header: string | string[] | undefined): string {
  return typeof header === 'string' && SANE_REQUEST_ID.test(header) ? header : randomUUID();
}

/** The id assigned by the request-context middleware ('' before it ran). */
export function requestIdOf(req: IncomingMessage): string {
  const id = (req as IncomingMessage & { id?: unknown }).id;
  return typeof id === 'string' ? id : '';
}
