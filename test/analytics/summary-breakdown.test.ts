import t from 'tap'
import { LATENCY_BUCKETS } from '../../src/db/measures.js'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { ev, get, seed } from './support.js'

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)

interface Totals {
  calls: number
  successes: number
  failures: number
  successRate: number | null
  inputTokens: number
  outputTokens: number
  cost: number
  unpricedCalls: number
  avgLatencyMs: number | null
}
interface Latency {
  samples: number
  avgMs: number | null
  maxMs: number | null
  p50Ms: number | null
  p95Ms: number | null
  p99Ms: number | null
}
interface Summary {
  from: string
  to: string
  totals: Totals
  latency: Latency & { histogram: { lowerMs: number; upperMs: number | null; count: number }[] }
  byModel: (Totals & { model: string; provider: string })[]
  byBot: (Totals & { botId: string })[]
  previous: { from: string; to: string; totals: Totals }
  change: { calls: number | null; failures: number | null; cost: number | null; totalTokens: number | null; successRate: number | null }
}
interface Breakdown {
  groupBy: string[]
  rows: (Totals & { group: Record<string, string | null>; latency: Latency })[]
  totals: Totals
  groupCount: number
  source: string
}

await seed(app, [
  // The previous day: two cheap successes.
  ev('p1', '2024-05-01T08:00:00Z', { estimatedCost: 0.1 }),
  ev('p2', '2024-05-01T09:00:00Z', { estimatedCost: 0.1 }),
  // The day asked for.
  ev('c1', '2024-05-02T00:00:00Z', { estimatedCost: 0.1, latencyMs: 100, metadata: { userId: 'u1', tag: 'x' } }),
  ev('c2', '2024-05-02T10:15:00Z', { estimatedCost: 0.2, latencyMs: 200, metadata: { userId: 'u1' } }),
  ev('c3', '2024-05-02T10:45:00Z', { model: 'acme-small', estimatedCost: 0.3, success: false, errorMessage: 'x', latencyMs: 300, metadata: { userId: 'u2' } }),
  ev('c4', '2024-05-02T23:59:59.999Z', { botId: 'bot_b', estimatedCost: 0.05, inputTokens: 100, outputTokens: 50 }),
])

t.test('summary: totals, latency, cost by model and bot, change against the previous period', async (t) => {
  const res = await get<Summary>(app, '/api/usage/summary?startDate=2024-05-02&endDate=2024-05-02')
  t.equal(res.status, 200)
  const s = res.body
  t.equal(s.from, '2024-05-02T00:00:00.000Z')
  t.equal(s.to, '2024-05-03T00:00:00.000Z')
  t.match(s.totals, { calls: 4, successes: 3, failures: 1, successRate: 0.75, inputTokens: 130, outputTokens: 65, cost: 0.65, unpricedCalls: 4, avgLatencyMs: 200 })
  t.match(s.latency, { samples: 3, avgMs: 200, maxMs: 300 })
  t.same(s.latency.histogram, [
    { lowerMs: 100, upperMs: 125, count: 1 },
    { lowerMs: 200, upperMs: 250, count: 1 },
    { lowerMs: 250, upperMs: 315, count: 1 },
  ])
  t.same(s.byModel.map((m) => [m.model, m.provider, m.calls, m.cost]), [
    ['acme-large', 'acme', 3, 0.35],
    ['acme-small', 'acme', 1, 0.3],
  ])
  t.same(s.byBot.map((b) => [b.botId, b.calls, b.cost]), [
    ['bot_a', 3, 0.6],
    ['bot_b', 1, 0.05],
  ])
  t.same(s.previous, {
    from: '2024-05-01T00:00:00.000Z',
    to: '2024-05-02T00:00:00.000Z',
    totals: { ...s.previous.totals, calls: 2, failures: 0, cost: 0.2 },
  })
  t.equal(s.change.calls, 1, 'calls doubled: +100%')
  t.equal(s.change.failures, null, 'no failures before: no ratio')
  t.equal(s.change.cost, 2.25)
  t.equal(s.change.successRate, -0.25)
})

t.test('summary of an empty range', async (t) => {
  const res = await get<Summary>(app, '/api/usage/summary?startDate=2020-01-01&endDate=2020-01-31')
  t.equal(res.status, 200)
  t.match(res.body.totals, { calls: 0, cost: 0, successRate: null, avgLatencyMs: null })
  t.same(res.body.latency, { samples: 0, avgMs: null, maxMs: null, p50Ms: null, p95Ms: null, p99Ms: null, histogram: [] })
  t.same(res.body.byModel, [])
  t.same(res.body.change, { calls: null, failures: null, cost: null, totalTokens: null, successRate: null })
})

