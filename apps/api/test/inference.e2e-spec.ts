import sharp from 'sharp';
import { DataSource } from 'typeorm';
import { request } from 'undici';
import { ModelRegistry } from '../src/inference/model-registry.service';
import { UsageWriter } from '../src/usage/usage.writer';
import { AdminApi, bootstrapKeyOf } from './support/api-keys';
import { ChildServer } from './support/child-server';
import { eventually } from './support/eventually';
import { makeModelsDir } from './support/models-dir';
import { parsePrometheusText, sampleValue, findSamples } from './support/prom-text';
import { startTestApp, type TestApp } from './support/test-app';

const TOKEN = 'metrics-token-for-e2e-tests-0001';
/** Franka's neutral pose: the demo policy's actions start next to it, so safety passes. */
const HOME = [0, -0.785, 0, -2.356, 0, 1.571, 0.785, 0.04];

async function jpeg(width = 640, height = 480, rgb = { r: 200, g: 60, b: 30 }): Promise<string> {
  const buf = await sharp({ create: { width, height, channels: 3, background: rgb } })
    .jpeg()
    .toBuffer();
  return buf.toString('base64');
}

/** The fields these tests read from an answer or an error (JSON, so nothing is guaranteed). */
interface InferenceBody {
  request_id: string;
  model: string;
  robot_type: string;
  actions: number[][];
  batch_size: number;
  safety: { outcome: string; score: number; violations: unknown[] };
  timing: Record<string, number>;
  error: { code: string; request_id: string; fields: { path: string }[]; safety: { outcome: string } };
}

interface Client {
  key: string;
  post(
    body: unknown,
    signal?: AbortSignal,
  ): Promise<{ status: number; headers: Record<string, string>; json: InferenceBody }>;
}

