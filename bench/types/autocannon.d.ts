// The slice of autocannon 8's programmatic API the harness uses; the package ships no types.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  namespace autocannon {
    interface Options {
      url: string;
      connections?: number;
      /** Seconds; autocannon stops at the first 1 s sample tick after it, so runs last whole seconds. */
      duration?: number;
      pipelining?: number;
      method?: string;
      headers?: Record<string, string>;
      body?: string;
      /** Seconds before a request counts as timed out. */
      timeout?: number;
      /** Requests per second over all connections; unlimited when absent. */
      overallRate?: number;
      /** Each connection loops over these; `setupRequest` runs before every request and may rewrite it. */
      requests?: RequestOptions[];
    }

    interface RequestOptions {
      setupRequest?: (request: BuiltRequest) => BuiltRequest;
    }

    interface BuiltRequest {
      method: string;
      path: string;
      headers: Record<string, string>;
      body?: string | Buffer;
    }

    interface Result {
      /** Seconds, to 10 ms. */
      duration: number;
      errors: number;
      timeouts: number;
      non2xx: number;
      '2xx': number;
      totalCompletedRequests: number;
    }

    /** Emits `response` (client, statusCode, resBytes, responseTimeMs) for every completed request. */
    interface Instance extends EventEmitter {
      stop(): void;
    }
  }

  function autocannon(
    options: autocannon.Options,
    callback: (error: Error | null, result: autocannon.Result) => void,
  ): autocannon.Instance;

  export = autocannon;
}
