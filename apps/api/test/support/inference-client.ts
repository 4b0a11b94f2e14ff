import { type Dispatcher, request } from 'undici';

/** Franka's neutral pose: the demo policy's actions start next to it, so safety passes. */
export const HOME = [0, -0.785, 0, -2.356, 0, 1.571, 0.785, 0.04];

/** Raw uint8 pixels at the demo models' input size (224 x 224 x 3): no decoder on the request path. */
export function rawPixels(value = 128): { format: 'raw'; shape: number[]; data: string } {
  return {
    format: 'raw',
    shape: [224, 224, 3],
    data: Buffer.alloc(224 * 224 * 3, value).toString('base64'),
  };
}

/** A valid body for a demo model, with fields replaced by `over`. */
export function policyBody(
  model: 'demo-policy' | 'demo-policy-slow' = 'demo-policy',
  over: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    model,
    robot_type: 'franka_panda',
    instruction: 'pick up the red block',
    images: { primary: rawPixels() },
    state: HOME,
    ...over,
  };
}

/** One answer of the API, the body parsed when it is JSON (`json` undefined otherwise). */
export interface ApiAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly text: string;
  readonly json: unknown;
}

/** The error envelope's fields these suites read (from JSON: nothing is guaranteed). */
export interface ErrorEnvelope {
  readonly error?: { readonly code?: unknown; readonly request_id?: unknown; readonly message?: unknown };
}

/**
 * Sends `body` (a value to serialise, or a JSON text sent as it is) to `POST /v1/inference` with `key`.
 * `requestId` becomes the `X-Request-Id` header, which the API adopts when it is sane. Throws only on a
 * transport failure (refused or reset connection), with undici's `code`.
 */
export async function postInference(
  baseUrl: string,
  key: string,
  body: unknown,
  options: {
    readonly requestId?: string;
    readonly dispatcher?: Dispatcher;
    readonly rawText?: boolean;
    readonly signal?: AbortSignal;
  } = {},
): Promise<ApiAnswer> {
  const res = await request(`${baseUrl}/v1/inference`, {
    method: 'POST',
    headers: {
      'x-api-key': key,
      'content-type': 'application/json',
      ...(options.requestId === undefined ? {} : { 'x-request-id': options.requestId }),
    },
    body: options.rawText === true ? (body as string) : JSON.stringify(body),
    dispatcher: options.dispatcher,
    signal: options.signal,
  });
  const text = await res.body.text();
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v;
  let json: unknown;
  try {
    json = JSON.parse(text) as unknown;
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers, text, json };
}

/** The error code of an answer, or undefined for a success or a body without the envelope. */
export function errorCodeOf(answer: Pick<ApiAnswer, 'json'>): string | undefined {
  const code = (answer.json as ErrorEnvelope | undefined)?.error?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Creates a tenant and an `inference` key through the admin API of the server at `baseUrl`, with the
 * admin key `adminKey` (for a server that is not a TestApp, such as a child process). Resolves with the
 * new key's secret.
 */
export async function createInferenceKey(baseUrl: string, adminKey: string, tenant: string): Promise<string> {
  const call = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
    const res = await request(`${baseUrl}${path}`, {
      method: 'POST',
      headers: { 'x-api-key': adminKey, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.body.text();
    if (res.statusCode !== 201) throw new Error(`POST ${path}: ${res.statusCode} ${text}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  await call('/admin/tenants', { name: tenant });
  const created = await call('/admin/keys', { tenant, name: `${tenant} inference`, scopes: ['inference'] });
  return created.key as string;
}
