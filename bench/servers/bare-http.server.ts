// The floor for the platform's GET /health: plain node:http answering the same JSON shape, no framework,
// no logging, no metrics. Started by the harness, which reads HOST and PORT and waits for the ready line.
import { createServer } from 'node:http';
import { type AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? '0');

const server = createServer((req, res) => {
  if (req.method !== 'GET' || req.url !== '/health') {
    res.writeHead(404).end();
    return;
  }
  const body = JSON.stringify({
    status: 'ok',
    timestamp: new Date().toISOString(),
    uptime_seconds: Math.round(performance.now()) / 1000,
    version: '0.1.0',
  });
  res.writeHead(200, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
});
// The API's keep-alive timeout, so both keep their connections the same way.
server.keepAliveTimeout = 65_000;

server.listen(port, host, () => {
  const { port: bound } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ level: 'info', msg: `listening on http://${host}:${bound}` })}\n`);
});

process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
