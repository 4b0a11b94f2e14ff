import { z } from 'zod';

/** The error envelope as documented in OpenAPI; `sendError` writes exactly this shape. */
export const ErrorEnvelopeSchema = z
  .object({
    error: z.object({
      code: z.string().describe('Stable snake_case code, e.g. invalid_request, queue_full.'),
      message: z.string().describe('What went wrong and what to do; never internals.'),
      request_id: z.string().describe('Equals the X-Request-Id response header.'),
      fields: z
        .array(z.object({ path: z.string(), message: z.string() }))
        .optional()
        .describe('The failing fields of an invalid_request.'),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  })
  .meta({ id: 'ErrorEnvelope' });
