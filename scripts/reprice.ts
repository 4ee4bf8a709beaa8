// Recomputes stored costs with the current prices:
//   npm run reprice -- --from 2025-01-01 --to 2025-01-31 [--bot bot_123] [--provider openai] [--model gpt-4o]
// Same as POST /api/prices/reprice, for operators with database access. Idempotent.
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from '../src/config.js'
import { connectDatabase } from '../src/db/connect.js'
import { migrateDatabase } from '../src/db/migrate.js'
import { PricingService, repriceWith } from '../src/pricing/service.js'
import { parseRange } from '../src/usage/query.js'
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
  const database = await connectDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, schema: config.databaseSchema })
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
