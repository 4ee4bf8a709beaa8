/**
 * Ingest at the limit of the machine: the real server (a child process, `node --import tsx
 * src/server.ts`, as `npm start` runs it) driven by autocannon from this process over loopback,
 * no pipelining. Every figure comes from this run; ratios compare figures of this run only.
 *
 *   npm run bench:ingest                                   # Postgres at DATABASE_URL (default local test db)
 *   npm run bench:ingest -- --engine pglite                # the embedded engine, a smaller run
 *   npm run bench:ingest -- --duration 10 --connections 64
 *
 * Each scenario starts a fresh server on its own schema (or data dir), and afterwards checks that
 * the number of stored events equals the number the server acknowledged; the process exits 1
 * when they differ. Synchronous commit stays on: an acknowledged event is on disk.
 */
import autocannon from 'autocannon'
import { randomBytes } from 'node:crypto'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { Pool } from 'undici'
import { PGlite } from '@electric-sql/pglite'
import { connectDatabase } from '../src/db/connect.js'
import { ROLLUP_TABLES } from '../src/db/event-store.js'
import { foldAll } from '../src/usage/rollups.js'
import {
  ADMIN_KEY,
  BENCH_DATABASE_URL as databaseUrl,
  dropSchema,
  fmt,
  percentile,
  sortedPercentiles,
  startServer as startBenchServer,
  storedEvents,
  type Server,
} from './support.js'

