import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { TestApp } from './test-app';

// Mirrors the published key format (vla_<12 id>_<24 secret><6 checksum>, base62, CRC32 of everything before
// the checksum) independently of the implementation, so tests can forge keys that pass the format check.
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** The published regex for secret scanners. */
export const KEY_PATTERN = /^vla_[0-9A-Za-z]{12}_[0-9A-Za-z]{30}$/;

function base62(length: number): string {
  // Modulo bias is fine here: these are test values, not secrets.
  return [...randomBytes(length)].map((b) => BASE62[b % 62]).join('');
}

function checksum(body: string): string {
  let out = '';
  for (let v = crc32(body); v > 0; v = Math.floor(v / 62)) out = BASE62[v % 62] + out;
  return out.padStart(6, '0');
}

/** A well-formed key with a correct checksum: `publicId` (12 chars) and `secret` (24 chars), random by default. */
export function forgeKey(publicId = base62(12), secret = base62(24)): string {
  const body = `vla_${publicId}_${secret}`;
  return body + checksum(body);
}

/** The public id inside a key. */
export function publicIdOf(key: string): string {
  return key.slice(4, 16);
}

/** `key` with one secret character changed and the checksum left as it was: fails the checksum. */
export function flipOneChar(key: string): string {
  const i = 20;
  const replacement = key[i] === 'a' ? 'b' : 'a';
  return key.slice(0, i) + replacement + key.slice(i + 1);
}

/** The admin key the first start printed (exactly one line carries it). */
export function bootstrapKeyOf(t: TestApp): string {
  const lines = t.logs.records().filter((r) => 'bootstrap_admin_key' in r);
  if (lines.length !== 1) throw new Error(`${lines.length} bootstrap lines`);
  return lines[0].bootstrap_admin_key as string;
}

export interface CreatedKey {
  readonly id: string;
  readonly key: string;
  readonly [field: string]: unknown;
}

/** The admin API, called with `adminKey`; each helper asserts the success status. */
export class AdminApi {
  constructor(
    private readonly t: TestApp,
    private readonly adminKey: string,
  ) {}

  call(method: string, path: string, body?: unknown) {
    return this.t.fetch(path, {
      method,
      headers: {
        'x-api-key': this.adminKey,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async createTenant(name: string, extra: Record<string, unknown> = {}): Promise<{ id: string }> {
    const res = await this.call('POST', '/admin/tenants', { name, ...extra });
    if (res.status !== 201) throw new Error(`POST /admin/tenants: ${res.status} ${res.text}`);
    return res.json() as { id: string };
  }

  async createKey(
    tenant: string,
    scopes: string[],
    extra: Record<string, unknown> = {},
  ): Promise<CreatedKey> {
    const res = await this.call('POST', '/admin/keys', {
      tenant,
      name: `${tenant} ${scopes.join('+')}`,
      scopes,
      ...extra,
    });
    if (res.status !== 201) throw new Error(`POST /admin/keys: ${res.status} ${res.text}`);
    return res.json() as CreatedKey;
  }

  async revoke(id: string): Promise<void> {
    const res = await this.call('DELETE', `/admin/keys/${id}`);
    if (res.status !== 200) throw new Error(`DELETE /admin/keys/${id}: ${res.status} ${res.text}`);
  }

  async setDisabled(tenantId: string, disabled: boolean): Promise<void> {
    const res = await this.call('PATCH', `/admin/tenants/${tenantId}`, { disabled });
    if (res.status !== 200) throw new Error(`PATCH /admin/tenants: ${res.status} ${res.text}`);
  }
}

/** The fields of a key in the admin API and the CLI: never a secret or a hash. */
export const KEY_VIEW_FIELDS = [
  'created_at',
  'expires_at',
  'id',
  'last_used_at',
  'max_concurrent',
  'name',
  'requests_per_minute',
  'revoked_at',
  'scopes',
  'tenant',
];
