import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { ApiKeyEntity, TenantEntity } from '../database/entities';
import { AppError } from '../errors/app-error';
import { generateApiKey, hashSecret } from './api-key-format';
import { AccessRepository } from './access.repository';
import type {
  CreateKey,
  CreateTenant,
  CreatedKey,
  KeyView,
  TenantView,
  UpdateKey,
  UpdateTenant,
} from './access.schemas';
import { AUTH_OPTIONS, type AuthOptions } from './auth.options';
import { KeyEvents } from './key-events';

export function tenantView(t: TenantEntity): TenantView {
  return {
    id: t.id,
    name: t.name,
    disabled: t.disabled,
    daily_request_quota: t.dailyRequestQuota,
    requests_per_minute: t.requestsPerMinute,
    tokens_per_minute: t.tokensPerMinute,
    created_at: t.createdAt.toISOString(),
  };
}

export function keyView(k: ApiKeyEntity, tenantName: string): KeyView {
  return {
    id: k.id,
    tenant: tenantName,
    name: k.name,
    scopes: k.scopes,
    requests_per_minute: k.requestsPerMinute,
    max_concurrent: k.maxConcurrent,
    created_at: k.createdAt.toISOString(),
    last_used_at: k.lastUsedAt?.toISOString() ?? null,
    expires_at: k.expiresAt?.toISOString() ?? null,
    revoked_at: k.revokedAt?.toISOString() ?? null,
  };
}

/**
 * Tenants and keys, as admins manage them (HTTP admin API and CLI alike). The clear key exists only in the
 * return value of {@link createKey}; what is stored is its public id and an HMAC of its secret.
 */
@Injectable()
export class AccessAdminService {
  constructor(
    private readonly repo: AccessRepository,
    @Inject(AUTH_OPTIONS) private readonly options: AuthOptions,
    private readonly events: KeyEvents,
  ) {}

  async createTenant(input: CreateTenant): Promise<TenantView> {
    if ((await this.repo.findTenantByName(input.name)) !== null) {
      throw new AppError('conflict', `A tenant named ${input.name} already exists.`);
    }
    const id = randomUUID();
    await this.repo.insertTenant({
      id,
      name: input.name,
      disabled: input.disabled ?? false,
      dailyRequestQuota: input.daily_request_quota ?? null,
      requestsPerMinute: input.requests_per_minute ?? null,
      tokensPerMinute: input.tokens_per_minute ?? null,
    });
    return tenantView(await this.tenantOrFail(id));
  }

  async listTenants(): Promise<TenantView[]> {
    return (await this.repo.listTenants()).map(tenantView);
  }

  async updateTenant(id: string, patch: UpdateTenant): Promise<TenantView> {
    await this.tenantOrFail(id);
    await this.repo.updateTenant(id, {
      ...(patch.disabled === undefined ? {} : { disabled: patch.disabled }),
      ...(patch.daily_request_quota === undefined ? {} : { dailyRequestQuota: patch.daily_request_quota }),
      ...(patch.requests_per_minute === undefined ? {} : { requestsPerMinute: patch.requests_per_minute }),
      ...(patch.tokens_per_minute === undefined ? {} : { tokensPerMinute: patch.tokens_per_minute }),
    });
    const updated = await this.tenantOrFail(id);
    // Every change (disabled, or a limit) reaches this process's caches at once; other replicas re-read the
    // row within API_KEY_CACHE_TTL_MS.
    this.events.tenantChanged(updated.id, updated.name, updated.disabled);
    return tenantView(updated);
  }

  async createKey(input: CreateKey): Promise<CreatedKey> {
    const tenant = await this.repo.findTenantByName(input.tenant);
    if (tenant === null) throw new AppError('not_found', `No tenant named ${input.tenant}.`);
    const issued = generateApiKey();
    await this.repo.insertKey({
      id: issued.publicId,
      tenantId: tenant.id,
      name: input.name,
      secretHash: hashSecret(issued.publicId, issued.secret, this.options.pepper),
      scopes: input.scopes,
      requestsPerMinute: input.requests_per_minute ?? null,
      maxConcurrent: input.max_concurrent ?? null,
      lastUsedAt: null,
      expiresAt: input.expires_at == null ? null : new Date(input.expires_at),
      revokedAt: null,
    });
    const stored = await this.repo.findKeyWithTenant(issued.publicId);
    if (stored === null) throw new AppError('internal_error', 'The key was not stored.');
    return { ...keyView(stored, tenant.name), key: issued.key };
  }

  async listKeys(tenantName?: string): Promise<KeyView[]> {
    let tenantId: string | undefined;
    if (tenantName !== undefined) {
      const tenant = await this.repo.findTenantByName(tenantName);
      if (tenant === null) throw new AppError('not_found', `No tenant named ${tenantName}.`);
      tenantId = tenant.id;
    }
    return (await this.repo.listKeys(tenantId)).map((k) => keyView(k, k.tenant?.name ?? ''));
  }

  /**
   * Changes a key's limits (null: back to the tenant's or the platform's). This process applies them at once;
   * other running servers once their cached row expires (API_KEY_CACHE_TTL_MS).
   */
  async updateKey(id: string, patch: UpdateKey): Promise<KeyView> {
    const key = await this.repo.findKeyWithTenant(id);
    if (key === null) throw new AppError('not_found', `No key with id ${id}.`);
    await this.repo.updateKey(id, {
      ...(patch.requests_per_minute === undefined ? {} : { requestsPerMinute: patch.requests_per_minute }),
      ...(patch.max_concurrent === undefined ? {} : { maxConcurrent: patch.max_concurrent }),
    });
    this.events.keyChanged(id);
    const updated = await this.repo.findKeyWithTenant(id);
    return keyView(updated ?? key, key.tenant?.name ?? '');
  }

  /** Revokes a key (idempotent); every cache in this process forgets it at once. */
  async revokeKey(id: string): Promise<KeyView> {
    const key = await this.repo.findKeyWithTenant(id);
    if (key === null) throw new AppError('not_found', `No key with id ${id}.`);
    if (key.revokedAt === null) {
      await this.repo.revokeKey(id, new Date());
      this.events.keyRevoked(id);
    }
    const revoked = await this.repo.findKeyWithTenant(id);
    return keyView(revoked ?? key, key.tenant?.name ?? '');
  }

  countKeys(): Promise<number> {
    return this.repo.countKeys();
  }

  private async tenantOrFail(id: string): Promise<TenantEntity> {
    const tenant = await this.repo.findTenantById(id);
    if (tenant === null) throw new AppError('not_found', `No tenant with id ${id}.`);
    return tenant;
  }
}
