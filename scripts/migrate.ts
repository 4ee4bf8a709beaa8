// Applies the committed migrations to DATABASE_URL (or the embedded database in DATA_DIR):
// `npm run db:migrate`. The service also does this at start unless MIGRATE=false.
import { ConfigError, loadConfig } from '../src/config.js'
import { connectDatabase } from '../src/db/connect.js'
import { DataDirLockedError } from '../src/db/data-dir-lock.js'
import { migrateDatabase } from '../src/db/migrate.js'

try {
  const config = loadConfig()
  const database = await connectDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    schema: config.databaseSchema,
    embeddedSharedBuffersMb: config.embeddedSharedBuffersMb,
  })
  try {
    await migrateDatabase(database)
    console.warn(`migrations applied (${database.engine}, schema ${database.schema})`)
  } finally {
    await database.close()
  }
} catch (err) {
  if (err instanceof DataDirLockedError) {
    console.error(
      `${err.message}\nThe running service applied the migrations it ships with at its start (unless MIGRATE=false); ` +
        `to apply newer ones, stop it (pid ${err.holder.pid}) and run npm run db:migrate again, or just start the new version.`,
    )
  } else console.error(err instanceof ConfigError ? err.message : err)
  process.exit(1)
}
