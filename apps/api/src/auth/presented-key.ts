import type { IncomingHttpHeaders } from 'node:http';

/** What the request presents: nothing, one key, or two different keys (refused). */
export type PresentedKey =
  | { readonly kind: 'none' }
  | { readonly kind: 'conflicting' }
  | { readonly kind: 'key'; readonly key: string };

/**
 * The key from `X-API-Key` or `Authorization: Bearer` (never a query parameter). Both headers with the same
 * key is fine; with different values it is refused.
 */
export function presentedKey(headers: IncomingHttpHeaders): PresentedKey {
  const header = headers['x-api-key'];
  const fromHeader = typeof header === 'string' && header !== '' ? header.trim() : undefined;
  const auth = headers.authorization;
  const bearer = typeof auth === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(auth)?.[1] : undefined;
  if (fromHeader !== undefined && bearer !== undefined && fromHeader !== bearer)
    return { kind: 'conflicting' };
  const key = fromHeader ?? bearer;
  return key === undefined ? { kind: 'none' } : { kind: 'key', key };
}
