import { Column, CreateDateColumn, Entity, OneToMany, PrimaryColumn, type Relation } from 'typeorm';
import { ApiKeyEntity } from './api-key.entity';

/** A customer of the platform: its keys, its limits, and whether it may call at all. */
@Entity({ name: 'tenants' })
export class TenantEntity {
  /** A UUID, made by the application (the same on SQLite and PostgreSQL). */
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id!: string;

  @Column({ type: 'varchar', length: 64, unique: true })
  name!: string;

  /** A disabled tenant's keys all get 403. */
  @Column({ type: 'boolean', default: false })
  disabled!: boolean;

  /** Requests per UTC day for the whole tenant; null: the platform default. */
  @Column({ name: 'daily_request_quota', type: 'integer', nullable: true })
  dailyRequestQuota!: number | null;

  /** Default requests per minute for the tenant's keys; null: the platform default. */
  @Column({ name: 'requests_per_minute', type: 'integer', nullable: true })
  requestsPerMinute!: number | null;

  /** LLM tokens per minute for the whole tenant; null: the platform default. */
  @Column({ name: 'tokens_per_minute', type: 'integer', nullable: true })
  tokensPerMinute!: number | null;

  /** UTC (see database-options.ts). */
  @CreateDateColumn({ name: 'created_at' })
  createdAt!: Date;

  @OneToMany(() => ApiKeyEntity, (key) => key.tenant)
  keys?: Relation<ApiKeyEntity>[];
}
