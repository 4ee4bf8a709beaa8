import { sql } from 'drizzle-orm'
import t from 'tap'
import { ROLLUP_TABLES } from '../../src/db/event-store.js'
import { inLatencyBucket, LATENCY_BUCKETS } from '../../src/db/measures.js'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { postBatch, postUsage } from '../helpers/usage.js'
import { get, rollupMismatches, statsFromRaw } from './support.js'

/**
 * Property test: whatever mix of single and batch ingest, duplicates and repricing happens,
 * every rollup row equals the same aggregate recomputed from raw events, and every endpoint's
 * numbers over random ranges (partial hours, local days in odd zones) equal raw GROUP BYs.
 */

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)

function prng(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
const random = prng(20240331)
const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]

const START = Date.parse('2024-03-29T00:00:00Z')
const SPAN = 5 * 86_400_000

let serial = 0
function randomEvent(): Record<string, unknown> {
  const success = random() < 0.8
  const latency = random() < 0.15 ? undefined : Math.floor(Math.exp(random() * Math.log(150_000)))
  return {
    id: `p${serial++}`,
    botId: pick(['bot_a', 'bot_b', 'bot_c']),
    provider: 'acme',
    model: pick(['acme-large', 'acme-small']),
    requestType: pick(['message', 'message', 'embedding']),
    inputTokens: Math.floor(random() * 5000),
    outputTokens: Math.floor(random() * 2000),
    estimatedCost: pick([0.000123, 0.5, 1.25, 0.0000007, 3]),
    success,
    ...(success ? {} : { errorMessage: pick(['timeout', 'rate limited', 'overloaded']) }),
    ...(latency === undefined ? {} : { latencyMs: latency }),
    createdAt: new Date(START + Math.floor(random() * SPAN)).toISOString(),
  }
}

async function assertRollupsMatchRaw(t: { same: (a: unknown, b: unknown, m: string) => void }, when: string) {
  for (const rollup of ROLLUP_TABLES) t.same(await rollupMismatches(database, rollup), [], `${rollup.name} equals raw ${when}`)
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

t.test('every endpoint agrees with raw events over random ranges and zones', async (t) => {
  const zones = ['UTC', 'Europe/Berlin', 'Asia/Kolkata', 'America/St_Johns']
  for (let i = 0; i < 12; i++) {
    const a = START - 3_600_000 + Math.floor(random() * (SPAN + 7_200_000))
    const b = a + 1 + Math.floor(random() * (START + SPAN + 3_600_000 - a))
    const [from, to] = [new Date(a).toISOString(), new Date(b).toISOString()]
    // endDate is inclusive: the last millisecond before `to`.
    const range = `startDate=${encodeURIComponent(from)}&endDate=${encodeURIComponent(new Date(b - 1).toISOString())}`
    const tz = zones[i % zones.length]
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
  }
})