t.test('latency percentiles stay within one bucket of the exact value', async (t) => {
  // 100 calls of 10, 20, ..., 1000 ms, spread over partial and whole hours.
  await seed(
    app,
    Array.from({ length: 100 }, (_, i) =>
      ev(`lat${i}`, new Date(Date.UTC(2024, 5, 1, 0, 0) + i * 97_000).toISOString(), { botId: 'lat', latencyMs: (i + 1) * 10 }),
    ),
  )
  const res = await get<Summary>(app, '/api/usage/summary?botId=lat&startDate=2024-06-01T00:10:00Z&endDate=2024-06-01T02:50:00Z')
  const values = Array.from({ length: 100 }, (_, i) => Date.UTC(2024, 5, 1) + i * 97_000)
    .map((at, i) => ({ at, latency: (i + 1) * 10 }))
    .filter((e) => e.at >= Date.parse('2024-06-01T00:10:00Z') && e.at <= Date.parse('2024-06-01T02:50:00Z'))
    .map((e) => e.latency)
  t.equal(res.body.latency.samples, values.length)
  for (const [p, key] of [[0.5, 'p50Ms'], [0.95, 'p95Ms'], [0.99, 'p99Ms']] as const) {
    const exact = values[Math.ceil(p * values.length) - 1]
    const bucket = LATENCY_BUCKETS.find((b) => exact >= b.lowerMs && (b.upperMs === null || exact < b.upperMs))
    const estimate = res.body.latency[key]
    t.ok(bucket && estimate !== null && Math.abs(estimate - exact) <= (bucket.upperMs ?? exact) - bucket.lowerMs, `${key}: ${estimate} vs exact ${exact}`)
  }
  t.equal(res.body.latency.maxMs, Math.max(...values))
})

t.test('breakdown by one and two dimensions, sorted and limited', async (t) => {
  const q = 'startDate=2024-05-02&endDate=2024-05-02'
  const byModel = await get<Breakdown>(app, `/api/usage/breakdown?groupBy=model&${q}`)
  t.equal(byModel.status, 200)
  t.same(byModel.body.groupBy, ['model'])
  t.same(byModel.body.rows.map((r) => [r.group, r.calls, r.cost, r.failures]), [
    [{ model: 'acme-large' }, 3, 0.35, 0],
    [{ model: 'acme-small' }, 1, 0.3, 1],
  ])
  t.match(byModel.body.rows[1].latency, { samples: 1, p50Ms: 300, maxMs: 300 })
  t.match(byModel.body.totals, { calls: 4, cost: 0.65 })
  t.equal(byModel.body.groupCount, 2)

  const two = await get<Breakdown>(app, `/api/usage/breakdown?groupBy=model,botId&sort=calls&order=asc&${q}`)
  t.same(two.body.rows.map((r) => [r.group, r.calls]), [
    [{ model: 'acme-large', botId: 'bot_b' }, 1],
    [{ model: 'acme-small', botId: 'bot_a' }, 1],
    [{ model: 'acme-large', botId: 'bot_a' }, 2],
  ])
  const limited = await get<Breakdown>(app, `/api/usage/breakdown?groupBy=model,botId&limit=1&${q}`)
  t.same(limited.body.rows.map((r) => r.group), [{ model: 'acme-large', botId: 'bot_a' }], 'a cost tie goes to the first name')
  t.equal(limited.body.groupCount, 3)
  t.match(limited.body.totals, { calls: 4 }, 'totals cover every group, not just the shown ones')
})

t.test('a limited breakdown shows the first rows of the whole one, every measure equal', async (t) => {
  const q = 'startDate=2024-05-02&endDate=2024-05-02'
  for (const groupBy of ['model,botId', 'metadata.userId', 'metadata.tag,botId', 'botId,metadata.userId']) {
    for (const sort of ['cost', 'calls', 'failures']) {
      const whole = await get<Breakdown>(app, `/api/usage/breakdown?groupBy=${groupBy}&sort=${sort}&${q}`)
      for (let limit = 1; limit < whole.body.rows.length; limit++) {
        const part = await get<Breakdown>(app, `/api/usage/breakdown?groupBy=${groupBy}&sort=${sort}&limit=${limit}&${q}`)
        t.same(part.body.rows, whole.body.rows.slice(0, limit), `${groupBy} by ${sort}, limit=${limit}: the same rows`)
        t.same([part.body.totals, part.body.groupCount], [whole.body.totals, whole.body.groupCount], `${groupBy} by ${sort}, limit=${limit}: the same totals`)
      }
    }
  }
})

