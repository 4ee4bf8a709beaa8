import { sql } from 'drizzle-orm'
import t from 'tap'
import { deleteExpiredEvents, retentionCutoff, startRetention } from '../../src/usage/retention.js'
import { foldAll } from '../../src/usage/rollups.js'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { countEvents } from '../helpers/usage.js'
import { ev, get, seed } from './support.js'

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)

await seed(app, [
  ev('a1', '2024-09-01T10:00:00Z', { botId: 'bot_a', metadata: { userId: 'shared' } }),
  ev('a2', '2024-09-01T11:00:00Z', { botId: 'bot_a', success: false, errorMessage: 'a failed' }),
  ev('b1', '2024-09-01T10:30:00Z', { botId: 'bot_b', model: 'b-only-model', metadata: { userId: 'shared' } }),
  ev('b2', '2024-09-01T12:00:00Z', { botId: 'bot_b', success: false, errorMessage: 'secret of b' }),
])

const created = await app.inject({
  method: 'POST',
  url: '/api/keys',
  headers: bearer(ADMIN_KEY),
  payload: { name: 'reader for A', scopes: ['read'], botId: 'bot_a' },
})
const keyA = (created.json() as { key: string }).key

t.test('a key bound to bot A never sees bot B through any analytics endpoint', async (t) => {
  const range = 'startDate=2024-09-01&endDate=2024-09-01'
  const urls = [
    `/api/usage/timeseries?${range}&groupBy=botId`,
    `/api/usage/timeseries?${range}&groupBy=model`,
    `/api/usage/summary?${range}`,
    `/api/usage/breakdown?${range}&groupBy=botId`,
    `/api/usage/breakdown?${range}&groupBy=model,botId`,
    `/api/usage/breakdown?${range}&groupBy=metadata.userId`,
    `/api/usage/breakdown?${range}&groupBy=metadata.userId&model=b-only-model`,
    `/api/usage/errors?${range}`,
    `/api/usage/events?${range}`,
    `/api/usage/export?${range}&format=csv`,
    `/api/usage/export?${range}&format=jsonl`,
    '/api/reports/monthly?month=2024-09',
    '/api/reports/monthly?month=2024-09&format=csv',
  ]
  for (const url of urls) {
    const res = await get<unknown>(app, url, keyA)
    t.equal(res.status, 200, url)
    t.notMatch(res.text, /bot_b|b-only-model|secret of b|"b1"|"b2"|\bb1,|\bb2,/, `${url}: nothing of bot B`)
  }
  const summary = await get<{ totals: { calls: number }; byBot: { botId: string }[] }>(app, `/api/usage/summary?${range}`, keyA)
  t.equal(summary.body.totals.calls, 2, 'totals count only bot A')
  t.same(summary.body.byBot.map((b) => b.botId), ['bot_a'])
  const users = await get<{ rows: { calls: number }[] }>(app, `/api/usage/breakdown?${range}&groupBy=metadata.userId`, keyA)
  t.same(users.body.rows.map((r) => r.calls), [1, 1], "a metadata value shared with B counts only A's events")
  const admin = await get<{ totals: { calls: number } }>(app, `/api/usage/summary?${range}`)
  t.equal(admin.body.totals.calls, 4, 'an unbound key sees both bots')

  for (const url of [
    `/api/usage/timeseries?${range}&botId=bot_b`,
    `/api/usage/summary?${range}&botId=bot_b`,
    `/api/usage/breakdown?${range}&groupBy=model&botId=bot_b`,
    `/api/usage/errors?${range}&botId=bot_b`,
    `/api/usage/events?${range}&botId=bot_b`,
    `/api/usage/export?${range}&botId=bot_b`,
    '/api/reports/monthly?month=2024-09&botId=bot_b',
  ]) {
    const res = await get(app, url, keyA)
    t.equal(res.status, 403, url)
    t.match(JSON.parse(res.text), { code: 'FORBIDDEN', message: "This key may only read bot 'bot_a'" }, url)
  }
})

t.test('retention deletes expired raw events in batches and keeps rollups', async (t) => {
  t.equal(retentionCutoff(new Date('2024-09-20T15:00:00Z'), 10).toISOString(), '2024-09-10T00:00:00.000Z', 'cutoff is a UTC midnight')
  const before = await get<{ stats: { _count: { id: number } }[]; totalCost: number }>(app, '/api/usage?startDate=2024-09-01&endDate=2024-09-01')
  const beforeSummary = await get<{ totals: Record<string, number> }>(app, '/api/usage/summary?startDate=2024-09-01&endDate=2024-09-01')
  await seed(app, [ev('new1', new Date(Date.now() - 3_600_000).toISOString())])
  t.equal(await countEvents(database), 5)
  // Retention deletes only events already folded into the rollups (test/usage/rollup-fold.test.ts).
  await foldAll(database)

  const deleted = await deleteExpiredEvents(database, retentionCutoff(new Date(), 30), 3)
  t.equal(deleted, 4, 'every expired event, three per statement')
  t.equal(await countEvents(database), 1, 'recent events stay')
  const [hourly] = await database.rows<{ n: number | string }>(sql`SELECT count(*) AS n FROM usage_hourly WHERE hour < '2024-09-02'`)
  t.ok(Number(hourly.n) > 0, 'rollup rows stay')

  const after = await get<{ stats: { _count: { id: number } }[]; totalCost: number; recentUsage: unknown[] }>(
    app,
    '/api/usage?startDate=2024-09-01&endDate=2024-09-01',
  )
  t.same(after.body.stats, before.body.stats, 'whole-day stats survive from rollups')
  t.equal(after.body.totalCost, before.body.totalCost)
  t.same(after.body.recentUsage, [], 'raw events are gone')
  const afterSummary = await get<{ totals: Record<string, number> }>(app, '/api/usage/summary?startDate=2024-09-01&endDate=2024-09-01')
  t.same(afterSummary.body.totals, beforeSummary.body.totals)
  t.equal(await deleteExpiredEvents(database, retentionCutoff(new Date(), 30), 3), 0, 'a second run finds nothing')
})

t.test('the retention job deletes expired events on its own, and stops cleanly', async (t) => {
  await seed(app, [ev('old-job', '2024-08-01T10:00:00Z')])
  const errors: unknown[] = []
  let reported: { count: number; cutoff: Date } | null = null
  const stop = startRetention(database, {
    retentionDays: 30,
    batchSize: 100,
    intervalMs: 60_000,
    onError: (err) => errors.push(err),
    onDeleted: (count, cutoff) => (reported = { count, cutoff }),
  })
  t.teardown(stop)
  // Its first run is a second after start.
  while (reported === null && errors.length === 0) await new Promise((resolve) => setTimeout(resolve, 50))
  await stop()
  t.same(errors, [])
  t.match(reported, { count: 1, cutoff: retentionCutoff(new Date(), 30) })
  const [left] = await database.rows<{ n: number | string }>(sql`SELECT count(*) AS n FROM usage_events WHERE id = 'old-job'`)
  t.equal(Number(left.n), 0, 'the expired event is gone')
})
