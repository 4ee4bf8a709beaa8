import type { FastifyInstance } from 'fastify'
import type { Config } from '../config.js'
import { connectDatabase, type Database } from '../db/connect.js'
import { migrateDatabase } from '../db/migrate.js'

export interface Databases {
  /** Everything that must see its own writes (ingest, keys, prices, budgets, GET /api/usage). */
  database: Database
  /**
   * Analytics and exports (read-only, may lag by the replica's delay) read here, through its
   * `reads` pool like any heavy read: DATABASE_READ_URL when set, else `database`.
   */
  readDatabase: Database
}

/**
 * Connects (or takes the caller's already-connected database, which the app then does not
 * close), migrates, and closes what it opened when the app closes. Call before registering
 * anything that uses the databases: onClose hooks run last-registered first, so everything
 * registered after this is closed before the databases are.
 */
export async function openDatabases(app: FastifyInstance, config: Config, given?: Database): Promise<Databases> {
  const ownsDatabase = given === undefined
  const database =
    given ??
    (await connectDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      schema: config.databaseSchema,
      poolSize: config.pgPoolSize,
      readPoolSize: config.pgReadPoolSize,
      readRandomPageCost: config.pgReadRandomPageCost,
      queryTimeoutMs: config.queryTimeoutMs,
      connectTimeoutMs: config.pgConnectTimeoutMs,
      embeddedSharedBuffersMb: config.embeddedSharedBuffersMb,
      onPoolError: (err) => app.log.warn({ err }, 'idle database connection failed'),
    }))
  if (config.migrate && ownsDatabase) await migrateDatabase(database)
  // Tell other processes on the embedded data dir where this one answers (`npm run reprice` calls it).
  const dataDirLock = ownsDatabase ? database.dataDirLock : null
  if (dataDirLock) {
    app.addHook('onListen', async () => {
      const address = app.addresses()[0]
      if (!address || typeof address === 'string') return
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
      dataDirLock.record({ url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${address.port}` })
    })
  }
  const readDatabase =
    config.databaseReadUrl === null
      ? database
      : await connectDatabase({
          databaseUrl: config.databaseReadUrl,
          dataDir: config.dataDir,
          schema: database.schema,
          // Only the read pool is used on a replica: the primary-side pool stays at one idle slot.
          poolSize: 1,
          readPoolSize: config.pgReadPoolSize,
          readRandomPageCost: config.pgReadRandomPageCost,
          queryTimeoutMs: config.queryTimeoutMs,
          connectTimeoutMs: config.pgConnectTimeoutMs,
          onPoolError: (err) => app.log.warn({ err }, 'idle read-replica connection failed'),
        })
  app.addHook('onClose', async () => {
    if (readDatabase !== database) await readDatabase.close()
    if (ownsDatabase) await database.close()
  })
  return { database, readDatabase }
}
