import type { HttpMetrics } from '@app/monitoring';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { loadConfig } from '../config';
import { guardHttpServer } from './http-server-guards';

/** Emits what Node's parser or timers report for a connection and returns what the server wrote back. */
async function answerTo(code: string | undefined, options: { headersSent?: boolean } = {}) {
  const server = createServer();
  const rejected: number[] = [];
  const config = loadConfig({ HTTP_REQUEST_TIMEOUT_MS: '7000' });
  guardHttpServer(server, config.http, {
    logger: pino({ level: 'silent' }),
    metrics: { rejected: (status: number) => rejected.push(status) } as unknown as HttpMetrics,
  });
  const socket = new PassThrough();
  if (options.headersSent) Object.assign(socket, { _httpMessage: { headersSent: true } });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<void>((resolve) => socket.on('end', resolve).on('close', resolve));
  server.emit('clientError', Object.assign(new Error('refused'), { code }), socket as unknown as Socket);
  socket.end();
  await ended;
  return { server, text: Buffer.concat(chunks).toString(), rejected, destroyed: socket.destroyed };
}

describe('guardHttpServer', () => {
  it('applies the request timeout to headers and body', () => {
    const server = createServer();
    const config = loadConfig({ HTTP_REQUEST_TIMEOUT_MS: '7000', HTTP_KEEP_ALIVE_TIMEOUT_MS: '9000' });
    guardHttpServer(server, config.http, {
      logger: pino({ level: 'silent' }),
      metrics: { rejected: () => undefined } as unknown as HttpMetrics,
    });
    expect([server.requestTimeout, server.headersTimeout, server.keepAliveTimeout]).toEqual([
      7000, 7000, 9000,
    ]);
  });

  it.each([
    ['ERR_HTTP_REQUEST_TIMEOUT', 408, 'request_timeout'],
    ['HPE_HEADER_OVERFLOW', 431, 'header_too_large'],
    ['HPE_INVALID_HEADER_TOKEN', 400, 'invalid_request'],
    [undefined, 400, 'invalid_request'],
  ])('answers %s with %i %s in the JSON envelope and counts it', async (code, status, errorCode) => {
    const { text, rejected } = await answerTo(code);
    const [head, body] = text.split('\r\n\r\n');
    expect(head.split('\r\n')[0]).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(head).toContain('Connection: close');
    const requestId = /X-Request-Id: (\S+)/.exec(head)?.[1];
    expect(JSON.parse(body)).toEqual({
      error: { code: errorCode, message: expect.any(String) as string, request_id: requestId },
    });
    expect(rejected).toEqual([status]);
  });

  it('writes nothing on a connection whose response already started', async () => {
    const { text, rejected, destroyed } = await answerTo('ERR_HTTP_REQUEST_TIMEOUT', { headersSent: true });
    expect(text).toBe('');
    expect(destroyed).toBe(true);
    expect(rejected).toEqual([]);
  });
});
