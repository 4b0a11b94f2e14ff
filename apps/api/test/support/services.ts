import { randomBytes } from 'node:crypto';

/**
 * The PostgreSQL URL for tests, or undefined when DATABASE_URL_TEST is unset. Refuses any database whose
 * name does not contain "test", so a test can never touch a real one.
 */
export function postgresTestUrl(): string | undefined {
  const url = process.env.DATABASE_URL_TEST;
  if (url === undefined || url === '') return undefined;
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  if (!name.includes('test'))
    throw new Error('DATABASE_URL_TEST must name a database whose name contains "test".');
  return url;
}

export function redisTestUrl(): string | undefined {
  const url = process.env.REDIS_URL_TEST;
  return url === undefined || url === '' ? undefined : url;
}

/** A schema name of our own, so parallel runs never share tables. */
export function uniqueSchema(prefix = 'e2e'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}
