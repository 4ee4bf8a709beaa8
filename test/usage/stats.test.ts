import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase, resetTables } from '../helpers/db.js'
import { getJson, postBatch, SEED_EVENT } from '../helpers/usage.js'

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)
t.beforeEach(() => resetTables(database))

interface Stats {
  stats: { model: string; provider: string; _sum: Record<string, number>; _count: { id: number; failed: number } }[]
  recentUsage: { id: string; createdAt: string }[]
  totalCost: number
}

const ev = (id: string, createdAt: string, extra: Record<string, unknown> = {}) => ({
  ...SEED_EVENT,
  id,
  createdAt,
  ...extra,
})

t.test('stats group by model and provider', async (t) => {
  await postBatch(app, [
    ev('1', '2024-01-01T00:00:00Z', { model: 'acme-large', provider: 'acme', inputTokens: 10, outputTokens: 5, totalTokens: 15, estimatedCost: 0.1 }),
    ev('2', '2024-01-01T01:00:00Z', { model: 'acme-large', provider: 'acme', inputTokens: 20, outputTokens: 5, totalTokens: 25, estimatedCost: 0.2, success: false }),
    ev('3', '2024-01-01T02:00:00Z', { model: 'acme-large', provider: 'acme-eu', inputTokens: 1, outputTokens: 1, totalTokens: 2, estimatedCost: 0.01 }),
    ev('4', '2024-01-01T03:00:00Z'),
  ])
  const { body } = await getJson<Stats>(app, '/api/usage')
  t.same(
    body.stats.map((s) => [s.model, s.provider, s._count.id, s._count.failed, s._sum.inputTokens, s._sum.totalTokens, s._sum.estimatedCost]),
    [
      ['acme-large', 'acme', 2, 1, 30, 40, 0.3],
      ['acme-large', 'acme-eu', 1, 0, 1, 2, 0.01],
      ['claude-opus', 'anthropic', 1, 0, 150, 450, 0.00675],
    ],
    'sorted by cost, descending',
  )
  t.equal(body.totalCost, 0.31675)
})

t.test('date filters include and exclude at day boundaries', async (t) => {
  await postBatch(app, [
    ev('before', '2023-12-31T23:59:59.999Z'),
    ev('start', '2024-01-01T00:00:00.000Z'),
    ev('mid', '2024-01-15T12:00:00Z'),
    ev('last', '2024-01-31T23:59:59.999Z'),
    ev('after', '2024-02-01T00:00:00.000Z'),
  ])
  const ids = async (qs: string) => (await getJson<Stats>(app, `/api/usage?${qs}`)).body.recentUsage.map((e) => e.id).sort()
  t.same(await ids('startDate=2024-01-01&endDate=2024-01-31'), ['last', 'mid', 'start'], 'date-only endDate covers the whole day')
  t.same(await ids('startDate=2024-01-01'), ['after', 'last', 'mid', 'start'])
  t.same(await ids('endDate=2023-12-31'), ['before'])
  t.same(await ids('startDate=2024-01-15T12:00:00Z&endDate=2024-01-31T23:59:59.999Z'), ['last', 'mid'], 'timestamps are inclusive')
  t.same(await ids('startDate=2024-01-01T01:00:00%2B01:00&endDate=2024-01-01'), ['start'], 'zone offsets are honoured')
  const { body } = await getJson<Stats>(app, '/api/usage?startDate=2024-01-01&endDate=2024-01-31')
  t.equal(body.stats[0]._count.id, 3)
})

t.test('filters: botId, model, provider, success, requestType', async (t) => {
  await postBatch(app, [
    ev('1', '2024-01-01T00:00:00Z', { botId: 'a' }),
    ev('2', '2024-01-01T00:00:00Z', { botId: 'b', success: false }),
    ev('3', '2024-01-01T00:00:00Z', { botId: 'b', model: 'acme-large', provider: 'acme', requestType: 'api_call' }),
  ])
  const count = async (qs: string) => (await getJson<Stats>(app, `/api/usage?${qs}`)).body.recentUsage.length
  t.equal(await count('botId=a'), 1)
  t.equal(await count('botId=b'), 2)
  t.equal(await count('model=acme-large'), 1)
  t.equal(await count('provider=anthropic'), 2)
  t.equal(await count('success=false'), 1)
  t.equal(await count('success=true&botId=b'), 1)
  t.equal(await count('requestType=api_call'), 1)
  t.equal(await count('botId=nobody'), 0)
  const empty = await getJson<Stats>(app, '/api/usage?botId=nobody')
  t.same(empty.body, { stats: [], recentUsage: [], totalCost: 0 })
})

t.test('recentUsage is newest first and limited', async (t) => {
  const events = Array.from({ length: 30 }, (_, i) => ev(`e${String(i).padStart(2, '0')}`, new Date(Date.UTC(2024, 0, 1, 0, i)).toISOString()))
  await postBatch(app, events)
  const def = await getJson<Stats>(app, '/api/usage')
  t.equal(def.body.recentUsage.length, 20, 'default limit 20')
  t.equal(def.body.recentUsage[0].id, 'e29')
  t.equal(def.body.recentUsage[19].id, 'e10')
  const five = await getJson<Stats>(app, '/api/usage?limit=5')
  t.same(five.body.recentUsage.map((e) => e.id), ['e29', 'e28', 'e27', 'e26', 'e25'])
  t.equal(five.body.stats[0]._count.id, 30, 'limit does not affect stats')
})

t.test('bad query parameters get 400 naming the parameter', async (t) => {
  const cases: [string, RegExp][] = [
    ['startDate=yesterday', /querystring\.startDate must be a date/],
    ['endDate=2024-02-30', /querystring\.endDate must be a date/],
    ['startDate=2024-02-01&endDate=2024-01-01', /startDate must not be after querystring\.endDate/],
    ['limit=0', /querystring\.limit must be >= 1/],
    ['limit=501', /querystring\.limit must be <= 500/],
    ['limit=abc', /querystring\.limit must be integer/],
    ['success=maybe', /querystring\.success must be boolean/],
    ['colour=red', /querystring has unknown field 'colour'/],
  ]
  for (const [qs, message] of cases) {
    const res = await getJson(app, `/api/usage?${qs}`)
    t.equal(res.status, 400, qs)
    t.match(res.body, { code: 'VALIDATION_ERROR', message }, qs)
  }
})
