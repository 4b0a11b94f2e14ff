import { rateLimitHeaders, retryAfterSeconds } from './rate-limit-headers';

describe('rateLimitHeaders (draft-ietf-httpapi-ratelimit-headers-09)', () => {
  it('lists one Structured Field item per limit, in the order the limits were checked', () => {
    expect(
      rateLimitHeaders([
        { type: 'requests_per_minute', limit: 60, remaining: 59, resetMs: 1000, burst: 60 },
        { type: 'concurrency', limit: 4, remaining: 3, resetMs: 0 },
        { type: 'daily_quota', limit: 10_000, remaining: 9876, resetMs: 40_320_001 },
      ]),
    ).toEqual({
      'RateLimit-Policy':
        '"requests_per_minute";q=60;w=60, "concurrency";q=4;qu="concurrent-requests", "daily_quota";q=10000;w=86400',
      RateLimit: '"requests_per_minute";r=59;t=1, "concurrency";r=3, "daily_quota";r=9876;t=40321',
    });
  });

  it('advertises a bucket smaller than a minute as what it allows: burst requests per refill time', () => {
    const state = { type: 'requests_per_minute' as const, limit: 600, remaining: 9, resetMs: 100 };
    expect(rateLimitHeaders([{ ...state, burst: 10 }])?.['RateLimit-Policy']).toBe(
      '"requests_per_minute";q=10;w=1',
    );
    expect(rateLimitHeaders([{ ...state, burst: 600 }])?.['RateLimit-Policy']).toBe(
      '"requests_per_minute";q=600;w=60',
    );
    expect(rateLimitHeaders([state])?.['RateLimit-Policy']).toBe('"requests_per_minute";q=600;w=60');
  });

  it('leaves out tokens per minute (the draft has no unit for tokens), and gives no headers without limits', () => {
    expect(
      rateLimitHeaders([{ type: 'tokens_per_minute', limit: 1000, remaining: 10, resetMs: 5 }]),
    ).toBeNull();
    expect(rateLimitHeaders([])).toBeNull();
  });
});

describe('retryAfterSeconds', () => {
  it.each([
    [0, 1],
    [1, 1],
    [999, 1],
    [1000, 1],
    [1001, 2],
    [12_000, 12],
    [86_399_999, 86_400],
  ])('%d ms → %d s (whole seconds, at least 1)', (ms, seconds) => {
    expect(retryAfterSeconds(ms)).toBe(seconds);
  });
});
