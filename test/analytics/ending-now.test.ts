import { sql } from 'drizzle-orm'
import t from 'tap'
import { syncMetadataRollupKeys } from '../../src/usage/metadata-keys.js'
import { foldAll } from '../../src/usage/rollups.js'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { get, seed, seededUsageEvents } from './support.js'

/**
 * Ranges that end now are planned knowing that hardly any event lies after now: the part of the
 * current quarter-hour, hour and day since its start is read as that row minus what lies after
 * now (see PlanOptions.present). Events dated ahead of now (within the allowed clock skew) exist,
 * some folded and some not: every answer must still equal a GROUP BY over the raw events.
 */

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)

const { random, fields } = seededUsageEvents(20261204, { idPrefix: 'n', requestType: 'message', errorMessage: ['timeout', 'overloaded'] })
const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR
const start = Date.now()

/** Mostly in the last three days, densest in the last hour, and some up to 4.5 minutes ahead. */
function event(): Record<string, unknown> {
  const r = random()
  const offset = r < 0.1 ? -Math.floor(random() * 270_000) : r < 0.5 ? Math.floor(random() * HOUR) : Math.floor(random() * 3 * DAY)
  const metadata = random() < 0.9 ? { userId: `u${Math.floor(random() * 6)}` } : {}
  return { ...fields(random() < 0.9), latencyMs: 1 + Math.floor(random() * 20_000), metadata, createdAt: new Date(start - offset).toISOString() }
}

// userId is declared four days back, so its breakdowns over the last 3 days read its rollup (with
// the same row-minus-future end as the others); over the last 7 days, raw events before since.
await syncMetadataRollupKeys(database, { keys: ['userId'], maxValues: 50 }, { now: new Date(start - 4 * DAY), maxFutureSkewMs: 0 })

// Half folded into the rollups, half still above the watermark (the tail every read adds), and a
// bot with no event ahead of now: its summaries take the row-minus-future path for the maximum
// latency too, where the others' fall back to raw events (see runAggregate).
const past = (): Record<string, unknown> => {
  const e = event()
  return { ...e, botId: 'bot_past', createdAt: new Date(Math.min(Date.parse(String(e.createdAt)), start - 1)).toISOString() }
}
// The slowest call of all is dated a minute ahead: no range ending before it may report it.
const slowest = { ...fields(true), latencyMs: 86_400_000, createdAt: new Date(start + MINUTE).toISOString() }
await seed(app, [...Array.from({ length: 1500 }, event), ...Array.from({ length: 300 }, past), slowest])
await foldAll(database)
await seed(app, [...Array.from({ length: 1500 }, event), ...Array.from({ length: 300 }, past)])

const num = (v: unknown) => Number(v ?? 0)
const totalsOf = (x: { calls: number; failures: number; inputTokens: number; cost: number | string }) => [x.calls, x.failures, x.inputTokens, Number(x.cost)]
const rawTotal = (r: Record<string, unknown>) => [num(r.calls), num(r.failures), num(r.input_tokens), num(r.cost)]

