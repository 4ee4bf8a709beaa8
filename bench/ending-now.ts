/**
 * Ranges that end now, on a busy fleet: 120,000 events in the minutes since the last quarter-hour
 * (at least one minute of them) plus 200,000 over the three days before, folded into the rollups.
 * Times six questions a dashboard asks about "the last 24 hours / 7 days" through the API and
 * the same answer as a raw GROUP BY, and prints p50 / p95 and the ratio (raw p50 / api p95).
 * The planner before 2026-12-04 read the end of such a range as raw events whenever less than
 * half of the current quarter-hour had passed: compare planners within the first 7 minutes of a
 * quarter-hour (the header prints how many minutes had passed).
 *
 *   npm run bench:ending-now                       # PostgreSQL at DATABASE_URL (default: local)
 *   npx tsx bench/ending-now.ts --engine pglite
 */
import { sql } from 'drizzle-orm'
import { parseArgs } from 'node:util'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { connectDatabase } from '../src/db/connect.js'
import { migrateDatabase } from '../src/db/migrate.js'
import { foldAll } from '../src/usage/rollups.js'
import { fmt, percentile } from './support.js'

const { values: args } = parseArgs({ options: { engine: { type: 'string', default: 'postgres' }, runs: { type: 'string', default: '30' } } })
const RUNS = Number(args.runs)
const ADMIN_KEY = 'usk_bench_admin_key_0123456789abcdef'
const HOUR = 3_600_000
const DAY = 24 * HOUR
const databaseUrl = args.engine === 'pglite' ? null : (process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test')
const schema = `bench_now_${process.pid}`
const out = (line = ''): void => void process.stdout.write(`${line}\n`)

const database = await connectDatabase({ databaseUrl, dataDir: 'memory://', schema })
await migrateDatabase(database)
const app = await buildApp(
  loadConfig({
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : { DATA_DIR: 'memory://' }),
    DATABASE_SCHEMA: schema,
    MIGRATE: 'false',
    ADMIN_API_KEY: ADMIN_KEY,
    LOG_LEVEL: 'silent',
    RATE_LIMIT_MAX: '10000000',
  }),
  { database },
)
const headers = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }

