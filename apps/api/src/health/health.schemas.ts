import { z } from 'zod';

export const LivenessSchema = z
  .object({
    status: z.literal('ok'),
    timestamp: z.string().describe('ISO 8601, UTC.'),
    uptime_seconds: z.number(),
    version: z.string(),
  })
  .meta({ id: 'Liveness' });

export const ReadinessSchema = z
  .object({
    status: z.literal('ok'),
    checks: z.record(z.string(), z.object({ status: z.string() }).catchall(z.unknown())),
  })
  .meta({ id: 'Readiness' });

export const DetailedHealthSchema = z
  .object({
    status: z.enum(['ok', 'error', 'shutting_down', 'degraded']),
    checks: z.record(z.string(), z.object({ status: z.string() }).catchall(z.unknown())),
  })
  .meta({ id: 'DetailedHealth' });

export type DetailedHealth = z.infer<typeof DetailedHealthSchema>;
export type Liveness = z.infer<typeof LivenessSchema>;
export type Readiness = z.infer<typeof ReadinessSchema>;
