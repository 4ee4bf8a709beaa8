import { sql } from 'drizzle-orm'
import t, { type Test } from 'tap'
import { ERROR_MESSAGE_KEY_LENGTH, ERROR_ROLLUPS, ROLLUP_TABLES } from '../../src/db/event-store.js'
import { inLatencyBucket, LATENCY_BUCKETS } from '../../src/db/measures.js'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { postBatch, postUsage } from '../helpers/usage.js'
import { errorRollupMismatches, get, rollupMismatches, seededUsageEvents, statsFromRaw } from './support.js'

/**
 * Property test: whatever mix of single and batch ingest, duplicates and repricing happens,
 * every rollup row equals the same aggregate recomputed from raw events, and every endpoint's
 * numbers over random ranges (partial hours, local days in odd zones) equal raw GROUP BYs.
 */

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)

const { random, pick, fields } = seededUsageEvents(20240331, {
  idPrefix: 'p',
  requestType: ['message', 'message', 'embedding'],
  errorMessage: ['timeout', 'rate limited', 'overloaded'],
})

const START = Date.parse('2024-03-29T00:00:00Z')
const SPAN = 5 * 86_400_000

function randomEvent(): Record<string, unknown> {
  const success = random() < 0.8
  const latency = random() < 0.15 ? undefined : Math.floor(Math.exp(random() * Math.log(150_000)))
  return {
    ...fields(success),
    ...(latency === undefined ? {} : { latencyMs: latency }),
    createdAt: new Date(START + Math.floor(random() * SPAN)).toISOString(),
  }
}

async function assertRollupsMatchRaw(t: { same: (a: unknown, b: unknown, m: string) => void }, when: string) {
  for (const rollup of ROLLUP_TABLES) t.same(await rollupMismatches(database, rollup), [], `${rollup.name} equals raw ${when}`)
  for (const rollup of ERROR_ROLLUPS) t.same(await errorRollupMismatches(database, rollup), [], `${rollup.name} equals raw ${when}`)
}

t.test('rollups equal raw totals after inserts, duplicates, batches and repricing', async (t) => {
  const sent: Record<string, unknown>[] = []
  for (let round = 0; round < 6; round++) {
    const batch = Array.from({ length: 150 }, randomEvent)
    // Re-sent events (across and within batches) must not count twice.
    const duplicates = sent.length > 0 ? Array.from({ length: 20 }, () => pick(sent)) : []
    const inBatchRepeat = batch.slice(0, 5)
    const res = await postBatch(app, [...batch, ...duplicates, ...inBatchRepeat])
    t.equal(res.statusCode, 200)
    t.equal(res.json().created, 150, `round ${round}: only new events are created`)
    sent.push(...batch)
    const singles = Array.from({ length: 10 }, randomEvent)
    const results = await Promise.all([...singles, ...singles.slice(0, 3)].map((e) => postUsage(app, e)))
    t.equal(results.filter((r) => r.statusCode === 201).length, 10, 'concurrent single posts, three repeated')
    sent.push(...singles)
  }
  await assertRollupsMatchRaw(t, 'after ingest')

  const override = await app.inject({
    method: 'POST',
    url: '/api/prices/overrides',
    headers: bearer(ADMIN_KEY),
    payload: { provider: 'acme', modelPattern: 'acme-large', effectiveFrom: '2024-03-31T00:30:00Z', input: 3, output: 15 },
  })
  t.equal(override.statusCode, 201, override.body)
  const reprice = await app.inject({
    method: 'POST',
    url: '/api/prices/reprice',
    headers: bearer(ADMIN_KEY),
    payload: { startDate: '2024-03-29', endDate: '2024-04-03' },
  })
  t.equal(reprice.statusCode, 200)
  t.ok(reprice.json().changed > 0, 'repricing changed costs')
  await assertRollupsMatchRaw(t, 'after repricing')

  // Events after the override are priced at ingest; old ones repriced above.
  await postBatch(app, Array.from({ length: 100 }, randomEvent))
  await assertRollupsMatchRaw(t, 'after more ingest')
})

interface Totals {
  calls: number
  failures: number
  inputTokens: number
  outputTokens: number
  cost: number
  unpricedCalls: number
}

const rawTotalsSql = (tz: string, unit: string, from: string, to: string, botId?: string) => sql`
  SELECT date_trunc(${unit}, created_at, ${tz}) AS bucket, count(*) AS calls, count(*) FILTER (WHERE NOT success) AS failures,
    sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, coalesce(sum(cost), 0) AS cost,
    count(*) FILTER (WHERE NOT priced) AS unpriced
  FROM usage_events WHERE created_at >= ${from} AND created_at < ${to} ${botId ? sql`AND bot_id = ${botId}` : sql``}
  GROUP BY 1 ORDER BY 1`

interface RawBucket {
  bucket: Date | string
  calls: number | string
  failures: number | string
  input_tokens: number | string
  output_tokens: number | string
  cost: string
  unpriced: number | string
}

