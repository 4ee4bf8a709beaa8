import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Database } from './connect.js'

/** The committed SQL written by `npm run db:generate` (drizzle-kit). */
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations')

/**
 * Brings the schema up to date. Bookkeeping lives in the same schema as the tables, so two
 * deployments sharing one database in different schemas never collide.
 */
export function migrateDatabase(database: Database): Promise<void> {
  return database.migrate(MIGRATIONS_DIR)
}
