/**
 * How much budgets slow ingest: times N batch POSTs with 0 budgets and with 50 budgets that the
 * events count towards, and the synchronous per-commit hook on its own.
 *
 *   npm run bench:budgets                                  # embedded engine
 *   DATABASE_URL=postgres://... npm run bench:budgets
 */
import { performance } from 'node:perf_hooks'
import { buildApp } from '../src/app.js'
import { DeliveryWorker } from '../src/budgets/delivery.js'
import { BudgetMonitor } from '../src/budgets/evaluator.js'
import { connectDatabase } from '../src/db/connect.js'
import { migrateDatabase } from '../src/db/migrate.js'
import type { CommittedEvent } from '../src/usage/ingest.js'
import { ADMIN_KEY, bearer, testConfig } from '../test/helpers/app.js'
import { resetTables, TEST_DATABASE_URL } from '../test/helpers/db.js'

const BATCHES = Number(process.env.BATCHES ?? 200)
const BATCH_SIZE = Number(process.env.BATCH_SIZE ?? 100)
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 4)
const ROUNDS = Number(process.env.ROUNDS ?? 3)

const database = await connectDatabase({
  databaseUrl: TEST_DATABASE_URL,
  dataDir: 'memory://',
  schema: `bench_budgets_${process.pid}`,
})
await migrateDatabase(database)

async function run(budgets: number, debounceMs: string): Promise<number> {
  await resetTables(database)
  const app = await buildApp(testConfig({ LOG_LEVEL: 'warn', BUDGET_DEBOUNCE_MS: debounceMs }), { database })
  for (let i = 0; i < budgets; i++) {
    // Every budget counts the events (limits high enough that nothing fires): the worst case.
    const scope = i % 3 === 0 ? {} : i % 3 === 1 ? { botId: `bot_${i % 5}` } : { model: 'acme-large' }
    const res = await app.inject({
      method: 'POST',
      url: '/api/budgets',
      headers: bearer(ADMIN_KEY),
      payload: { scope, period: i % 2 === 0 ? 'month' : 'day', limitUsd: 1_000_000, timeZone: i % 4 === 0 ? 'Asia/Kolkata' : 'UTC' },
    })
    if (res.statusCode !== 201) throw new Error(res.body)
  }
  let next = 0
  const post = async () => {
    while (next < BATCHES) {
      const b = next++
      const events = Array.from({ length: BATCH_SIZE }, (_, i) => ({
        id: `b${b}-${i}`,
        botId: `bot_${i % 5}`,
        provider: 'acme',
        model: 'acme-large',
        inputTokens: 100,
        outputTokens: 50,
        estimatedCost: 0.001,
      }))
      const res = await app.inject({ method: 'POST', url: '/api/usage/batch', headers: bearer(ADMIN_KEY), payload: { events } })
      if (res.statusCode !== 200) throw new Error(res.body)
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: CONCURRENCY }, post))
  const ms = performance.now() - started
  await app.close()
  return ms
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const scenarios: Array<[string, number, string]> = [
  ['0 budgets', 0, '1000'],
  ['50 budgets, debounce 1000 ms (default)', 50, '1000'],
  ['50 budgets, debounce 0 (evaluate after every commit)', 50, '0'],
]
const results = new Map<string, number[]>(scenarios.map(([name]) => [name, []]))
await run(0, '1000') // warm-up
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, budgets, debounce] of scenarios) results.get(name)?.push(await run(budgets, debounce))
}
const events = BATCHES * BATCH_SIZE
console.warn(`${database.engine}: ${BATCHES} batches x ${BATCH_SIZE} events, ${CONCURRENCY} concurrent, median of ${ROUNDS} rounds`)
for (const [name, times] of results) {
  const ms = median(times)
  console.warn(`  ${name.padEnd(55)} ${ms.toFixed(0).padStart(6)} ms  ${((events / ms) * 1000).toFixed(0).padStart(7)} events/s  (runs: ${times.map((x) => x.toFixed(0)).join(', ')})`)
}

// The only budget work on the request path: the synchronous onCommitted hook, 50 budgets, 100-event batches.
{
  await resetTables(database)
  const app = await buildApp(testConfig({ LOG_LEVEL: 'warn' }), { database })
  for (let i = 0; i < 50; i++) {
    await app.inject({ method: 'POST', url: '/api/budgets', headers: bearer(ADMIN_KEY), payload: { scope: { botId: `bot_${i}` }, period: 'month', limitUsd: 1_000_000, timeZone: 'Europe/Berlin' } })
  }
  await app.close()
  const config = testConfig({ BUDGET_DEBOUNCE_MS: '600000', BUDGET_EVAL_INTERVAL_MS: '3600000' })
  const silent = app.log
  const worker = new DeliveryWorker(database, { ...config.alerts, timeoutMs: 1000, log: silent })
  const monitor = new BudgetMonitor(database, worker, { ...config.budgets, log: silent })
  await monitor.start()
  const now = new Date()
  // Bots the budgets do not count (every budget checks every event) and one they do (stops at the first match).
  const batch = Array.from({ length: 100 }, (_, i) => ({ botId: `other_${i}`, provider: 'acme', model: 'acme-large', createdAt: now, cost: '0.001', metadata: null }))
  const calls = 20_000
  const started = performance.now()
  const events: CommittedEvent[] = batch
  for (let i = 0; i < calls; i++) monitor.onCommitted(events)
  const perCall = ((performance.now() - started) / calls) * 1000
  console.warn(`  onCommitted hook, 50 budgets x 100-event batch matching none: ${perCall.toFixed(1)} us per commit`)
  await monitor.stop()
  await worker.stop()
}

if (database.engine === 'postgres') await database.rows((await import('drizzle-orm')).sql.raw(`DROP SCHEMA "${database.schema}" CASCADE`))
await database.close()
