import { type DynamicModule, Module, type ModuleMetadata } from '@nestjs/common';
import { APP_FILTER, APP_PIPE } from '@nestjs/core';
import { GpuModule } from '@app/gpu';
import { MonitoringModule } from '@app/monitoring';
import { RateLimitModule } from '@app/rate-limit';
import { SafetyModule } from '@app/safety';
import type { Logger } from 'pino';
import { AuthModule } from './auth/auth.module';
import { type AppConfig, ConfigModule } from './config';
import { DatabaseModule } from './database/database.module';
import { GlobalExceptionFilter } from './errors/global-exception.filter';
import { HealthModule } from './health/health.module';
import { InferenceModule } from './inference/inference.module';
import { createValidationPipe } from './http/validation';
import { LifecycleModule } from './lifecycle/lifecycle.module';
import { LoggingModule } from './logging/logging.module';
import { RedisModule } from './redis/redis.module';

/** The composition root: configuration, logging and metrics first, then the features. */
@Module({})
export class AppModule {
  static forRoot(
    config: AppConfig,
    logger: Logger,
    extraImports: NonNullable<ModuleMetadata['imports']> = [],
  ): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggingModule.forRoot(logger),
        MonitoringModule.forRoot({
          appVersion: config.version,
          token: config.metrics.token,
          public: config.metrics.public,
          httpMetrics: config.metrics.httpMetrics,
          tenantLabels: config.metrics.tenantLabels,
          maxTenants: config.metrics.maxTenants,
        }),
        LifecycleModule,
        SafetyModule.forRoot({ robotsDir: config.robots.dir }),
        RedisModule,
        RateLimitModule.forRoot({
          redisUrl: config.redis?.url ?? null,
          failureMode: config.rateLimit.failureMode,
          replicas: config.rateLimit.replicas,
          redisTimeoutMs: config.rateLimit.redisTimeoutMs,
          breakerThreshold: config.rateLimit.breakerThreshold,
          breakerCooldownMs: config.rateLimit.breakerCooldownMs,
          leaseTtlMs: config.rateLimit.leaseTtlMs,
          logger,
        }),
        GpuModule.forRoot({
          pollIntervalMs: config.gpu.pollIntervalMs,
          collectTimeoutMs: config.gpu.collectTimeoutMs,
          nvmlLibraryPath: config.gpu.nvmlLibraryPath,
          nvidiaSmiPath: config.gpu.nvidiaSmiPath,
          logger,
        }),
        DatabaseModule,
        AuthModule,
        InferenceModule,
        HealthModule,
        ...extraImports,
      ],
      providers: [
        { provide: APP_FILTER, useClass: GlobalExceptionFilter },
        { provide: APP_PIPE, useFactory: createValidationPipe },
      ],
    };
  }
}
