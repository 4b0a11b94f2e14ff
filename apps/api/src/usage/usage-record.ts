import type { SafetyOutcome } from '@app/safety';

/**
 * One inference request, as the usage table stores it: what the caller builds once per request (answered
 * or refused) and hands to `UsageWriter.record`. Durations are milliseconds from the monotonic clock;
 * null where the stage did not run.
 */
export interface UsageRecord {
  /** The request id: the row's key, so writing the same record twice stores it once. At most 64 chars. */
  readonly requestId: string;
  readonly tenantId: string;
  /** The API key's public id. */
  readonly keyId: string;
  readonly model: string;
  readonly robotType: string | null;
  readonly httpStatus: number;
  /** `ok`, or the error code the request was answered with (`queue_full`, ...); at most 32 characters. */
  readonly status: string;
  /** The error code (see errors/error-codes.ts) when the request failed; null on success. */
  readonly errorCode: string | null;
  readonly queueMs: number | null;
  readonly preprocessMs: number | null;
  readonly inferenceMs: number | null;
  readonly safetyMs: number | null;
  readonly totalMs: number;
  /** Requests in the batch this request ran in; null when it never ran. */
  readonly batchSize: number | null;
  /** This request's share of its batch's compute time (the batch's time divided by its size). */
  readonly computeMs: number | null;
  readonly safetyOutcome: SafetyOutcome | null;
  /** When the request arrived (wall clock, stored as UTC). */
  readonly createdAt: Date;
}
