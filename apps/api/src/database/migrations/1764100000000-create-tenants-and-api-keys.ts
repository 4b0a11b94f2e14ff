import { type MigrationInterface, type QueryRunner, Table, TableForeignKey, TableIndex } from 'typeorm';

export class CreateTenantsAndApiKeys1764100000000 implements MigrationInterface {
  name = 'CreateTenantsAndApiKeys1764100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    // The driver's own date type: `timestamp` on PostgreSQL, `datetime` on SQLite; both hold UTC.
    const dateType = queryRunner.connection.driver.mappedDataTypes.createDate as string;
    await queryRunner.createTable(
      new Table({
        name: 'tenants',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'name', type: 'varchar', length: '64', isUnique: true },
          { name: 'disabled', type: 'boolean', default: 'false' },
          { name: 'daily_request_quota', type: 'integer', isNullable: true },
          { name: 'requests_per_minute', type: 'integer', isNullable: true },
          { name: 'created_at', type: dateType, default: 'CURRENT_TIMESTAMP' },
        ],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: 'api_keys',
        columns: [
          { name: 'id', type: 'varchar', length: '16', isPrimary: true },
          { name: 'tenant_id', type: 'varchar', length: '36' },
          { name: 'name', type: 'varchar', length: '128' },
          { name: 'secret_hash', type: 'varchar', length: '64' },
          { name: 'scopes', type: 'text' },
          { name: 'requests_per_minute', type: 'integer', isNullable: true },
          { name: 'max_concurrent', type: 'integer', isNullable: true },
          { name: 'created_at', type: dateType, default: 'CURRENT_TIMESTAMP' },
          { name: 'last_used_at', type: dateType, isNullable: true },
          { name: 'expires_at', type: dateType, isNullable: true },
          { name: 'revoked_at', type: dateType, isNullable: true },
        ],
        foreignKeys: [
          new TableForeignKey({
            columnNames: ['tenant_id'],
            referencedTableName: 'tenants',
            referencedColumnNames: ['id'],
            onDelete: 'RESTRICT',
          }),
        ],
        indices: [new TableIndex({ name: 'idx_api_keys_tenant_id', columnNames: ['tenant_id'] })],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('api_keys');
    await queryRunner.dropTable('tenants');
  }
}
