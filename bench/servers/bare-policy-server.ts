// The policy server a team would write without the platform: node:http, JSON.parse, base64 raw pixels into
// the model's tensors, `session.run` on the main thread, the actions as JSON. No auth, validation beyond what
// it needs not to crash, queue, batching, safety check, metrics or logging. The inference bench's floor for
// `POST /v1/inference` (raw-pixel bodies only), and its contrast for event-loop isolation on `GET /health`.
//
// Environment: HOST, PORT (0: any free port), MODELS_DIR, MODELS (comma-separated model ids to open).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { feedsOf, openPolicy, type Policy, runPolicy } from './policy-session';

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? '0');
const modelsDir = process.env.MODELS_DIR ?? 'models';
const ids = (process.env.MODELS ?? 'demo-policy').split(',').filter((id) => id !== '');

interface RawImage {
  format: 'raw';
  shape: [number, number, number];
  data: string;
}

interface Body {
  model: string;
  instruction?: string;
  images: Record<string, RawImage>;
  state: number[];
}

function send(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function infer(
  policies: Map<string, Policy>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const body = JSON.parse((await readBody(req)).toString('utf8')) as Body;
  const policy = policies.get(body.model);
  if (policy === undefined) return send(res, 404, { error: `no model ${body.model}` });
  const images = policy.config.inputs.images.map((spec) => {
    const image = body.images[spec.name];
    if (image?.format !== 'raw') throw new Error(`images.${spec.name} must be raw pixels`);
    const bytes = Buffer.from(image.data, 'base64');
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  });
  const actions = await runPolicy(
    policy,
    feedsOf(policy.config, { images, state: body.state, instruction: body.instruction }),
  );
  send(res, 200, { model: body.model, actions });
}

async function main(): Promise<void> {
  const policies = new Map<string, Policy>();
  for (const id of ids) policies.set(id, await openPolicy(modelsDir, id));

  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/health') {
      send(res, 200, { status: 'ok', uptime_seconds: Math.round(performance.now()) / 1000 });
      return;
    }
    if (req.method === 'POST' && req.url === '/v1/inference') {
      infer(policies, req, res).catch((error: unknown) => {
        send(res, 400, { error: error instanceof Error ? error.message : String(error) });
      });
      return;
    }
    res.writeHead(404).end();
  });
  // The API's keep-alive timeout, so both keep their connections the same way.
  server.keepAliveTimeout = 65_000;
  server.listen(port, host, () => {
    const { port: bound } = server.address() as AddressInfo;
    process.stdout.write(
      `${JSON.stringify({ level: 'info', msg: `listening on http://${host}:${bound}` })}\n`,
    );
  });
  process.once('SIGTERM', () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`bare-policy-server: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
