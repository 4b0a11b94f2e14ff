import type { Principal } from '../auth/api-key-verifier.service';
import { loadConfig } from '../config';
import { limitsFor } from './limits-for';

const principal = (over: Partial<Principal> = {}): Principal => ({
  keyId: 'k',
  tenantId: 't',
  tenantName: 'acme',
  tenantDisabled: false,
  scopes: ['inference'],
  requestsPerMinute: null,
  maxConcurrent: null,
  dailyRequestQuota: null,
  tokensPerMinute: null,
  ...over,
});

describe('limitsFor', () => {
  const none = loadConfig({}).rateLimit;
  const defaults = loadConfig({
    RATE_LIMIT_REQUESTS_PER_MINUTE: '600',
    RATE_LIMIT_MAX_CONCURRENT: '8',
    RATE_LIMIT_DAILY_QUOTA: '100000',
    RATE_LIMIT_TOKENS_PER_MINUTE: '50000',
    RATE_LIMIT_BURST_SECONDS: '6',
  }).rateLimit;

  it('is no limit at all when nothing is set anywhere', () => {
    expect(limitsFor(principal(), none)).toEqual({
      requestsPerMinute: null,
      burst: null,
      maxConcurrent: null,
      dailyQuota: null,
      tokensPerMinute: null,
    });
  });

  it('takes the platform defaults where the key and tenant set nothing, with the burst in seconds of the rate', () => {
    expect(limitsFor(principal(), defaults)).toEqual({
      requestsPerMinute: 600,
      burst: 60,
      maxConcurrent: 8,
      dailyQuota: 100_000,
      tokensPerMinute: 50_000,
    });
  });

  it("prefers the caller's own settings, a quota of 0 included", () => {
    const own = principal({
      requestsPerMinute: 5,
      maxConcurrent: 2,
      dailyRequestQuota: 0,
      tokensPerMinute: 10,
    });
    expect(limitsFor(own, defaults)).toEqual({
      requestsPerMinute: 5,
      burst: 1,
      maxConcurrent: 2,
      dailyQuota: 0,
      tokensPerMinute: 10,
    });
    // With the default 60 s burst, a key may send its whole minute at once.
    expect(limitsFor(own, none).burst).toBe(5);
  });
});
