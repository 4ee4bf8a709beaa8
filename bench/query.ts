/**
 * Query benchmark: every analytics endpoint against the same question answered by a plain
 * GROUP BY over the raw events table, in the same run, on the same data.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx bench/query.ts [--events 10000000] [--runs 30] [--keep]
 *   BENCH_EVENTS=200000 npm run bench:query      # the same, scaled down while developing
 *   npx tsx bench/query.ts --reuse bench_query_1234 # the events and rollups of a schema kept by --keep, migrated
 *
 * Generates N events spread over the 90 days before now (50 bots, 10 models, 5% failures with a
 * skewed mix of messages, log-normal-ish latencies, metadata with a skewed userId and chatId)
 * directly in SQL with INSERT ... SELECT FROM generate_series, with the secondary indexes of
 * usage_events dropped during the load and built after it, then rebuilds every rollup
 * (rebuildRollups). This bypasses HTTP ingest on purpose: it loads 10M events in minutes instead
 * of hours, and ingest speed is bench/ingest.ts's subject.
 * Everything lives in a schema of its own (bench_query_<pid>), dropped at the end unless --keep.
 * Endpoints are timed through app.inject (routing, validation, auth, serialization included).
 */
import { sql, type SQL } from 'drizzle-orm'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { rebuildRollups } from '../src/usage/rollups.js'
import { syncMetadataRollupKeys } from '../src/usage/metadata-keys.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { connectDatabase, rowsOf } from '../src/db/connect.js'
import { migrateDatabase } from '../src/db/migrate.js'

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: process.env.BENCH_EVENTS ?? '1000000' },
    runs: { type: 'string', default: '30' },
    'raw-runs': { type: 'string', default: '5' },
    keep: { type: 'boolean', default: false },
    reuse: { type: 'string' },
    /** Time only the rows whose question contains this text (e.g. --only metadata). */
    only: { type: 'string' },
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
const schema = args.reuse ?? `bench_query_${process.pid}`

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

/** Whether a row meets the issue's target: p95 <= 25 ms and the raw p50 at least 40x the api p95. */
const TARGET_P95_MS = 25
const TARGET_RATIO = 40

async function newestEvent(url: string, name: string): Promise<Date> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query<{ at: Date }>(`SELECT max(created_at) AS at FROM "${name}".usage_events`)
    return new Date(rows[0].at.getTime() + 1)
  } finally {
    await client.end()
  }
}

