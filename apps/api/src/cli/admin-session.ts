import type { DataSource } from 'typeorm';
import { AccessAdminService } from '../auth/access-admin.service';
import { AccessRepository } from '../auth/access.repository';
import { authOptionsFromConfig } from '../auth/auth.options';
import { KeyEvents } from '../auth/key-events';
import type { AppConfig } from '../config';
import { buildDataSourceOptions } from '../database/database-options';
import { ApiKeyEntity, TenantEntity } from '../database/entities';
import { openDataSource } from '../database/open-data-source';
import { AppError } from '../errors/app-error';
import { redact, secretsOf } from './cli-errors';

/** The admin service over its own database connection, for one CLI command. */
export interface AdminSession {
  readonly admin: AccessAdminService;
  /** Closes the connection; call it on every path. */
  close(): Promise<void>;
}

/**
 * Connects to the configured database and runs the migrations, as the server does at start; no Nest app.
 * A database that cannot be opened is `dependency_unavailable`, its message free of the URL's credentials.
 */
export async function openAdminSession(config: AppConfig): Promise<AdminSession> {
  let dataSource: DataSource;
  try {
    dataSource = await openDataSource(buildDataSourceOptions(config.database));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new AppError(
      'dependency_unavailable',
      `The ${config.database.type} database could not be opened: ${redact(reason, secretsOf(config))}`,
      { component: 'database', cause: error },
    );
  }
  const repository = new AccessRepository(
    dataSource.getRepository(TenantEntity),
    dataSource.getRepository(ApiKeyEntity),
  );
  return {
    admin: new AccessAdminService(
      repository,
      authOptionsFromConfig(config, { bootstrap: false }),
      new KeyEvents(),
    ),
    close: () => dataSource.destroy(),
  };
}
