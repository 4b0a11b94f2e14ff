import { Injectable } from '@nestjs/common';
import type { Request } from 'express';

/** The `route` label of requests that matched no route: one value, so random URLs cannot add series. */
export const UNMATCHED_ROUTE = 'unmatched';

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** The `method` label: the standard methods, everything else folded into OTHER. */
export function methodLabel(method: string | undefined): string {
  return method !== undefined && KNOWN_METHODS.has(method) ? method : 'OTHER';
}

interface ExpressLayer {
  route?: { path?: unknown; methods?: Record<string, boolean> };
  match?: (path: string) => boolean;
}

/**
 * Resolves the `route` label: the template that served the request (`/v1/models/:id`), never the raw URL.
 * Express sets `req.route` once a route matched; requests that failed before routing (body parser, media
 * type, shutdown) are matched against the registered templates, read once from the router after start.
 * That look-up only runs for such requests, so it stays off the normal path.
 */
@Injectable()
export class RouteResolver {
  private layers: { layer: ExpressLayer; path: string; methods: Record<string, boolean> }[] = [];

  /** Reads the templates from the Express router's stack (call after the routes are registered). */
  load(stack: readonly unknown[]): void {
    this.layers = [];
    for (const item of stack) {
      const layer = item as ExpressLayer;
      if (layer.route && typeof layer.route.path === 'string' && typeof layer.match === 'function') {
        this.layers.push({ layer, path: layer.route.path, methods: layer.route.methods ?? {} });
      }
    }
  }

  /** Number of templates known for requests that failed before routing. */
  get size(): number {
    return this.layers.length;
  }

  label(req: Request): string {
    const route = req.route as { path?: unknown } | undefined;
    if (route !== undefined && typeof route.path === 'string') return req.baseUrl + route.path;
    return this.match(req.method, req.path) ?? UNMATCHED_ROUTE;
  }

  private match(method: string, path: string): string | undefined {
    const m = method.toLowerCase();
    for (const { layer, path: template, methods } of this.layers) {
      if (!(methods[m] || methods._all || (m === 'head' && methods.get))) continue;
      try {
        if (layer.match?.(path)) return template;
      } catch {
        // A `:param` with broken percent-encoding makes Express's matcher throw (the router answered 400);
        // this runs in a `close` listener, where a throw would take the process down.
        continue;
      }
    }
    return undefined;
  }
}
