import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { In, type Repository } from 'typeorm';
import { ApiKeyEntity, TenantEntity } from '../database/entities';
import { AppError } from '../errors/app-error';

/** PostgreSQL's unique_violation, and SQLite's. */
const UNIQUE_VIOLATIONS = new Set(['23505', 'SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_CONSTRAINT_PRIMARYKEY']);

function isUniqueViolation(error: unknown): boolean {
  const driverError = (error as { driverError?: { code?: unknown } }).driverError;
  return UNIQUE_VIOLATIONS.has(String(driverError?.code));
}

/** Every database call about tenants and API keys. */
@Injectable()
export class AccessRepository {
  constructor(
    @InjectRepository(TenantEntity) private readonly tenants: Repository<TenantEntity>,
    @InjectRepository(ApiKeyEntity) private readonly keys: Repository<ApiKeyEntity>,
  ) {}

  /** Inserts a tenant; a name taken meanwhile (two admins at once, two replicas) is a 409, not a 500. */
  async insertTenant(tenant: Omit<TenantEntity, 'createdAt' | 'keys'>): Promise<void> {
    try {
      await this.tenants.insert(tenant);
    } catch (error) {
      if (isUniqueViolation(error))
        throw new AppError('conflict', `A tenant named ${tenant.name} already exists.`);
      throw error;
    }
  }

  findTenantById(id: string): Promise<TenantEntity | null> {
    return this.tenants.findOneBy({ id });
  }

  findTenantByName(name: string): Promise<TenantEntity | null> {
    return this.tenants.findOneBy({ name });
  }

  listTenants(): Promise<TenantEntity[]> {
    return this.tenants.find({ order: { name: 'ASC' } });
  }

  async updateTenant(
    id: string,
    patch: Partial<
      Pick<TenantEntity, 'disabled' | 'dailyRequestQuota' | 'requestsPerMinute' | 'tokensPerMinute'>
    >,
  ) {
    // An empty patch (PATCH with `{}`) changes nothing; TypeORM refuses an UPDATE without values.
    if (Object.keys(patch).length > 0) await this.tenants.update({ id }, patch);
  }

  insertKey(key: Omit<ApiKeyEntity, 'createdAt' | 'tenant'>): Promise<unknown> {
    return this.keys.insert(key);
  }

  /** The key with its tenant, for verification: one query. */
  findKeyWithTenant(id: string): Promise<ApiKeyEntity | null> {
    return this.keys.findOne({ where: { id }, relations: { tenant: true } });
  }

  listKeys(tenantId?: string): Promise<ApiKeyEntity[]> {
    return this.keys.find({
      where: tenantId === undefined ? {} : { tenantId },
      relations: { tenant: true },
      order: { createdAt: 'ASC', id: 'ASC' },
    });
  }

  async updateKey(id: string, patch: Partial<Pick<ApiKeyEntity, 'requestsPerMinute' | 'maxConcurrent'>>) {
    if (Object.keys(patch).length > 0) await this.keys.update({ id }, patch);
  }

  async revokeKey(id: string, at: Date): Promise<void> {
    await this.keys.update({ id }, { revokedAt: at });
  }

  countKeys(): Promise<number> {
    return this.keys.count();
  }

  /** Writes the batched `last_used_at` values: one statement per distinct instant, usually one. */
  async touchKeys(lastUsed: ReadonlyMap<string, Date>): Promise<void> {
    const byInstant = new Map<number, string[]>();
    for (const [id, at] of lastUsed) {
      const ids = byInstant.get(at.getTime()) ?? [];
      ids.push(id);
      byInstant.set(at.getTime(), ids);
    }
    for (const [at, ids] of byInstant) await this.keys.update({ id: In(ids) }, { lastUsedAt: new Date(at) });
  }
}
