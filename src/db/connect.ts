import { PGlite } from '@electric-sql/pglite'
import { fillPlaceholders, type SQL } from 'drizzle-orm'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator'
import { PgDialect, type PgDatabase, type PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator'
import { createHash } from 'node:crypto'
import pg from 'pg'
import { lockDataDir, type DataDirLock } from './data-dir-lock.js'
import * as schema from './schema.js'

/**
 * shared_buffers of the embedded engine, MB. Pages it does not cache are still in the OS page
 * cache (the data dir is ordinary files), so a smaller cache costs a copy per read, not I/O.
 */
export const DEFAULT_EMBEDDED_SHARED_BUFFERS_MB = 32

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>

const dialect = new PgDialect()

export interface Database {
  db: Db
  engine: 'postgres' | 'pglite'
  schema: string
  /** Runs raw SQL and returns its rows; the one place that knows both drivers' result shapes. */
  rows<T>(query: SQL): Promise<T[]>
  /**
   * Compiles a hot statement once: `query` takes its parameters as `sql.placeholder(name)`, and
   * the returned function runs it with their values. On Postgres it is a named prepared
   * statement, parsed and planned once per connection; the embedded engine runs the same text.
   * Rows come back with the driver's own types (timestamps as Date, numeric as string).
   */
  prepare<T>(name: string, query: SQL): (values: Record<string, unknown>) => Promise<T[]>
  /**
   * Runs `work` in one transaction on one connection, where `run(name, query)` executes each
   * statement as a named prepared statement (parsed and planned once per connection on
   * Postgres; the embedded engine runs the text). For a hot transaction of large, fixed
   * statements (the rollup fold); a name must always carry the same text.
   */
  preparedTransaction<T>(work: (run: PreparedRun) => Promise<T>): Promise<T>
  /** Applies the drizzle-kit migrations in `folder`; concurrent callers are serialized. */
  migrate(folder: string): Promise<void>
  /** Throws when the database cannot answer. */
  ping(): Promise<void>
  /**
   * Where heavy reads (analytics, reports, exports, stats) run. On Postgres: a pool of its own
   * whose statements are cancelled after `queryTimeoutMs`, so reads never hold the connections
   * ingest needs. On the embedded engine (one connection): this same database.
   * This is the one place that decides which pool a query uses; a read replica would be
   * connected here. Closed with the database it belongs to (its own close() does nothing).
   */
  reads: Database
  /** Connections of the pool (Postgres only; the embedded engine has one, and no pool). */
  poolStats?: () => { total: number; idle: number; waiting: number }
  close(): Promise<void>
  /** The embedded engine's exclusive lock on its data dir (null on Postgres and in memory). */
  dataDirLock: DataDirLock | null
}

/** Executes `query` as the prepared statement `name` (see Database.preparedTransaction). */
export type PreparedRun = <T>(name: string, query: SQL) => Promise<T[]>

export interface ConnectOptions {
  /** postgres:// URL; null selects the embedded engine. */
  databaseUrl: string | null
  /** Directory for the embedded engine's files, or 'memory://' for a throw-away database. */
  dataDir: string
  /** Schema the tables live in (search_path). */
  schema?: string
  /** Connections for writes and everything that is not a heavy read (auth, budgets, pricing, health). */
  poolSize?: number
  /** Connections of the separate pool heavy reads use (Postgres only). */
  readPoolSize?: number
  /** Statement timeout of the read pool, ms (Postgres only; 0 = none). */
  queryTimeoutMs?: number
  /**
   * random_page_cost of the read pool's sessions (Postgres only): default
   * DEFAULT_READ_RANDOM_PAGE_COST; null keeps the server's setting.
   */
  readRandomPageCost?: number | null
  /** Distinct statements a read connection keeps prepared before it is replaced (default PREPARED_READS_PER_CONNECTION). */
  preparedReadsPerConnection?: number
  /** How long a query waits for a free pooled connection before it fails (see databaseFailure), ms. */
  connectTimeoutMs?: number
  /** The embedded engine's shared_buffers, MB (default DEFAULT_EMBEDDED_SHARED_BUFFERS_MB). */
  embeddedSharedBuffersMb?: number
  /** Called for errors on idle pool clients (a restarted server), which must not crash the process. */
  onPoolError?: (err: Error) => void
}

/** The rows of a raw `execute()` result, for either driver (also inside transactions). */
export function rowsOf<T>(result: unknown): T[] {
  return (result as { rows: T[] }).rows
}

export async function connectDatabase(opts: ConnectOptions): Promise<Database> {
  const schemaName = opts.schema ?? 'public'
  const databaseUrl = opts.databaseUrl
  if (databaseUrl !== null) {
    const poolOf = (max: number, statementTimeoutMs: number, extra = '') => {
      const pool = new pg.Pool({
        connectionString: databaseUrl,
        max,
        // Every session works in UTC and in the configured schema, whatever the server defaults are.
        // JIT off: the fold's and the rollup reads' statements are wide (49 aggregates per rollup)
        // and, on a large table, costed far above jit_above_cost, so the server compiled them on
        // every run: 12.4 of a 13 s fold of 100k events was LLVM optimization and emission, for
        // statements that then ran in 0.5 s.
        options: `-c timezone=UTC -c jit=off -c search_path=${schemaName}` + (statementTimeoutMs > 0 ? ` -c statement_timeout=${statementTimeoutMs}` : '') + (extra ? ` ${extra}` : ''),
        connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
        idleTimeoutMillis: 30_000,
      })
      pool.on('error', (err) => opts.onPoolError?.(err))
      // The pool listens for errors of idle clients only. A checked-out client whose connection
      // dies between two statements of a transaction (a database restart while the rollup fold
      // or a reprice batch holds it) emits 'error' with no listener, which would crash the
      // process; with this one the transaction's next statement fails and the pool drops it.
      pool.on('connect', (client) => client.on('error', (err) => opts.onPoolError?.(err)))
      return pool
    }
    const primary = overPool(poolOf(opts.poolSize ?? 10, 0), schemaName)
    // Reads are prepared statements (preparedRows) planned for their values on every run: a generic
    // plan, which plan_cache_mode=auto may pick after five runs, made some answers 3x slower.
    const randomPageCost = opts.readRandomPageCost === undefined ? DEFAULT_READ_RANDOM_PAGE_COST : opts.readRandomPageCost
    const readSettings = '-c plan_cache_mode=force_custom_plan' + (randomPageCost === null ? '' : ` -c random_page_cost=${randomPageCost}`)
    const readOnly = overPool(poolOf(opts.readPoolSize ?? 4, opts.queryTimeoutMs ?? 0, readSettings), schemaName, {
      preparedReads: opts.preparedReadsPerConnection ?? PREPARED_READS_PER_CONNECTION,
    })
    const reads: Database = {
      ...readOnly,
      get reads() {
        return reads
      },
      close: async () => undefined,
    }
    return {
      ...primary,
      reads,
      close: async () => {
        await Promise.all([primary.close(), readOnly.close()])
      },
    }
  }

  // Throws DataDirLockedError when another live process has the directory open.
  const lock = opts.dataDir.startsWith('memory://') ? null : lockDataDir(opts.dataDir)
  let client: PGlite
  try {
    client = await PGlite.create(opts.dataDir, {
      // Everything PGlite starts with, and a buffer cache sized for this service rather than
      // PGlite's 128 MB: the cache lives in the process's WebAssembly memory, which never shrinks.
      startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${opts.embeddedSharedBuffersMb ?? DEFAULT_EMBEDDED_SHARED_BUFFERS_MB}MB`],
    })
    await client.exec(`SET TIME ZONE 'UTC'; CREATE SCHEMA IF NOT EXISTS "${schemaName}"; SET search_path TO "${schemaName}"`)
  } catch (err) {
    lock?.release()
    throw err
  }
  const db = drizzlePglite(client, { schema })
  const prepared = embeddedPrepared()
  let closed = false
  const database: Database = {
    db,
    engine: 'pglite',
    schema: schemaName,
    rows: async <T>(query: SQL) => rowsOf<T>(await db.execute(query)),
    prepare: <T>(_name: string, query: SQL) => {
      const { sql: text, params } = dialect.sqlToQuery(query)
      return (values: Record<string, unknown>) => prepared.run<T>(client, text, fillPlaceholders(params, values), { retry: true })
    },
    preparedTransaction: (work) =>
      client.transaction((tx) =>
        work(<T>(_name: string, query: SQL) => {
          const { sql: text, params } = dialect.sqlToQuery(query)
          return prepared.run<T>(tx, text, params, { retry: false })
        }),
      ),
    // One embedded engine has one connection: nothing runs concurrently with this.
    migrate: (folder) => migratePglite(db, { migrationsFolder: folder, migrationsSchema: schemaName }),
    ping: async () => {
      if (closed) throw new Error('database is closed')
      await client.query('select 1')
    },
    // The embedded engine cannot cancel a running statement, so it has no statement timeout:
    // heavy reads are bounded by the analytics concurrency limit instead.
    get reads() {
      return database
    },
    close: async () => {
      if (closed) return
      closed = true
      try {
        await client.close()
      } finally {
        lock?.release()
      }
    },
    dataDirLock: lock,
  }
  return database
}

/**
 * random_page_cost of the read pool's sessions. Postgres' default (4) prices a random page read as
 * a disk seek; the rollups a read touches are small and cached. At 10M events the planner chose
 * to scan the whole hourly per-model rollup (43k rows, twice) for the 180 edge hours of a 90-day
 * Berlin series by model, 33.8 ms, where the index takes 17.2 ms.
 */
export const DEFAULT_READ_RANDOM_PAGE_COST = 1.1

/**
 * How many distinct statements a read connection keeps prepared (~0.27 MB of server memory each
 * for the analytics reads). The statement that prepares the last of them closes its connection
 * when done (the pool opens a fresh one): that bounds the memory without reaching into the
 * driver's statement cache.
 */
export const PREPARED_READS_PER_CONNECTION = 64

/** Result types as drizzle's execute() returns them: timestamps, dates and intervals as text. */
const TEXT_TIME_TYPES = new Set<number>([
  pg.types.builtins.TIMESTAMPTZ,
  pg.types.builtins.TIMESTAMP,
  pg.types.builtins.DATE,
  pg.types.builtins.INTERVAL,
  1115, // timestamp[]
  1182, // date[]
  1185, // timestamptz[]
  1187, // interval[]
  1231, // numeric[]
])
const asText = (value: string) => value
const readTypes = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') => (TEXT_TIME_TYPES.has(oid) ? asText : pg.types.getTypeParser(oid, format as 'text')),
} as pg.CustomTypesConfig

/**
 * Named prepared statements on the embedded engine, one per statement text. PGlite's query() sends
 * an unnamed statement, parsed, analyzed and planned on every run: the rollup fold's 128 kB of SQL
 * took 25.8 ms of the one thread for 5 events, 4.9 ms once prepared. The protocol's named statements
 * are not exposed, and EXECUTE takes no protocol parameters, so a text is PREPAREd once and run as
 * EXECUTE with its values as literals: dollar-quoted text, which the parameter's type parses as it
 * would the protocol's text-format value. A value with no such literal here (an array, an object)
 * runs the text unprepared. Prepared statements belong to the session: they survive a rollback.
 */
function embeddedPrepared() {
  const names = new Map<string, string>()
  let serial = 0
  const literal = (v: unknown): string | undefined => {
    if (v === null || v === undefined) return 'NULL'
    const text =
      typeof v === 'string' ? v
      : typeof v === 'number' || typeof v === 'bigint' ? String(v)
      : typeof v === 'boolean' ? (v ? 't' : 'f')
      : v instanceof Date ? v.toISOString()
      : undefined
    if (text === undefined) return undefined
    // The literal ends at the first tag after the opening one: that must be the closing one (a
    // text ending in '$v' would otherwise close early on '$v$v$').
    let tag = '$v$'
    for (let i = 0; (text + tag).indexOf(tag) !== text.length; i++) tag = `$v${i}$`
    return `${tag}${text}${tag}`
  }
  type Executor = Pick<PGlite, 'query'>
  const run = async <T>(executor: Executor, text: string, params: unknown[], opts: { retry: boolean }): Promise<T[]> => {
    const literals = params.map(literal)
    if (literals.some((l) => l === undefined)) return (await executor.query<T>(text, params)).rows
    let name = names.get(text)
    if (name === undefined) {
      name = `embedded_${++serial}`
      await executor.query(`PREPARE ${name} AS ${text}`)
      names.set(text, name)
    }
    try {
      return (await executor.query<T>(`EXECUTE ${name}${literals.length > 0 ? `(${literals.join(', ')})` : ''}`)).rows
    } catch (err) {
      if (!cachedPlanChanged(err)) throw err
      // Its plan predates a schema change (a migration): the next run prepares the text again,
      // under a new name. Outside a transaction that is now; inside one, the caller's next try.
      names.delete(text)
      if (!opts.retry) throw err
      return run<T>(executor, text, params, { retry: false })
    }
  }
  return { run }
}

/** Postgres' error for a prepared statement whose result columns changed under it (a migration). */
const cachedPlanChanged = (err: unknown) =>
  (err as { code?: unknown }).code === '0A000' && /cached plan must not change result type/.test((err as Error).message)

/**
 * Runs reads as named prepared statements, one name per statement text: a rollup read is
 * kilobytes of SQL (5.3 kB for a 90-day Berlin series by model), parsed and analyzed on every run
 * when unprepared, and the texts repeat (every value is a parameter). The read pool plans each run for its values
 * (plan_cache_mode=force_custom_plan), so a prepared read runs the plan an unprepared one would.
 */
function preparedRows(pool: pg.Pool, perConnection: number) {
  const prepared = new WeakMap<pg.PoolClient, Set<string>>()
  return async <T>(query: SQL): Promise<T[]> => {
    const { sql: text, params } = dialect.sqlToQuery(query)
    const name = `r_${createHash('sha1').update(text).digest('hex')}`
    const client = await pool.connect()
    // Like pool.query, a connection whose statement failed is not reused.
    let retire = false
    try {
      let names = prepared.get(client)
      if (!names) prepared.set(client, (names = new Set()))
      if (!names.has(name)) {
        names.add(name)
        retire = names.size >= perConnection
      }
      try {
        return (await client.query({ name, text, values: params, types: readTypes })).rows as T[]
      } catch (err) {
        retire = true
        if (!cachedPlanChanged(err)) throw err
        // The connection's plan predates a schema change: run the text unprepared (the
        // connection, whose other plans may be stale too, is then closed).
        return (await client.query({ text, values: params, types: readTypes })).rows as T[]
      }
    } finally {
      client.release(retire)
    }
  }
}

/** A Database over one pg pool, without `reads` (the caller pairs the pools). */
function overPool(pool: pg.Pool, schemaName: string, opts: { preparedReads?: number } = {}): Omit<Database, 'reads'> {
  const db = drizzlePg(pool, { schema })
  return {
    db,
    engine: 'postgres',
    schema: schemaName,
    rows: opts.preparedReads ? preparedRows(pool, opts.preparedReads) : async <T>(query: SQL) => rowsOf<T>(await db.execute(query)),
    prepare: <T>(name: string, query: SQL) => {
      const { sql: text, params } = dialect.sqlToQuery(query)
      return async (values: Record<string, unknown>) => (await pool.query({ name, text, values: fillPlaceholders(params, values) })).rows as T[]
    },
    preparedTransaction: async (work) => {
      const conn = await pool.connect()
      let broken: Error | undefined
      try {
        await conn.query('BEGIN')
        const result = await work(async <T>(name: string, query: SQL) => {
          const { sql: text, params } = dialect.sqlToQuery(query)
          return (await conn.query({ name, text, values: params })).rows as T[]
        })
        await conn.query('COMMIT')
        return result
      } catch (err) {
        // A connection that cannot even roll back is broken: the pool drops it (release(err)).
        await conn.query('ROLLBACK').catch((rollbackErr: Error) => (broken = rollbackErr))
        throw err
      } finally {
        conn.release(broken)
      }
    },
    migrate: async (folder) => {
      // Several instances may start at once: a session advisory lock held on one connection
      // lets exactly one apply migrations while the others wait and then find nothing to do.
      const conn = await pool.connect()
      try {
        await conn.query(`CREATE SCHEMA IF NOT EXISTS "${schemaName}"`)
        await conn.query('select pg_advisory_lock(hashtext($1))', [`migrate:${schemaName}`])
        try {
          await migratePg(drizzlePg(conn, { schema }), { migrationsFolder: folder, migrationsSchema: schemaName })
        } finally {
          await conn.query('select pg_advisory_unlock(hashtext($1))', [`migrate:${schemaName}`])
        }
      } finally {
        conn.release()
      }
    },
    ping: async () => {
      await pool.query('select 1')
    },
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    close: () => pool.end(),
    dataDirLock: null,
  }
}

/**
 * What kind of database failure an error is, looking through drizzle's wrapper to the driver's
 * error: a statement cancelled by the read pool's statement timeout, no pooled connection free
 * in time, or the database unreachable. null for anything else (a bug, a constraint violation).
 */
export function databaseFailure(error: unknown): 'statement-timeout' | 'pool-busy' | 'unavailable' | null {
  let e: unknown = error
  for (let depth = 0; e instanceof Error && depth < 5; depth++, e = e.cause) {
    const raw = (e as { code?: unknown }).code
    const code = typeof raw === 'string' ? raw : ''
    // 57014 query_canceled: the statement_timeout (the service cancels nothing else).
    if (code === '57014') return 'statement-timeout'
    // pg-pool's errors when connectionTimeoutMillis passes with every connection in use, or
    // while a new one is being opened (a loaded server is slow to accept, not gone).
    if (e.message === 'timeout exceeded when trying to connect' || e.message === 'Connection terminated due to connection timeout') return 'pool-busy'
    // ECONNREFUSED & co from the driver, or Postgres class 08 (connection exception) / 57P (shutdown).
    if (/^(ECONN|ETIMEDOUT|EPIPE|ENOTFOUND|08|57P)/.test(code) || /Connection terminated|database is closed/i.test(e.message)) {
      return 'unavailable'
    }
  }
  return null
}
