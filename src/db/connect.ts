import { PGlite } from '@electric-sql/pglite'
import { fillPlaceholders, type SQL } from 'drizzle-orm'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator'
import { PgDialect, type PgDatabase, type PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator'
import { mkdirSync } from 'node:fs'
import pg from 'pg'
import * as schema from './schema.js'

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
  /** Applies the drizzle-kit migrations in `folder`; concurrent callers are serialized. */
  migrate(folder: string): Promise<void>
  /** Throws when the database cannot answer. */
  ping(): Promise<void>
  /** Connections of the pool (Postgres only; the embedded engine has one, and no pool). */
  poolStats?: () => { total: number; idle: number; waiting: number }
  close(): Promise<void>
}

export interface ConnectOptions {
  /** postgres:// URL; null selects the embedded engine. */
  databaseUrl: string | null
  /** Directory for the embedded engine's files, or 'memory://' for a throw-away database. */
  dataDir: string
  /** Schema the tables live in (search_path). */
  schema?: string
  poolSize?: number
  /** Called for errors on idle pool clients (a restarted server), which must not crash the process. */
  onPoolError?: (err: Error) => void
}

/** The rows of a raw `execute()` result, for either driver (also inside transactions). */
export function rowsOf<T>(result: unknown): T[] {
  return (result as { rows: T[] }).rows
}

export async function connectDatabase(opts: ConnectOptions): Promise<Database> {
  const schemaName = opts.schema ?? 'public'
  if (opts.databaseUrl !== null) {
    const pool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: opts.poolSize ?? 10,
      // Every session works in UTC and in the configured schema, whatever the server defaults are.
      options: `-c timezone=UTC -c search_path=${schemaName}`,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
    })
    pool.on('error', (err) => opts.onPoolError?.(err))
    const db = drizzlePg(pool, { schema })
    return {
      db,
      engine: 'postgres',
      schema: schemaName,
      rows: async <T>(query: SQL) => rowsOf<T>(await db.execute(query)),
      prepare: <T>(name: string, query: SQL) => {
        const { sql: text, params } = dialect.sqlToQuery(query)
        return async (values: Record<string, unknown>) => (await pool.query({ name, text, values: fillPlaceholders(params, values) })).rows as T[]
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
    }
  }

  if (!opts.dataDir.startsWith('memory://')) mkdirSync(opts.dataDir, { recursive: true })
  const client = await PGlite.create(opts.dataDir)
  await client.exec(`SET TIME ZONE 'UTC'; CREATE SCHEMA IF NOT EXISTS "${schemaName}"; SET search_path TO "${schemaName}"`)
  const db = drizzlePglite(client, { schema })
  let closed = false
  return {
    db,
    engine: 'pglite',
    schema: schemaName,
    rows: async <T>(query: SQL) => rowsOf<T>(await db.execute(query)),
    prepare: <T>(_name: string, query: SQL) => {
      const { sql: text, params } = dialect.sqlToQuery(query)
      return async (values: Record<string, unknown>) => (await client.query<T>(text, fillPlaceholders(params, values))).rows
    },
    // One embedded engine has one connection: nothing runs concurrently with this.
    migrate: (folder) => migratePglite(db, { migrationsFolder: folder, migrationsSchema: schemaName }),
    ping: async () => {
      if (closed) throw new Error('database is closed')
      await client.query('select 1')
    },
    close: async () => {
      if (closed) return
      closed = true
      await client.close()
    },
  }
}
