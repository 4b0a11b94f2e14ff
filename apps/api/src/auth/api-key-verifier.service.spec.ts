import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import pino from 'pino';
import type { DataSource, Logger as TypeOrmLogger } from 'typeorm';
import { buildDataSourceOptions } from '../database/database-options';
import { ApiKeyEntity, TenantEntity } from '../database/entities';
import { openDataSource } from '../database/open-data-source';
import { AccessAdminService } from './access-admin.service';
import { AccessRepository } from './access.repository';
import { generateApiKey } from './api-key-format';
import { ApiKeyVerifier } from './api-key-verifier.service';
import type { AuthOptions } from './auth.options';
import { KeyEvents } from './key-events';
import { LastUsedWriter } from './last-used.writer';

const OPTIONS: AuthOptions = {
  pepper: 'pepper-for-verifier-tests',
  cacheTtlMs: 60_000,
  negativeCacheTtlMs: 60_000,
  bootstrap: false,
};

describe('ApiKeyVerifier', () => {
  let dir: string;
  let ds: DataSource;
  let queries: number;
  let admin: AccessAdminService;
  let events: KeyEvents;
  let repo: AccessRepository;

  const verifier = (options: Partial<AuthOptions> = {}) => {
    const v = new ApiKeyVerifier(
      repo,
      { ...OPTIONS, ...options },
      events,
      new LastUsedWriter(repo, pino({ level: 'silent' })),
    );
    v.onModuleInit();
    return v;
  };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vla-verifier-'));
    const counter: TypeOrmLogger = {
      logQuery: () => {
        queries++;
      },
      logQueryError: () => undefined,
      logQuerySlow: () => undefined,
      logSchemaBuild: () => undefined,
      logMigration: () => undefined,
      log: () => undefined,
    };
    ds = await openDataSource({
      ...buildDataSourceOptions({ type: 'sqlite', path: join(dir, 'db.sqlite') }),
      logging: ['query'],
      logger: counter,
    });
    events = new KeyEvents();
    repo = new AccessRepository(ds.getRepository(TenantEntity), ds.getRepository(ApiKeyEntity));
    admin = new AccessAdminService(repo, OPTIONS, events);
    await admin.createTenant({ name: 'acme' });
    queries = 0;
  });
  afterEach(async () => {
    if (ds.isInitialized) await ds.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('verifies a key, then answers from the cache without a query', async () => {
    const { key } = await admin.createKey({ tenant: 'acme', name: 'k', scopes: ['inference'] });
    const v = verifier();
    queries = 0;
    const first = await v.verify(key);
    expect(first).toMatchObject({ ok: true, principal: { tenantName: 'acme', scopes: ['inference'] } });
    const afterFirst = queries;
    expect(afterFirst).toBeGreaterThan(0);
    expect(await v.verify(key)).toMatchObject({ ok: true });
    expect(queries).toBe(afterFirst);
  });

  it("carries the tenant's limits in the principal; the key's requests_per_minute wins over the tenant's", async () => {
    const tenant = await admin.createTenant({
      name: 'limited',
      daily_request_quota: 5000,
      requests_per_minute: 60,
      tokens_per_minute: 90_000,
    });
    const own = await admin.createKey({ tenant: 'limited', name: 'own', scopes: ['inference'] });
    const override = await admin.createKey({
      tenant: 'limited',
      name: 'override',
      scopes: ['inference'],
      requests_per_minute: 600,
      max_concurrent: 3,
    });
    const limits = {
      tenantId: tenant.id,
      dailyRequestQuota: 5000,
      tokensPerMinute: 90_000,
    };
    expect(await verifier().verify(own.key)).toMatchObject({
      ok: true,
      principal: { ...limits, keyId: own.id, requestsPerMinute: 60, maxConcurrent: null },
    });
    expect(await verifier().verify(override.key)).toMatchObject({
      ok: true,
      principal: { ...limits, keyId: override.id, requestsPerMinute: 600, maxConcurrent: 3 },
    });

    await admin.updateTenant(tenant.id, { tokens_per_minute: null });
    expect(await verifier().verify(own.key)).toMatchObject({
      ok: true,
      principal: { tokensPerMinute: null },
    });
  });

  it('refuses garbage and mistyped keys without touching the database', async () => {
    const { key } = await admin.createKey({ tenant: 'acme', name: 'k', scopes: ['inference'] });
    const v = verifier();
    queries = 0;
    const typo = key.slice(0, 20) + (key[20] === 'a' ? 'b' : 'a') + key.slice(21);
    for (const presented of ['', 'garbage', 'vla_x', typo, `${key}x`]) {
      expect(await v.verify(presented)).toEqual({ ok: false, reason: 'malformed' });
    }
    expect(queries).toBe(0);
  });

  it('remembers unknown ids: a burst of one unknown key costs one query', async () => {
    const v = verifier();
    const unknown = generateApiKey().key;
    for (let i = 0; i < 20; i++) expect(await v.verify(unknown)).toEqual({ ok: false, reason: 'unknown' });
    expect(queries).toBe(1);
  });

  it('refuses a wrong secret for a cached id', async () => {
    const created = await admin.createKey({ tenant: 'acme', name: 'k', scopes: ['ops'] });
    const v = verifier();
    expect(await v.verify(created.key)).toMatchObject({ ok: true });
    // Same public id, another secret, a correct checksum: only the HMAC can tell.
    const other = generateApiKey();
    const forged = forgeKey(created.id, other.key);
    expect(await v.verify(forged)).toEqual({ ok: false, reason: 'wrong_secret' });
  });

  it('forgets a revoked key at once in this process', async () => {
    const created = await admin.createKey({ tenant: 'acme', name: 'k', scopes: ['ops'] });
    const v = verifier();
    expect(await v.verify(created.key)).toMatchObject({ ok: true });
    await admin.revokeKey(created.id);
    expect(await v.verify(created.key)).toEqual({ ok: false, reason: 'revoked' });
  });

  it('keeps verified keys working from the cache when the database is gone; others are unavailable', async () => {
    const known = await admin.createKey({ tenant: 'acme', name: 'known', scopes: ['ops'] });
    const never = await admin.createKey({ tenant: 'acme', name: 'never', scopes: ['ops'] });
    const v = verifier({ cacheTtlMs: 0 });
    expect(await v.verify(known.key)).toMatchObject({ ok: true });
    await ds.destroy();
    // The cache entry is stale (TTL 0), the database cannot answer: the stale row still serves.
    expect(await v.verify(known.key)).toMatchObject({ ok: true });
    expect(await v.verify(never.key)).toEqual({ ok: false, reason: 'unavailable' });
  });

  it('reports expired keys and disabled tenants', async () => {
    const soon = new Date(Date.now() + 60_000).toISOString();
    const created = await admin.createKey({ tenant: 'acme', name: 'k', scopes: ['ops'], expires_at: soon });
    await ds
      .getRepository(ApiKeyEntity)
      .update({ id: created.id }, { expiresAt: new Date(Date.now() - 1000) });
    expect(await verifier().verify(created.key)).toEqual({ ok: false, reason: 'expired' });

    const live = await admin.createKey({ tenant: 'acme', name: 'live', scopes: ['ops'] });
    const tenant = (await admin.listTenants())[0];
    await admin.updateTenant(tenant.id, { disabled: true });
    expect(await verifier().verify(live.key)).toMatchObject({
      ok: true,
      principal: { tenantDisabled: true },
    });
  });
});

/** A key with `publicId` and the secret of `donor`, with a correct checksum (CRC32, 6 base62 chars). */
function forgeKey(publicId: string, donor: string): string {
  const secret = donor.slice(17, 41);
  const body = `vla_${publicId}_${secret}`;
  const digits = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  let n = crc32(body);
  let sum = '';
  for (; n > 0; n = Math.floor(n / 62)) sum = digits[n % 62] + sum;
  return body + sum.padStart(6, '0');
}
