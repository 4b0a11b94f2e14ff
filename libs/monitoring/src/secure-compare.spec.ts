import { constantTimeEqual } from './secure-compare';

describe('constantTimeEqual', () => {
  it('accepts equal strings', () => {
    expect(constantTimeEqual('s3cret-metrics-token', 's3cret-metrics-token')).toBe(true);
    expect(constantTimeEqual('ünïcødé ✓', 'ünïcødé ✓')).toBe(true);
  });

  it('refuses different strings of the same length', () => {
    expect(constantTimeEqual('s3cret-metrics-tokeN', 's3cret-metrics-token')).toBe(false);
    expect(constantTimeEqual('a', 'b')).toBe(false);
  });

  it('refuses strings of different lengths, prefixes included', () => {
    expect(constantTimeEqual('s3cret', 's3cret-metrics-token')).toBe(false);
    expect(constantTimeEqual('s3cret-metrics-token-and-more', 's3cret-metrics-token')).toBe(false);
  });

  it('compares empty strings', () => {
    expect(constantTimeEqual('', '')).toBe(true);
    expect(constantTimeEqual('', 's3cret-metrics-token')).toBe(false);
    expect(constantTimeEqual('s3cret-metrics-token', '')).toBe(false);
  });
});
