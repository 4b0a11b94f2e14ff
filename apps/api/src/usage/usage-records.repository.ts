import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { DatabaseMetrics } from '../database/database.metrics';
import type { UsageRecord } from './usage-record';
import { UsageRecordEntity } from './usage-record.entity';

/** The `operation` label of the usage inserts in `vla_database_query_duration_seconds`. */
export const USAGE_INSERT_OPERATIONS = {
  batch: 'usage_insert',
  row: 'usage_insert_row',
} as const;
export type UsageInsertOperation = (typeof USAGE_INSERT_OPERATIONS)[keyof typeof USAGE_INSERT_OPERATIONS];

/** Columns of `usage_records`: what one row costs in bind parameters. */
const COLUMNS_PER_ROW = 17;
/**
 * SQLite binds at most 32766 parameters per statement (PostgreSQL 65535): a batch larger than this many
 * rows is split into several INSERTs, so no USAGE_BATCH_SIZE can produce a statement the database refuses.
 */
export const MAX_ROWS_PER_INSERT = Math.floor(32_766 / COLUMNS_PER_ROW);

/** The `usage_records` table: multi-row inserts that skip request ids already stored. */
@Injectable()
export class UsageRecordsRepository {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly queries: DatabaseMetrics,
  ) {
    queries.declareOperations(USAGE_INSERT_OPERATIONS.batch, USAGE_INSERT_OPERATIONS.row);
  }

  /**
   * Inserts `rows` (at most {@link MAX_ROWS_PER_INSERT}) in one statement. A request id already stored is
   * skipped, never an error (`ON CONFLICT DO NOTHING` on both databases: on SQLite this upsert clause covers
   * uniqueness only, so a NOT NULL violation still fails the statement instead of vanishing as with
   * `INSERT OR IGNORE`). Resolves with the number of rows actually inserted; rejects with the database's
   * error, having inserted nothing.
   */
  async insertNew(rows: readonly UsageRecord[], operation: UsageInsertOperation): Promise<number> {
    if (rows.length === 0) return 0;
    if (rows.length > MAX_ROWS_PER_INSERT) {
      throw new RangeError(`At most ${MAX_ROWS_PER_INSERT} usage rows fit in one INSERT.`);
    }
    return this.queries.timeQuery(operation, async () => {
      const [sql, parameters] = this.dataSource
        .createQueryBuilder()
        .insert()
        .into(UsageRecordEntity)
        .values(rows.map((row) => ({ ...row })))
        .orIgnore()
        .getQueryAndParameters();
      // Run through a query runner for the structured result: its `affected` (pg's rowCount, SQLite's
      // changes) counts only the rows inserted, which tells conflicts apart at no extra cost.
      const runner = this.dataSource.createQueryRunner();
      try {
        const result = await runner.query(sql, parameters, true);
        return result.affected ?? rows.length;
      } finally {
        await runner.release();
      }
    });
  }
}
