import { Module, type OnModuleInit } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import sharp from 'sharp';
import { ComponentHealth } from '@app/monitoring';
import { UsageModule } from '../usage/usage.module';
import { ModelsHealthIndicator } from './inference.health';
import { InferenceController } from './inference.controller';
import { inferenceMetricProviders } from './inference.metrics';
import { InferenceService } from './inference.service';
import { MODEL_CONFIGS, ModelRegistry } from './model-registry.service';
import { InferenceOpsController } from './ops.controller';

/**
 * Robot-policy inference: the model registry (MODELS_DIR, loaded into Worker threads at start), the
 * per-model schedulers, `POST /v1/inference`, `GET /v1/models`, the ops views and the models' health.
 */
@Module({
  imports: [TerminusModule, UsageModule],
  controllers: [InferenceController, InferenceOpsController],
  providers: [
    { provide: MODEL_CONFIGS, useValue: null },
    ModelRegistry,
    InferenceService,
    ModelsHealthIndicator,
    ...inferenceMetricProviders,
  ],
  exports: [ModelRegistry, ModelsHealthIndicator],
})
export class InferenceModule implements OnModuleInit {
  constructor(
    private readonly componentHealth: ComponentHealth,
    private readonly registry: ModelRegistry,
  ) {}

  onModuleInit(): void {
    // Every request image is new: libvips' operation cache would only hold memory.
    sharp.cache(false);
    this.componentHealth.register(
      'models',
      () => this.registry.list().some((m) => m.status === 'ready') && this.registry.stalled().length === 0,
    );
  }
}
