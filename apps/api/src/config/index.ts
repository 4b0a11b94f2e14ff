export { APP_CONFIG, InjectConfig, loadConfig, LOG_LEVELS } from './app-config';
export type { AppConfig, DatabaseConfig, LogLevel } from './app-config';
export { ConfigModule } from './config.module';
export { ConfigError, ENV_VARS } from './env-vars';
