import { gaugeProvider, histogramProvider, InjectMetric, LATENCY_BUCKETS_SECONDS } from '@app/monitoring';
import { Injectable, type Provider } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import { Gauge, Histogram, type Registry } from 'prom-client';
import type { DataSource } from 'typeorm';

/** The database metrics (names from the catalogue in seed 003), registered by DatabaseModule. */
export const DATABASE_METRICS = {
  queryDuration: 'vla_database_query_duration_seconds',
  poolSize: 'vla_database_pool_size',
  poolAvailable: 'vla_database_pool_available',
  poolUsed: 'vla_database_pool_used',
} as const;

/** The connection pool at one instant. */
export interface PoolState {
  /** Connections the pool may hold (PostgreSQL: the pool's `max`; SQLite: 1). */
  readonly size: number;
  /** Connections checked out, running a query or a transaction. */
  readonly used: number;
  /** Connections a query can have now without waiting: idle ones plus those not yet opened. */
  readonly available: number;
  /** Queries waiting for a connection (PostgreSQL only; not exported as a metric of its own). */
  readonly waiting: number;
}

/** The fields of a node-postgres Pool read here (documented by pg-pool; not in TypeORM's types). */
interface PgPoolLike {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  readonly ending?: boolean;
  readonly options?: { readonly max?: unknown };
}

function isPgPool(value: unknown): value is PgPoolLike {
  if (typeof value !== 'object' || value === null) return false;
  const pool = value as Record<string, unknown>;
  return typeof pool.totalCount === 'number' && typeof pool.idleCount === 'number';
}

/** node-postgres's default pool size, used when the pool does not say. */
const PG_DEFAULT_POOL_MAX = 10;

/**
 * The pool of `dataSource` now. PostgreSQL: from the pg Pool (size is its `max`, used = open - idle).
 * SQLite: one connection, never shared between concurrent queries, so size 1 and used 0 (better-sqlite3
 * is synchronous: nothing runs while a scrape does). A closed data source has nothing available.
 */
export function poolState(dataSource: DataSource): PoolState {
  const open = dataSource.isInitialized;
  if (dataSource.options.type !== 'postgres') {
    return { size: 1, used: 0, available: open ? 1 : 0, waiting: 0 };
  }
  const master: unknown = (dataSource.driver as unknown as { master?: unknown }).master;
  if (!open || !isPgPool(master) || master.ending === true) {
    const configured = dataSource.options.poolSize;
    return { size: configured ?? PG_DEFAULT_POOL_MAX, used: 0, available: 0, waiting: 0 };
  }
  const max = master.options?.max;
  const size = typeof max === 'number' && max > 0 ? max : PG_DEFAULT_POOL_MAX;
  const used = Math.max(0, master.totalCount - master.idleCount);
  return {
    size,
    used,
    available: Math.max(0, size - used),
    waiting: typeof master.waitingCount === 'number' ? master.waitingCount : 0,
  };
}

/** Each metric's declaration, once: the providers and {@link databaseMetricsIn} both use them. */
const DECLARATIONS = {
  queryDuration: {
    name: DATABASE_METRICS.queryDuration,
    help: 'Duration of timed database queries (usage inserts, ...), by operation and status (ok, error), in seconds.',
    labelNames: ['operation', 'status'],
    buckets: LATENCY_BUCKETS_SECONDS,
  },
  poolSize: {
    name: DATABASE_METRICS.poolSize,
    help: 'Connections the database pool may hold (SQLite: 1).',
  },
  poolAvailable: {
    name: DATABASE_METRICS.poolAvailable,
    help: 'Database pool connections a query can have now without waiting: idle plus not yet opened (0 when closed).',
  },
  poolUsed: {
    name: DATABASE_METRICS.poolUsed,
    help: 'Database pool connections checked out by a query or transaction.',
  },
} as const;

type PoolField = 'size' | 'available' | 'used';
const POOL_GAUGES: readonly (readonly [keyof typeof DECLARATIONS, PoolField])[] = [
  ['poolSize', 'size'],
  ['poolAvailable', 'available'],
  ['poolUsed', 'used'],
];

/** Sets `gauge` from the pool at scrape time; never throws (one failing gauge would fail the scrape). */
function collectPool(gauge: Gauge, dataSource: DataSource | undefined, field: PoolField): void {
  try {
    gauge.set(dataSource === undefined ? 0 : poolState(dataSource)[field]);
  } catch {
    gauge.set(0);
  }
}

/** The status label of a timed query. */
export type QueryStatus = 'ok' | 'error';

/**
 * Times database queries into `vla_database_query_duration_seconds`. Give each call site a fixed
 * `operation` name (`usage_insert`, `auth_key_lookup`, ...): the label's values must stay a closed set.
 */
@Injectable()
export class DatabaseMetrics {
  constructor(
    @InjectMetric(DATABASE_METRICS.queryDuration)
    private readonly duration: Histogram<'operation' | 'status'>,
  ) {}

  /** Runs `fn` and observes its duration (monotonic clock) as `operation`, status ok or error; rethrows. */
  async timeQuery<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    const end = this.duration.startTimer({ operation });
    try {
      const result = await fn();
      end({ status: 'ok' });
      return result;
    } catch (error) {
      end({ status: 'error' });
      throw error;
    }
  }

  /** Creates the series of `operations` at 0, so a rate over them is defined before the first query. */
  declareOperations(...operations: string[]): void {
    for (const operation of operations) {
      for (const status of ['ok', 'error'] satisfies QueryStatus[]) this.duration.zero({ operation, status });
    }
  }
}

/**
 * What DatabaseModule provides for its metrics: the query histogram, the pool gauges (read from the
 * DataSource at scrape time) and {@link DatabaseMetrics}. Export `DatabaseMetrics` from the module too.
 */
export const DATABASE_METRIC_PROVIDERS: Provider[] = [
  histogramProvider({
    ...DECLARATIONS.queryDuration,
    labelNames: [...DECLARATIONS.queryDuration.labelNames],
    buckets: [...DECLARATIONS.queryDuration.buckets],
  }),
  ...POOL_GAUGES.map(([key, field]) =>
    gaugeProvider({
      ...DECLARATIONS[key],
      inject: [getDataSourceToken()],
      collect(this: Gauge, dataSource: DataSource) {
        collectPool(this, dataSource, field);
      },
    }),
  ),
  DatabaseMetrics,
];

/**
 * The same metrics in a registry of the caller's, outside Nest (tests, tools): the pool gauges read
 * `source()` at scrape time.
 */
export function databaseMetricsIn(registry: Registry, source: () => DataSource | undefined): DatabaseMetrics {
  const registers = [registry];
  for (const [key, field] of POOL_GAUGES) {
    new Gauge({
      name: DECLARATIONS[key].name,
      help: DECLARATIONS[key].help,
      registers,
      collect(this: Gauge) {
        collectPool(this, source(), field);
      },
    });
  }
  return new DatabaseMetrics(
    new Histogram({
      ...DECLARATIONS.queryDuration,
      labelNames: [...DECLARATIONS.queryDuration.labelNames],
      buckets: [...DECLARATIONS.queryDuration.buckets],
      registers,
    }),
  );
}
