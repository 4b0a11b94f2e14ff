import { Column, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';

/** Small facts about this installation (when it was first started, ...), one row per key. */
@Entity({ name: 'platform_settings' })
export class PlatformSettingEntity {
  @PrimaryColumn({ type: 'varchar', length: 128 })
  key!: string;

  @Column({ type: 'text' })
  value!: string;

  /** UTC (see database-options.ts). */
  @UpdateDateColumn({ name: 'updated_at' })
  updatedAt!: Date;
}
