import { z } from 'zod';
import { API_KEY_SCOPES } from '../database/entities';

/** Tenant names appear in metric labels and URLs: a short, closed charset. */
export const TenantNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lower-case letters, digits, - and _, at most 64 characters');

const Quota = z.number().int().min(0).max(1_000_000_000).nullable();
const PerMinute = z.number().int().min(1).max(10_000_000).nullable();
const TokensPerMinute = z.number().int().min(1).max(1_000_000_000).nullable();
const MaxConcurrent = z.number().int().min(1).max(100_000).nullable();

export const CreateTenantSchema = z
  .strictObject({
    name: TenantNameSchema,
    disabled: z.boolean().optional(),
    daily_request_quota: Quota.optional(),
    requests_per_minute: PerMinute.optional(),
    tokens_per_minute: TokensPerMinute.optional(),
  })
  .meta({ id: 'CreateTenant' });

/** `id`, `name` and `created_at` are read-only: sending them is a 400. */
export const UpdateTenantSchema = z
  .strictObject({
    disabled: z.boolean().optional(),
    daily_request_quota: Quota.optional(),
    requests_per_minute: PerMinute.optional(),
    tokens_per_minute: TokensPerMinute.optional(),
  })
  .meta({ id: 'UpdateTenant' });

export const CreateKeySchema = z
  .strictObject({
    tenant: TenantNameSchema,
    name: z.string().trim().min(1).max(128),
    scopes: z
      .array(z.enum(API_KEY_SCOPES))
      .min(1)
      .refine((s) => new Set(s).size === s.length, 'scopes must not repeat'),
    requests_per_minute: PerMinute.optional(),
    max_concurrent: MaxConcurrent.optional(),
    expires_at: z.iso
      .datetime({ offset: true })
      .refine((v) => Date.parse(v) > Date.now(), 'expires_at must be in the future')
      .nullable()
      .optional(),
  })
  .meta({ id: 'CreateKey' });

/** Only a key's limits change; anything else (`scopes`, `expires_at`, ...) is a 400. */
export const UpdateKeySchema = z
  .strictObject({
    requests_per_minute: PerMinute.optional(),
    max_concurrent: MaxConcurrent.optional(),
  })
  .meta({ id: 'UpdateKey' });

export const TenantViewSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    disabled: z.boolean(),
    daily_request_quota: z.number().nullable(),
    requests_per_minute: z.number().nullable(),
    tokens_per_minute: z.number().nullable(),
    created_at: z.string(),
  })
  .meta({ id: 'Tenant' });

export const KeyViewSchema = z
  .object({
    id: z.string().describe('The public id inside the key; safe to log and list.'),
    tenant: z.string(),
    name: z.string(),
    scopes: z.array(z.enum(API_KEY_SCOPES)),
    requests_per_minute: z.number().nullable(),
    max_concurrent: z.number().nullable(),
    created_at: z.string(),
    last_used_at: z.string().nullable(),
    expires_at: z.string().nullable(),
    revoked_at: z.string().nullable(),
  })
  .meta({ id: 'ApiKey' });

export const CreatedKeySchema = KeyViewSchema.extend({
  key: z.string().describe('The clear key. Shown once, never again: store it now.'),
}).meta({ id: 'CreatedApiKey' });

export type CreateTenant = z.infer<typeof CreateTenantSchema>;
export type UpdateTenant = z.infer<typeof UpdateTenantSchema>;
export type CreateKey = z.infer<typeof CreateKeySchema>;
export type UpdateKey = z.infer<typeof UpdateKeySchema>;
export type TenantView = z.infer<typeof TenantViewSchema>;
export type KeyView = z.infer<typeof KeyViewSchema>;
export type CreatedKey = z.infer<typeof CreatedKeySchema>;
