import { MetricsAccessPolicy, TenantLabels } from '@app/monitoring';
import { Global, Module, type OnModuleInit } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { APP_CONFIG, type AppConfig } from '../config';
import { DatabaseModule } from '../database/database.module';
import { ApiKeyEntity, TenantEntity } from '../database/entities';
import { AccessAdminService } from './access-admin.service';
import { AccessRepository } from './access.repository';
import { AdminController } from './admin.controller';
import { ApiKeyVerifier } from './api-key-verifier.service';
import { ApiKeyGuard } from './api-key.guard';
import { AuthService } from './auth.service';
import { authMetricProviders } from './auth.metrics';
import { AUTH_OPTIONS, type AuthOptions, authOptionsFromConfig } from './auth.options';
import { BootstrapKeyService } from './bootstrap-key.service';
import { KeyEvents } from './key-events';
import { LastUsedWriter } from './last-used.writer';

/**
 * API keys, tenants and scopes: the global deny-by-default guard, the admin API, the bootstrap key, and ops
 * keys as a way into `/monitoring/metrics`.
 */
@Global()
@Module({
  imports: [TypeOrmModule.forFeature([TenantEntity, ApiKeyEntity]), DatabaseModule],
  controllers: [AdminController],
  providers: [
    {
      provide: AUTH_OPTIONS,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig): AuthOptions => authOptionsFromConfig(config),
    },
    ...authMetricProviders,
    AccessRepository,
    AccessAdminService,
    ApiKeyVerifier,
    AuthService,
    BootstrapKeyService,
    KeyEvents,
    LastUsedWriter,
    { provide: APP_GUARD, useClass: ApiKeyGuard },
  ],
  exports: [AccessAdminService, AuthService],
})
export class AuthModule implements OnModuleInit {
  constructor(
    private readonly auth: AuthService,
    private readonly metricsAccess: MetricsAccessPolicy,
    private readonly events: KeyEvents,
    private readonly tenantLabels: TenantLabels,
  ) {}

  onModuleInit(): void {
    // An ops key may scrape `/monitoring/metrics`; an inference key gets 403 there.
    this.metricsAccess.allowAlternative(async (req) => {
      await this.auth.authenticate(req, 'ops');
    });
    // A disabled tenant's series leave the scrape at once.
    this.events.on((event) => {
      if (event.type === 'tenant_changed' && event.disabled) void this.tenantLabels.forget(event.tenantName);
    });
  }
}