async function main(): Promise<void> {
  const database = await connectDatabase({ databaseUrl: databaseUrl ?? null, dataDir: 'memory://', schema, poolSize: 10 })
  const reused = args.reuse !== undefined
  // A reused schema's events end when it was generated: time the questions relative to its newest event.
  const now = reused ? await newestEvent(databaseUrl, schema) : new Date()
  try {
    log(`# bench:query: ${EVENTS.toLocaleString('en')} events over ${DAYS} days, ${BOTS} bots, ${MODELS} models; schema ${schema}`)
    await migrateDatabase(database)
    // The secondary indexes are built once after the load instead of row by row during it.
    const indexes = await database.rows<{ name: string; definition: string }>(sql`
      SELECT indexname AS name, indexdef AS definition FROM pg_indexes
      WHERE schemaname = ${schema} AND tablename = 'usage_events' AND indexname <> 'usage_events_pkey'`)
    if (reused) indexes.length = 0
    for (const index of indexes) await database.db.execute(sql.raw(`DROP INDEX "${schema}"."${index.name}"`))
    // Spread uniformly over the 90 days before now; one chunk per statement keeps progress visible.
    const chunk = 1_000_000
    await timed('generate raw events (INSERT ... SELECT generate_series)', async () => {
      for (let start = 1; !reused && start <= EVENTS; start += chunk) {
        const end = Math.min(EVENTS, start + chunk - 1)
        // Failures: a few frequent messages and a long tail; users (100 per bot, 5000 in all) and chats
        // (800, shared by all bots) skewed: a few heavy ones.
        await database.db.execute(sql`
          INSERT INTO usage_events (id, bot_id, created_at, received_at, provider, model, request_type, success, error_message,
            input_tokens, output_tokens, total_tokens, cache_read_tokens, reasoning_tokens, latency_ms, cost, reported_cost,
            priced, price_source, metadata)
          SELECT 'ev' || g, 'bot_' || (g % ${BOTS}), ts, ts, CASE WHEN m < 5 THEN 'anthropic' ELSE 'openai' END, 'model_' || m,
            CASE WHEN m = 9 THEN 'embedding' ELSE 'message' END, NOT failed,
            CASE WHEN failed THEN (ARRAY['rate limited', 'overloaded', 'timeout after 60 s', 'context length exceeded',
              'upstream error 502'])[1 + floor(4.99 * r1 * r1)::int] || CASE WHEN r1 > 0.9 THEN ' #' || (g % 40) ELSE '' END END,
            inp, outp, inp + outp, inp / 4, outp / 10, CASE WHEN g % 50 = 0 THEN NULL ELSE (200 + exp(random() * 9))::int END,
            round((inp * (m + 1) * 0.000001 + outp * (m + 1) * 0.000004)::numeric, 12), NULL, m <> 8, 'bench',
            jsonb_build_object('userId', 'user_' || (g % ${BOTS}) || '_' || floor(100 * r2 * r2 * r2)::int, 'chatId', 1000 + floor(800 * r1 * r2)::int,
              'plan', CASE WHEN g % 7 = 0 THEN 'pro' ELSE 'free' END)
          FROM (
            SELECT g, ${now.toISOString()}::timestamptz - (random() * ${DAYS * 86400}) * interval '1 second' AS ts,
              (g / ${BOTS}) % ${MODELS} AS m, random() < 0.05 AS failed, (random() * 4000)::int AS inp, (random() * 1000)::int AS outp,
              random() AS r1, random() AS r2
            FROM generate_series(${start}::bigint, ${end}::bigint) g
          ) s`)
        log(`    ${end.toLocaleString('en')} events`)
      }
    })
    await timed(`build the ${indexes.length} secondary indexes of usage_events`, async () => {
      for (const index of indexes) await database.db.execute(sql.raw(index.definition))
    })
    if (!reused) {
      // The declared metadata keys, as if declared before the first event (so all of them are folded).
      await syncMetadataRollupKeys(database, { keys: ['userId', 'chatId'], maxValues: 1000 }, { now: new Date(now.getTime() - (DAYS + 1) * 86_400_000), maxFutureSkewMs: 0 })
      // A reused schema's rollups were rebuilt when it was generated; rollups added since, by the migration's backfill.
      await timed('rebuild every rollup (rebuildRollups)', () => rebuildRollups(database))
    }
    await timed('VACUUM ANALYZE', async () => {
      const tables = await database.rows<{ name: string }>(sql`
        SELECT tablename AS name FROM pg_tables WHERE schemaname = ${schema} AND tablename LIKE 'usage%'`)
      for (const table of tables) await database.db.execute(sql.raw(`VACUUM ANALYZE "${schema}"."${table.name}"`))
    })
    const sizes = await database.rows<{ name: string; rows: string; size: string }>(sql`
      SELECT c.relname AS name, c.reltuples::bigint::text AS rows, pg_size_pretty(pg_total_relation_size(c.oid)) AS size
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema} AND c.relkind = 'r' AND (c.relname LIKE 'usage%' OR c.relname LIKE 'metadata%') ORDER BY 1`)
    for (const s of sizes) log(`  ${s.name}: ~${Number(s.rows).toLocaleString('en')} rows, ${s.size} with indexes`)

    const app = await buildApp(
      loadConfig({
        DATABASE_URL: databaseUrl,
        DATABASE_SCHEMA: schema,
        MIGRATE: 'false',
        ADMIN_API_KEY: ADMIN_KEY,
        LOG_LEVEL: 'silent',
        RATE_LIMIT_MAX: '10000000',
        METADATA_ROLLUP_KEYS: 'userId,chatId',
        METADATA_ROLLUP_MAX_VALUES: '1000',
        METADATA_RAW_MAX_DAYS: '400',
      }),
    )
    const day = (offset: number) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - offset)).toISOString().slice(0, 10)
    const results: string[][] = []
    const header = ['question', 'range', 'api p50', 'api p95', 'raw p50', 'raw p50/api p50', 'raw p50/api p95', 'target']
    const ms = (v: number) => `${v.toFixed(1)} ms`

    async function compare(question: string, range: string, url: string, raw: (() => Promise<unknown>) | null, runs = RUNS): Promise<void> {
      if (args.only !== undefined && !question.includes(args.only)) return
      const check = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      if (check.statusCode !== 200) throw new Error(`${url}: ${check.statusCode} ${check.body.slice(0, 300)}`)
      const api = await sample(
        async () => {
          await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ADMIN_KEY}` } })
        },
        runs,
        Math.min(3, runs),
      )
      const rawTimes = raw ? await sample(async () => void (await raw()), RAW_RUNS, 1) : null
      const row = [question, range, ms(api.p50), ms(api.p95)]
      if (rawTimes) {
        const met = api.p95 <= TARGET_P95_MS && rawTimes.p50 / api.p95 >= TARGET_RATIO
        row.push(ms(rawTimes.p50), `${(rawTimes.p50 / api.p50).toFixed(0)}x`, `${(rawTimes.p50 / api.p95).toFixed(0)}x`, met ? 'met' : 'MISSED')
      } else {
        row.push('-', '-', '-', api.p95 <= TARGET_P95_MS ? 'p95 met' : 'p95 MISSED')
      }
      results.push(row)
      log(`  ${row.join(' | ')}`)
    }

    // The raw baseline runs with JIT at Postgres' default (on; the service's own sessions turn it
    // off): JIT speeds a GROUP BY over millions of rows, so the baseline is the stronger one.
    const rawRows = (query: SQL) =>
      database.db.transaction(async (tx) => {
        if (databaseUrl) await tx.execute(sql`SET LOCAL jit = on`)
        return rowsOf(await tx.execute(query))
      })
    const rawRange = (from: string, to: string) => sql`created_at >= ${from}::timestamptz AND created_at < ${to}::timestamptz`
    /** [from, to) of the local days startDate..endDate (inclusive) in tz, as the API resolves them. */
    const localDays = (startDate: string, endDate: string, tz: string) =>
      sql`created_at >= (${startDate}::date::timestamp AT TIME ZONE ${tz}) AND created_at < ((${endDate}::date + 1)::timestamp AT TIME ZONE ${tz})`
    const bucketsRaw = (unit: string, tz: string, where: ReturnType<typeof sql>) => () =>
      rawRows(sql`SELECT date_trunc(${unit}, created_at, ${tz}), count(*), count(*) FILTER (WHERE NOT success), sum(input_tokens),
        sum(output_tokens), sum(total_tokens), coalesce(sum(cost), 0), avg(latency_ms) FROM usage_events WHERE ${where} GROUP BY 1`)
    const summaryRaw = (where: ReturnType<typeof sql>, previous: ReturnType<typeof sql>) => () =>
      Promise.all([
        rawRows(sql`SELECT bot_id, provider, model, count(*), count(*) FILTER (WHERE NOT success), sum(input_tokens),
          sum(output_tokens), sum(total_tokens), sum(cache_read_tokens), sum(reasoning_tokens), coalesce(sum(cost), 0),
          count(*) FILTER (WHERE NOT priced), avg(latency_ms)
          FROM usage_events WHERE ${where} GROUP BY GROUPING SETS ((), (provider, model), (bot_id))`),
        rawRows(sql`SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) FROM usage_events WHERE ${where}`),
        rawRows(sql`SELECT count(*), coalesce(sum(cost), 0) FROM usage_events WHERE ${previous}`),
      ])
    log('\n# timings (each endpoint via app.inject; raw = the same question as one GROUP BY over usage_events)')
    for (const days of [30, 90]) {
      // Whole UTC days, as a dashboard's date picker sends them: startDate..endDate inclusive.
      const [startDate, endDate] = [day(days), day(1)]
      const [from, to] = [`${startDate}T00:00:00Z`, `${day(0)}T00:00:00Z`]
      const range = `${days}d`
      const q = `startDate=${startDate}&endDate=${endDate}`
      const where = rawRange(from, to)
      await compare('stats GET /api/usage', range, `/api/usage?${q}`, () =>
        rawRows(sql`SELECT model, provider, count(*), count(*) FILTER (WHERE NOT success), sum(input_tokens), sum(output_tokens),
          sum(total_tokens), sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), coalesce(sum(cost), 0),
          count(*) FILTER (WHERE NOT priced), sum(sum(cost)) OVER () FROM usage_events WHERE ${where} GROUP BY model, provider`),
      )
      const previous = sql`created_at >= ${from}::timestamptz - ${`${days} days`}::interval AND created_at < ${from}::timestamptz`
      await compare('summary', range, `/api/usage/summary?${q}`, summaryRaw(where, previous))
      await compare('timeseries interval=day', range, `/api/usage/timeseries?interval=day&${q}`, bucketsRaw('day', 'UTC', where))
      await compare('timeseries day groupBy=model', range, `/api/usage/timeseries?interval=day&groupBy=model&${q}`, () =>
        rawRows(sql`SELECT date_trunc('day', created_at, 'UTC'), model, count(*), sum(total_tokens), coalesce(sum(cost), 0)
          FROM usage_events WHERE ${where} GROUP BY 1, 2`),
      )
      for (const tz of ['Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu']) {
        const zoned = localDays(startDate, endDate, tz)
        await compare(`timeseries day tz=${tz}`, range, `/api/usage/timeseries?interval=day&tz=${tz}&${q}`, bucketsRaw('day', tz, zoned))
      }
      const berlin = localDays(startDate, endDate, 'Europe/Berlin')
      await compare('timeseries day groupBy=model tz=Europe/Berlin', range, `/api/usage/timeseries?interval=day&groupBy=model&tz=Europe/Berlin&${q}`, () =>
        rawRows(sql`SELECT date_trunc('day', created_at, 'Europe/Berlin'), model, count(*), sum(total_tokens), coalesce(sum(cost), 0)
          FROM usage_events WHERE ${berlin} GROUP BY 1, 2`),
      )
      if (days === 90) {
        for (const unit of ['week', 'month']) {
          await compare(`timeseries ${unit} tz=Europe/Berlin`, range, `/api/usage/timeseries?interval=${unit}&tz=Europe/Berlin&${q}`, bucketsRaw(unit, 'Europe/Berlin', berlin))
        }
        // Weeks and months of a zone with a :30 offset: their edges are quarter-hours.
        const kolkata = localDays(startDate, endDate, 'Asia/Kolkata')
        for (const unit of ['week', 'month']) {
          await compare(`timeseries ${unit} tz=Asia/Kolkata`, range, `/api/usage/timeseries?interval=${unit}&tz=Asia/Kolkata&${q}`, bucketsRaw(unit, 'Asia/Kolkata', kolkata))
        }
      }
      await compare('summary tz=Asia/Kolkata', range, `/api/usage/summary?tz=Asia/Kolkata&${q}`, summaryRaw(localDays(startDate, endDate, 'Asia/Kolkata'), sql`FALSE`))
      await compare('breakdown groupBy=model', range, `/api/usage/breakdown?groupBy=model&${q}`, () =>
        rawRows(sql`SELECT model, count(*), sum(total_tokens), coalesce(sum(cost), 0) FROM usage_events WHERE ${where} GROUP BY model`),
      )
      await compare('summary botId=bot_7 (bound key)', range, `/api/usage/summary?botId=bot_7&${q}`, () =>
        rawRows(sql`SELECT provider, model, count(*), sum(total_tokens), coalesce(sum(cost), 0) FROM usage_events
          WHERE bot_id = 'bot_7' AND ${where} GROUP BY GROUPING SETS ((), (provider, model))`),
      )
      await compare('errors (top messages + page 1)', range, `/api/usage/errors?${q}&top=10&limit=20`, () =>
        rawRows(sql`SELECT error_message, count(*), max(created_at) FROM usage_events WHERE NOT success AND ${where}
          GROUP BY 1 ORDER BY 2 DESC LIMIT 10`),
      )
    }
    // Ranges that end now, as a dashboard's "last 24 hours / 7 days / 30 days" asks them.
    for (const [label, hours, interval] of [['24h', 24, 'hour'], ['7d', 168, 'day'], ['30d', 720, 'day']] as const) {
      const start = new Date(now.getTime() - hours * 3_600_000).toISOString()
      const rolling = `startDate=${encodeURIComponent(start)}&endDate=${encodeURIComponent(now.toISOString())}`
      const where = rawRange(start, now.toISOString())
      const previous = rawRange(new Date(now.getTime() - 2 * hours * 3_600_000).toISOString(), start)
      await compare('summary, ending now', label, `/api/usage/summary?${rolling}`, summaryRaw(where, previous))
      await compare(`timeseries ${interval} tz=Europe/Berlin, ending now`, label, `/api/usage/timeseries?interval=${interval}&tz=Europe/Berlin&${rolling}`,
        bucketsRaw(interval, 'Europe/Berlin', where))
      await compare(`timeseries ${interval} groupBy=model tz=Asia/Kolkata, ending now`, label,
        `/api/usage/timeseries?interval=${interval}&groupBy=model&tz=Asia/Kolkata&${rolling}`, () =>
          rawRows(sql`SELECT date_trunc(${interval}, created_at, 'Asia/Kolkata'), model, count(*), sum(total_tokens), coalesce(sum(cost), 0)
            FROM usage_events WHERE ${where} GROUP BY 1, 2`))
      await compare('errors, ending now', label, `/api/usage/errors?${rolling}&top=10&limit=20`, () =>
        rawRows(sql`SELECT error_message, count(*), max(created_at) FROM usage_events WHERE NOT success AND ${where}
          GROUP BY 1 ORDER BY 2 DESC LIMIT 10`),
      )
    }
    await compare('events page 1 (30d)', '30d', `/api/usage/events?startDate=${day(30)}`, null)
    // Breakdowns by declared metadata keys (userId: 100 per bot, 5000 values, 1000 listed, the rest
    // in "other"; chatId: 800 values across bots) read their rollups; an undeclared key (plan) reads raw events.
    const metadataRaw = (key: string, where: ReturnType<typeof sql>) => () =>
      rawRows(sql`SELECT metadata ->> ${key}, count(*), count(*) FILTER (WHERE NOT success), sum(total_tokens), coalesce(sum(cost), 0),
        avg(latency_ms) FROM usage_events WHERE ${where} GROUP BY 1 ORDER BY 5 DESC LIMIT 20`)
    for (const [label, hours] of [['24h', 24], ['7d', 168], ['30d', 720]] as const) {
      const start = new Date(now.getTime() - hours * 3_600_000).toISOString()
      const rolling = `startDate=${encodeURIComponent(start)}&endDate=${encodeURIComponent(now.toISOString())}`
      await compare('breakdown metadata.userId, ending now', label, `/api/usage/breakdown?groupBy=metadata.userId&limit=20&${rolling}`,
        metadataRaw('userId', rawRange(start, now.toISOString())))
    }
    await compare('breakdown metadata.chatId, ending now', '7d',
      `/api/usage/breakdown?groupBy=metadata.chatId&limit=20&startDate=${encodeURIComponent(new Date(now.getTime() - 168 * 3_600_000).toISOString())}&endDate=${encodeURIComponent(now.toISOString())}`,
      metadataRaw('chatId', rawRange(new Date(now.getTime() - 168 * 3_600_000).toISOString(), now.toISOString())))
    await compare('breakdown metadata.userId tz=Asia/Kolkata', '30d', `/api/usage/breakdown?groupBy=metadata.userId&limit=20&tz=Asia/Kolkata&startDate=${day(30)}&endDate=${day(1)}`,
      metadataRaw('userId', localDays(day(30), day(1), 'Asia/Kolkata')))
    await compare('breakdown metadata.userId,botId', '30d', `/api/usage/breakdown?groupBy=metadata.userId,botId&limit=20&startDate=${day(30)}&endDate=${day(1)}`, () =>
      rawRows(sql`SELECT metadata ->> 'userId', bot_id, count(*), sum(total_tokens), coalesce(sum(cost), 0) FROM usage_events
        WHERE ${rawRange(`${day(30)}T00:00:00Z`, `${day(0)}T00:00:00Z`)} GROUP BY 1, 2 ORDER BY 5 DESC LIMIT 20`))
    await compare('breakdown metadata.plan (undeclared: raw)', '1d', `/api/usage/breakdown?groupBy=metadata.plan&limit=20&startDate=${day(1)}&endDate=${day(1)}`,
      metadataRaw('plan', rawRange(`${day(1)}T00:00:00Z`, `${day(0)}T00:00:00Z`)), Math.min(RUNS, 5))
    for (const url of [`/api/usage/breakdown?groupBy=metadata.userId&startDate=${day(7)}`, `/api/usage/breakdown?groupBy=metadata.plan&startDate=${day(1)}&endDate=${day(1)}`]) {
      const res = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      const body = res.json() as { source: string; rows: { other?: boolean }[]; groupCount: number }
      log(`  ${url}: source ${body.source}, ${body.groupCount} groups${body.rows.some((r) => r.other) ? ', with an other row' : ''}`)
    }
    const month = day(1).slice(0, 7)
    await compare(`monthly report ${month}`, 'month', `/api/reports/monthly?month=${month}`, null)
    await app.close()

    log('\n' + header.join(' | '))
    log(header.map(() => '---').join(' | '))
    for (const r of results) log(r.join(' | '))
    const missed = results.filter((r) => r[7].includes('MISSED'))
    log(`\n${results.length - missed.length} of ${results.length} rows meet the target (p95 <= ${TARGET_P95_MS} ms, raw p50 >= ${TARGET_RATIO}x api p95)`)
  } finally {
    await database.close()
    if (!args.keep && !reused) {
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
