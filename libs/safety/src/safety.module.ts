import { type DynamicModule, Module } from '@nestjs/common';
import { RobotProfiles } from './robot-profiles.service';
import { safetyMetricProviders } from './safety.metrics';
import { SAFETY_OPTIONS, type SafetyModuleOptions } from './safety.options';
import { SafetyService } from './safety.service';

/**
 * Action-chunk safety: the robot profiles (loaded and validated when the module is built, so a bad one
 * stops start-up) and {@link SafetyService}, with its metrics. Needs `MonitoringModule` (the registry).
 */
@Module({})
export class SafetyModule {
  static forRoot(options: SafetyModuleOptions): DynamicModule {
    return {
      module: SafetyModule,
      global: true,
      providers: [
        { provide: SAFETY_OPTIONS, useValue: options },
        RobotProfiles,
        ...safetyMetricProviders,
        SafetyService,
      ],
      exports: [RobotProfiles, SafetyService],
    };
  }
}
