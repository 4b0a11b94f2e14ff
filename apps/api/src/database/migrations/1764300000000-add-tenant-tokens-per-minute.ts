import { type MigrationInterface, type QueryRunner, TableColumn } from 'typeorm';

/** The tenant's LLM tokens per minute; null (every existing tenant): the platform default. */
export class AddTenantTokensPerMinute1764300000000 implements MigrationInterface {
  name = 'AddTenantTokensPerMinute1764300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    if (isSqlite(queryRunner)) {
      await queryRunner.query('ALTER TABLE "tenants" ADD COLUMN "tokens_per_minute" integer');
      return;
    }
    await queryRunner.addColumn(
      'tenants',
      new TableColumn({ name: 'tokens_per_minute', type: 'integer', isNullable: true }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    if (isSqlite(queryRunner)) {
      await queryRunner.query('ALTER TABLE "tenants" DROP COLUMN "tokens_per_minute"');
      return;
    }
    await queryRunner.dropColumn('tenants', 'tokens_per_minute');
  }
}

/**
 * SQLite alters the table in place (ADD and DROP COLUMN, SQLite 3.35+). TypeORM's addColumn/dropColumn would
 * rebuild it, which fails on a revert while `api_keys` rows reference tenants: TypeORM turns foreign keys off
 * inside the revert's transaction, where SQLite ignores that pragma.
 */
function isSqlite(queryRunner: QueryRunner): boolean {
  return queryRunner.connection.driver.options.type === 'better-sqlite3';
}