t.test('ranges ending now equal raw events, with events dated ahead of now', async (t) => {
  const zones = ['UTC', 'Europe/Berlin', 'Asia/Kolkata', 'Asia/Kathmandu']
  for (const [i, hours] of [1, 24, 24 * 7, 30, 24 * 3 + 7, 2].entries()) {
    const now = Date.now()
    const from = new Date(now - hours * HOUR - Math.floor(random() * MINUTE)).toISOString()
    const to = new Date(now).toISOString()
    // endDate is inclusive: the range is [from, to + 1 ms).
    const range = `startDate=${encodeURIComponent(from)}&endDate=${encodeURIComponent(to)}`
    const until = new Date(now + 1).toISOString()
    const tz = zones[i % zones.length]
    const botId = [undefined, 'bot_b', 'bot_past'][i % 3]
    const botQuery = botId ? `&botId=${botId}` : ''
    const bot = botId ? sql`AND bot_id = ${botId}` : sql``
    const label = `last ${hours} h in ${tz}${botId ? `, ${botId}` : ''}`
    const totals = sql`count(*) AS calls, count(*) FILTER (WHERE NOT success) AS failures, coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(cost), 0) AS cost`

    const summary = await get<{
      totals: { calls: number; failures: number; inputTokens: number; cost: string }
      latency: { maxMs: number | null; histogram: { lowerMs: number; count: number }[] }
    }>(app, `/api/usage/summary?${range}${botQuery}`)
    t.equal(summary.status, 200, label)
    const raw = await database.rows<Record<string, unknown>>(sql`SELECT ${totals}, max(latency_ms) AS max_ms FROM usage_events WHERE created_at >= ${from} AND created_at < ${until} ${bot}`)
    t.same(totalsOf(summary.body.totals), rawTotal(raw[0]), `summary: ${label}`)
    t.equal(summary.body.latency.maxMs, num(raw[0].max_ms), `summary's maximum latency: ${label}`)
    t.equal(summary.body.latency.histogram.reduce((n, h) => n + h.count, 0), num(raw[0].calls), `summary's histogram holds every call: ${label}`)
    t.ok(summary.body.totals.calls > 0, `the range holds events: ${label}`)

    for (const interval of ['hour', 'day'] as const) {
      // With percentiles, each bucket has the maximum latency (read as in the summary, see runAggregate).
      const series = await get<{ buckets: { start: string; calls: number; failures: number; inputTokens: number; cost: string; latency?: { maxMs: number | null } }[] }>(
        app,
        `/api/usage/timeseries?interval=${interval}&tz=${tz}&${range}${botQuery}${i % 2 === 0 ? '&percentiles=true' : ''}`,
      )
      t.equal(series.status, 200, label)
      const buckets = await database.rows<Record<string, unknown>>(sql`
        SELECT date_trunc(${interval}, created_at, ${tz}) AS bucket, ${totals}, max(latency_ms) AS max_ms FROM usage_events
        WHERE created_at >= ${from} AND created_at < ${until} ${bot} GROUP BY 1 ORDER BY 1`)
      const withMax = i % 2 === 0
      t.same(
        series.body.buckets.filter((b) => b.calls > 0).map((b) => [b.start, ...totalsOf(b), ...(withMax ? [b.latency?.maxMs] : [])]),
        buckets.map((b) => [new Date(b.bucket as string).toISOString(), ...rawTotal(b), ...(withMax ? [num(b.max_ms)] : [])]),
        `${interval} series${withMax ? ' with percentiles' : ''}: ${label}`,
      )
    }

    const byModel = await get<{ series: { group: string; buckets: { start: string; calls: number; failures: number; inputTokens: number; cost: string }[] }[] }>(
      app,
      `/api/usage/timeseries?interval=hour&groupBy=model&tz=${tz}&${range}${botQuery}`,
    )
    const perModel = await database.rows<Record<string, unknown>>(sql`
      SELECT model, date_trunc('hour', created_at, ${tz}) AS bucket, ${totals} FROM usage_events
      WHERE created_at >= ${from} AND created_at < ${until} ${bot} GROUP BY 1, 2 ORDER BY 1, 2`)
    t.same(
      byModel.body.series
        .flatMap((s) => s.buckets.filter((b) => b.calls > 0).map((b) => [s.group, b.start, ...totalsOf(b)]))
        .sort((x, y) => String(x[0]).localeCompare(String(y[0])) || String(x[1]).localeCompare(String(y[1]))),
      perModel.map((r) => [r.model, new Date(r.bucket as string).toISOString(), ...rawTotal(r)]),
      `hour series by model: ${label}`,
    )

    // A breakdown's rows carry the maximum latency: read as in the summary (see runAggregate).
    for (const [groupBy, column] of [
      ['model', sql`model`],
      ['metadata.userId', sql`metadata ->> 'userId'`],
    ] as const) {
      const breakdown = await get<{
        source: string
        rows: { group: Record<string, string | null>; calls: number; failures: number; inputTokens: number; cost: string; latency: { maxMs: number | null } }[]
        totals: { calls: number; failures: number; inputTokens: number; cost: string }
      }>(app, `/api/usage/breakdown?groupBy=${groupBy}&tz=${tz}&${range}${botQuery}`)
      t.equal(breakdown.status, 200, label)
      const groups = await database.rows<Record<string, unknown>>(sql`
        SELECT ${column} AS g, ${totals}, max(latency_ms) AS max_ms FROM usage_events
        WHERE created_at >= ${from} AND created_at < ${until} ${bot} GROUP BY 1 ORDER BY 1 NULLS LAST`)
      const byGroup = (x: unknown[], y: unknown[]) => (x[0] === null ? 1 : y[0] === null ? -1 : String(x[0]).localeCompare(String(y[0])))
      t.same(
        breakdown.body.rows.map((g) => [g.group[groupBy], ...totalsOf(g), g.latency.maxMs]).sort(byGroup),
        groups.map((m) => [m.g ?? null, ...rawTotal(m), num(m.max_ms)]),
        `breakdown by ${groupBy} (${breakdown.body.source}): ${label}`,
      )
      t.same(totalsOf(breakdown.body.totals), rawTotal(raw[0]), `breakdown totals by ${groupBy}: ${label}`)
    }
  }
})