const pickTotals = (b: Totals) => ({
  calls: b.calls,
  failures: b.failures,
  inputTokens: b.inputTokens,
  outputTokens: b.outputTokens,
  cost: b.cost,
  unpricedCalls: b.unpricedCalls,
})
const fromRaw = (r: RawBucket) => ({
  calls: Number(r.calls),
  failures: Number(r.failures),
  inputTokens: Number(r.input_tokens),
  outputTokens: Number(r.output_tokens),
  cost: Number(r.cost),
  unpricedCalls: Number(r.unpriced),
})

const zones = ['UTC', 'Europe/Berlin', 'Asia/Kolkata', 'America/St_Johns', 'Asia/Kathmandu', 'America/New_York']

/** A random range (sometimes whole local days, as a date picker sends them) and every endpoint's answers over it against raw GROUP BYs. */
async function compareRange(t: Test, i: number): Promise<void> {
  {
    let a = START - 3_600_000 + Math.floor(random() * (SPAN + 7_200_000))
    let b = a + 1 + Math.floor(random() * (START + SPAN + 3_600_000 - a))
    const tz = zones[i % zones.length]
    if (i % 2 === 1) {
      // Local midnights of tz: the ranges that read daily rows plus or minus edge hours and quarters.
      const [edges] = await database.rows<{ a: Date | string; b: Date | string }>(sql`
        SELECT date_trunc('day', ${new Date(a).toISOString()}::timestamptz, ${tz}) AS a,
          date_trunc('day', ${new Date(b).toISOString()}::timestamptz, ${tz}) + interval '1 day' AS b`)
      a = new Date(edges.a).getTime()
      b = new Date(edges.b).getTime()
    }
    const [from, to] = [new Date(a).toISOString(), new Date(b).toISOString()]
    // endDate is inclusive: the last millisecond before `to`.
    const range = `startDate=${encodeURIComponent(from)}&endDate=${encodeURIComponent(new Date(b - 1).toISOString())}`
    const botId = i % 3 === 0 ? 'bot_b' : undefined
    const botQuery = botId ? `&botId=${botId}` : ''
    const label = `${from}..${to} ${tz}${botId ? ' bot_b' : ''}`

    const reference = await database.rows<RawBucket>(rawTotalsSql(tz, 'day', from, to, botId))
    const series = await get<{ buckets: (Totals & { start: string })[] }>(app, `/api/usage/timeseries?interval=day&tz=${tz}&${range}${botQuery}`)
    t.equal(series.status, 200, label)
    const nonEmpty = series.body.buckets.filter((x) => x.calls > 0)
    t.same(
      nonEmpty.map((x) => ({ start: x.start, ...pickTotals(x) })),
      reference.map((r) => ({ start: new Date(r.bucket).toISOString(), ...fromRaw(r) })),
      `timeseries by local day equals raw: ${label}`,
    )
    const hourly = await database.rows<RawBucket>(rawTotalsSql(tz, 'hour', from, to, botId))
    const hours = await get<{ buckets: (Totals & { start: string })[] }>(app, `/api/usage/timeseries?interval=hour&tz=${tz}&${range}${botQuery}`)
    t.same(
      hours.body.buckets.filter((x) => x.calls > 0).map((x) => ({ start: x.start, ...pickTotals(x) })),
      hourly.map((r) => ({ start: new Date(r.bucket).toISOString(), ...fromRaw(r) })),
      `timeseries by local hour equals raw: ${label}`,
    )

    const [total] = await database.rows<RawBucket>(sql`
      SELECT NULL AS bucket, count(*) AS calls, count(*) FILTER (WHERE NOT success) AS failures, coalesce(sum(input_tokens), 0) AS input_tokens,
        coalesce(sum(output_tokens), 0) AS output_tokens, coalesce(sum(cost), 0) AS cost, count(*) FILTER (WHERE NOT priced) AS unpriced
      FROM usage_events WHERE created_at >= ${from} AND created_at < ${to} ${botId ? sql`AND bot_id = ${botId}` : sql``}`)
    const summary = await get<{ totals: Totals; latency: { histogram: { lowerMs: number; count: number }[] } }>(
      app,
      `/api/usage/summary?${range}${botQuery}`,
    )
    t.same(pickTotals(summary.body.totals), fromRaw(total), `summary totals equal raw: ${label}`)
    const histogram = await database.rows<{ lower: number; n: number | string }>(sql`
      SELECT lower, count(*) AS n FROM (
        SELECT CASE ${sql.raw(LATENCY_BUCKETS.map((bk) => `WHEN ${inLatencyBucket(bk)} THEN ${bk.lowerMs}`).join(' '))} END AS lower
        FROM usage_events WHERE latency_ms IS NOT NULL AND created_at >= ${from} AND created_at < ${to} ${botId ? sql`AND bot_id = ${botId}` : sql``}
      ) x GROUP BY lower ORDER BY lower`)
    t.same(
      summary.body.latency.histogram.map((h) => [h.lowerMs, h.count]),
      histogram.map((h) => [Number(h.lower), Number(h.n)]),
      `latency histogram (rollups + raw edges) equals raw: ${label}`,
    )

    const filter = { botIds: botId ? [botId] : null, from: new Date(a), to: new Date(b) }
    const stats = await get<{ stats: { model: string; _count: { id: number; failed: number }; _sum: { inputTokens: number; estimatedCost: number } }[]; totalCost: number }>(
      app,
      `/api/usage?${range}${botQuery}`,
    )
    const expected = await statsFromRaw(database, filter)
    t.same(
      stats.body.stats.map((s) => [s.model, s._count.id, s._count.failed, s._sum.inputTokens, s._sum.estimatedCost]).sort(),
      expected.map((r) => [r.model, Number(r.calls), Number(r.failed), Number(r.input_tokens), Number(r.cost)]).sort(),
      `GET /api/usage stats equal raw: ${label}`,
    )
    t.equal(stats.body.totalCost, expected.length > 0 ? Number(expected[0].total_cost) : 0)

    // Per model and local week: groups whose subtracted and added rows cancel must not appear.
    const byModel = await get<{ series: { group: string; buckets: (Totals & { start: string })[] }[] }>(
      app,
      `/api/usage/timeseries?interval=week&groupBy=model&tz=${tz}&${range}${botQuery}`,
    )
    const perModel = await database.rows<RawBucket & { model: string }>(sql`
      SELECT model, date_trunc('week', created_at, ${tz}) AS bucket, count(*) AS calls, count(*) FILTER (WHERE NOT success) AS failures,
        sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, coalesce(sum(cost), 0) AS cost,
        count(*) FILTER (WHERE NOT priced) AS unpriced
      FROM usage_events WHERE created_at >= ${from} AND created_at < ${to} ${botId ? sql`AND bot_id = ${botId}` : sql``}
      GROUP BY 1, 2 ORDER BY 1, 2`)
    t.same(
      byModel.body.series.flatMap((s) => s.buckets.filter((x) => x.calls > 0).map((x) => ({ model: s.group, start: x.start, ...pickTotals(x) }))).sort((x, y) => (x.model + x.start).localeCompare(y.model + y.start)),
      perModel.map((r) => ({ model: r.model, start: new Date(r.bucket).toISOString(), ...fromRaw(r) })),
      `timeseries by local week and model equals raw: ${label}`,
    )

    // Top error messages: error rollup for whole days, raw failures for the partial ones.
    const errors = await get<{ failures: number; topMessages: { message: string | null; count: number; lastSeen: string }[] }>(
      app,
      `/api/usage/errors?top=100&limit=1&${range}${botQuery}`,
    )
    const messages = await database.rows<{ message: string | null; n: number | string; last_seen: Date | string }>(sql`
      SELECT left(error_message, ${ERROR_MESSAGE_KEY_LENGTH}) AS message, count(*) AS n, max(created_at) AS last_seen FROM usage_events
      WHERE NOT success AND created_at >= ${from} AND created_at < ${to} ${botId ? sql`AND bot_id = ${botId}` : sql``}
      GROUP BY 1`)
    const byMessage = (x: { message: string | null }, y: { message: string | null }) => String(x.message).localeCompare(String(y.message))
    t.same(
      [...errors.body.topMessages].sort(byMessage),
      messages.map((m) => ({ message: m.message, count: Number(m.n), lastSeen: new Date(m.last_seen).toISOString() })).sort(byMessage),
      `top error messages equal raw: ${label}`,
    )
    t.equal(errors.body.failures, Number(total.failures), `failure count equals raw: ${label}`)
  }
}

t.test('every endpoint agrees with raw events over random ranges and zones', async (t) => {
  for (let i = 0; i < 12; i++) await compareRange(t, i)
})

t.test('late and out-of-order events at zone boundaries, after the rollups hold rows for their hours', async (t) => {
  // Instants on and next to the local midnights of the zones above, inside the data's days, and
  // a message longer than the message key (grouped by its first characters).
  const boundaries = ['2024-03-30T23:00:00Z', '2024-03-31T22:00:00Z', '2024-03-31T18:30:00Z', '2024-04-01T18:15:00Z', '2024-03-30T02:30:00Z', '2024-03-31T04:00:00Z']
  const late = boundaries.flatMap((at) =>
    [-1, 0, 1, 899_999, 900_000].map((offset) => ({
      ...randomEvent(),
      createdAt: new Date(Date.parse(at) + offset).toISOString(),
      success: false,
      errorMessage: offset === 0 ? `${'x'.repeat(ERROR_MESSAGE_KEY_LENGTH)} ${at}` : 'timeout',
    })),
  )
  const res = await postBatch(app, late.reverse())
  t.equal(res.json().created, late.length)
  await assertRollupsMatchRaw(t, 'after late events')
  for (let i = 12; i < 24; i++) await compareRange(t, i)
})
