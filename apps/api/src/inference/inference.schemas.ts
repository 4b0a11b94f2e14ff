import { z } from 'zod';

/**
 * The body of `POST /v1/inference`: its shape only. What depends on the model (image names and sizes,
 * state length, robot type, instruction length) is checked against the model's config afterwards, as 422.
 */
const RawImageSchema = z.strictObject({
  format: z.literal('raw'),
  /** [height, width, channels], equal to the model input's. */
  shape: z.array(z.number().int().min(1).max(65_536)).length(3),
  /** Base64 of height x width x channels uint8 values, row-major (HWC). */
  data: z.string().max(64 * 1024 * 1024),
});

export const InferenceRequestSchema = z
  .strictObject({
    model: z.string().min(1).max(128),
    robot_type: z.string().min(1).max(64),
    instruction: z.string().max(100_000).optional(),
    images: z
      .record(
        z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, 'image names are lower-case identifiers'),
        z.union([z.string().max(64 * 1024 * 1024), RawImageSchema]),
      )
      .refine((images) => Object.keys(images).length <= 8, 'at most 8 images'),
    /** The robot's measured state; finite numbers only (1e309 parses as Infinity and is refused). */
    state: z.array(z.number()).min(1).max(1024),
    options: z
      .strictObject({
        /** Safety cannot be switched off: `clip` repairs what it can, `reject` refuses any violation. */
        safety_mode: z.enum(['clip', 'reject']).optional(),
        /** Milliseconds the request may wait; capped at the model's max_deadline_ms. */
        deadline_ms: z.number().int().min(1).max(3_600_000).optional(),
      })
      .optional(),
  })
  .meta({ id: 'InferenceRequest' });

export type InferenceRequest = z.infer<typeof InferenceRequestSchema>;

const ViolationSchema = z.object({
  type: z.string(),
  step: z.number().nullable(),
  joint: z.string().nullable(),
  value: z.union([z.number(), z.string()]).nullable(),
  limit: z.number().nullable(),
});

export const SafetyReportSchema = z
  .object({
    outcome: z.enum(['pass', 'modified', 'rejected']),
    mode: z.enum(['clip', 'reject']),
    score: z.number(),
    violations: z.array(ViolationSchema),
    counts: z.record(z.string(), z.number()),
    truncated: z.boolean(),
  })
  .meta({ id: 'SafetyReport' });

export const InferenceResponseSchema = z
  .object({
    request_id: z.string(),
    model: z.string(),
    robot_type: z.string(),
    /** action_horizon rows of action_dim numbers, after the safety check. */
    actions: z.array(z.array(z.number())),
    safety: SafetyReportSchema,
    timing: z.object({
      queue_ms: z.number(),
      preprocess_ms: z.number(),
      inference_ms: z.number(),
      safety_ms: z.number(),
      total_ms: z.number(),
    }),
    batch_size: z.number().int(),
  })
  .meta({ id: 'InferenceResponse' });

export type InferenceResponse = z.infer<typeof InferenceResponseSchema>;

export const ModelListSchema = z
  .object({
    object: z.literal('list'),
    data: z.array(
      z.object({
        id: z.string(),
        object: z.literal('model'),
        created: z.number().int(),
        owned_by: z.string(),
        kind: z.enum(['policy', 'llm']),
        version: z.string(),
        status: z.enum(['loading', 'ready', 'unavailable']),
        robot_types: z.array(z.string()),
        action_horizon: z.number().int(),
        action_dim: z.number().int(),
        images: z.array(
          z.object({ name: z.string(), height: z.number(), width: z.number(), channels: z.number() }),
        ),
        state_size: z.number().int(),
        instruction: z.boolean(),
      }),
    ),
  })
  .meta({ id: 'ModelList' });

export type ModelList = z.infer<typeof ModelListSchema>;
