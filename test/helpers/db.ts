import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { sql } from 'drizzle-orm'
import pg from 'pg'
import { connectDatabase, type ConnectOptions, type Database } from '../../src/db/connect.js'
import { migrateDatabase } from '../../src/db/migrate.js'

/** Postgres URL for the real-engine run; unset means the embedded engine. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? null
export const ENGINE = TEST_DATABASE_URL ? 'postgres' : 'pglite'

interface Teardown {
  teardown(fn: () => unknown): void
}

/**
 * A private, migrated database for one test file: a fresh in-memory PGlite, or on Postgres a
 * schema of its own (test files run in parallel against one database and must not see each
 * other's rows). Dropped when the test file ends.
 */
export async function createTestDatabase(
  t: Teardown,
  opts: Pick<ConnectOptions, 'poolSize' | 'readPoolSize' | 'queryTimeoutMs' | 'connectTimeoutMs' | 'preparedReadsPerConnection' | 'readRandomPageCost'> & { migrate?: boolean } = {},
): Promise<Database> {
  const schema = `t_${process.pid}_${randomBytes(4).toString('hex')}`
  const database = await connectDatabase({
    databaseUrl: TEST_DATABASE_URL,
    dataDir: 'memory://',
    schema,
    ...opts,
    poolSize: opts.poolSize ?? 10,
  })
  if (opts.migrate !== false) await migrateDatabase(database)
  t.teardown(async () => {
    if (database.engine === 'postgres') await dropSchema(schema)
    await database.close()
  })
  return database
}

async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL ?? undefined })
  await client.connect()
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  } finally {
    await client.end()
  }
}

/** Empties every table (but the migrations' bookkeeping), so each test starts from clean state. */
export async function resetTables(database: Database): Promise<void> {
  const tables = await database.rows<{ tablename: string }>(
    // The rollup watermark's one row (written by the migration) stays: any value fits empty tables.
    sql`SELECT tablename FROM pg_tables WHERE schemaname = ${database.schema} AND tablename NOT IN ('__drizzle_migrations', 'rollup_watermark')`,
  )
  if (tables.length === 0) return
  const truncate = sql.raw(`TRUNCATE ${tables.map((r) => `"${database.schema}"."${r.tablename}"`).join(', ')}`)
  // The app's background workers (budget evaluation, alert delivery) may be reading two of these
  // tables right now; TRUNCATE's exclusive locks can then deadlock with them. Postgres picks one
  // side to fail: when it is us, try again.
  for (let attempt = 1; ; attempt++) {
    try {
      await database.db.execute(truncate)
      return
    } catch (err) {
      const code = (err as { cause?: { code?: string }; code?: string }).cause?.code ?? (err as { code?: string }).code
      if (code !== '40P01' || attempt >= 5) throw err
    }
  }
}

/**
 * Storage for a test that starts the service the way operators do (configuration from the
 * environment): a temporary data dir for the embedded engine, or a private schema on Postgres.
 * Returns the environment variables that select it; both are removed when the test ends.
 */
export function persistentStorageEnv(t: Teardown, name: string): Record<string, string> {
  const dataDir = mkdtempSync(path.join(tmpdir(), `usage-${name}-`))
  const schema = `${name}_${randomBytes(4).toString('hex')}`
  t.teardown(async () => {
    rmSync(dataDir, { recursive: true, force: true })
    if (TEST_DATABASE_URL) await dropSchema(schema)
  })
  return { DATA_DIR: dataDir, DATABASE_SCHEMA: schema, DATABASE_URL: TEST_DATABASE_URL ?? '' }
}
