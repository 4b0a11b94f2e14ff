import { Module, type OnApplicationBootstrap } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule } from '@nestjs/typeorm';
import { APP_CONFIG, type AppConfig } from '../config';
import { buildDataSourceOptions } from './database-options';
import { DatabaseHealthIndicator } from './database.health';
import { DATABASE_METRIC_PROVIDERS, DatabaseMetrics } from './database.metrics';
import { ENTITIES } from './entities';
import { openDataSource } from './open-data-source';
import { PlatformSettingsRepository } from './platform-settings.repository';

/**
 * The TypeORM DataSource (SQLite by default, PostgreSQL by URL), migrated at start. @nestjs/typeorm destroys
 * it in `onApplicationShutdown`, after the HTTP server has closed and buffers were flushed in
 * `beforeApplicationShutdown`.
 */
/** Node socket errors and PostgreSQL's `cannot_connect_now` (57P03: starting up or shutting down). */
const RETRYABLE_CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  '57P03',
]);

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => ({
        ...buildDataSourceOptions(config.database),
        retryAttempts: 3,
        retryDelay: 2000,
        // Retry what time can fix (the database is starting, the network blinked), not a wrong URL or a
        // missing database.
        toRetry: (error: unknown) =>
          RETRYABLE_CONNECT_ERRORS.has((error as { code?: unknown }).code as string),
      }),
      dataSourceFactory: async (options) => {
        if (options === undefined) throw new Error('Database options are missing.');
        return openDataSource(options);
      },
    }),
    TypeOrmModule.forFeature(ENTITIES),
    TerminusModule,
  ],
  providers: [PlatformSettingsRepository, DatabaseHealthIndicator, ...DATABASE_METRIC_PROVIDERS],
  exports: [PlatformSettingsRepository, DatabaseHealthIndicator, DatabaseMetrics],
})
export class DatabaseModule implements OnApplicationBootstrap {
  constructor(private readonly settings: PlatformSettingsRepository) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.settings.setIfAbsent('installed_at', new Date().toISOString());
  }
}