t.test('breakdown by a metadata key, alone and with a column', async (t) => {
  const q = 'startDate=2024-05-02&endDate=2024-05-02'
  const users = await get<Breakdown>(app, `/api/usage/breakdown?groupBy=metadata.userId&${q}`)
  t.same(users.body.rows.map((r) => [r.group, r.calls, r.cost]), [
    [{ 'metadata.userId': 'u1' }, 2, 0.3],
    [{ 'metadata.userId': 'u2' }, 1, 0.3],
    [{ 'metadata.userId': null }, 1, 0.05],
  ])
  const tagged = await get<Breakdown>(app, `/api/usage/breakdown?groupBy=metadata.tag,botId&sort=calls&${q}`)
  t.same(tagged.body.rows.map((r) => [r.group, r.calls]), [
    [{ 'metadata.tag': null, botId: 'bot_a' }, 2],
    [{ 'metadata.tag': 'x', botId: 'bot_a' }, 1],
    [{ 'metadata.tag': null, botId: 'bot_b' }, 1],
  ])
  const filtered = await get<Breakdown>(app, `/api/usage/breakdown?groupBy=metadata.userId&success=false&${q}`)
  t.same(filtered.body.rows.map((r) => [r.group, r.calls]), [[{ 'metadata.userId': 'u2' }, 1]])
  t.equal(users.body.source, 'raw', 'a metadata breakdown says it read raw events')
  const byModel = await get<Breakdown>(app, `/api/usage/breakdown?groupBy=model&${q}`)
  t.equal(byModel.body.source, 'rollups')
  // Raw reads are capped at METADATA_RAW_MAX_DAYS (31): 32 days is a 400 naming the range and the setting.
  const long = await get<{ message: string }>(app, '/api/usage/breakdown?groupBy=metadata.userId&startDate=2024-04-01&endDate=2024-05-02')
  t.equal(long.status, 400)
  t.match(long.body.message, /querystring\.startDate\.\.endDate covers more than 31 days.*METADATA_RAW_MAX_DAYS/)
  const ok = await get<Breakdown>(app, '/api/usage/breakdown?groupBy=metadata.userId&startDate=2024-04-02&endDate=2024-05-02')
  t.equal(ok.status, 200, '31 days are allowed')
  const wide = await get<Breakdown>(app, '/api/usage/breakdown?groupBy=model&startDate=2024-01-01&endDate=2024-05-02')
  t.equal(wide.status, 200, 'rollup dimensions keep MAX_QUERY_RANGE_DAYS')
})

t.test('bad breakdown and summary parameters get 400', async (t) => {
  const cases: [string, RegExp][] = [
    ['/api/usage/breakdown?groupBy=colour', /querystring\.groupBy has unknown dimension 'colour'/],
    ['/api/usage/breakdown?groupBy=metadata.', /querystring\.groupBy has unknown dimension 'metadata\.'/],
    ['/api/usage/breakdown?groupBy=model,botId,provider', /querystring\.groupBy takes at most two dimensions/],
    ['/api/usage/breakdown?groupBy=model,model', /querystring\.groupBy names 'model' twice/],
    ['/api/usage/breakdown', /querystring\.groupBy is required/],
    ['/api/usage/breakdown?groupBy=model&sort=price', /querystring\.sort must be one of/],
    ['/api/usage/breakdown?groupBy=model&order=up', /querystring\.order must be one of asc, desc/],
    ['/api/usage/summary?startDate=2024-02-01&endDate=2024-01-01', /querystring\.startDate must not be after querystring\.endDate/],
    ['/api/usage/summary?startDate=2023-01-01&endDate=2024-06-01', /covers more than 400 days/],
    ['/api/usage/summary?tz=Nowhere', /querystring\.tz must be an IANA time zone name/],
  ]
  for (const [url, message] of cases) {
    const res = await get(app, url)
    t.equal(res.status, 400, url)
    t.match(res.body, { code: 'VALIDATION_ERROR', message }, url)
  }
})
