import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { SafetyOutcome } from '@app/safety';

/**
 * One row per inference request (see {@link UsageRecord}). No foreign key to tenants or keys: usage is a
 * ledger that outlives a deleted tenant or a revoked key, and a missing parent must never refuse a row.
 */
@Entity({ name: 'usage_records' })
@Index('idx_usage_records_tenant_created', ['tenantId', 'createdAt'])
export class UsageRecordEntity {
  @PrimaryColumn({ name: 'request_id', type: 'varchar', length: 64 })
  requestId!: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 36 })
  tenantId!: string;

  @Column({ name: 'key_id', type: 'varchar', length: 16 })
  keyId!: string;

  @Column({ type: 'varchar', length: 128 })
  model!: string;

  @Column({ name: 'robot_type', type: 'varchar', length: 64, nullable: true })
  robotType!: string | null;

  @Column({ name: 'http_status', type: 'integer' })
  httpStatus!: number;

  /** `ok`, or the error code the request was answered with. */
  @Column({ type: 'varchar', length: 32 })
  status!: string;

  @Column({ name: 'error_code', type: 'varchar', length: 64, nullable: true })
  errorCode!: string | null;

  /** Milliseconds; null where the stage did not run. */
  @Column({ name: 'queue_ms', type: 'double precision', nullable: true })
  queueMs!: number | null;

  @Column({ name: 'preprocess_ms', type: 'double precision', nullable: true })
  preprocessMs!: number | null;

  @Column({ name: 'inference_ms', type: 'double precision', nullable: true })
  inferenceMs!: number | null;

  @Column({ name: 'safety_ms', type: 'double precision', nullable: true })
  safetyMs!: number | null;

  @Column({ name: 'total_ms', type: 'double precision' })
  totalMs!: number;

  @Column({ name: 'batch_size', type: 'integer', nullable: true })
  batchSize!: number | null;

  /** Milliseconds: this request's share of its batch's compute time. */
  @Column({ name: 'compute_ms', type: 'double precision', nullable: true })
  computeMs!: number | null;

  @Column({ name: 'safety_outcome', type: 'varchar', length: 16, nullable: true })
  safetyOutcome!: SafetyOutcome | null;

  /** When the request arrived; UTC (see database-options.ts). */
  @Index('idx_usage_records_created')
  @Column({ name: 'created_at', type: Date })
  createdAt!: Date;
}
