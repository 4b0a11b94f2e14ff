import { type MigrationInterface, type QueryRunner, Table } from 'typeorm';

export class CreatePlatformSettings1764000000000 implements MigrationInterface {
  name = 'CreatePlatformSettings1764000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    // The driver's own date type: `timestamp` on PostgreSQL, `datetime` on SQLite; both hold UTC.
    const dateType = queryRunner.connection.driver.mappedDataTypes.updateDate as string;
    await queryRunner.createTable(
      new Table({
        name: 'platform_settings',
        columns: [
          { name: 'key', type: 'varchar', length: '128', isPrimary: true },
          { name: 'value', type: 'text', isNullable: false },
          { name: 'updated_at', type: dateType, isNullable: false, default: 'CURRENT_TIMESTAMP' },
        ],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('platform_settings');
  }
}
