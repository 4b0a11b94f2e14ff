import { Inject, Injectable } from '@nestjs/common';
import { InjectMetric, TenantLabels } from '@app/monitoring';
import { type RobotProfile, RobotProfiles, SafetyService } from '@app/safety';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Counter, Histogram } from 'prom-client';
import type { Principal } from '../auth/api-key-verifier.service';
import { AppError } from '../errors/app-error';
import { ERROR_CODES, statusFor } from '../errors/error-codes';
import { validationErrorFromIssues } from '../http/validation';
import { ROOT_LOGGER } from '../logging/logging.constants';
import { UsageWriter } from '../usage/usage.writer';
import { decodeImage, imageErrorReason } from './image-decoder';
import { INFERENCE_METRICS } from './inference.metrics-names';
import { UNKNOWN_MODEL_LABEL } from './inference.metrics';
import { type InferenceRequest, InferenceRequestSchema, type InferenceResponse } from './inference.schemas';
import type { ModelConfig } from './model-config';
import { type ModelEntry, ModelRegistry } from './model-registry.service';
import type { JobResult } from './model-scheduler';
import { BatchFailedError, WorkerCrashedError } from './model-workers';
import { tokenize } from './tokenizer';

/** Largest image accepted, in pixels, checked from the header before decoding (decompression bombs). */
export const MAX_IMAGE_PIXELS = 4096 * 4096;

/** The caller and the request's clock, from the controller. */
export interface InferenceContext {
  readonly requestId: string;
  readonly principal: Principal;
  /** performance.now() when the request reached the controller. */
  readonly receivedAt: number;
  /** Aborted when the client disconnects. */
  readonly signal: AbortSignal;
}

/** What one request measured, for the usage row and the metrics, filled in as it goes. */
interface Trace {
  model: string;
  robotType: string | null;
  entry?: ModelEntry;
  preprocessMs?: number;
  queueMs?: number;
  inferenceMs?: number;
  safetyMs?: number;
  batchSize?: number;
  computeMs?: number;
  safetyOutcome?: 'pass' | 'modified' | 'rejected';
  /** The request reached a worker (the model ran for it). */
  ran: boolean;
}

/**
 * `POST /v1/inference`, stage by stage: validate against the model's config, decode images and tokenize,
 * queue (bounded, with a deadline), run in a Worker, check the chunk against the robot's profile, answer.
 * Every request that gets this far is measured and leaves one usage row, whatever its outcome.
 */
@Injectable()
export class InferenceService {
  constructor(
    private readonly registry: ModelRegistry,
    private readonly profiles: RobotProfiles,
    private readonly safety: SafetyService,
    private readonly usage: UsageWriter,
    private readonly tenantLabels: TenantLabels,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    @InjectMetric(INFERENCE_METRICS.requests)
    private readonly requests: Counter<'model' | 'robot_type' | 'status'>,
    @InjectMetric(INFERENCE_METRICS.duration) private readonly duration: Histogram<'model'>,
    @InjectMetric(INFERENCE_METRICS.validationFailures)
    private readonly validationFailures: Counter<'model' | 'reason'>,
    @InjectMetric(INFERENCE_METRICS.imageErrors) private readonly imageErrors: Counter<'model' | 'reason'>,
    @InjectMetric(INFERENCE_METRICS.imageDecode) private readonly imageDecode: Histogram<'model' | 'format'>,
    @InjectMetric(INFERENCE_METRICS.tenantCompute)
    private readonly tenantCompute: Counter<'model' | 'tenant'>,
  ) {}

  async infer(body: unknown, ctx: InferenceContext): Promise<InferenceResponse> {
    const trace: Trace = { model: UNKNOWN_MODEL_LABEL, robotType: null, ran: false };
    try {
      const response = await this.run(body, ctx, trace);
      this.finish(ctx, trace, 200, null);
      return response;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      const known = typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
      const errorCode = known ? (code as keyof typeof ERROR_CODES) : 'internal_error';
      const status = statusFor(errorCode, (error as { status?: number }).status);
      this.finish(ctx, trace, status, errorCode);
      throw error;
    }
  }

