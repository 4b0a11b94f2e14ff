import { Body, Controller, Get, HttpCode, Post, Req, Res } from '@nestjs/common';
import { ApiBody, ApiOkResponse, ApiOperation, ApiResponse, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { ANY_SCOPE, RequireScope } from '../auth/auth.decorators';
import type { AuthenticatedRequest } from '../auth/auth.service';
import { ErrorEnvelopeSchema } from '../errors/error.schema';
import { requestIdOf } from '../http/request-id';
import {
  InferenceRequestSchema,
  type InferenceResponse,
  InferenceResponseSchema,
  type ModelList,
  ModelListSchema,
} from './inference.schemas';
import { RateLimited } from '../rate-limit/rate-limit.guard';
import { InferenceService } from './inference.service';
import { ModelRegistry } from './model-registry.service';

const errors = (status: number, description: string) =>
  ApiResponse({ status, standardSchema: ErrorEnvelopeSchema, description });

@ApiTags('inference')
@ApiSecurity('api-key')
@Controller('v1')
export class InferenceController {
  constructor(
    private readonly inference: InferenceService,
    private readonly registry: ModelRegistry,
  ) {}

  /**
   * Runs a robot policy: images, instruction and state in, a safety-checked chunk of actions out. The body
   * is validated here (not by the global pipe) so that every refusal is counted per model and reason.
   */
  @Post('inference')
  @HttpCode(200)
  @RequireScope('inference')
  @RateLimited()
  @ApiOperation({ summary: 'Run a robot policy (scope inference)' })
  @ApiBody({ schema: z.toJSONSchema(InferenceRequestSchema, { target: 'openapi-3.0' }) as object })
  @ApiOkResponse({ standardSchema: InferenceResponseSchema })
  @errors(400, 'invalid_request (shape), invalid_json')
  @errors(404, 'model_not_found')
  @errors(415, 'unsupported_image_format')
  @errors(
    429,
    'rate_limited (requests per minute, concurrency; details.limit_type), quota_exceeded (daily quota); with Retry-After',
  )
  @errors(
    422,
    'invalid_request (does not fit the model), image_too_large, invalid_image, safety_rejected (with error.safety)',
  )
  @errors(
    503,
    'queue_full (with Retry-After), model_unavailable, usage_unavailable, rate_limit_unavailable (RATE_LIMIT_FAILURE_MODE=closed)',
  )
  @errors(504, 'deadline_exceeded')
  infer(
    @Body() body: unknown,
    @Req() req: AuthenticatedRequest,
    @Res({ passthrough: true }) res: Response,
  ): Promise<InferenceResponse> {
    const receivedAt = performance.now();
    const aborted = new AbortController();
    // 'close' before the response finished: the client went away (a queued request is then dropped).
    res.once('close', () => {
      if (!res.writableFinished) aborted.abort();
    });
    const principal = req.auth;
    if (principal === undefined) throw new Error('inference route reached without a principal');
    return this.inference.infer(body, {
      requestId: requestIdOf(req),
      principal,
      receivedAt,
      signal: aborted.signal,
    });
  }

  /** The models of this replica, in the OpenAI list shape, with what a client needs to call each. */
  @Get('models')
  @RequireScope(ANY_SCOPE)
  @ApiOperation({ summary: 'List models (any valid key)' })
  @ApiOkResponse({ standardSchema: ModelListSchema })
  models(): ModelList {
    return {
      object: 'list',
      data: this.registry.list().map((m) => ({
        id: m.config.id,
        object: 'model' as const,
        created: Math.floor((m.loadedAt ?? new Date(0)).getTime() / 1000),
        owned_by: 'platform',
        kind: 'policy' as const,
        version: m.config.version,
        status: m.status,
        robot_types: [...m.config.robotTypes],
        action_horizon: m.config.outputs.actions.horizon,
        action_dim: m.config.outputs.actions.dim,
        images: m.config.inputs.images.map((i) => ({
          name: i.name,
          height: i.height,
          width: i.width,
          channels: i.channels,
        })),
        state_size: m.config.inputs.state.size,
        instruction: m.config.inputs.instruction !== undefined,
      })),
    };
  }
}
