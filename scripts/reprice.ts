// Recomputes stored costs with the current prices:
//   npm run reprice -- --from 2025-01-01 --to 2025-01-31 [--bot bot_123] [--provider openai] [--model gpt-4o]
// Same as POST /api/prices/reprice, for operators with database access. Idempotent.
// On the embedded engine, when the service is running it owns the data dir: the reprice is then
// sent to its API (with ADMIN_API_KEY, or USAGE_API_KEY holding the admin scope).
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig, type Config } from '../src/config.js'
import { connectDatabase } from '../src/db/connect.js'
import { DataDirLockedError } from '../src/db/data-dir-lock.js'
import { migrateDatabase } from '../src/db/migrate.js'
import { PricingService, repriceWith } from '../src/pricing/service.js'
import { parseRange } from '../src/analytics/query.js'
import { repriceEvents } from '../src/usage/repository.js'

const { values } = parseArgs({
  options: {
    from: { type: 'string' },
    to: { type: 'string' },
    bot: { type: 'string' },
    provider: { type: 'string' },
    model: { type: 'string' },
  },
})

try {
  if (!values.from || !values.to) throw new Error('usage: npm run reprice -- --from YYYY-MM-DD --to YYYY-MM-DD [--bot ID] [--provider P] [--model M]')
  const range = parseRange({ startDate: values.from, endDate: values.to }, undefined, 'option')
  const config = loadConfig()
  let database
  try {
    database = await connectDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, schema: config.databaseSchema, embeddedSharedBuffersMb: config.embeddedSharedBuffersMb })
  } catch (err) {
    if (!(err instanceof DataDirLockedError)) throw err
    process.exit(await repriceThroughService(config, err))
  }
  try {
    if (config.migrate) await migrateDatabase(database)
    const pricing = new PricingService(database, { refreshMs: 0, onRefreshError: () => undefined })
    await pricing.start()
    const outcome = await repriceEvents(
      database,
      { botIds: values.bot ? [values.bot] : null, provider: values.provider, model: values.model, from: range.from, to: range.to },
      repriceWith(pricing.priceEvent),
    )
    process.stdout.write(`${JSON.stringify(outcome)}\n`)
  } finally {
    await database.close()
  }
} catch (err) {
  console.error(err instanceof ConfigError || err instanceof Error ? err.message : err)
  process.exit(1)
}

/** The running service holds the data dir: ask it to reprice. Returns the exit code. */
async function repriceThroughService(config: Config, locked: DataDirLockedError): Promise<number> {
  const body = {
    startDate: values.from,
    endDate: values.to,
    ...(values.bot ? { botId: values.bot } : {}),
    ...(values.provider ? { provider: values.provider } : {}),
    ...(values.model ? { model: values.model } : {}),
  }
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host
  const url = locked.holder.url ?? `http://${host.includes(':') ? `[${host}]` : host}:${config.port}`
  const key = process.env.ADMIN_API_KEY?.trim() || process.env.USAGE_API_KEY?.trim()
  const curl =
    `curl -s -X POST ${url}/api/prices/reprice -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \\\n` +
    `  -d '${JSON.stringify(body)}'`
  const intro = `The service (pid ${locked.holder.pid}) owns the embedded database in ${locked.dataDir}`
  if (!key) {
    console.error(`${intro}, so this reprice must go through its API. Set ADMIN_API_KEY (or USAGE_API_KEY) to an admin key and run this again, or run:\n${curl}`)
    return 1
  }
  console.error(`${intro}: repricing through its API at ${url}`)
  let response: Response
  try {
    response = await fetch(`${url}/api/prices/reprice`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
  } catch (err) {
    console.error(`cannot reach the service at ${url} (${err instanceof Error ? err.message : String(err)}); with it running, run:\n${curl}`)
    return 1
  }
  const text = await response.text()
  if (!response.ok) {
    console.error(`the service answered ${response.status}: ${text}`)
    return 1
  }
  process.stdout.write(`${text.trim()}\n`)
  return 0
}
