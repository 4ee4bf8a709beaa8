import t from 'tap'
import { recordAlerts, type AlertCandidate } from '../../src/budgets/alert-store.js'
import { connectDatabase, type Database } from '../../src/db/connect.js'
import { createTestDatabase, resetTables, TEST_DATABASE_URL } from '../helpers/db.js'
import { postUsage } from '../helpers/usage.js'
import { alertsOf, buildBudgetApp, costEvent, createBudget, TestClock } from '../helpers/budgets.js'
import { startWebhookReceiver } from '../helpers/fake-alert-receivers.js'
import { waitFor } from '../helpers/wait.js'

const database = await createTestDatabase(t)
/** A second instance's own connection pool on the same schema; the embedded engine has one connection to share. */
async function secondConnection(): Promise<Database> {
  if (TEST_DATABASE_URL === null) return database
  const other = await connectDatabase({ databaseUrl: TEST_DATABASE_URL, dataDir: 'memory://', schema: database.schema })
  t.teardown(() => other.close())
  return other
}
const otherDatabase = await secondConnection()
const webhook = await startWebhookReceiver()
t.teardown(() => webhook.close())
t.beforeEach(async () => {
  await resetTables(database)
  webhook.received.length = 0
})

t.test('two instances ingesting and evaluating at once fire each threshold once', async (t) => {
  const clock = new TestClock(new Date('2025-03-20T12:00:00Z'))
  // Evaluate after every commit and on a fast timer, so both instances race on every threshold.
  const env = { BUDGET_DEBOUNCE_MS: '0', BUDGET_EVAL_INTERVAL_MS: '15' }
  const a = await buildBudgetApp(t, database, env, clock)
  const thresholds = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
  const b = await createBudget(a.app, { scope: { botId: 'bot_x' }, period: 'month', limitUsd: 10, thresholds, notifyProjected: false, channels: { webhook: { url: webhook.url } } })
  const other = await buildBudgetApp(t, otherDatabase, env, clock)

  const apps = [a.app, other.app]
  const responses = await Promise.all(
    Array.from({ length: 100 }, (_, i) => postUsage(apps[i % 2], costEvent(0.1, { id: `e${i}`, createdAt: '2025-03-20T11:00:00Z' }))),
  )
  t.ok(responses.every((r) => r.statusCode === 201))
  await waitFor(async () => (await alertsOf(a.app, b.id)).some((x) => x.threshold === 100), 'the 100% alert')
  await waitFor(async () => (await alertsOf(a.app, b.id)).every((x) => x.deliveries.every((d) => d.status === 'delivered')), 'all deliveries')

  const alerts = await alertsOf(a.app, b.id)
  t.same(alerts.map((x) => x.threshold).sort((p, q) => p - q), thresholds, 'each threshold recorded once')
  const delivered = alerts.filter((x) => x.deliveries.length > 0)
  t.ok(delivered.every((x) => x.deliveries.length === 1 && x.deliveries[0].attempts === 1), 'each delivery sent once')
  t.same(webhook.received.map((r) => String(r.json.id)).sort(), delivered.map((x) => x.id).sort(), 'the receiver saw each delivered alert once')
  const reported = new Set([...delivered.map((x) => x.threshold), ...webhook.received.flatMap((r) => r.json.alsoCrossed as number[])])
  t.same([...reported].sort((p, q) => p - q), thresholds, 'every threshold reached the receiver, alone or with a higher one')
})

t.test('concurrent evaluators recording the same alerts: exactly one wins each', async (t) => {
  const { app } = await buildBudgetApp(t, database, {}, new TestClock(new Date('2025-03-20T12:00:00Z')))
  const budget = await createBudget(app, { period: 'month', limitUsd: 1000, thresholds: [50, 80], notifyProjected: false, channels: { webhook: { url: webhook.url } } })
  const window = { start: new Date('2025-03-01T00:00:00Z'), end: new Date('2025-04-01T00:00:00Z') }
  const candidates: AlertCandidate[] = [50, 80].map((threshold) => ({
    budgetId: budget.id,
    window,
    kind: 'threshold',
    threshold,
    limit: 1_000_000_000_000_000n,
    spent: 900_000_000_000_000n,
    projected: null,
    channels: ['webhook'],
  }))
  const projected: AlertCandidate = { ...candidates[0], kind: 'projected', threshold: 100, projected: 2_000_000_000_000_000n }
  const racers = Array.from({ length: 16 }, (_, i) =>
    recordAlerts(i % 2 === 0 ? database : otherDatabase, i % 3 === 0 ? [projected, ...candidates].reverse() : [...candidates, projected]),
  )
  const won = (await Promise.all(racers)).flat()
  t.same(won.map((x) => `${x.kind}:${x.threshold}`).sort(), ['projected:100', 'threshold:50', 'threshold:80'], 'each key inserted by exactly one caller')
  const winners = new Set(won.map((x) => x.id))
  const stored = await alertsOf(app, budget.id)
  t.equal(stored.length, 3)
  t.ok(stored.every((x) => winners.has(x.id)))
  t.equal(stored.flatMap((x) => x.deliveries).length, won.reduce((n, x) => n + x.deliveries, 0), 'deliveries only for the winners')
})
