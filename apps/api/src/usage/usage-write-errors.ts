/**
 * What a failed usage INSERT says about what to do next:
 * - `transient`: the connection, the pool or a busy database; time fixes it: keep the rows, back off, retry.
 * - `database`: the database refuses every write (missing table, permissions, read-only, disk, schema):
 *   not the rows' fault, so they are kept and retried with backoff until an operator fixes it.
 * - `row`: the data of a row was refused (too long, null, constraint, wrong type), or an error with no
 *   database code: writing the row again can never succeed, so a single refused row is dropped.
 */
export type WriteErrorKind = 'transient' | 'database' | 'row';

/** Node socket errors, and SQLite's "try again" codes. */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available
  '57014', // query_canceled (statement_timeout)
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
]);
/** SQLSTATE classes: 08 connection exception, 53 insufficient resources (too many connections, ...). */
const TRANSIENT_CLASSES = new Set(['08', '53']);
/** SQLSTATE classes caused by a row: 22 data exception, 23 integrity constraint, 54 program limit. */
const ROW_CLASSES = new Set(['22', '23', '54']);
const ROW_SQLITE_CODES = /^SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE)/;

/**
 * node-postgres and pg-pool raise these without a code: a connection that died mid-query, a pool that
 * could not connect in time, a client used after its connection broke. TypeORM: not connected (yet, or
 * any more).
 */
const TRANSIENT_MESSAGES =
  /connection terminated|timeout exceeded when trying to connect|connection timeout|not queryable|pool after calling end|connection.*(is not (established|open)|closed)|not (yet )?(initialized|connected)|CannotExecuteNotConnected/i;

function codeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, driverError } = error as { code?: unknown; driverError?: unknown };
  if (typeof code === 'string' && code !== '') return code;
  return driverError === error ? undefined : codeOf(driverError);
}

/** Classifies an error thrown by a usage INSERT (TypeORM's QueryFailedError or a driver/pool error). */
export function classifyWriteError(error: unknown): WriteErrorKind {
  const code = codeOf(error);
  if (code !== undefined) {
    if (TRANSIENT_CODES.has(code)) return 'transient';
    if (/^[0-9A-Z]{5}$/.test(code)) {
      const sqlClass = code.slice(0, 2);
      if (TRANSIENT_CLASSES.has(sqlClass)) return 'transient';
      if (ROW_CLASSES.has(sqlClass)) return 'row';
      return 'database';
    }
    if (ROW_SQLITE_CODES.test(code)) return 'row';
    if (code.startsWith('SQLITE_')) return 'database';
    if (/^E[A-Z]+$/.test(code)) return 'transient'; // any other socket-level errno
  }
  const message = error instanceof Error ? `${error.name} ${error.message}` : String(error);
  return TRANSIENT_MESSAGES.test(message) ? 'transient' : 'row';
}

/** A short, safe description of a write error for a log line: its code and first line, never parameters. */
export function describeWriteError(error: unknown): { code: string | undefined; message: string } {
  const message = error instanceof Error ? error.message : String(error);
  return { code: codeOf(error), message: message.split('\n')[0].slice(0, 200) };
}
