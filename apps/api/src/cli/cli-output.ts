import type { CreatedKey, KeyView, TenantView } from '../auth/access.schemas';

/** Left-aligned columns separated by two spaces; no trailing blanks. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return `${[headers, ...rows].map(line).join('\n')}\n`;
}

const orDash = (value: string | number | null) => (value === null ? '-' : String(value));

export function tenantTable(tenants: readonly TenantView[]): string {
  if (tenants.length === 0) return 'no tenants\n';
  return table(
    ['NAME', 'ID', 'STATUS', 'DAILY_QUOTA', 'REQUESTS_PER_MINUTE', 'TOKENS_PER_MINUTE', 'CREATED_AT'],
    tenants.map((t) => [
      t.name,
      t.id,
      t.disabled ? 'disabled' : 'enabled',
      orDash(t.daily_request_quota),
      orDash(t.requests_per_minute),
      orDash(t.tokens_per_minute),
      t.created_at,
    ]),
  );
}

/** `revoked` wins over `expired`: it is the admin's deliberate act. */
export function keyStatus(key: KeyView, now: Date): 'active' | 'revoked' | 'expired' {
  if (key.revoked_at !== null) return 'revoked';
  if (key.expires_at !== null && Date.parse(key.expires_at) <= now.getTime()) return 'expired';
  return 'active';
}

export function keyTable(keys: readonly KeyView[], now: Date): string {
  if (keys.length === 0) return 'no keys\n';
  return table(
    ['ID', 'TENANT', 'NAME', 'SCOPES', 'STATUS', 'CREATED_AT', 'LAST_USED_AT', 'EXPIRES_AT'],
    keys.map((k) => [
      k.id,
      k.tenant,
      k.name,
      k.scopes.join(','),
      keyStatus(k, now),
      k.created_at,
      orDash(k.last_used_at),
      orDash(k.expires_at),
    ]),
  );
}

/** One `label  value` line per field, for a single tenant or key. */
export function fields(entries: readonly (readonly [string, string | number | null])[]): string {
  const width = Math.max(...entries.map(([label]) => label.length));
  return entries.map(([label, value]) => `${label.padEnd(width)}  ${orDash(value)}\n`).join('');
}

export function tenantFields(t: TenantView): string {
  return fields([
    ['id', t.id],
    ['name', t.name],
    ['status', t.disabled ? 'disabled' : 'enabled'],
    ['daily_request_quota', t.daily_request_quota],
    ['requests_per_minute', t.requests_per_minute],
    ['tokens_per_minute', t.tokens_per_minute],
    ['created_at', t.created_at],
  ]);
}

export function keyFields(k: KeyView | CreatedKey, now: Date): string {
  return fields([
    ...('key' in k ? [['key', k.key] as const] : []),
    ['id', k.id],
    ['tenant', k.tenant],
    ['name', k.name],
    ['scopes', k.scopes.join(',')],
    ['status', keyStatus(k, now)],
    ['requests_per_minute', k.requests_per_minute],
    ['max_concurrent', k.max_concurrent],
    ['created_at', k.created_at],
    ['expires_at', k.expires_at],
    ['revoked_at', k.revoked_at],
  ]);
}
