import { PlatformSettingEntity } from './platform-setting.entity';

export { PlatformSettingEntity };

/** Every entity of the platform. */
export const ENTITIES = [PlatformSettingEntity];
