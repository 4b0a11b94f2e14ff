import { DataSource, type DataSourceOptions } from 'typeorm';

/**
 * Connects and brings the schema up to date with the migrations (each in its own transaction). For a
 * PostgreSQL schema other than `public`, the schema is created first. Closes the connection on failure.
 */
export async function openDataSource(options: DataSourceOptions): Promise<DataSource> {
  const dataSource = new DataSource(options);
  await dataSource.initialize();
  try {
    if (options.type === 'postgres' && options.schema !== undefined && options.schema !== 'public') {
      // The schema name is validated as a plain identifier by the configuration loader.
      await dataSource.query(`CREATE SCHEMA IF NOT EXISTS "${options.schema}"`);
    }
    await dataSource.runMigrations({ transaction: 'each' });
    return dataSource;
  } catch (error) {
    await dataSource.destroy();
    throw error;
  }
}