  private async run(body: unknown, ctx: InferenceContext, trace: Trace): Promise<InferenceResponse> {
    const started = performance.now();
    const parsed = InferenceRequestSchema.safeParse(body);
    if (!parsed.success) {
      const model = (body as { model?: unknown } | null)?.model;
      if (typeof model === 'string' && this.registry.get(model) !== undefined) trace.model = model;
      this.validationFailed(trace, 'schema');
      throw validationErrorFromIssues(parsed.error.issues);
    }
    const request = parsed.data;
    const entry = this.registry.get(request.model);
    if (entry === undefined) {
      this.validationFailed(trace, 'unknown_model');
      throw new AppError(
        'model_not_found',
        `No model ${JSON.stringify(request.model)}; GET /v1/models lists them.`,
        {
          fields: [{ path: 'model', message: 'unknown model' }],
        },
      );
    }
    trace.model = entry.config.id;
    trace.entry = entry;
    const profile = this.checkRobot(request, entry.config, trace);
    this.checkFields(request, entry.config, trace);
    if (entry.status !== 'ready' || entry.scheduler === undefined) {
      throw new AppError(
        'model_unavailable',
        entry.status === 'loading'
          ? `Model ${entry.config.id} is still loading.`
          : `Model ${entry.config.id} is unavailable on this replica.`,
        { component: 'inference', details: { model: entry.config.id, status: entry.status } },
      );
    }
    if (!this.usage.accepting()) {
      throw new AppError('usage_unavailable', undefined, { component: 'usage', retryAfterSeconds: 5 });
    }
    const config = entry.config;
    const deadlineMs = Math.min(
      request.options?.deadline_ms ?? config.defaultDeadlineMs,
      config.maxDeadlineMs,
    );

    const images = await Promise.all(
      config.inputs.images.map(async (spec) => {
        try {
          const decoded = await decodeImage(request.images[spec.name], spec, {
            maxPixels: MAX_IMAGE_PIXELS,
            field: `images.${spec.name}`,
          });
          this.imageDecode.observe({ model: config.id, format: decoded.format }, decoded.decodeMs / 1000);
          return decoded.pixels;
        } catch (error) {
          this.imageErrors.inc({ model: config.id, reason: imageErrorReason(error) ?? 'decode_failed' });
          this.validationFailed(trace, 'image');
          throw error;
        }
      }),
    );
    const instruction = config.inputs.instruction;
    const tokens =
      instruction === undefined
        ? null
        : tokenize(request.instruction ?? '', instruction.vocabSize, instruction.maxTokens);
    trace.preprocessMs = performance.now() - started;

    let result: JobResult;
    try {
      result = await entry.scheduler.submit({
        requestId: ctx.requestId,
        tenant: ctx.principal.tenantId,
        item: { images, state: Float32Array.from(request.state), tokens },
        deadlineAt: ctx.receivedAt + deadlineMs,
        signal: ctx.signal,
      });
    } catch (error) {
      if (error instanceof BatchFailedError || error instanceof WorkerCrashedError) {
        trace.ran = true;
        this.logger.error(
          { component: 'inference', request_id: ctx.requestId, model: config.id, reason: error.reason },
          error instanceof WorkerCrashedError
            ? 'inference worker crashed during the batch'
            : 'model run failed',
        );
        throw new AppError(
          'internal_error',
          'The model failed on this request; it has been logged with the request id.',
          {
            component: 'inference',
            cause: error,
          },
        );
      }
      throw error;
    }
    trace.ran = true;
    trace.queueMs = result.queueMs;
    trace.inferenceMs = result.taskMs;
    trace.batchSize = result.batchSize;
    trace.computeMs = result.computeMs;

    const { horizon, dim } = config.outputs.actions;
    const check = this.safety.check(
      { horizon, dim, data: result.actions },
      profile,
      config.inputs.state.size === dim ? request.state : null,
      request.options?.safety_mode ?? profile.defaultMode,
      { dt: 1 / config.controlHz },
    );
    trace.safetyMs = check.durationMs;
    trace.safetyOutcome = check.report.outcome;
    if (check.chunk === null) {
      throw new AppError(
        'safety_rejected',
        'The action chunk failed the safety checks and was not returned.',
        {
          safety: check.report,
          component: 'safety',
        },
      );
    }
    const data = check.chunk.data;
    const actions: number[][] = [];
    for (let h = 0; h < horizon; h++) {
      const row = new Array<number>(dim);
      for (let d = 0; d < dim; d++) row[d] = data[h * dim + d];
      actions.push(row);
    }
    const total = performance.now() - ctx.receivedAt;
    return {
      request_id: ctx.requestId,
      model: config.id,
      robot_type: profile.robotType,
      actions,
      safety: {
        outcome: check.report.outcome,
        mode: check.report.mode,
        score: check.report.score,
        violations: check.report.violations.map((v) => ({ ...v })),
        counts: { ...check.report.counts },
        truncated: check.report.truncated,
      },
      timing: {
        queue_ms: round(result.queueMs),
        preprocess_ms: round(trace.preprocessMs),
        inference_ms: round(result.taskMs),
        safety_ms: round(check.durationMs),
        total_ms: round(total),
      },
      batch_size: result.batchSize,
    };
  }

  /** The robot type must have a profile and be one the model drives. */
  private checkRobot(request: InferenceRequest, config: ModelConfig, trace: Trace): RobotProfile {
    const profile = this.profiles.get(request.robot_type);
    if (profile === undefined || !config.robotTypes.includes(request.robot_type)) {
      this.validationFailed(trace, profile === undefined ? 'unknown_robot_type' : 'unsupported_robot_type');
      throw unprocessable(
        'robot_type',
        profile === undefined
          ? `No robot profile ${JSON.stringify(request.robot_type)}; model ${config.id} drives ${config.robotTypes.join(', ')}.`
          : `Model ${config.id} does not drive ${request.robot_type}; it drives ${config.robotTypes.join(', ')}.`,
      );
    }
    trace.robotType = profile.robotType;
    return profile;
  }

