import { Controller, Get, HttpCode, Inject } from '@nestjs/common';
import { HealthCheckService, type HealthCheckResult } from '@nestjs/terminus';
import {
  ApiOkResponse,
  ApiOperation,
  ApiSecurity,
  ApiServiceUnavailableResponse,
  ApiTags,
} from '@nestjs/swagger';
import { performance } from 'node:perf_hooks';
import { GpuHealthIndicator } from '@app/gpu';
import { RateLimitHealthIndicator } from '@app/rate-limit';
import { APP_CONFIG, type AppConfig } from '../config';
import { Public, RequireScope } from '../auth/auth.decorators';
import { DatabaseHealthIndicator } from '../database/database.health';
import { AppError } from '../errors/app-error';
import { ErrorEnvelopeSchema } from '../errors/error.schema';
import { ModelsHealthIndicator } from '../inference/inference.health';
import { LifecycleHealthIndicator } from '../lifecycle/lifecycle.health';
import { RedisHealthIndicator } from '../redis/redis.health';
import {
  type DetailedHealth,
  DetailedHealthSchema,
  type Liveness,
  LivenessSchema,
  type Readiness,
  ReadinessSchema,
} from './health.schemas';

@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly health: HealthCheckService,
    private readonly lifecycle: LifecycleHealthIndicator,
    private readonly database: DatabaseHealthIndicator,
    private readonly redis: RedisHealthIndicator,
    private readonly models: ModelsHealthIndicator,
    private readonly rateLimit: RateLimitHealthIndicator,
    private readonly gpu: GpuHealthIndicator,
  ) {}

  /** Liveness: the process answers. Depends on nothing, and stays 200 while draining (a restart would cut requests). */
  @Get()
  @Public()
  @HttpCode(200)
  @ApiOperation({ summary: 'Liveness (public)' })
  @ApiOkResponse({ standardSchema: LivenessSchema })
  live(): Liveness {
    return {
      status: 'ok',
      timestamp: new Date().toISOString(),
      uptime_seconds: Math.round(performance.now()) / 1000,
      version: this.config.version,
    };
  }

  /**
   * Readiness: 503 while starting, from the first shutdown signal on, when no model is loaded, or when a
   * model has stalled. Not the database: during an outage cached keys keep serving and usage rows wait in
   * their buffer, and a readiness that failed on every replica at once would turn a database blip into a
   * total outage (TESTS F4). `/health/detailed` reports the database. Redis and the rate limiter count
   * only in `closed` failure mode, where a Redis outage refuses every limited request.
   */
  @Get('ready')
  @Public()
  @ApiOperation({ summary: 'Readiness (public)' })
  @ApiOkResponse({ standardSchema: ReadinessSchema })
  @ApiServiceUnavailableResponse({ standardSchema: ErrorEnvelopeSchema, description: 'code not_ready' })
  async ready(): Promise<Readiness> {
    let result: HealthCheckResult;
    try {
      result = await this.health.check([
        () => this.lifecycle.check('lifecycle'),
        () => this.models.check('models'),
        // Only with RATE_LIMIT_FAILURE_MODE=closed does a Redis outage stop this replica from serving.
        ...(this.rateLimit.gatesReadiness
          ? [() => this.redis.check('redis'), () => this.rateLimit.check('rate_limit')]
          : []),
      ]);
    } catch (error) {
      const details = (error as { response?: HealthCheckResult }).response?.details;
      const failing = Object.entries(details ?? {})
        .filter(([, v]) => v.status !== 'up')
        .map(([k]) => k);
      throw new AppError('not_ready', `Not ready: ${failing.join(', ') || 'health check failed'}.`, {
        details: { checks: details ?? {} },
        component: 'health',
      });
    }
    return { status: 'ok', checks: result.details };
  }

  /**
   * Every indicator's Terminus result, for operators (scope ops): 200 with `status: "error"` and the failing
   * components when something is down, so the page itself stays readable during an incident.
   */
  @Get('detailed')
  @RequireScope('ops')
  @ApiSecurity('api-key')
  @ApiOperation({ summary: 'Every health indicator (scope ops)' })
  @ApiOkResponse({ standardSchema: DetailedHealthSchema })
  async detailed(): Promise<DetailedHealth> {
    try {
      const result = await this.health.check([
        () => this.lifecycle.check('lifecycle'),
        () => this.database.check('database'),
        () => this.redis.check('redis'),
        () => this.rateLimit.check('rate_limit'),
        () => this.models.check('models'),
        // Not in readiness: a replica on CPU, or one whose GPU telemetry fails, still serves.
        () => this.gpu.check('gpu'),
      ]);
      return { status: result.status, checks: result.details };
    } catch (error) {
      const result = (error as { response?: HealthCheckResult }).response;
      if (result === undefined) throw error;
      return { status: result.status, checks: result.details };
    }
  }
}
