import { apiServer, type BenchFactory, scriptServer } from './harness';

/**
 * Scope item 12: (a) the platform's GET /health against bare node:http; (b) the same route with HTTP
 * metrics on and off, where metrics on must keep at least 0.95 of the throughput.
 */
export const httpOverheadBench: BenchFactory = (context) => ({
  name: 'http-overhead',
  title: 'GET /health: platform vs bare node:http, HTTP metrics on vs off',
  arms: [
    {
      name: 'bare-node-http',
      description: 'node:http answering the same JSON body, nothing else',
      server: scriptServer('bench/servers/bare-http.server.ts'),
      request: { path: '/health' },
    },
    {
      name: 'platform-metrics-on',
      description: 'the built API, default configuration (HTTP_METRICS_ENABLED=true, LOG_LEVEL=info)',
      server: apiServer(context, 'platform-metrics-on', { HTTP_METRICS_ENABLED: 'true' }),
      request: { path: '/health' },
    },
    {
      name: 'platform-metrics-off',
      description: 'the built API with HTTP_METRICS_ENABLED=false (LOG_LEVEL=info)',
      server: apiServer(context, 'platform-metrics-off', { HTTP_METRICS_ENABLED: 'false' }),
      request: { path: '/health' },
    },
  ],
  comparisons: [
    { name: '(a) platform / bare node:http', candidate: 'platform-metrics-on', baseline: 'bare-node-http' },
    {
      name: '(b) metrics on / metrics off',
      candidate: 'platform-metrics-on',
      baseline: 'platform-metrics-off',
      minThroughputRatio: 0.95,
    },
  ],
});