try {
  const now = Date.now()
  const sinceQuarter = Math.max(60_000, now - Math.floor(now / 900_000) * 900_000 - 1000)
  const event = (i: number, at: number) => ({
    id: `e${i}`,
    botId: `bot_${i % 20}`,
    provider: 'acme',
    model: `model_${i % 10}`,
    inputTokens: 100 + (i % 400),
    outputTokens: 10 + (i % 90),
    estimatedCost: 0.01,
    latencyMs: 100 + (i % 900),
    createdAt: new Date(at).toISOString(),
  })
  const recent = 120_000
  const older = 200_000
  const events = [
    ...Array.from({ length: recent }, (_, i) => event(i, now - 1000 - Math.floor((i / recent) * sinceQuarter))),
    ...Array.from({ length: older }, (_, i) => event(recent + i, now - 600_000 - Math.floor((i / older) * 3 * DAY))),
  ]
  process.stderr.write(`... seeding ${fmt(events.length)} events (${fmt(recent)} in the last ${fmt(sinceQuarter / 60_000, 1)} min)\n`)
  for (let i = 0; i < events.length; i += 1000) {
    const res = await app.inject({ method: 'POST', url: '/api/usage/batch', headers, payload: { events: events.slice(i, i + 1000) } })
    if (res.statusCode !== 200) throw new Error(`seeding: ${res.statusCode} ${res.body.slice(0, 300)}`)
  }
  await foldAll(database)

  const iso = (t: number) => encodeURIComponent(new Date(t).toISOString())
  const questions: { name: string; url: (t: number) => string; raw: (t: number) => ReturnType<typeof sql> }[] = [
    {
      name: 'hour series, Europe/Berlin, last 24 h',
      url: (t) => `/api/usage/timeseries?interval=hour&tz=Europe/Berlin&startDate=${iso(t - DAY)}&endDate=${iso(t)}`,
      raw: (t) => sql`SELECT date_trunc('hour', created_at, 'Europe/Berlin'), count(*), sum(input_tokens), sum(cost) FROM usage_events
        WHERE created_at >= ${new Date(t - DAY).toISOString()} AND created_at <= ${new Date(t).toISOString()} GROUP BY 1`,
    },
    {
      name: 'hour series with percentiles (as the dashboard asks), Europe/Berlin, last 24 h',
      url: (t) => `/api/usage/timeseries?interval=hour&tz=Europe/Berlin&percentiles=true&startDate=${iso(t - DAY)}&endDate=${iso(t)}`,
      raw: (t) => sql`SELECT date_trunc('hour', created_at, 'Europe/Berlin'), count(*), sum(input_tokens), sum(cost), max(latency_ms),
        percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) FROM usage_events
        WHERE created_at >= ${new Date(t - DAY).toISOString()} AND created_at <= ${new Date(t).toISOString()} GROUP BY 1`,
    },
    {
      name: 'day series by model, Asia/Kolkata, last 7 d',
      url: (t) => `/api/usage/timeseries?interval=day&groupBy=model&tz=Asia/Kolkata&startDate=${iso(t - 7 * DAY)}&endDate=${iso(t)}`,
      raw: (t) => sql`SELECT model, date_trunc('day', created_at, 'Asia/Kolkata'), count(*), sum(input_tokens), sum(cost) FROM usage_events
        WHERE created_at >= ${new Date(t - 7 * DAY).toISOString()} AND created_at <= ${new Date(t).toISOString()} GROUP BY 1, 2`,
    },
    {
      name: 'summary (totals, latency percentiles, by model and bot), last 24 h',
      url: (t) => `/api/usage/summary?startDate=${iso(t - DAY)}&endDate=${iso(t)}`,
      raw: (t) => sql`SELECT count(*), sum(input_tokens), sum(cost), max(latency_ms), percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms)
        FROM usage_events WHERE created_at >= ${new Date(t - DAY).toISOString()} AND created_at <= ${new Date(t).toISOString()}`,
    },
    {
      name: 'breakdown by model with latency (as the dashboard asks), last 7 d',
      url: (t) => `/api/usage/breakdown?groupBy=model&limit=200&startDate=${iso(t - 7 * DAY)}&endDate=${iso(t)}`,
      raw: (t) => sql`SELECT model, count(*), sum(input_tokens), sum(cost), max(latency_ms), percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms)
        FROM usage_events WHERE created_at >= ${new Date(t - 7 * DAY).toISOString()} AND created_at <= ${new Date(t).toISOString()} GROUP BY 1`,
    },
    {
      name: 'stats by model (GET /api/usage), last 24 h',
      url: (t) => `/api/usage?startDate=${iso(t - DAY)}&endDate=${iso(t)}`,
      raw: (t) => sql`SELECT model, provider, count(*), sum(input_tokens), sum(cost) FROM usage_events
        WHERE created_at >= ${new Date(t - DAY).toISOString()} AND created_at <= ${new Date(t).toISOString()} GROUP BY 1, 2`,
    },
  ]
  out(`Ranges ending now, engine ${database.engine}, ${fmt(events.length)} events (${fmt(recent)} in the ${fmt(sinceQuarter / 60_000, 1)} min since the last quarter-hour), ${RUNS} runs, ${new Date().toISOString()}`)
  out()
  out('| question | api p50 / p95 | raw p50 | raw p50 / api p95 |')
  out('| --- | --- | --- | --- |')
  for (const q of questions) {
    const api: number[] = []
    const raw: number[] = []
    for (let r = 0; r < RUNS + 3; r++) {
      const t = Date.now()
      const started = performance.now()
      const res = await app.inject({ method: 'GET', url: q.url(t), headers })
      if (res.statusCode !== 200) throw new Error(`${q.url(t)}: ${res.statusCode} ${res.body.slice(0, 300)}`)
      if (r >= 3) api.push(performance.now() - started)
      if (r % 3 === 0) {
        const rawStarted = performance.now()
        await database.rows(q.raw(t))
        raw.push(performance.now() - rawStarted)
      }
    }
    api.sort((x, y) => x - y)
    raw.sort((x, y) => x - y)
    const [p50, p95, rawP50] = [percentile(api, 50), percentile(api, 95), percentile(raw, 50)]
    out(`| ${q.name} | ${fmt(p50, 1)} / ${fmt(p95, 1)} ms | ${fmt(rawP50, 1)} ms | ${fmt(rawP50 / p95, 1)}x |`)
  }
} finally {
  await app.close()
  if (database.engine === 'postgres') await database.db.execute(sql.raw(`DROP SCHEMA "${schema}" CASCADE`))
  await database.close()
}
