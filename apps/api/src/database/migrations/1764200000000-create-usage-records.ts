import { type MigrationInterface, type QueryRunner, Table, TableIndex } from 'typeorm';

export class CreateUsageRecords1764200000000 implements MigrationInterface {
  name = 'CreateUsageRecords1764200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    // The driver's own date type: `timestamp` on PostgreSQL, `datetime` on SQLite; both hold UTC.
    const dateType = queryRunner.connection.driver.mappedDataTypes.createDate as string;
    // Milliseconds as 8-byte floats: `double precision` on PostgreSQL, REAL affinity on SQLite.
    const ms = 'double precision';
    await queryRunner.createTable(
      new Table({
        name: 'usage_records',
        columns: [
          // The request id: writing a record twice (a retried batch) stores it once.
          { name: 'request_id', type: 'varchar', length: '64', isPrimary: true },
          { name: 'tenant_id', type: 'varchar', length: '36' },
          { name: 'key_id', type: 'varchar', length: '16' },
          { name: 'model', type: 'varchar', length: '128' },
          { name: 'robot_type', type: 'varchar', length: '64', isNullable: true },
          { name: 'http_status', type: 'integer' },
          { name: 'status', type: 'varchar', length: '32' },
          { name: 'error_code', type: 'varchar', length: '64', isNullable: true },
          { name: 'queue_ms', type: ms, isNullable: true },
          { name: 'preprocess_ms', type: ms, isNullable: true },
          { name: 'inference_ms', type: ms, isNullable: true },
          { name: 'safety_ms', type: ms, isNullable: true },
          { name: 'total_ms', type: ms },
          { name: 'batch_size', type: 'integer', isNullable: true },
          { name: 'compute_ms', type: ms, isNullable: true },
          { name: 'safety_outcome', type: 'varchar', length: '16', isNullable: true },
          // Set by the application (when the request arrived), never by a default.
          { name: 'created_at', type: dateType },
        ],
        indices: [
          new TableIndex({
            name: 'idx_usage_records_tenant_created',
            columnNames: ['tenant_id', 'created_at'],
          }),
          new TableIndex({ name: 'idx_usage_records_created', columnNames: ['created_at'] }),
        ],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('usage_records');
  }
}
