import express, { type Request } from 'express';
import { RouteResolver, UNMATCHED_ROUTE, methodLabel } from './route-label';

/** A request as the metrics middleware sees it when it failed before routing: no `req.route`. */
function request(method: string, path: string, extra: { baseUrl?: string; route?: unknown } = {}): Request {
  return { method, path, baseUrl: '', route: undefined, ...extra } as unknown as Request;
}

function expressApp(): express.Express {
  const app = express();
  const ok = (_req: Request, res: express.Response): void => {
    res.end();
  };
  app.use((_req, _res, next) => next());
  app.get('/v1/models/:id', ok);
  app.get('/v1/models/:id/versions/:version', ok);
  app.get('/health', ok);
  app.post('/v1/infer', ok);
  app.all('/v1/echo', ok);
  return app;
}

describe('methodLabel', () => {
  it.each(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])('keeps %s', (method) => {
    expect(methodLabel(method)).toBe(method);
  });

  it.each(['PROPFIND', 'TRACE', 'CONNECT', 'BREW', 'get', ''])('folds %j into OTHER', (method) => {
    expect(methodLabel(method)).toBe('OTHER');
  });

  it('labels a missing method OTHER', () => {
    expect(methodLabel(undefined)).toBe('OTHER');
  });
});

describe('RouteResolver', () => {
  describe('for a request that was routed', () => {
    it('answers the template the route was registered with', () => {
      const resolver = new RouteResolver();
      const req = request('GET', '/v1/models/abc', { route: { path: '/v1/models/:id' } });
      expect(resolver.label(req)).toBe('/v1/models/:id');
    });

    it('prefixes the mount path of a sub-router', () => {
      const resolver = new RouteResolver();
      const req = request('GET', '/models/abc', { baseUrl: '/v1', route: { path: '/models/:id' } });
      expect(resolver.label(req)).toBe('/v1/models/:id');
    });
  });

  describe('for a request that failed before routing', () => {
    let resolver: RouteResolver;
    beforeEach(() => {
      resolver = new RouteResolver();
      resolver.load(expressApp().router.stack);
    });

    it('knows only the route templates, not the middleware', () => {
      expect(resolver.size).toBe(5);
    });

    it.each([
      ['GET', '/v1/models/abc', '/v1/models/:id'],
      ['GET', '/v1/models/abc/', '/v1/models/:id'],
      ['GET', '/v1/models/pi0-base/versions/3', '/v1/models/:id/versions/:version'],
      ['HEAD', '/v1/models/abc', '/v1/models/:id'],
      ['GET', '/health', '/health'],
      ['POST', '/v1/infer', '/v1/infer'],
      ['PATCH', '/v1/echo', '/v1/echo'],
      ['DELETE', '/v1/echo', '/v1/echo'],
    ])('labels %s %s with its template', (method, path, template) => {
      expect(resolver.label(request(method, path))).toBe(template);
    });

    it.each([
      ['GET', '/'],
      ['GET', '/v1/models'],
      ['GET', '/v1/models/abc/extra'],
      ['GET', '/wp-admin/setup.php'],
      ['GET', '/health/deep'],
      ['GET', '/v1/infer'],
      ['POST', '/health'],
      ['DELETE', '/v1/models/abc'],
      ['BREW', '/v1/infer'],
    ])('labels %s %s unmatched', (method, path) => {
      expect(resolver.label(request(method, path))).toBe(UNMATCHED_ROUTE);
    });

    it('never throws on a :param with broken percent-encoding (Express answers 400 itself)', () => {
      expect(resolver.label(request('GET', '/v1/models/%E0%A4%A'))).toBe(UNMATCHED_ROUTE);
      expect(resolver.label(request('GET', '/v1/models/%'))).toBe(UNMATCHED_ROUTE);
    });

    it('labels everything unmatched before the templates are loaded', () => {
      expect(new RouteResolver().label(request('GET', '/health'))).toBe('unmatched');
    });

    it('replaces the templates on a second load', () => {
      const other = express();
      other.get('/only', (_req, res) => {
        res.end();
      });
      resolver.load(other.router.stack);
      expect(resolver.size).toBe(1);
      expect(resolver.label(request('GET', '/only'))).toBe('/only');
      expect(resolver.label(request('GET', '/health'))).toBe(UNMATCHED_ROUTE);
    });
  });
});
