import { Module } from '@nestjs/common';
import { DatabaseModule } from '../database/database.module';
import { UsageRecordsRepository } from './usage-records.repository';
import { usageMetricProviders } from './usage.metrics';
import { UsageWriter } from './usage.writer';

/**
 * Usage records: {@link UsageWriter} (the bounded buffer and its batched, retried writes) and its metrics.
 * Needs DatabaseModule (the DataSource and DatabaseMetrics), the configuration, the root logger and
 * MonitoringModule (the registry).
 */
@Module({
  imports: [DatabaseModule],
  providers: [UsageRecordsRepository, UsageWriter, ...usageMetricProviders(UsageWriter)],
  exports: [UsageWriter],
})
export class UsageModule {}
