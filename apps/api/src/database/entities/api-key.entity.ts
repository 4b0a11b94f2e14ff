import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryColumn,
  type Relation,
} from 'typeorm';
import { TenantEntity } from './tenant.entity';

/** The scopes a key can carry; `admin` implies the others. */
export const API_KEY_SCOPES = ['inference', 'ops', 'admin'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

/**
 * An API key. Only its public id (the key's look-up handle, safe for logs and lists) and a keyed hash of its
 * secret are stored: never the clear key.
 */
@Entity({ name: 'api_keys' })
export class ApiKeyEntity {
  /** The public id inside the key (`vla_<id>_...`). */
  @PrimaryColumn({ type: 'varchar', length: 16 })
  id!: string;

  @Index('idx_api_keys_tenant_id')
  @Column({ name: 'tenant_id', type: 'varchar', length: 36 })
  tenantId!: string;

  @ManyToOne(() => TenantEntity, (tenant) => tenant.keys, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'tenant_id' })
  tenant?: Relation<TenantEntity>;

  @Column({ type: 'varchar', length: 128 })
  name!: string;

  /** HMAC-SHA256 of the secret, hex (see auth/api-key-format.ts). */
  @Column({ name: 'secret_hash', type: 'varchar', length: 64 })
  secretHash!: string;

  /** Comma-separated in the column, an array here. */
  @Column({ type: 'simple-array' })
  scopes!: ApiKeyScope[];

  /** Overrides the tenant's requests per minute; null: the tenant's. */
  @Column({ name: 'requests_per_minute', type: 'integer', nullable: true })
  requestsPerMinute!: number | null;

  /** Concurrent requests in flight for this key; null: the platform default. */
  @Column({ name: 'max_concurrent', type: 'integer', nullable: true })
  maxConcurrent!: number | null;

  @CreateDateColumn({ name: 'created_at' })
  createdAt!: Date;

  /** Written in batches, never once per request. */
  @Column({ name: 'last_used_at', type: Date, nullable: true })
  lastUsedAt!: Date | null;

  @Column({ name: 'expires_at', type: Date, nullable: true })
  expiresAt!: Date | null;

  @Column({ name: 'revoked_at', type: Date, nullable: true })
  revokedAt!: Date | null;
}
