/**
 * Query benchmark: every analytics endpoint against the same question answered by a plain
 * GROUP BY over the raw events table, in the same run, on the same data.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx bench/query.ts [--events 10000000] [--runs 30] [--keep]
 *
 * Generates N events spread over the 90 days before now (50 bots, 10 models, 5% failures, log-normal-ish
 * latencies) directly in SQL with INSERT ... SELECT FROM generate_series, then builds both rollups
 * from raw with one INSERT ... SELECT ... GROUP BY each. This bypasses HTTP ingest on purpose: it
 * loads 10M events in minutes instead of hours, and ingest speed is bench/ingest.ts's subject.
 * Everything lives in a schema of its own (bench_query_<pid>), dropped at the end unless --keep.
 * Endpoints are timed through app.inject (routing, validation, auth, serialization included).
 */
import { sql } from 'drizzle-orm'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { ROLLUP_TABLES } from '../src/db/event-store.js'
import { rebuildRollups } from '../src/usage/rollups.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { connectDatabase } from '../src/db/connect.js'
import { migrateDatabase } from '../src/db/migrate.js'

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '30' },
    'raw-runs': { type: 'string', default: '5' },
    keep: { type: 'boolean', default: false },
  },
})
const EVENTS = Number(args.events)
const RUNS = Number(args.runs)
const RAW_RUNS = Number(args['raw-runs'])
const BOTS = 50
const MODELS = 10
const DAYS = 90
const ADMIN_KEY = 'usk_bench_admin_key_0123456789abcdef'

// Like bench/ingest.ts: the machine's local PostgreSQL unless told otherwise.
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const log = (line: string): void => void process.stdout.write(`${line}\n`)
const schema = `bench_query_${process.pid}`

async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const started = performance.now()
  const result = await fn()
  log(`  ${label}: ${((performance.now() - started) / 1000).toFixed(1)} s`)
  return result
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]
}

async function sample(fn: () => Promise<void>, runs: number, warmup: number): Promise<{ p50: number; p95: number }> {
  for (let i = 0; i < warmup; i++) await fn()
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const started = performance.now()
    await fn()
    times.push(performance.now() - started)
  }
  return { p50: percentile(times, 0.5), p95: percentile(times, 0.95) }
}

