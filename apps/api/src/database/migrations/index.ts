import { CreatePlatformSettings1764000000000 } from './1764000000000-create-platform-settings';
import { CreateTenantsAndApiKeys1764100000000 } from './1764100000000-create-tenants-and-api-keys';
import { CreateUsageRecords1764200000000 } from './1764200000000-create-usage-records';
import { AddTenantTokensPerMinute1764300000000 } from './1764300000000-add-tenant-tokens-per-minute';

/** Every migration, oldest first. Listed as classes (not globs) so they load the same from ts and dist. */
export const MIGRATIONS = [
  CreatePlatformSettings1764000000000,
  CreateTenantsAndApiKeys1764100000000,
  CreateUsageRecords1764200000000,
  AddTenantTokensPerMinute1764300000000,
];
