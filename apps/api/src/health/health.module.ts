import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { DatabaseModule } from '../database/database.module';
import { InferenceModule } from '../inference/inference.module';
import { GpuController } from './gpu.controller';
import { HealthController } from './health.controller';

/** Terminus controllers composing the indicators that live next to what they watch. */
@Module({
  imports: [TerminusModule.forRoot({ logger: false }), DatabaseModule, InferenceModule],
  controllers: [HealthController, GpuController],
})
export class HealthModule {}