async function main(): Promise<void> {
  const database = await connectDatabase({ databaseUrl: databaseUrl ?? null, dataDir: 'memory://', schema, poolSize: 10 })
  const now = new Date()
  try {
    log(`# bench:query: ${EVENTS.toLocaleString('en')} events over ${DAYS} days, ${BOTS} bots, ${MODELS} models; schema ${schema}`)
    await migrateDatabase(database)
    // Spread uniformly over the 90 days before now; one chunk per statement keeps progress visible.
    const chunk = 1_000_000
    await timed('generate raw events (INSERT ... SELECT generate_series)', async () => {
      for (let start = 1; start <= EVENTS; start += chunk) {
        const end = Math.min(EVENTS, start + chunk - 1)
        await database.db.execute(sql`
          INSERT INTO usage_events (id, bot_id, created_at, received_at, provider, model, request_type, success, error_message,
            input_tokens, output_tokens, total_tokens, cache_read_tokens, reasoning_tokens, latency_ms, cost, reported_cost,
            priced, price_source, metadata)
          SELECT 'ev' || g, 'bot_' || (g % ${BOTS}), ts, ts, CASE WHEN m < 5 THEN 'anthropic' ELSE 'openai' END, 'model_' || m,
            CASE WHEN m = 9 THEN 'embedding' ELSE 'message' END, NOT failed,
            CASE WHEN failed THEN 'upstream error ' || (g % 13) END,
            inp, outp, inp + outp, inp / 4, outp / 10, CASE WHEN g % 50 = 0 THEN NULL ELSE (200 + exp(random() * 9))::int END,
            round((inp * (m + 1) * 0.000001 + outp * (m + 1) * 0.000004)::numeric, 12), NULL, m <> 8, 'bench',
            jsonb_build_object('userId', 'user_' || (g % 1000))
          FROM (
            SELECT g, ${now.toISOString()}::timestamptz - (random() * ${DAYS * 86400}) * interval '1 second' AS ts,
              (g / ${BOTS}) % ${MODELS} AS m, random() < 0.05 AS failed, (random() * 4000)::int AS inp, (random() * 1000)::int AS outp
            FROM generate_series(${start}::bigint, ${end}::bigint) g
          ) s`)
        log(`    ${end.toLocaleString('en')} events`)
      }
    })
    await timed('build every rollup from raw (one INSERT ... SELECT ... GROUP BY each)', () => rebuildRollups(database))
    await timed('VACUUM ANALYZE', async () => {
      for (const table of ['usage_events', ...ROLLUP_TABLES.map((r) => r.name)]) await database.db.execute(sql.raw(`VACUUM ANALYZE ${table}`))
    })
    const sizes = await database.rows<{ name: string; rows: string; size: string }>(sql`
      SELECT c.relname AS name, c.reltuples::bigint::text AS rows, pg_size_pretty(pg_total_relation_size(c.oid)) AS size
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema} AND c.relkind = 'r' AND c.relname LIKE 'usage%' ORDER BY 1`)
    for (const s of sizes) log(`  ${s.name}: ~${Number(s.rows).toLocaleString('en')} rows, ${s.size} with indexes`)

    const app = await buildApp(
      loadConfig({
        DATABASE_URL: databaseUrl,
        DATABASE_SCHEMA: schema,
        MIGRATE: 'false',
        ADMIN_API_KEY: ADMIN_KEY,
        LOG_LEVEL: 'silent',
        RATE_LIMIT_MAX: '10000000',
      }),
    )
    const day = (offset: number) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - offset)).toISOString().slice(0, 10)
    const results: string[][] = []
    const header = ['question', 'range', 'api p50', 'api p95', 'raw p50', 'raw p95', 'raw/api p50', 'raw p50/api p95']
    const ms = (v: number) => `${v.toFixed(1)} ms`

    async function compare(question: string, range: string, url: string, raw: (() => Promise<unknown>) | null): Promise<void> {
      const check = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      if (check.statusCode !== 200) throw new Error(`${url}: ${check.statusCode} ${check.body.slice(0, 300)}`)
      const api = await sample(
        async () => {
          await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ADMIN_KEY}` } })
        },
        RUNS,
        3,
      )
      const rawTimes = raw ? await sample(async () => void (await raw()), RAW_RUNS, 1) : null
      const row = [question, range, ms(api.p50), ms(api.p95)]
      if (rawTimes) row.push(ms(rawTimes.p50), ms(rawTimes.p95), `${(rawTimes.p50 / api.p50).toFixed(0)}x`, `${(rawTimes.p50 / api.p95).toFixed(0)}x`)
      else row.push('-', '-', '-', '-')
      results.push(row)
      log(`  ${row.join(' | ')}`)
    }

    const rawRange = (from: string, to: string) => sql`created_at >= ${from}::timestamptz AND created_at < ${to}::timestamptz`
    log('\n# timings (each endpoint via app.inject; raw = the same question as one GROUP BY over usage_events)')
    for (const days of [30, 90]) {
      // Whole UTC days, as a dashboard's date picker sends them: startDate..endDate inclusive.
      const [startDate, endDate] = [day(days), day(1)]
      const [from, to] = [`${startDate}T00:00:00Z`, `${day(0)}T00:00:00Z`]
      const range = `${days}d`
      const q = `startDate=${startDate}&endDate=${endDate}`
      const where = rawRange(from, to)
      await compare('stats GET /api/usage', range, `/api/usage?${q}`, () =>
        database.rows(sql`SELECT model, provider, count(*), count(*) FILTER (WHERE NOT success), sum(input_tokens), sum(output_tokens),
          sum(total_tokens), sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), coalesce(sum(cost), 0),
          count(*) FILTER (WHERE NOT priced), sum(sum(cost)) OVER () FROM usage_events WHERE ${where} GROUP BY model, provider`),
      )
      await compare('summary', range, `/api/usage/summary?${q}`, () =>
        Promise.all([
          database.rows(sql`SELECT bot_id, provider, model, count(*), count(*) FILTER (WHERE NOT success), sum(input_tokens),
            sum(output_tokens), sum(total_tokens), sum(cache_read_tokens), sum(reasoning_tokens), coalesce(sum(cost), 0),
            count(*) FILTER (WHERE NOT priced), avg(latency_ms)
            FROM usage_events WHERE ${where} GROUP BY GROUPING SETS ((), (provider, model), (bot_id))`),
          database.rows(sql`SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) FROM usage_events WHERE ${where}`),
          database.rows(sql`SELECT count(*), coalesce(sum(cost), 0) FROM usage_events
            WHERE created_at >= ${from}::timestamptz - ${`${days} days`}::interval AND created_at < ${from}::timestamptz`),
        ]),
      )
      await compare('timeseries interval=day', range, `/api/usage/timeseries?interval=day&${q}`, () =>
        database.rows(sql`SELECT date_trunc('day', created_at, 'UTC'), count(*), count(*) FILTER (WHERE NOT success), sum(input_tokens),
          sum(output_tokens), sum(total_tokens), coalesce(sum(cost), 0), avg(latency_ms) FROM usage_events WHERE ${where} GROUP BY 1`),
      )
      await compare('timeseries day groupBy=model', range, `/api/usage/timeseries?interval=day&groupBy=model&${q}`, () =>
        database.rows(sql`SELECT date_trunc('day', created_at, 'UTC'), model, count(*), sum(total_tokens), coalesce(sum(cost), 0)
          FROM usage_events WHERE ${where} GROUP BY 1, 2`),
      )
      await compare('timeseries day tz=Europe/Berlin', range, `/api/usage/timeseries?interval=day&tz=Europe/Berlin&${q}`, () =>
        database.rows(sql`SELECT date_trunc('day', created_at, 'Europe/Berlin'), count(*), sum(total_tokens), coalesce(sum(cost), 0)
          FROM usage_events WHERE ${where} GROUP BY 1`),
      )
      await compare('breakdown groupBy=model', range, `/api/usage/breakdown?groupBy=model&${q}`, () =>
        database.rows(sql`SELECT model, count(*), sum(total_tokens), coalesce(sum(cost), 0) FROM usage_events WHERE ${where} GROUP BY model`),
      )
      await compare('summary botId=bot_7 (bound key)', range, `/api/usage/summary?botId=bot_7&${q}`, () =>
        database.rows(sql`SELECT provider, model, count(*), sum(total_tokens), coalesce(sum(cost), 0) FROM usage_events
          WHERE bot_id = 'bot_7' AND ${where} GROUP BY GROUPING SETS ((), (provider, model))`),
      )
      const rolling = `startDate=${encodeURIComponent(new Date(now.getTime() - days * 86_400_000).toISOString())}&endDate=${encodeURIComponent(now.toISOString())}`
      await compare('summary, rolling (partial edges)', range, `/api/usage/summary?${rolling}`, null)
    }
    await compare('errors page 1 (30d)', '30d', `/api/usage/errors?startDate=${day(30)}`, null)
    await compare('events page 1 (30d)', '30d', `/api/usage/events?startDate=${day(30)}`, null)
    await compare('breakdown metadata.userId (1d, raw)', '1d', `/api/usage/breakdown?groupBy=metadata.userId&startDate=${day(1)}&endDate=${day(1)}`, null)
    const month = day(1).slice(0, 7)
    await compare(`monthly report ${month}`, 'month', `/api/reports/monthly?month=${month}`, null)
    await app.close()

    log('\n' + header.join(' | '))
    log(header.map(() => '---').join(' | '))
    for (const r of results) log(r.join(' | '))
  } finally {
    await database.close()
    if (!args.keep) {
      const client = new pg.Client({ connectionString: databaseUrl })
      await client.connect()
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      await client.end()
    } else {
      log(`kept schema ${schema}`)
    }
  }
}

await main()