function clientFor(t: TestApp, key: string): Client {
  return {
    key,
    async post(body, signal) {
      const res = await request(`${t.url}/v1/inference`, {
        method: 'POST',
        headers: { 'x-api-key': key, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal,
      });
      const text = await res.body.text();
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v;
      return { status: res.statusCode, headers, json: JSON.parse(text) as InferenceBody };
    },
  };
}

async function scrape(t: TestApp) {
  const res = await t.fetch('/monitoring/metrics', { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return parsePrometheusText(res.text);
}

async function setUp(env: Record<string, string> = {}) {
  const t = await startTestApp({ METRICS_TOKEN: TOKEN, ...env });
  const admin = new AdminApi(t, bootstrapKeyOf(t));
  await admin.createTenant('robots');
  await admin.createTenant('others');
  const a = await admin.createKey('robots', ['inference']);
  const b = await admin.createKey('others', ['inference']);
  const ops = await admin.createKey('robots', ['ops']);
  return { t, admin, a: clientFor(t, a.key), b: clientFor(t, b.key), opsKey: ops.key };
}

describe('POST /v1/inference with the demo policy', () => {
  let t: TestApp;
  let a: Client;
  let opsKey: string;
  let image: string;
  const body = (over: Record<string, unknown> = {}) => ({
    model: 'demo-policy',
    robot_type: 'franka_panda',
    instruction: 'pick up the red block',
    images: { primary: image },
    state: HOME,
    ...over,
  });

  beforeAll(async () => {
    ({ t, a, opsKey } = await setUp());
    image = await jpeg();
  });
  afterAll(async () => {
    await t.close();
  });

  it('lists the models in the OpenAI list shape, each with its kind and shapes', async () => {
    const res = await t.fetch('/v1/models', { headers: { 'x-api-key': a.key } });
    expect(res.status).toBe(200);
    const list = res.json() as {
      object: string;
      data: { id: string; kind: string; status: string; action_dim: number }[];
    };
    expect(list.object).toBe('list');
    expect(list.data.map((m) => m.id)).toEqual(['demo-policy', 'demo-policy-slow']);
    expect(list.data.every((m) => m.kind === 'policy' && m.status === 'ready' && m.action_dim === 8)).toBe(
      true,
    );
  });

  it('answers a real JPEG with an action chunk of the configured shape, checked by safety', async () => {
    const res = await a.post(body());
    expect(res.status).toBe(200);
    expect(res.json.model).toBe('demo-policy');
    expect(res.json.robot_type).toBe('franka_panda');
    expect(res.json.actions).toHaveLength(10);
    for (const row of res.json.actions) {
      expect(row).toHaveLength(8);
      for (const v of row) expect(Number.isFinite(v)).toBe(true);
    }
    expect(res.json.safety.outcome).toBe('pass');
    expect(res.json.safety.score).toBe(1);
    for (const k of ['queue_ms', 'preprocess_ms', 'inference_ms', 'safety_ms', 'total_ms']) {
      expect(res.json.timing[k]).toBeGreaterThanOrEqual(0);
    }
    expect(res.json.timing.total_ms).toBeGreaterThanOrEqual(res.json.timing.inference_ms);
    expect(res.json.request_id).toBe(res.headers['x-request-id']);
  });

  it('gives different actions for different images and instructions, the same for the same input', async () => {
    const first = await a.post(body());
    const again = await a.post(body());
    const other = await a.post(
      body({ images: { primary: await jpeg(320, 240, { r: 10, g: 200, b: 240 }) } }),
    );
    const words = await a.post(body({ instruction: 'open the drawer' }));
    expect(again.json.actions).toEqual(first.json.actions);
    expect(other.json.actions).not.toEqual(first.json.actions);
    expect(words.json.actions).not.toEqual(first.json.actions);
  });

  it('accepts raw pixels at the model size, skipping the decoder', async () => {
    const raw = Buffer.alloc(224 * 224 * 3, 128).toString('base64');
    const res = await a.post(
      body({ images: { primary: { format: 'raw', shape: [224, 224, 3], data: raw } } }),
    );
    expect(res.status).toBe(200);
    const wrong = await a.post(
      body({ images: { primary: { format: 'raw', shape: [100, 224, 3], data: raw } } }),
    );
    expect(wrong.status).toBe(422);
  });

  it('forms batches larger than 1 under concurrent load (seen in the batch-size metric)', async () => {
    const before = await scrape(t);
    const count0 = sampleValue(before, 'vla_inference_batch_size_count', { model: 'demo-policy' }) ?? 0;
    const sum0 = sampleValue(before, 'vla_inference_batch_size_sum', { model: 'demo-policy' }) ?? 0;
    const results = await Promise.all(Array.from({ length: 24 }, () => a.post(body())));
    expect(results.map((r) => r.status)).toEqual(new Array(24).fill(200));
    expect(Math.max(...results.map((r) => r.json.batch_size))).toBeGreaterThan(1);
    const after = await scrape(t);
    const batches =
      (sampleValue(after, 'vla_inference_batch_size_count', { model: 'demo-policy' }) ?? 0) - count0;
    const requests =
      (sampleValue(after, 'vla_inference_batch_size_sum', { model: 'demo-policy' }) ?? 0) - sum0;
    expect(requests).toBe(24);
    expect(batches).toBeLessThan(24);
  });

  it.each([
    ['an unknown model', { model: 'no-such-model' }, 404, 'model_not_found', 'model'],
    ['a robot type without a profile', { robot_type: 'r2d2' }, 422, 'invalid_request', 'robot_type'],
    ['a robot type the model does not drive', { robot_type: 'ur5e' }, 422, 'invalid_request', 'robot_type'],
    ['a state of the wrong length', { state: [0, 1, 2] }, 422, 'invalid_request', 'state'],
    ['a missing image', { images: {} }, 422, 'invalid_request', 'images.primary'],
    ['an extra image', { images: { primary: 'x', wrist: 'y' } }, 422, 'invalid_request', 'images.wrist'],
    ['NaN as a string', { state: [...HOME.slice(0, 7), 'NaN'] }, 400, 'invalid_request', 'state[7]'],
    ['a boolean in the state', { state: [...HOME.slice(0, 7), true] }, 400, 'invalid_request', 'state[7]'],
    [
      'safety switched off',
      { options: { safety_mode: 'off' } },
      400,
      'invalid_request',
      'options.safety_mode',
    ],
    ['a zero deadline', { options: { deadline_ms: 0 } }, 400, 'invalid_request', 'options.deadline_ms'],
    ['a negative deadline', { options: { deadline_ms: -1 } }, 400, 'invalid_request', 'options.deadline_ms'],
    [
      'a deadline that is text',
      { options: { deadline_ms: 'abc' } },
      400,
      'invalid_request',
      'options.deadline_ms',
    ],
    ['an unknown field', { temperature: 1 }, 400, 'invalid_request', ''],
    [
      'an instruction over the limit',
      { instruction: 'a'.repeat(2001) },
      422,
      'invalid_request',
      'instruction',
    ],
  ])('refuses %s (status %i, code %s, field %s)', async (_name, over, status, code, field) => {
    const res = await a.post(body(over));
    expect(res.status).toBe(status);
    expect(res.json.error.code).toBe(code);
    expect(typeof res.json.error.request_id).toBe('string');
    if (field !== '') expect(res.json.error.fields.map((f: { path: string }) => f.path)).toContain(field);
  });

  it('answers a camera sent under the wrong name with one 422 that names it once, what the model takes and the keys given', async () => {
    type FieldsError = { code: string; message: string; fields: { path: string; message: string }[] };
    const errorOf = async (images: Record<string, string>) => {
      const res = await a.post(body({ images }));
      expect(res.status).toBe(422);
      const { code, message, fields } = res.json.error as unknown as FieldsError;
      return { code, message, fields };
    };
    const renamed = await errorOf({ front: image });
    expect(renamed).toEqual({
      code: 'invalid_request',
      message:
        'Model demo-policy takes the image primary; the request gave front (not an image of this model).',
      fields: [{ path: 'images.front', message: 'is not an image of model demo-policy; it takes primary' }],
    });
    expect(renamed.message.split('front')).toHaveLength(2);
    expect(await errorOf({ primary: image, wrist: image })).toEqual({
      code: 'invalid_request',
      message:
        'Model demo-policy takes the image primary; the request gave primary, wrist (not an image of this model).',
      fields: [{ path: 'images.wrist', message: 'is not an image of model demo-policy; it takes primary' }],
    });
    expect(await errorOf({})).toEqual({
      code: 'invalid_request',
      message: 'Model demo-policy takes the image primary; the request gave no images; primary is missing.',
      fields: [{ path: 'images.primary', message: 'is missing; model demo-policy takes primary' }],
    });
  });

  it('refuses a GIF as 415 and a truncated JPEG as 422, counting both', async () => {
    const gif = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#fff' } })
      .gif()
      .toBuffer();
    const bad = await a.post(body({ images: { primary: gif.toString('base64') } }));
    expect(bad.status).toBe(415);
    expect(bad.json.error.code).toBe('unsupported_image_format');
    const full = Buffer.from(image, 'base64');
    const cut = await a.post(
      body({ images: { primary: full.subarray(0, full.length / 2).toString('base64') } }),
    );
    expect(cut.status).toBe(422);
    expect(cut.json.error.code).toBe('invalid_image');
    const samples = await scrape(t);
    const errors = findSamples(samples, 'vla_image_processing_errors_total', { model: 'demo-policy' });
    expect(errors.reduce((n, s) => n + s.value, 0)).toBeGreaterThanOrEqual(2);
  });

  it('clamps a deadline above the maximum instead of refusing it', async () => {
    const res = await a.post(body({ options: { deadline_ms: 3_000_000 } }));
    expect(res.status).toBe(200);
  });

  it('counts refusals by reason, unknown model names folded into one label value', async () => {
    for (let i = 0; i < 5; i++) await a.post(body({ model: `bogus-${i}` }));
    const samples = await scrape(t);
    expect(
      findSamples(samples, 'vla_validation_failures_total').every((s) => !s.labels.model.startsWith('bogus')),
    ).toBe(true);
    expect(
      sampleValue(samples, 'vla_validation_failures_total', { model: 'unknown', reason: 'unknown_model' }),
    ).toBeGreaterThanOrEqual(5);
    expect(
      findSamples(samples, 'vla_inference_requests_total').every((s) => !s.labels.model.startsWith('bogus')),
    ).toBe(true);
  });

  it('writes one usage row per request, with its timings and outcome', async () => {
    const res = await a.post(body());
    await t.app.get(UsageWriter).flushNow();
    const rows = await t.app
      .get(DataSource)
      .query<Record<string, unknown>[]>('SELECT * FROM usage_records WHERE request_id = ?', [
        res.json.request_id,
      ]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      model: 'demo-policy',
      robot_type: 'franka_panda',
      status: 'ok',
      http_status: 200,
      safety_outcome: 'pass',
      batch_size: 1,
    });
    expect(Number(rows[0].compute_ms)).toBeGreaterThan(0);
    const refused = await a.post(body({ state: [1] }));
    await t.app.get(UsageWriter).flushNow();
    const refusedRows = await t.app
      .get(DataSource)
      .query<Record<string, unknown>[]>(
        'SELECT status, http_status FROM usage_records WHERE request_id = ?',
        [refused.json.error.request_id],
      );
    expect(refusedRows).toEqual([{ status: 'invalid_request', http_status: 422 }]);
  });

  it('charges compute seconds to the tenant, and shows queues and models to ops keys only', async () => {
    const samples = await scrape(t);
    expect(
      sampleValue(samples, 'vla_tenant_compute_seconds_total', { tenant: 'robots', model: 'demo-policy' }),
    ).toBeGreaterThan(0);
    expect(sampleValue(samples, 'vla_models_loaded')).toBe(2);
    expect(sampleValue(samples, 'vla_inference_queue_capacity', { model: 'demo-policy-slow' })).toBe(4);
    const queue = await t.fetch('/queue/stats', { headers: { 'x-api-key': opsKey } });
    expect(queue.status).toBe(200);
    expect((queue.json() as { models: { model: string }[] }).models.map((m) => m.model)).toEqual([
      'demo-policy',
      'demo-policy-slow',
    ]);
    const models = await t.fetch('/models/stats', { headers: { 'x-api-key': opsKey } });
    const demo = (
      models.json() as { models: { model: string; status: string; requests: number; batches: number }[] }
    ).models[0];
    expect(demo).toMatchObject({ model: 'demo-policy', status: 'ready' });
    expect(demo.requests).toBeGreaterThan(0);
    expect((await t.fetch('/queue/stats', { headers: { 'x-api-key': a.key } })).status).toBe(403);
  });
});

describe('safety on the request path', () => {
  let t: TestApp;
  let a: Client;
  const raw = Buffer.alloc(224 * 224 * 3, 90).toString('base64');
  const body = (mode: 'clip' | 'reject') => ({
    model: 'reckless',
    robot_type: 'franka_panda',
    images: { primary: { format: 'raw', shape: [224, 224, 3], data: raw } },
    state: HOME,
    options: { safety_mode: mode },
  });

  beforeAll(async () => {
    // Joint 1's actions centred at 3.5 rad: beyond Franka's 2.8973 limit, whatever the input.
    const dir = makeModelsDir({
      reckless: {
        from: 'demo-policy',
        yaml: { outputs: { actions: { mean: [3.5, -0.785, 0, -2.356, 0, 1.571, 0.785, 0.04] } } },
      },
    });
    ({ t, a } = await setUp({ MODELS_DIR: dir }));
  });
  afterAll(async () => {
    await t.close();
  });

  it('clip mode returns the repaired chunk with the report', async () => {
    const res = await a.post(body('clip'));
    expect(res.status).toBe(200);
    expect(res.json.safety.outcome).toBe('modified');
    expect(res.json.safety.violations.length).toBeGreaterThan(0);
    for (const row of res.json.actions) expect(row[0]).toBeLessThanOrEqual(2.8973);
  });

  it('reject mode answers 422 safety_rejected with the report and no actions', async () => {
    const res = await a.post(body('reject'));
    expect(res.status).toBe(422);
    expect(res.json.error.code).toBe('safety_rejected');
    expect(res.json.error.safety.outcome).toBe('rejected');
    expect(res.json.actions).toBeUndefined();
  });
});

describe('the slow model: queue limits, deadlines, disconnects, crashes (TESTS L1, L2, F9c, F10b)', () => {
  let t: TestApp;
  let a: Client;
  let b: Client;
  let opsKey: string;
  const raw = Buffer.alloc(224 * 224 * 3, 50).toString('base64');
  const body = (options: Record<string, unknown> = {}) => ({
    model: 'demo-policy-slow',
    robot_type: 'franka_panda',
    images: { primary: { format: 'raw', shape: [224, 224, 3], data: raw } },
    state: HOME,
    options,
  });
  const queue = async () => {
    const res = await t.fetch('/queue/stats', { headers: { 'x-api-key': opsKey } });
    return (
      res.json() as {
        models: { model: string; depth: number; workers_busy: number; workers_active: number }[];
      }
    ).models.find((m) => m.model === 'demo-policy-slow')!;
  };
  const runs = async () =>
    sampleValue(await scrape(t), 'vla_inference_batch_size_count', { model: 'demo-policy-slow' }) ?? 0;
  const idle = () =>
    eventually(async () => {
      const q = await queue();
      return q.depth === 0 && q.workers_busy === 0;
    });

  beforeAll(async () => {
    // Four times the shipped chain (about 0.3-0.8 s a run): the running request outlasts a burst of twelve
    // being parsed and queued even on a slow, loaded CPU, so the saturation below is deterministic.
    const dir = makeModelsDir({ 'demo-policy-slow': { from: 'demo-policy-slow', chainLayers: 4 * 440 } });
    ({ t, a, b, opsKey } = await setUp({ MODELS_DIR: dir }));
  });
  afterAll(async () => {
    await t.close();
  });

  it('sheds a full queue at once: 4 wait, 8 get 503 queue_full with Retry-After before the first 200', async () => {
    await idle();
    const runs0 = await runs();
    const order: number[] = [];
    const first = a.post(body()).then((r) => (order.push(r.status), r));
    await eventually(async () => (await queue()).workers_busy === 1);
    const burst = await Promise.all(
      Array.from({ length: 12 }, () => a.post(body()).then((r) => (order.push(r.status), r))),
    );
    const all = [await first, ...burst];
    expect(all.filter((r) => r.status === 200)).toHaveLength(5);
    const shed = all.filter((r) => r.status === 503);
    expect(shed).toHaveLength(8);
    for (const r of shed) {
      expect(r.json.error.code).toBe('queue_full');
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    expect(order.slice(0, 8)).toEqual(new Array(8).fill(503));
    expect((await runs()) - runs0).toBe(5);
    const samples = await scrape(t);
    expect(
      sampleValue(samples, 'vla_inference_requests_total', {
        model: 'demo-policy-slow',
        robot_type: 'franka_panda',
        status: 'queue_full',
      }),
    ).toBe(8);
  });

  it('answers 504 deadline_exceeded to a request still queued at its deadline, and never runs it', async () => {
    await idle();
    const runs0 = await runs();
    const running = a.post(body());
    await eventually(async () => (await queue()).workers_busy === 1);
    // Far less than what is left of the running request's 70-200 ms (by CPU) run.
    const late = await b.post(body({ deadline_ms: 10 }));
    expect(late.status).toBe(504);
    expect(late.json.error.code).toBe('deadline_exceeded');
    expect((await running).status).toBe(200);
    expect((await runs()) - runs0).toBe(1);
    await t.app.get(UsageWriter).flushNow();
    const rows = await t.app
      .get(DataSource)
      .query<unknown[]>('SELECT status, http_status FROM usage_records WHERE request_id = ?', [
        late.json.error.request_id,
      ]);
    expect(rows).toEqual([{ status: 'deadline_exceeded', http_status: 504 }]);
  });

  it('drops a queued request whose client disconnected, without running it (F9c)', async () => {
    await idle();
    const runs0 = await runs();
    const running = a.post(body());
    await eventually(async () => (await queue()).workers_busy === 1);
    const controller = new AbortController();
    const abandoned = b.post(body(), controller.signal).then(
      () => 'answered',
      () => 'aborted',
    );
    await eventually(async () => (await queue()).depth === 1);
    controller.abort();
    await eventually(async () => (await queue()).depth === 0);
    expect(await abandoned).toBe('aborted');
    expect((await running).status).toBe(200);
    await idle();
    expect((await runs()) - runs0).toBe(1);
    const samples = await scrape(t);
    expect(
      sampleValue(samples, 'vla_inference_requests_total', {
        model: 'demo-policy-slow',
        robot_type: 'franka_panda',
        status: 'client_closed',
      }),
    ).toBe(1);
  });

  it('keeps GET /health answering while the slow model is saturated', async () => {
    await idle();
    const load = Promise.all(Array.from({ length: 5 }, () => a.post(body())));
    await eventually(async () => (await queue()).workers_busy === 1);
    for (let i = 0; i < 5; i++) expect((await t.fetch('/health')).status).toBe(200);
    await load;
  });

  it('replaces a worker that dies mid-run: its request gets 500, the next one succeeds (F10b)', async () => {
    await idle();
    const dying = a.post(body());
    await eventually(async () => (await queue()).workers_busy === 1);
    t.app.get(ModelRegistry).get('demo-policy-slow')!.workers!.crashOne();
    const res = await dying;
    expect(res.status).toBe(500);
    expect(res.json.error.code).toBe('internal_error');
    await eventually(async () => (await queue()).workers_active === 1);
    expect((await a.post(body())).status).toBe(200);
    const samples = await scrape(t);
    expect(sampleValue(samples, 'vla_inference_worker_crashes_total', { model: 'demo-policy-slow' })).toBe(1);
  });
});

describe('models that fail to load (TESTS F10a)', () => {
  it('lists them as unavailable with the reason, answers 503 model_unavailable, stays ready with one model', async () => {
    const dir = makeModelsDir({
      'demo-policy': { from: 'demo-policy' },
      broken: { from: 'demo-policy', onnx: 'corrupt' },
      gone: { from: 'demo-policy', onnx: 'missing' },
    });
    const { t, a, opsKey } = await setUp({ MODELS_DIR: dir });
    try {
      const stats = await t.fetch('/models/stats', { headers: { 'x-api-key': opsKey } });
      const models = (stats.json() as { models: { model: string; status: string; reason: string | null }[] })
        .models;
      expect(models.map((m) => [m.model, m.status])).toEqual([
        ['broken', 'unavailable'],
        ['demo-policy', 'ready'],
        ['gone', 'unavailable'],
      ]);
      for (const m of models.filter((x) => x.status === 'unavailable')) {
        expect(m.reason).toBeTruthy();
        expect(m.reason).not.toContain(dir);
      }
      const res = await a.post({
        model: 'broken',
        robot_type: 'franka_panda',
        images: { primary: 'x' },
        state: HOME,
      });
      expect(res.status).toBe(503);
      expect(res.json.error.code).toBe('model_unavailable');
      expect((await t.fetch('/health/ready')).status).toBe(200);
      expect(sampleValue(await scrape(t), 'vla_models_loaded')).toBe(1);
    } finally {
      await t.close();
    }
  });

  it('runs a model that asks for CUDA on the CPU when the CUDA provider is not usable, and says so', async () => {
    const dir = makeModelsDir({ 'demo-policy': { from: 'demo-policy', yaml: { device: 'cuda' } } });
    const { t, a, opsKey } = await setUp({ MODELS_DIR: dir });
    try {
      const stats = await t.fetch('/models/stats', { headers: { 'x-api-key': opsKey } });
      const [model] = (stats.json() as { models: { status: string; device: string }[] }).models;
      expect(model).toMatchObject({ status: 'ready', device: 'cpu' });
      const raw = Buffer.alloc(224 * 224 * 3, 50).toString('base64');
      const res = await a.post({
        model: 'demo-policy',
        robot_type: 'franka_panda',
        images: { primary: { format: 'raw', shape: [224, 224, 3], data: raw } },
        state: HOME,
      });
      expect(res.status).toBe(200);
      expect(
        t.logs.records().some((r) => String(r.msg).includes('CUDA execution provider is not usable')),
      ).toBe(true);
    } finally {
      await t.close();
    }
  });

  it('says per field what the file has when model.yaml does not match it, in /models/stats and one log line', async () => {
    const primary = {
      name: 'primary',
      tensor: 'img',
      height: 224,
      width: 224,
      channels: 3,
      mean: [0.5, 0.5, 0.5],
      std: [0.5, 0.5, 0.5],
    };
    const dir = makeModelsDir({
      'demo-policy': { from: 'demo-policy' },
      renamed: {
        from: 'demo-policy',
        yaml: { inputs: { images: [primary] }, outputs: { actions: { horizon: 12 } } },
      },
    });
    const { t, a, opsKey } = await setUp({ MODELS_DIR: dir });
    try {
      const problems = [
        {
          field: 'inputs.images[0].tensor',
          message:
            'the file has no input "img"; its inputs are image (float32 [batch,3,224,224]), state (float32 [batch,8]), tokens (int64 [batch,16])',
        },
        {
          field: 'outputs.actions',
          message: 'the file\'s output "actions" is [batch,10,8] but horizon x dim is 12 x 8',
        },
      ];
      const reason = `model.yaml does not match the model file: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`;
      const stats = await t.fetch('/models/stats', { headers: { 'x-api-key': opsKey } });
      const models = (stats.json() as { models: { model: string; status: string; reason: string | null }[] })
        .models;
      expect(models.map((m) => [m.model, m.status, m.reason])).toEqual([
        ['demo-policy', 'ready', null],
        ['renamed', 'unavailable', reason],
      ]);
      const lines = t.logs.records().filter((r) => r.model === 'renamed' && r.level === 'error');
      expect(lines).toEqual([
        expect.objectContaining({
          msg: 'model failed to load; it is listed as unavailable',
          stage: 'interface',
          reason,
          problems,
        }),
      ]);
      expect(JSON.stringify(lines)).not.toContain(dir);
      const res = await a.post({
        model: 'renamed',
        robot_type: 'franka_panda',
        images: { primary: 'x' },
        state: HOME,
      });
      expect(res.status).toBe(503);
      expect(res.json.error.code).toBe('model_unavailable');
    } finally {
      await t.close();
    }
  });

  it('keeps ONNX Runtime quiet when the CUDA provider is missing: every line on stdout and stderr is JSON', async () => {
    const dir = makeModelsDir({
      'demo-policy': { from: 'demo-policy', yaml: { device: 'cuda', workers: 2 } },
    });
    const server = ChildServer.spawn('apps/api/src/main.ts', { MODELS_DIR: dir, BOOTSTRAP_KEY: 'off' });
    try {
      await server.waitUntilListening();
      const fallback = await server.waitForLog((r) => r.requested_device === 'cuda');
      expect(fallback).toMatchObject({
        level: 'warn',
        model: 'demo-policy',
        device: 'cpu',
        msg: 'device cuda requested but the CUDA execution provider is not usable: running on CPU',
      });
      // What ONNX Runtime said, as its exception gave it: no path (its log line has three).
      expect(fallback.onnxruntime_error).toEqual(expect.stringContaining('Cuda'));
      expect(fallback.onnxruntime_error).not.toMatch(/\//);
      await server.waitForLog((r) => r.msg === 'model loaded' && r.device === 'cpu');
    } finally {
      await server.dispose();
    }
    const stderr = server.stderr
      .join('')
      .split('\n')
      .filter((l) => l !== '');
    for (const line of [...server.stdout, ...stderr]) {
      expect(() => JSON.parse(line) as unknown).not.toThrow();
    }
    expect(stderr.join('\n')).not.toContain('onnxruntime');
  });

  it('makes readiness 503 when no model loaded', async () => {
    const dir = makeModelsDir({ broken: { from: 'demo-policy', onnx: 'corrupt' } });
    const t = await startTestApp({ MODELS_DIR: dir });
    try {
      const ready = await t.fetch('/health/ready');
      expect(ready.status).toBe(503);
      expect(ready.text).toContain('models');
      expect((await t.fetch('/health')).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});

describe('a stalled model (MODEL_STALL_TIMEOUT_MS)', () => {
  it('turns readiness 503 while pending work makes no progress, and back to 200 once it does', async () => {
    // Stall timeout 100 ms, far shorter than a batch of seven of the slow model (several times one run,
    // which takes 70-200 ms depending on the CPU): a batch in progress looks wedged.
    const dir = makeModelsDir({
      'demo-policy-slow': {
        from: 'demo-policy-slow',
        yaml: { max_batch_size: 8, batch_timeout_ms: 50, queue_capacity: 16 },
      },
    });
    const { t, a, opsKey } = await setUp({ MODEL_STALL_TIMEOUT_MS: '100', MODELS_DIR: dir });
    try {
      const raw = Buffer.alloc(224 * 224 * 3, 50).toString('base64');
      // The first runs alone at once; the other seven wait for it and then run as one batch.
      const running = Promise.all(
        Array.from({ length: 8 }, () =>
          a.post({
            model: 'demo-policy-slow',
            robot_type: 'franka_panda',
            images: { primary: { format: 'raw', shape: [224, 224, 3], data: raw } },
            state: HOME,
          }),
        ),
      );
      let detailed: { checks: { models: { status: string; stalled: { id: string }[] } } } | undefined;
      await eventually(async () => {
        const ready = await t.fetch('/health/ready');
        if (ready.status !== 503) return false;
        const res = await t.fetch('/health/detailed', { headers: { 'x-api-key': opsKey } });
        detailed = res.json() as typeof detailed;
        return detailed?.checks.models.status === 'down';
      });
      expect(detailed?.checks.models.stalled.map((s) => s.id)).toEqual(['demo-policy-slow']);
      expect((await running).map((r) => r.status)).toEqual(new Array(8).fill(200));
      await eventually(async () => (await t.fetch('/health/ready')).status === 200);
    } finally {
      await t.close();
    }
  });
});
