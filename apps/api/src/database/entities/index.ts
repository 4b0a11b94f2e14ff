import { ApiKeyEntity } from './api-key.entity';
import { PlatformSettingEntity } from './platform-setting.entity';
import { TenantEntity } from './tenant.entity';
import { UsageRecordEntity } from '../../usage/usage-record.entity';

export { API_KEY_SCOPES, ApiKeyEntity, type ApiKeyScope } from './api-key.entity';
export { PlatformSettingEntity };
export { TenantEntity };
export { UsageRecordEntity };

/** Every entity of the platform. */
export const ENTITIES = [PlatformSettingEntity, TenantEntity, ApiKeyEntity, UsageRecordEntity];