  /** State length, image names and instruction against the model's inputs. */
  private checkFields(request: InferenceRequest, config: ModelConfig, trace: Trace): void {
    const { state, images, instruction } = config.inputs;
    if (request.state.length !== state.size) {
      this.validationFailed(trace, 'state_length');
      throw unprocessable(
        'state',
        `state must have ${state.size} numbers for model ${config.id}; got ${request.state.length}.`,
      );
    }
    // One answer for every image-key mistake: a camera sent under the wrong name is both an unexpected key
    // and a missing one, and answering them in turn would name it twice. The message names each wrong key
    // once, within the keys given; the fields point at the wrong keys (at the missing ones when none is).
    const expected = images.map((i) => i.name);
    const given = Object.keys(request.images);
    const missing = expected.filter((name) => !Object.hasOwn(request.images, name));
    const extra = given.filter((name) => !expected.includes(name));
    if (missing.length > 0 || extra.length > 0) {
      this.validationFailed(trace, extra.length > 0 ? 'image_unexpected' : 'image_missing');
      const takes = `${expected.length === 1 ? 'the image' : 'the images'} ${expected.join(', ')}`;
      const gave =
        given.length === 0
          ? 'no images'
          : given.map((k) => (extra.includes(k) ? `${k} (not an image of this model)` : k)).join(', ');
      const message =
        `Model ${config.id} takes ${takes}; the request gave ${gave}` +
        (extra.length === 0
          ? `; ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing.`
          : '.');
      const fields =
        extra.length > 0
          ? extra.map((name) => ({
              path: `images.${name}`,
              message: `is not an image of model ${config.id}; it takes ${expected.join(', ')}`,
            }))
          : missing.map((name) => ({
              path: `images.${name}`,
              message: `is missing; model ${config.id} takes ${expected.join(', ')}`,
            }));
      throw new AppError('invalid_request', message, { status: 422, fields });
    }
    if (request.instruction !== undefined) {
      if (instruction === undefined) {
        this.validationFailed(trace, 'instruction_not_supported');
        throw unprocessable('instruction', `Model ${config.id} takes no instruction.`);
      }
      if (request.instruction.length > instruction.maxChars) {
        this.validationFailed(trace, 'instruction_too_long');
        throw unprocessable('instruction', `instruction must be at most ${instruction.maxChars} characters.`);
      }
    }
  }

  private validationFailed(trace: Trace, reason: string): void {
    this.validationFailures.inc({ model: trace.model, reason });
  }

  /** Metrics and the usage row, once per request. */
  private finish(ctx: InferenceContext, trace: Trace, httpStatus: number, errorCode: string | null): void {
    const totalMs = performance.now() - ctx.receivedAt;
    const status = errorCode ?? 'success';
    const arrivedAt = new Date(Date.now() - totalMs);
    this.requests.inc({ model: trace.model, robot_type: trace.robotType ?? 'unknown', status });
    const entry = trace.entry;
    if (entry !== undefined) {
      if (trace.ran) {
        entry.requests++;
        this.duration.observe({ model: trace.model }, totalMs / 1000);
      }
      if (httpStatus >= 500) entry.errors++;
    }
    if (trace.computeMs !== undefined) {
      this.tenantCompute.inc(
        this.tenantLabels.labels(ctx.principal.tenantName, { model: trace.model }),
        trace.computeMs / 1000,
      );
    }
    if (httpStatus >= 500 && errorCode === 'internal_error') {
      this.logger.error(
        { component: 'inference', request_id: ctx.requestId, model: trace.model },
        'inference failed',
      );
    }
    // A request refused because usage cannot be recorded leaves no row (it would only grow the full buffer);
    // it is counted in vla_inference_requests_total{status="usage_unavailable"}.
    if (errorCode === 'usage_unavailable') return;
    this.usage.record({
      requestId: ctx.requestId,
      tenantId: ctx.principal.tenantId,
      keyId: ctx.principal.keyId,
      model: trace.model,
      robotType: trace.robotType,
      httpStatus,
      status: errorCode === null ? 'ok' : errorCode,
      errorCode,
      queueMs: trace.queueMs ?? null,
      preprocessMs: trace.preprocessMs ?? null,
      inferenceMs: trace.inferenceMs ?? null,
      safetyMs: trace.safetyMs ?? null,
      totalMs,
      batchSize: trace.batchSize ?? null,
      computeMs: trace.computeMs ?? null,
      safetyOutcome: trace.safetyOutcome ?? null,
      createdAt: arrivedAt,
    });
  }
}

function unprocessable(path: string, message: string): AppError {
  return new AppError('invalid_request', message, { status: 422, fields: [{ path, message }] });
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
