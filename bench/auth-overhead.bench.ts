import { generateApiKey } from '../apps/api/src/auth/api-key-format';
import { apiServer, type BenchFactory, type RequestSpec, type ServerInfo } from './harness';

/** The API prints this once, on a first start with an empty database (BOOTSTRAP_KEY on by default). */
const BOOTSTRAP_KEY_LINE = /"bootstrap_admin_key":"(vla_[0-9A-Za-z_]+)"/;
/** Rate of the unknown-key stream in (b): bounded, well below the valid traffic's own throughput. */
const UNKNOWN_KEYS_PER_SEC = 500;

/** The admin key (which implies ops) the server printed while starting. */
function bootstrapKey(server: ServerInfo): string {
  for (const line of server.startupLines) {
    const match = BOOTSTRAP_KEY_LINE.exec(line);
    if (match) return match[1];
  }
  throw new Error(
    `no "bootstrap_admin_key" line before the ready line of ${server.origin}: was the database not empty?`,
  );
}

/** Fails unless `path` answers `status` (and, for 200, `"status":"ok"`): the arms must measure what they say. */
async function expectStatus(
  origin: string,
  path: string,
  headers: Record<string, string>,
  status: number,
): Promise<void> {
  const response = await fetch(new URL(path, origin), { headers });
  const body = await response.text();
  if (response.status !== status || (status === 200 && !body.includes('"status":"ok"'))) {
    throw new Error(`GET ${path}: expected ${status}, got ${response.status}: ${body.slice(0, 300)}`);
  }
}

/**
 * The cost of the global API-key guard, inside one API process (default configuration): (a) GET
 * /health/detailed with a valid ops key against the public GET /health/ready, which do nearly the same work
 * (lifecycle + the same cached database ping; detailed adds a Redis indicator that is up at once when no
 * Redis is configured), so the gap is mostly the key check; (b) the same authenticated traffic while a
 * second stream sends well-formed keys that do not exist (one database look-up each, then the negative
 * cache) at a bounded rate, against that traffic alone.
 */
export const authOverheadBench: BenchFactory = (context) => {
  // One object, one process: every arm below runs against the same server.
  const server = apiServer(context, 'auth-overhead');

  const withKey = async (origin: string, info: ServerInfo): Promise<RequestSpec> => {
    const key = bootstrapKey(info);
    await expectStatus(origin, '/health/detailed', { 'x-api-key': key }, 200);
    await expectStatus(origin, '/health/detailed', { 'x-api-key': generateApiKey().key }, 401);
    return { path: '/health/detailed', headers: { 'x-api-key': key } };
  };

  return {
    name: 'auth-overhead',
    title:
      'API-key guard: authenticated GET /health/detailed vs public GET /health/ready, with and without unknown keys',
    arms: [
      {
        name: 'ready-public',
        description: 'GET /health/ready, no key (public route: the guard returns at the @Public() check)',
        server,
        request: async (origin) => {
          await expectStatus(origin, '/health/ready', {}, 200);
          return { path: '/health/ready' };
        },
      },
      {
        name: 'detailed-valid-key',
        description: 'GET /health/detailed with the bootstrap admin key in X-API-Key',
        server,
        request: withKey,
      },
      {
        name: 'detailed-valid-key-under-unknown',
        description:
          `as detailed-valid-key, while a second stream sends GET /health/detailed with a fresh random ` +
          `well-formed key (valid checksum, unknown id) at ${UNKNOWN_KEYS_PER_SEC} req/s, all answered 401`,
        server,
        request: withKey,
        background: {
          description: `random well-formed unknown keys, ${UNKNOWN_KEYS_PER_SEC} req/s`,
          ratePerSec: UNKNOWN_KEYS_PER_SEC,
          connections: 2,
          request: { path: '/health/detailed' },
          headersPerRequest: () => ({ 'x-api-key': generateApiKey().key }),
          expectStatus: 401,
        },
      },
    ],
    comparisons: [
      {
        name: '(a) authenticated /health/detailed / public /health/ready',
        candidate: 'detailed-valid-key',
        baseline: 'ready-public',
      },
      {
        name: `(b) valid keys with ${UNKNOWN_KEYS_PER_SEC} req/s of unknown keys / valid keys alone`,
        candidate: 'detailed-valid-key-under-unknown',
        baseline: 'detailed-valid-key',
      },
    ],
  };
};
