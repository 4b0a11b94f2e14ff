import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../logging/logging.constants';
import { AccessAdminService } from './access-admin.service';
import { AUTH_OPTIONS, type AuthOptions } from './auth.options';

export const BOOTSTRAP_TENANT = 'default';

/**
 * On a first start with no keys at all, creates tenant `default` with one admin key and prints that key once,
 * in a line that says what it is. Never again: the next start finds a key. `BOOTSTRAP_KEY=off` skips it.
 */
@Injectable()
export class BootstrapKeyService implements OnApplicationBootstrap {
  constructor(
    private readonly admin: AccessAdminService,
    @Inject(AUTH_OPTIONS) private readonly options: AuthOptions,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (!this.options.bootstrap || (await this.admin.countKeys()) > 0) return;
    const tenants = await this.admin.listTenants();
    if (!tenants.some((t) => t.name === BOOTSTRAP_TENANT)) {
      try {
        await this.admin.createTenant({ name: BOOTSTRAP_TENANT });
      } catch (error) {
        // Another replica starting at the same moment created it first: it prints the key, not us.
        if ((error as { code?: unknown }).code === 'conflict') return;
        throw error;
      }
    }
    const created = await this.admin.createKey({
      tenant: BOOTSTRAP_TENANT,
      name: 'bootstrap admin',
      scopes: ['admin'],
    });
    this.logger.info(
      { bootstrap_admin_key: created.key, key_id: created.id, tenant: BOOTSTRAP_TENANT },
      'bootstrap: created tenant "default" and this admin API key; it is shown once, store it now',
    );
  }
}
