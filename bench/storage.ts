/**
 * Storage per million events: COPYs synthetic events (20 bots, 8 models of 3 providers, 30 days,
 * 3% failures with a message, latency, small metadata) into a private, migrated schema, rebuilds
 * the rollups from them, prints every table's size (heap + indexes + TOAST) and drops the schema.
 *
 *   npx tsx bench/storage.ts                 # 1,000,000 events into the Postgres at DATABASE_URL
 *   npx tsx bench/storage.ts --events 200000
 */
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { rebuildRollups } from '../src/usage/rollups.js'
import { connectDatabase } from '../src/db/connect.js'
import { migrateDatabase } from '../src/db/migrate.js'

const { values: args } = parseArgs({ options: { events: { type: 'string' } } })
const events = Number(args.events ?? 1_000_000)
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const schema = `storage_${randomBytes(4).toString('hex')}`
const out = (line: string) => process.stdout.write(`${line}\n`)

const MODELS = [
  ['anthropic', 'claude-sonnet-4-5'],
  ['anthropic', 'claude-haiku-4-5'],
  ['anthropic', 'claude-opus-4-1'],
  ['openai', 'gpt-4o'],
  ['openai', 'gpt-4o-mini'],
  ['openai', 'o4-mini'],
  ['google', 'gemini-2.5-flash'],
  ['google', 'gemini-2.5-pro'],
] as const
const DAYS = 30
const start = Date.parse('2026-10-01T00:00:00Z')

const database = await connectDatabase({ databaseUrl, dataDir: 'memory://', schema })
const admin = new pg.Client({ connectionString: databaseUrl })
await admin.connect()
try {
  await migrateDatabase(database)
  const client = new pg.Client({ connectionString: databaseUrl, options: `-c search_path=${schema}` })
  await client.connect()
  const columns =
    'id, bot_id, created_at, received_at, provider, model, request_type, success, error_message, input_tokens, output_tokens, total_tokens, cache_read_tokens, reasoning_tokens, latency_ms, cost, reported_cost, priced, price_source, metadata'
  let i = 0
  const loadStarted = performance.now()
  const source = new Readable({
    read() {
      for (let n = 0; n < 5000 && i < events; n++, i++) {
        // Events in time order, as ingest appends them; ids as the client's UUIDv7-like keys.
        const at = new Date(start + Math.floor((i / events) * DAYS * 86_400_000)).toISOString()
        const [provider, model] = MODELS[i % MODELS.length]
        const ok = i % 33 !== 0
        const input = 200 + (i % 4000)
        const output = 50 + (i % 900)
        const id = `${randomBytes(16).toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-')}`
        const error = ok ? '\\N' : 'rate_limit_error: Number of request tokens has exceeded your per-minute rate limit'
        const cost = ((input * 3 + output * 15) / 1_000_000).toFixed(9)
        this.push(
          `${id}\tbot_${i % 20}\t${at}\t${at}\t${provider}\t${model}\tmessage\t${ok ? 't' : 'f'}\t${error}\t${input}\t${output}\t${input + output}\t${i % 3 === 0 ? Math.floor(input / 2) : 0}\t0\t${300 + (i % 5000)}\t${cost}\t${cost}\tt\tgenai-prices@0.1:${provider}/${model}\t{"chatId": ${i % 5000}, "lang": "en"}\n`,
        )
      }
      if (i >= events) this.push(null)
    },
  })
  await pipeline(source, client.query(copyFrom(`COPY usage_events (${columns}) FROM STDIN`)))
  const loadSeconds = (performance.now() - loadStarted) / 1000
  await client.end()
  const rollupStarted = performance.now()
  await rebuildRollups(database)
  const rollupSeconds = (performance.now() - rollupStarted) / 1000
  for (const table of ['usage_events', 'usage_hourly', 'usage_daily', 'usage_daily_bots', 'usage_daily_models']) {
    await admin.query(`VACUUM ANALYZE "${schema}"."${table}"`)
  }

  const sizes = await admin.query<{ table: string; rows: string; heap: string; indexes: string; total: string }>(
    `SELECT c.relname AS table, c.reltuples::bigint AS rows, pg_relation_size(c.oid) AS heap,
            pg_indexes_size(c.oid) AS indexes, pg_total_relation_size(c.oid) AS total
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname LIKE 'usage%'
      ORDER BY pg_total_relation_size(c.oid) DESC`,
    [schema],
  )
  const mib = (bytes: string | number) => `${(Number(bytes) / 1024 / 1024).toFixed(1)} MiB`
  const perMillion = (bytes: string | number) => mib((Number(bytes) * 1_000_000) / events)
  out(`Storage, ${events.toLocaleString('en-US')} synthetic events (${DAYS} days, 20 bots, 8 models), ${new Date().toISOString()}`)
  out(`COPY ${(events / loadSeconds).toFixed(0)} rows/s (indexes maintained, no rollups); rollup rebuild ${rollupSeconds.toFixed(1)} s\n`)
  out('| table | rows | heap | indexes | total | total per 1M events |')
  out('| --- | --- | --- | --- | --- | --- |')
  for (const r of sizes.rows) out(`| ${r.table} | ${Number(r.rows).toLocaleString('en-US')} | ${mib(r.heap)} | ${mib(r.indexes)} | ${mib(r.total)} | ${perMillion(r.total)} |`)
  const total = sizes.rows.reduce((s, r) => s + Number(r.total), 0)
  out(`\nall usage tables: ${mib(total)}, ${perMillion(total)} per 1M events`)
  const indexes = await admin.query<{ index: string; size: string }>(
    `SELECT indexrelname AS index, pg_relation_size(indexrelid) AS size FROM pg_stat_user_indexes WHERE schemaname = $1 AND relname = 'usage_events' ORDER BY 2 DESC`,
    [schema],
  )
  for (const r of indexes.rows) out(`  ${r.index}: ${mib(r.size)}`)
} finally {
  await database.close()
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await admin.end()
}