const { values: args } = parseArgs({
  options: {
    engine: { type: 'string', default: 'postgres' },
    duration: { type: 'string' },
    connections: { type: 'string', default: '64' },
    'batch-size': { type: 'string', default: '500' },
    // Comma-separated scenario numbers, for tuning one thing at a time (e.g. --only 3,4).
    only: { type: 'string' },
    // Extra server environment, repeatable: --env INGEST_MAX_CONCURRENT_FLUSHES=1
    env: { type: 'string', multiple: true, default: [] },
  },
})
const only = args.only ? new Set(args.only.split(',').map(Number)) : null
const wanted = (n: number) => only === null || only.has(n)
const extraEnv = args.env ?? []
const serverEnv = Object.fromEntries(extraEnv.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
const engine = args.engine === 'pglite' ? 'pglite' : 'postgres'
const duration = Number(args.duration ?? (engine === 'pglite' ? 5 : 10))
const connections = Number(args.connections)
const batchSize = Number(args['batch-size'])
const out = (line = ''): void => void process.stdout.write(`${line}\n`)

const EVENT = {
  botId: 'bench_bot',
  model: 'claude-3-5-sonnet-20241022',
  provider: 'anthropic',
  inputTokens: 1200,
  outputTokens: 300,
  cacheReadTokens: 800,
  latencyMs: 900,
  requestType: 'message',
  success: true,
  metadata: { chatId: 1234 },
}

const startServer = (env: Record<string, string> = {}): Promise<Server> => startBenchServer({ engine, env: { ...serverEnv, ...env } })


interface Load {
  rps: number
  ok: number
  non2xx: number
  statusCounts: Record<string, number>
  errors: number
  timeouts: number
  p50: number
  p99: number
  p999: number
  /** p99 of 2xx responses only (measured per response). */
  okP99: number
  /**
   * p99 of 2xx responses other than each connection's first (autocannon only): a first request
   * also waits for its connection to be set up, which with 512 connections opened at once on a
   * loaded machine took seconds (measured: median 2.7 s from the request's creation to the
   * server's accept), while later requests on the same connections were at p99 130 ms.
   */
  okP99AfterFirst?: number
  /** Server CPU time per acknowledged request, µs (set by checkedLoad). */
  cpuUsPerRequest?: number
}

async function load(opts: autocannon.Options): Promise<Load> {
  const okLatencies: number[] = []
  const afterFirst: number[] = []
  const seen = new WeakSet<object>()
  const statusCounts: Record<string, number> = {}
  // Without a callback the instance is an event emitter that is also a promise of the result.
  const instance = autocannon({ timeout: 30, pipelining: 1, ...opts }) as unknown as autocannon.Instance & PromiseLike<autocannon.Result>
  instance.on('response', (client: object, statusCode: number, _bytes: number, responseTime: number) => {
    const first = !seen.has(client)
    seen.add(client)
    statusCounts[statusCode] = (statusCounts[statusCode] ?? 0) + 1
    if (statusCode >= 200 && statusCode < 300) {
      okLatencies.push(responseTime)
      if (!first) afterFirst.push(responseTime)
    }
  })
  const result = await instance
  okLatencies.sort((a, b) => a - b)
  const ok = Object.entries(statusCounts).reduce((n, [s, c]) => (Number(s) < 300 ? n + c : n), 0)
  return {
    rps: ok / result.duration,
    ok,
    non2xx: result.non2xx,
    statusCounts,
    errors: result.errors,
    timeouts: result.timeouts,
    p50: result.latency.p50,
    p99: result.latency.p99,
    p999: result.latency.p99_9,
    okP99: percentile(okLatencies, 99),
    okP99AfterFirst: sortedPercentiles(afterFirst).p99,
  }
}

/**
 * A true open-loop load: request i is due at start + i/rate whatever happened to earlier ones,
 * and its latency runs from that due time (so time spent waiting for a free connection, or for a
 * late generator tick, counts: no coordinated omission). autocannon's `-R` is not that: each
 * connection sends its per-second quota back to back and then pauses, so every second starts
 * with a burst at full concurrency.
 */
async function paced(opts: { url: string; body: string; rate: number; amount: number; connections: number }): Promise<Load> {
  const url = new URL(opts.url)
  const pool = new Pool(url.origin, { connections: opts.connections, pipelining: 1 })
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` }
  const all: number[] = []
  const okLatencies: number[] = []
  const statusCounts: Record<string, number> = {}
  let errors = 0
  let sent = 0
  let answered = 0
  const start = performance.now()
  await new Promise<void>((allAnswered) => {
    const settle = () => {
      if (++answered === opts.amount) allAnswered()
    }
    const send = (dueAt: number) => {
      pool
        .request({ path: url.pathname, method: 'POST', headers, body: opts.body })
        .then(async (res) => {
          await res.body.dump()
          const ms = performance.now() - dueAt
          all.push(ms)
          statusCounts[res.statusCode] = (statusCounts[res.statusCode] ?? 0) + 1
          if (res.statusCode < 300) okLatencies.push(ms)
        })
        .catch(() => errors++)
        .finally(settle)
    }
    const tick = () => {
      const due = Math.min(opts.amount, Math.floor(((performance.now() - start) * opts.rate) / 1000) + 1)
      for (; sent < due; sent++) send(start + (sent * 1000) / opts.rate)
      if (sent < opts.amount) setTimeout(tick, 1)
    }
    tick()
  })
  const seconds = (performance.now() - start) / 1000
  await pool.close()
  const ok = okLatencies.length
  const { p50, p99, p999 } = sortedPercentiles(all)
  return { rps: ok / seconds, ok, non2xx: all.length - ok, statusCounts, errors, timeouts: 0, p50, p99, p999, okP99: sortedPercentiles(okLatencies).p99 }
}

const post = (url: string, body: unknown): autocannon.Options => ({
  url,
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
  body: JSON.stringify(body),
})

/** Stored count once it stops moving (requests cut off by a timed run may still be committing). */
async function settledStored(server: Server): Promise<number> {
  let last = await storedEvents(server)
  for (;;) {
    await new Promise((r) => setTimeout(r, 300))
    const now = await storedEvents(server)
    if (now === last) return now
    last = now
  }
}

let mismatches = 0

/**
 * A POST load whose every request is answered: a 2 s timed warm-up (at the given rate, if any)
 * estimates the rate (unless given), then exactly rate x duration requests are sent and all their answers awaited, so the
 * events stored by the measured part must equal the events it acknowledged.
 */
async function measuredPosts(
  name: string,
  server: Server,
  opts: autocannon.Options,
  eventsPerRequest: number,
  notes: string[],
  rate?: number,
): Promise<Load> {
  // The warm-up also brings the server's JIT and connection pool to steady state: a cold start is
  // not what an open-loop or overload figure is about.
  const warmup = await load({ ...opts, duration: 2 })
  const target = rate ?? warmup.rps
  const { duration: _unused, ...rest } = opts
  return checkedLoad(name, server, eventsPerRequest, notes, () => load({ ...rest, amount: Math.max(100, Math.round(target * duration)) }))
}

/** Single-event POSTs in true open loop at `rate` (see paced), after a 2 s warm-up at that rate. */
async function measuredPaced(name: string, server: Server, rate: number, connections: number, notes: string[]): Promise<Load> {
  const opts = { url: `${server.url}/api/usage`, body: JSON.stringify(EVENT), rate, connections }
  await paced({ ...opts, amount: rate * 2 })
  return checkedLoad(name, server, 1, notes, () => paced({ ...opts, amount: Math.round(rate * duration) }))
}

/** Runs a load whose every request is answered and checks stored events = acknowledged ones. */
async function checkedLoad(name: string, server: Server, eventsPerRequest: number, notes: string[], run: () => Promise<Load>): Promise<Load> {
  const before = await settledStored(server)
  const cpuBefore = server.cpuMs()
  const result = await run()
  result.cpuUsPerRequest = ((server.cpuMs() - cpuBefore) * 1000) / Math.max(1, result.ok)
  const loaded = performance.now()
  const stored = (await settledStored(server)) - before
  const acknowledged = result.ok * eventsPerRequest
  const status = JSON.stringify(result.statusCounts)
  if (stored !== acknowledged) {
    mismatches++
    notes.push(`${name}: MISMATCH: stored ${stored}, acknowledged ${acknowledged} (statuses ${status}, errors ${result.errors}, timeouts ${result.timeouts})`)
  } else {
    notes.push(`${name}: stored = acknowledged = ${stored} (statuses ${status}, errors ${result.errors}, timeouts ${result.timeouts})`)
  }
  if (engine === 'postgres') notes.push(`${name}: ${await rollupCatchUp(server, loaded)}`)
  return result
}

/**
 * Waits until the server's rollup worker has folded every stored event (the watermark is past
 * every acknowledged one), then checks that every rollup's totals equal the raw events' (Postgres).
 */
async function rollupCatchUp(server: Server, loadedAt: number): Promise<string> {
  const client = new pg.Client({ connectionString: databaseUrl, options: `-c search_path=${server.schema}` })
  await client.connect()
  try {
    const tail = async () =>
      Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM usage_events WHERE txid >= (SELECT rolled_below FROM rollup_watermark)')).rows[0].n)
    let behind = await tail()
    while (behind > 0 && performance.now() - loadedAt < 120_000) {
      await new Promise((r) => setTimeout(r, 10))
      behind = await tail()
    }
    const caughtUp = performance.now() - loadedAt
    const raw = (await client.query<{ n: string; cost: string }>('SELECT count(*) AS n, coalesce(sum(cost), 0)::text AS cost FROM usage_events')).rows[0]
    const wrong: string[] = []
    for (const rollup of ROLLUP_TABLES) {
      const r = (await client.query<{ n: string; cost: string }>(`SELECT coalesce(sum(calls), 0) AS n, coalesce(sum(cost), 0)::text AS cost FROM ${rollup.name}`)).rows[0]
      if (r.n !== raw.n || Number(r.cost) !== Number(raw.cost)) wrong.push(`${rollup.name} ${r.n} calls, $${r.cost}`)
    }
    if (behind > 0 || wrong.length > 0) mismatches++
    const verdict = wrong.length === 0 ? `every rollup = raw (${raw.n} events, $${Number(raw.cost).toFixed(2)})` : `ROLLUP MISMATCH vs raw ${raw.n}: ${wrong.join('; ')}`
    return `rollups caught up ${fmt(caughtUp)} ms after the load ended (incl. the ~300 ms stored-count settle)${behind > 0 ? `, STILL ${behind} BEHIND` : ''}; ${verdict}`
  } finally {
    await client.end()
  }
}

async function scenario<T>(name: string, env: Record<string, string>, run: (s: Server) => Promise<T>): Promise<T> {
  process.stderr.write(`... ${name}\n`)
  const server = await startServer(env)
  try {
    return await run(server)
  } finally {
    await server.dispose()
  }
}

/** What a COPY ceiling writes besides the events table. */
type CopyShape =
  /** Into usage_events with every index (what ingest writes), then folded into every rollup as the worker does. */
  | { kind: 'everything'; dropIndex?: string; fold?: boolean }
  /** Straight into usage_events with only its primary key: the disk and WAL limit of the raw rows. */
  | { kind: 'pk-only' }

const COPY_COLUMNS =
  'id, bot_id, created_at, provider, model, request_type, success, input_tokens, output_tokens, total_tokens, cache_read_tokens, latency_ms, cost, priced, price_source, metadata'

/** Rows/s of a COPY, and for 'everything' the fold of those rows afterwards (ms) and both together (rows/s). */
interface CopyRate {
  rate: number
  foldMs?: number
  withFold?: number
}

/** Folds every event of a schema (or data dir) as the rollup worker does, ms. */
async function timedFold(schema: string, dataDir: string | null): Promise<number> {
  const database = await connectDatabase({ databaseUrl: engine === 'postgres' ? databaseUrl : null, dataDir: dataDir ?? 'memory://', schema })
  try {
    const started = performance.now()
    await foldAll(database)
    return performance.now() - started
  } finally {
    await database.close()
  }
}

/** The database ceiling: the same rows COPYed in one transaction, no HTTP, no JSON. */
async function copyCeiling(rows: number, shape: CopyShape): Promise<CopyRate> {
  const server = await startServer() // creates and migrates a schema
  await server.stop()
  const client = new pg.Client({ connectionString: databaseUrl, options: `-c search_path=${server.schema}` })
  await client.connect()
  try {
    if (shape.kind === 'pk-only') {
      for (const index of await secondaryIndexesOf(client, server.schema)) await client.query(`DROP INDEX "${index}"`)
    } else if (shape.dropIndex) {
      await client.query(`DROP INDEX "${shape.dropIndex}"`)
    }
    const source = Readable.from(copyLines(rows))
    const started = performance.now()
    await client.query('BEGIN')
    await pipeline(source, client.query(copyFrom(`COPY usage_events (${COPY_COLUMNS}) FROM STDIN`)))
    await client.query('COMMIT')
    const copyMs = performance.now() - started
    if (shape.kind === 'pk-only' || shape.fold === false) return { rate: rows / (copyMs / 1000) }
    const foldMs = await timedFold(server.schema, null)
    return { rate: rows / (copyMs / 1000), foldMs, withFold: rows / ((copyMs + foldMs) / 1000) }
  } finally {
    await client.end()
    await dropSchema(server.schema)
  }
}

/** COPY text for `rows` rows in COPY_COLUMNS order, 5,000 rows per chunk. */
function copyLines(rows: number): Generator<string> {
  const createdAt = new Date().toISOString()
  return (function* () {
    for (let i = 0; i < rows; ) {
      let chunk = ''
      for (let n = 0; n < 5000 && i < rows; n++, i++) {
        chunk += `${randomBytes(16).toString('hex')}\tbench_bot\t${createdAt}\tanthropic\tclaude-3-5-sonnet-20241022\tmessage\tt\t1200\t300\t1500\t800\t900\t0.00825\tt\tbench\t{"chatId": 1234}\n`
      }
      yield chunk
    }
  })()
}

/**
 * The embedded engine's own ceiling: the same rows COPYed (from an in-memory blob) into a data
 * dir the server migrated, in this process, no HTTP, no JSON.
 */
async function embeddedCopyCeiling(rows: number, shape: CopyShape): Promise<CopyRate> {
  const server = await startServer()
  await server.stop()
  const client = await PGlite.create(server.dataDir ?? '')
  try {
    await client.exec(`SET search_path TO "${server.schema}"`)
    if (shape.kind === 'pk-only') {
      const indexes = await client.query<{ indexname: string }>(
        `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'usage_events' AND indexname <> 'usage_events_pkey'`,
        [server.schema],
      )
      for (const { indexname } of indexes.rows) await client.exec(`DROP INDEX "${indexname}"`)
    }
    const blob = new Blob([...copyLines(rows)])
    const started = performance.now()
    await client.exec('BEGIN')
    await client.query(`COPY usage_events (${COPY_COLUMNS}) FROM '/dev/blob'`, [], { blob })
    await client.exec('COMMIT')
    const copyMs = performance.now() - started
    if (shape.kind === 'pk-only') return { rate: rows / (copyMs / 1000) }
    await client.close()
    const foldMs = await timedFold(server.schema, server.dataDir)
    return { rate: rows / (copyMs / 1000), foldMs, withFold: rows / ((copyMs + foldMs) / 1000) }
  } finally {
    if (!client.closed) await client.close()
    await server.dispose()
  }
}

async function secondaryIndexesOf(client: pg.Client, schema: string): Promise<string[]> {
  const res = await client.query<{ indexname: string }>(
    `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'usage_events' AND indexname <> 'usage_events_pkey' ORDER BY 1`,
    [schema],
  )
  return res.rows.map((r) => r.indexname)
}

async function secondaryIndexes(): Promise<string[]> {
  const server = await startServer()
  await server.stop()
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  const indexes = await secondaryIndexesOf(client, server.schema)
  await client.end()
  await dropSchema(server.schema)
  return indexes
}

async function main(): Promise<void> {
  const rows: [string, string, string, string][] = []
  // Server CPU per event: steadier than rates when the machine is shared, and what capacity costs.
  const cpu = (l: Load, eventsPerRequest = 1) => (l.cpuUsPerRequest === undefined ? '' : `${fmt(l.cpuUsPerRequest / eventsPerRequest)} µs/event`)
  const notes: string[] = []
  let syncCommit = 'n/a'
  if (engine === 'postgres') {
    const c = new pg.Client({ connectionString: databaseUrl })
    await c.connect()
    syncCommit = (await c.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0].synchronous_commit
    await c.end()
  }
  const single = (s: Server) => post(`${s.url}/api/usage`, EVENT)

  let noop: Load | null = null
  if (wanted(1)) {
    noop = await scenario('1 no-op route', {}, async (s) => {
      const before = s.cpuMs()
      const l = await load({ url: `${s.url}/healthz`, connections, duration })
      return { ...l, cpuUsPerRequest: ((s.cpuMs() - before) * 1000) / Math.max(1, l.ok) }
    })
    rows.push(['1. no-op route (GET /healthz)', `${fmt(noop.rps)} req/s`, `p50 ${noop.p50} ms, p99 ${noop.p99} ms`, cpu(noop).replace('event', 'request')])
  }

  let perRequest: Load | null = null
  if (engine === 'postgres' && wanted(2)) {
    perRequest = await scenario('2 single-event POST, group commit off', { INGEST_GROUP_COMMIT: 'false' }, (s) =>
      measuredPosts('2', s, { ...single(s), connections }, 1, notes),
    )
    rows.push([`2. single-event POST, one transaction per request (${connections} conn)`, `${fmt(perRequest.rps)} req/s`, `p50 ${perRequest.p50} ms, p99 ${perRequest.p99} ms`, cpu(perRequest)])
  }

  let grouped: Load | null = null
  if (wanted(3) || wanted(7)) {
    grouped = await scenario('3 single-event POST, group commit on', {}, (s) => measuredPosts('3', s, { ...single(s), connections }, 1, notes))
    rows.push([`3. single-event POST, group commit (${connections} conn)`, `${fmt(grouped.rps)} req/s`, `p50 ${grouped.p50} ms, p99 ${grouped.p99} ms`, cpu(grouped)])
  }

  let batchEvents = NaN
  if (wanted(4) || wanted(5)) {
    const batchConnections = engine === 'pglite' ? 4 : 8
    const events = Array.from({ length: batchSize }, () => EVENT)
    const batch = await scenario('4 batch POST', {}, (s) =>
      measuredPosts('4', s, { ...post(`${s.url}/api/usage/batch`, { events }), connections: batchConnections }, batchSize, notes),
    )
    batchEvents = batch.rps * batchSize
    rows.push([`4. batch POST, ${batchSize} events per request (${batchConnections} conn)`, `${fmt(batchEvents)} events/s`, `p99 ${batch.p99} ms`, cpu(batch, batchSize)])
  }

  let copyRate = NaN
  let pkOnlyRate = NaN
  if (wanted(5)) {
    process.stderr.write('... 5 raw COPY\n')
    const copyRows = Math.max(engine === 'pglite' ? 50_000 : 100_000, Math.round(batchEvents * 4))
    const ceiling = engine === 'pglite' ? embeddedCopyCeiling : copyCeiling
    const everything = await ceiling(copyRows, { kind: 'everything' })
    copyRate = everything.withFold ?? NaN
    rows.push([`5. raw COPY of ${fmt(copyRows)} rows + every index, no HTTP`, `${fmt(everything.rate)} rows/s`, '', ''])
    rows.push([
      `5f. then the fold of those rows into every rollup (the worker's foldRollups, 50k-row statements)`,
      `${fmt(everything.foldMs ?? NaN)} ms; COPY + fold together ${fmt(copyRate)} rows/s`,
      '',
      '',
    ])
    pkOnlyRate = (await ceiling(copyRows, { kind: 'pk-only' })).rate
    rows.push([`5b. raw COPY of ${fmt(copyRows)} rows into usage_events with only its primary key, no rollups`, `${fmt(pkOnlyRate)} rows/s`, '', ''])
  }

  if (engine === 'postgres' && wanted(6)) {
    const open = await scenario('6 open loop 1000 req/s', {}, (s) => measuredPaced('6', s, 1000, connections, notes))
    rows.push([`6. open loop, 1,000 req/s evenly paced (${connections} conn)`, `${fmt(open.rps)} req/s served`, `p50 ${fmt(open.p50, 1)} ms, p99 ${fmt(open.p99, 1)} ms, p99.9 ${fmt(open.p999, 1)} ms`, cpu(open)])
    const bursts = await scenario('6b autocannon -R 1000', {}, (s) => measuredPosts('6b', s, { ...single(s), connections, overallRate: 1000 }, 1, notes, 1000))
    rows.push([
      `6b. autocannon -R 1000 (${connections} conn; each sends its per-second quota back to back)`,
      `${fmt(bursts.rps)} req/s served`,
      `p50 ${bursts.p50} ms, p99 ${bursts.p99} ms, p99.9 ${bursts.p999} ms`,
      cpu(bursts),
    ])
  }

  let overloadRow: (Load & { shed: number }) | null = null
  if (engine === 'postgres' && wanted(7) && grouped) {
    const target = Math.round(grouped.rps * 2)
    const overload = await scenario('7 overload at 2x capacity', {}, async (s) => {
      // autocannon, as the issue specifies. A paced open-loop generator at this rate, on the same
      // 2 cores, measured itself: with 512 connections requests queued inside it (accepted p99 7 s,
      // no 503s), with up to 4,096 it fell behind and failed sockets (accepted 1,105 req/s, p99 30 s).
      const r = await measuredPosts('7', s, { ...single(s), connections: 512, overallRate: target }, 1, notes, target)
      return { ...r, rss: s.peakRssMb() }
    })
    const total = Object.values(overload.statusCounts).reduce((a, b) => a + b, 0)
    const shed = (overload.statusCounts['503'] ?? 0) / Math.max(1, total)
    overloadRow = { ...overload, shed }
    rows.push([
      `7. overload, autocannon -R ${fmt(target)} (2x of 3), 512 conn`,
      `${fmt(shed * 100, 1)}% 503`,
      `accepted p99 ${fmt(overload.okP99)} ms (after each connection's first request ${fmt(overload.okP99AfterFirst ?? NaN)} ms), peak RSS ${overload.rss} MB, accepted ${fmt(overload.rps)} req/s`,
      cpu(overload),
    ])
  }

  if (engine === 'postgres' && wanted(8)) {
    process.stderr.write('... 8 index costs (COPY rate without each secondary index)\n')
    const baseline = (await copyCeiling(200_000, { kind: 'everything', fold: false })).rate
    for (const index of await secondaryIndexes()) {
      const { rate } = await copyCeiling(200_000, { kind: 'everything', dropIndex: index, fold: false })
      notes.push(`COPY without ${index}: ${fmt(rate)} rows/s (with all indexes: ${fmt(baseline)})`)
    }
  }

  out()
  out(`Ingest benchmark, engine ${engine}${engine === 'postgres' ? ` (synchronous_commit=${syncCommit})` : ''}, ${duration} s per scenario, ${new Date().toISOString()}`)
  if (extraEnv.length > 0) out(`server environment: ${extraEnv.join(' ')}`)
  out()
  out('| scenario | throughput | latency | server CPU |')
  out('| --- | --- | --- | --- |')
  for (const [a, b, c, d] of rows) out(`| ${a} | ${b} | ${c} | ${d} |`)
  out()
  if (grouped && noop) {
    const ratio = grouped.rps / noop.rps
    out(`target 3/1 >= 0.4 (group commit vs framework ceiling): ${fmt(ratio, 2)} ${ratio >= 0.4 ? 'met' : 'MISSED'}`)
    out(`target 3 p99 <= 25 ms: ${grouped.p99} ms ${grouped.p99 <= 25 ? 'met' : 'MISSED'}; shed at 64 connections: ${grouped.statusCounts['503'] ?? 0} (must be 0)`)
  }
  if (overloadRow) {
    const { okP99, okP99AfterFirst, shed } = overloadRow
    out(`target 7 accepted p99 <= 100 ms under 2x overload: ${fmt(okP99)} ms ${okP99 <= 100 ? 'met' : 'MISSED'} (after each connection's first request: ${fmt(okP99AfterFirst ?? NaN)} ms); ${fmt(shed * 100, 1)}% shed with 503 (Retry-After: test/usage/backpressure.test.ts)`)
  }
  if (grouped && perRequest) out(`ratio 3/2 (group commit vs one transaction per request): ${fmt(grouped.rps / perRequest.rps, 2)}`)
  if (!Number.isNaN(batchEvents) && !Number.isNaN(copyRate)) out(`ratio 4/5 (batch ingest vs raw COPY with every index + its fold): ${fmt(batchEvents / copyRate, 2)}`)
  if (!Number.isNaN(batchEvents) && !Number.isNaN(pkOnlyRate)) out(`ratio 4/5b (batch ingest vs raw COPY, primary key only; target >= 0.6): ${fmt(batchEvents / pkOnlyRate, 2)}`)
  if (!Number.isNaN(copyRate) && !Number.isNaN(pkOnlyRate)) out(`ratio 5/5b (what indexes and rollups leave of the raw COPY): ${fmt(copyRate / pkOnlyRate, 2)}`)
  out()
  for (const n of notes) out(`- ${n}`)
  if (mismatches > 0) {
    out(`\nFAILED: ${mismatches} scenario(s) stored a different number of events than acknowledged`)
    process.exitCode = 1
  }
}

await main()
