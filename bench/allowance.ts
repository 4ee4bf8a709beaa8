/**
 * How long GET /api/budgets/allowance takes on the server: a bot with a per-user daily block
 * budget over USERS users (each with spend) and a whole-bot block budget, plus other bots' budgets.
 *
 *   1. in the handler: AllowanceState.allowance() + the response mapping, the handler's whole work
 *      (no I/O), per call, for a tracked user, an unknown user and no user;
 *   2. server time per request (onRequest to onResponse: auth, rate limit, validation, handler,
 *      serialization) from the service's own http_request_duration_seconds, against
 *      GET /api/keys/self (a no-op route behind the same auth) measured in the same run.
 *
 *   npm run bench:allowance                                    # embedded engine
 *   USERS=2000 REQUESTS=1000 CALLS=200000 npm run bench:allowance    # smaller, on a loaded machine
 *   DATABASE_URL=postgres://... npm run bench:allowance
 */
import { performance } from 'node:perf_hooks'
import { buildApp } from '../src/app.js'
import { toAllowanceResponse } from '../src/budgets/allowance-routes.js'
import { AllowanceState } from '../src/budgets/allowance-state.js'
import { listBudgets } from '../src/budgets/budget-store.js'
import { connectDatabase } from '../src/db/connect.js'
import { migrateDatabase } from '../src/db/migrate.js'
import { ADMIN_KEY, bearer, testConfig } from '../test/helpers/app.js'
import { TEST_DATABASE_URL } from '../test/helpers/db.js'

const USERS = Number(process.env.USERS ?? 10_000)
const REQUESTS = Number(process.env.REQUESTS ?? 5000)
const CALLS = Number(process.env.CALLS ?? 500_000)

const database = await connectDatabase({ databaseUrl: TEST_DATABASE_URL, dataDir: 'memory://', schema: `bench_allowance_${process.pid}` })
await migrateDatabase(database)
const app = await buildApp(testConfig({ LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '10000000' }), { database })
const admin = bearer(ADMIN_KEY)

async function post(url: string, payload: unknown): Promise<Record<string, unknown>> {
  const res = await app.inject({ method: 'POST', url, headers: admin, payload: payload as object })
  if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`)
  return res.json() as Record<string, unknown>
}

await post('/api/budgets', { scope: { botId: 'bot_b' }, period: 'day', limitUsd: 0.5, action: 'block', perUser: { key: 'userId' } })
await post('/api/budgets', { scope: { botId: 'bot_b' }, period: 'month', limitUsd: 1_000_000, action: 'block' })
for (let i = 0; i < 20; i++) await post('/api/budgets', { scope: { botId: `other_${i}` }, period: 'month', limitUsd: 100, action: i % 2 === 0 ? 'block' : 'alert' })
for (let start = 0; start < USERS; start += 1000) {
  const events = Array.from({ length: Math.min(1000, USERS - start) }, (_, i) => ({
    botId: 'bot_b',
    provider: 'acme',
    model: 'acme-large',
    inputTokens: 10,
    outputTokens: 10,
    estimatedCost: ((start + i) % 100) / 100,
    metadata: { userId: `u${start + i}` },
  }))
  await post('/api/usage/batch', { events })
}
const key = String((await post('/api/keys', { name: 'bench bot', scopes: ['ingest', 'read'], botId: 'bot_b' })).key)

// 1. The handler's work, on a state of its own over the same database (the app's is private to it).
const state = new AllowanceState(database, { syncIntervalMs: 3_600_000, maxTrackedUsers: 10_000, log: app.log })
state.setBudgets(await listBudgets(database))
await state.start()
const ask = (userId: string | undefined) => toAllowanceResponse(state.allowance({ botId: 'bot_b', userId, boundToBot: true }), true)
// u99 spent $0.99 of its $0.50, u1 $0.01: the state holds the seeded spend.
if (ask('u99').allowed || !ask('u1').allowed) throw new Error('the allowance state did not read the seeded spend')
function perCall(userId: string | undefined): number {
  const started = performance.now()
  let allowed = 0
  for (let i = 0; i < CALLS; i++) if (ask(userId).allowed) allowed++
  if (allowed > CALLS) throw new Error('unreachable')
  return ((performance.now() - started) / CALLS) * 1e6
}
perCall('u1') // warm-up
const handler = { tracked: perCall('u99'), unknown: perCall('nobody'), noUser: perCall(undefined) }
await state.stop()

// 2. Server time per request, by the service's own request-duration histogram.
const headers = bearer(key)
async function serverMicros(url: string, route: string): Promise<number> {
  for (let i = 0; i < 500; i++) await app.inject({ method: 'GET', url, headers }) // warm-up
  const before = await durationOf(route)
  for (let i = 0; i < REQUESTS; i++) {
    const res = await app.inject({ method: 'GET', url: i % 2 === 0 ? url : url.replace('u1', `u${i % USERS}`), headers })
    if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`)
  }
  const after = await durationOf(route)
  return ((after.sum - before.sum) / (after.count - before.count)) * 1e6
}
async function durationOf(route: string): Promise<{ sum: number; count: number }> {
  const metric = (await app.metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'http_request_duration_seconds')
  let sum = 0
  let count = 0
  for (const v of (metric as unknown as { values: { metricName: string; labels: { route?: string }; value: number }[] }).values) {
    if (v.labels.route !== route) continue
    if (v.metricName.endsWith('_sum')) sum += v.value
    if (v.metricName.endsWith('_count')) count += v.value
  }
  return { sum, count }
}
// Alternating rounds, medians: the machine's load changes from one second to the next.
const ROUNDS = Number(process.env.ROUNDS ?? 5)
const noops: number[] = []
const allowances: number[] = []
for (let r = 0; r < ROUNDS; r++) {
  noops.push(await serverMicros('/api/keys/self', '/api/keys/self'))
  allowances.push(await serverMicros('/api/budgets/allowance?userId=u1', '/api/budgets/allowance'))
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const baseline = median(noops)
const allowance = median(allowances)
const runs = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ')

console.warn(`${database.engine}: ${USERS} users with spend under a per-user block budget, 22 budgets; ${CALLS} handler calls, ${REQUESTS} requests per route`)
console.warn(`  in the handler (allowance + response), tracked user   ${handler.tracked.toFixed(0).padStart(7)} ns per call`)
console.warn(`  in the handler, unknown user                          ${handler.unknown.toFixed(0).padStart(7)} ns per call`)
console.warn(`  in the handler, no userId                             ${handler.noUser.toFixed(0).padStart(7)} ns per call`)
console.warn(`  server time GET /api/budgets/allowance                ${allowance.toFixed(1).padStart(7)} us per request (median of ${ROUNDS}: ${runs(allowances)})`)
console.warn(`  server time GET /api/keys/self (no-op, same auth)     ${baseline.toFixed(1).padStart(7)} us per request (median of ${ROUNDS}: ${runs(noops)})`)
console.warn(`  ratio allowance / no-op                               ${(allowance / baseline).toFixed(2).padStart(7)}x`)

await app.close()
if (database.engine === 'postgres') await database.rows((await import('drizzle-orm')).sql.raw(`DROP SCHEMA "${database.schema}" CASCADE`))
await database.close()
