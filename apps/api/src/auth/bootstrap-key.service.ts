import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { PlatformSettingsRepository } from '../database/platform-settings.repository';
import { ROOT_LOGGER } from '../logging/logging.constants';
import { AccessAdminService } from './access-admin.service';
import { AUTH_OPTIONS, type AuthOptions } from './auth.options';

export const BOOTSTRAP_TENANT = 'default';
/** The platform setting whose first writer creates the bootstrap key. */
const BOOTSTRAP_CLAIM = 'bootstrap_admin_key_claimed_by';

/**
 * On a first start with no keys at all, creates tenant `default` with one admin key and prints that key once,
 * in a line that says what it is. Never again: the next start finds a key (or the claim), and
 * `BOOTSTRAP_KEY=off` skips it. Should the claiming replica die before creating the key, create an admin key
 * with the CLI.
 */
@Injectable()
export class BootstrapKeyService implements OnApplicationBootstrap {
  constructor(
    private readonly admin: AccessAdminService,
    @Inject(AUTH_OPTIONS) private readonly options: AuthOptions,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    private readonly settings: PlatformSettingsRepository,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (!this.options.bootstrap || (await this.admin.countKeys()) > 0) return;
    // One replica wins the claim (an insert that ignores duplicates, atomic on both databases): replicas
    // starting together on an empty database print one key between them, not one each.
    const me = randomUUID();
    if ((await this.settings.setIfAbsent(BOOTSTRAP_CLAIM, me)) !== me) return;
    try {
      await this.admin.createTenant({ name: BOOTSTRAP_TENANT });
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'conflict') throw error;
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
