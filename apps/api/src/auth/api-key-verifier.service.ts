import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import type { ApiKeyEntity, ApiKeyScope } from '../database/entities';
import { parseApiKey, secretMatches } from './api-key-format';
import { AccessRepository } from './access.repository';
import type { AuthFailureReason } from './auth.metrics';
import { AUTH_OPTIONS, type AuthOptions } from './auth.options';
import { KeyEvents } from './key-events';
import { LastUsedWriter } from './last-used.writer';

/** Who is calling: attached to the request for the stages after authentication (limits, usage, metrics). */
export interface Principal {
  readonly keyId: string;
  readonly tenantId: string;
  readonly tenantName: string;
  readonly tenantDisabled: boolean;
  readonly scopes: readonly ApiKeyScope[];
  /** The key's override, else the tenant's default; null: the platform default. */
  readonly requestsPerMinute: number | null;
  readonly maxConcurrent: number | null;
  readonly dailyRequestQuota: number | null;
  /** The tenant's LLM tokens per minute; null: the platform default. */
  readonly tokensPerMinute: number | null;
}

export type Verification =
  | { readonly ok: true; readonly principal: Principal }
  | { readonly ok: false; readonly reason: AuthFailureReason };

interface CachedKey {
  readonly row: ApiKeyEntity;
  /** Monotonic ms after which the database is asked again. */
  readonly freshUntil: number;
}

const MAX_CACHED_KEYS = 10_000;
const MAX_UNKNOWN_IDS = 10_000;

/**
 * Verifies presented keys. Format and checksum first (garbage never reaches the database), then the key's
 * row, from a short cache or the database, then the HMAC of the secret in constant time, then revocation,
 * expiry and the tenant. The cache holds rows, never secrets: a wrong secret fails even for a cached id.
 * When the database cannot be asked, keys verified before keep working from their (stale) cached row, and
 * any other key is `unavailable` (503), never a 401: an outage must not look like a bad key.
 */
@Injectable()
export class ApiKeyVerifier implements OnModuleInit {
  private readonly cache = new Map<string, CachedKey>();
  private readonly unknown = new Map<string, number>();

  constructor(
    private readonly repo: AccessRepository,
    @Inject(AUTH_OPTIONS) private readonly options: AuthOptions,
    private readonly events: KeyEvents,
    private readonly lastUsed: LastUsedWriter,
  ) {}

  onModuleInit(): void {
    this.events.on((event) => {
      if (event.type === 'key_revoked' || event.type === 'key_changed') this.cache.delete(event.keyId);
      else
        for (const [id, cached] of this.cache)
          if (cached.row.tenantId === event.tenantId) this.cache.delete(id);
    });
  }

  async verify(presented: string): Promise<Verification> {
    const parsed = parseApiKey(presented);
    if (parsed === null) return { ok: false, reason: 'malformed' };
    const now = performance.now();

    const unknownUntil = this.unknown.get(parsed.publicId);
    if (unknownUntil !== undefined && unknownUntil > now) return { ok: false, reason: 'unknown' };

    let row: ApiKeyEntity | null;
    const cached = this.cache.get(parsed.publicId);
    if (cached !== undefined && cached.freshUntil > now) {
      row = cached.row;
    } else {
      try {
        row = await this.repo.findKeyWithTenant(parsed.publicId);
      } catch {
        if (cached === undefined) return { ok: false, reason: 'unavailable' };
        row = cached.row;
      }
      this.remember(parsed.publicId, row, now);
    }
    if (row === null) return { ok: false, reason: 'unknown' };
    if (!secretMatches(parsed, row.secretHash, this.options.pepper))
      return { ok: false, reason: 'wrong_secret' };
    if (row.revokedAt !== null) return { ok: false, reason: 'revoked' };
    if (row.expiresAt !== null && row.expiresAt.getTime() <= Date.now())
      return { ok: false, reason: 'expired' };
    const tenant = row.tenant;
    if (tenant === undefined) return { ok: false, reason: 'unknown' };

    this.lastUsed.touch(row.id);
    return {
      ok: true,
      principal: {
        keyId: row.id,
        tenantId: tenant.id,
        tenantName: tenant.name,
        tenantDisabled: tenant.disabled,
        scopes: row.scopes,
        requestsPerMinute: row.requestsPerMinute ?? tenant.requestsPerMinute,
        maxConcurrent: row.maxConcurrent,
        dailyRequestQuota: tenant.dailyRequestQuota,
        tokensPerMinute: tenant.tokensPerMinute,
      },
    };
  }

  private remember(id: string, row: ApiKeyEntity | null, now: number): void {
    if (row === null) {
      if (this.unknown.size >= MAX_UNKNOWN_IDS) this.unknown.clear();
      this.unknown.set(id, now + this.options.negativeCacheTtlMs);
      this.cache.delete(id);
      return;
    }
    this.unknown.delete(id);
    this.cache.delete(id);
    if (this.cache.size >= MAX_CACHED_KEYS) {
      // Oldest first: a Map iterates in insertion order.
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(id, { row, freshUntil: now + this.options.cacheTtlMs });
  }
}
