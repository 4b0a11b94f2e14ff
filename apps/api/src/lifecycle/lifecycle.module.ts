import { Global, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { LifecycleHealthIndicator } from './lifecycle.health';
import { LifecycleService } from './lifecycle.service';

@Global()
@Module({
  imports: [TerminusModule],
  providers: [LifecycleService, LifecycleHealthIndicator],
  exports: [LifecycleService, LifecycleHealthIndicator],
})
export class LifecycleModule {}
