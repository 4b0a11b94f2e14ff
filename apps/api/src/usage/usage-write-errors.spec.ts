import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { QueryFailedError } from 'typeorm';
import { FaultProxy } from '../../test/support/fault-proxy';
import { classifyWriteError, describeWriteError } from './usage-write-errors';

/** The error `fn` throws (synchronously or not); fails the test when it throws nothing. */
async function caught(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

/** A PostgreSQL error as node-postgres raises it for a server ErrorResponse with this SQLSTATE. */
function pgError(code: string, message = 'refused'): pg.DatabaseError {
  const error = new pg.DatabaseError(message, message.length, 'error');
  error.code = code;
  return error;
}

describe('classifyWriteError', () => {
  describe('SQLite errors, raised by better-sqlite3 and wrapped by TypeORM', () => {
    let dir: string;
    let db: Database.Database;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'vla-errors-'));
      db = new Database(join(dir, 'e.sqlite'));
      db.exec('CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT NOT NULL)');
    });
    afterAll(() => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const wrapped = (error: unknown) => new QueryFailedError('INSERT ...', [], error as Error);

    it('a NOT NULL violation is the row', async () => {
      const error = await caught(() => db.prepare('INSERT INTO t VALUES (?, NULL)').run('a'));
      expect((error as { code: string }).code).toBe('SQLITE_CONSTRAINT_NOTNULL');
      expect(classifyWriteError(error)).toBe('row');
      expect(classifyWriteError(wrapped(error))).toBe('row');
    });

    it('a missing table is the database, not the row', async () => {
      const error = await caught(() => db.prepare('INSERT INTO missing VALUES (1)').run());
      expect(classifyWriteError(wrapped(error))).toBe('database');
    });

    it('a database locked by another writer is transient', async () => {
      const other = new Database(join(dir, 'e.sqlite'), { timeout: 0 });
      try {
        db.exec('BEGIN IMMEDIATE');
        const error = await caught(() => other.prepare("INSERT INTO t VALUES ('b', 'x')").run());
        expect((error as { code: string }).code).toBe('SQLITE_BUSY');
        expect(classifyWriteError(wrapped(error))).toBe('transient');
      } finally {
        db.exec('ROLLBACK');
        other.close();
      }
    });
  });

  describe('network and pool errors, raised by node-postgres', () => {
    it('a refused connection is transient', async () => {
      const server = net.createServer();
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as net.AddressInfo;
      await new Promise<void>((resolve) => server.close(() => resolve()));

      const client = new pg.Client({ host: '127.0.0.1', port, connectionTimeoutMillis: 2000 });
      const error = await caught(() => client.connect());
      expect((error as { code: string }).code).toBe('ECONNREFUSED');
      expect(classifyWriteError(error)).toBe('transient');
    });

    it('a pool that cannot connect in time, and a connection cut mid-query, are transient', async () => {
      const silent = net.createServer((socket) => socket.on('error', () => undefined));
      silent.listen(0, '127.0.0.1');
      await once(silent, 'listening');
      const { port } = silent.address() as net.AddressInfo;
      const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: port });
      try {
        await proxy.setMode('blackhole');
        const pool = new pg.Pool({ host: '127.0.0.1', port: proxy.port, connectionTimeoutMillis: 100 });
        pool.on('error', () => undefined);
        const timeout = await caught(() => pool.connect());
        expect(String((timeout as Error).message)).toMatch(/timeout/i);
        expect(classifyWriteError(timeout)).toBe('transient');
        await pool.end();

        await proxy.setMode('pass');
        const client = new pg.Client({ host: '127.0.0.1', port: proxy.port });
        client.on('error', () => undefined);
        const connecting = caught(() => client.connect());
        await proxy.setMode('reset');
        const cut = await connecting;
        expect(classifyWriteError(cut)).toBe('transient');
      } finally {
        await proxy.close();
        silent.close();
      }
    });
  });

  it.each([
    ['22001', 'row'], // string_data_right_truncation
    ['22P02', 'row'], // invalid_text_representation
    ['23502', 'row'], // not_null_violation
    ['23514', 'row'], // check_violation
    ['54000', 'row'], // program_limit_exceeded
    ['08006', 'transient'], // connection_failure
    ['53300', 'transient'], // too_many_connections
    ['57P01', 'transient'], // admin_shutdown
    ['57014', 'transient'], // query_canceled (statement_timeout)
    ['40001', 'transient'], // serialization_failure
    ['40P01', 'transient'], // deadlock_detected
    ['42P01', 'database'], // undefined_table
    ['42501', 'database'], // insufficient_privilege
    ['25006', 'database'], // read_only_sql_transaction
    ['3F000', 'database'], // invalid_schema_name
  ])('PostgreSQL SQLSTATE %s is %s', (code, kind) => {
    expect(classifyWriteError(pgError(code))).toBe(kind);
    expect(classifyWriteError(new QueryFailedError('INSERT ...', [], pgError(code)))).toBe(kind);
  });

  it('an error with no code is blamed on the row unless it says the connection is gone', () => {
    expect(classifyWriteError(new TypeError('Cannot convert a BigInt value to a number'))).toBe('row');
    expect(classifyWriteError(new Error('Connection terminated unexpectedly'))).toBe('transient');
    expect(classifyWriteError(new Error('Driver not Connected'))).toBe('transient');
    expect(classifyWriteError('a string')).toBe('row');
  });

  it('describes an error by code and first line, never its parameters', () => {
    const error = new QueryFailedError(
      'INSERT INTO usage_records ...',
      ['secret-ish'],
      pgError('22001', 'value too long\nDETAIL: x'),
    );
    expect(describeWriteError(error)).toEqual({ code: '22001', message: 'value too long' });
  });
});
