/**
 * A heavy read must not stall everyone else. The real server (child process) is seeded with
 * `--events` events over 400 days, then a steady open-loop load of small requests (single-event
 * POSTs and small reads, each at its own fixed rate, latency counted from each request's due
 * time) runs twice: once alone, once while a 400-day JSON-lines export of every event streams to
 * a client reading as fast as it can. The p99 of the small requests in both phases, their ratio,
 * the 503s and the export's duration and size are printed, per engine.
 *
 *   npm run bench:isolation                              # both engines (Postgres at DATABASE_URL)
 *   npx tsx bench/isolation.ts --engine pglite --events 50000
 *
 * Stored events must equal acknowledged ones (seed + ingest of both phases); exits 1 otherwise.
 */
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import pg from 'pg'
import { authHeaders, BENCH_DATABASE_URL, fmt, sortedPercentiles, startServer, storedEvents, type Engine, type Server } from './support.js'

const { values: args } = parseArgs({
  options: {
    engine: { type: 'string' },
    events: { type: 'string', default: '200000' },
    // Small-request rates during both phases.
    'ingest-rate': { type: 'string', default: '100' },
    'read-rate': { type: 'string', default: '20' },
    // Length of the phase without an export, s (the export phase lasts as long as the export).
    duration: { type: 'string', default: '10' },
    env: { type: 'string', multiple: true, default: [] },
  },
})
const engines: Engine[] = args.engine === 'pglite' || args.engine === 'postgres' ? [args.engine] : ['postgres', 'pglite']
const EVENTS = Number(args.events)
const INGEST_RATE = Number(args['ingest-rate'])
const READ_RATE = Number(args['read-rate'])
const QUIET_SECONDS = Number(args.duration)
const serverEnv = Object.fromEntries((args.env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
const out = (line = ''): void => void process.stdout.write(`${line}\n`)
const DAY = 86_400_000
const RANGE_DAYS = 400

const MODELS = ['claude-3-5-sonnet-20241022', 'gpt-4o', 'gemini-1.5-pro', 'claude-3-5-haiku-20241022']
const PROVIDERS = ['anthropic', 'openai', 'google', 'anthropic']

function seedEvent(i: number, now: number) {
  const m = i % MODELS.length
  const failed = i % 20 === 0
  return {
    id: `seed-${i}`,
    botId: `bot_${i % 10}`,
    model: MODELS[m],
    provider: PROVIDERS[m],
    inputTokens: 1000 + (i % 500),
    outputTokens: 200 + (i % 300),
    cacheReadTokens: i % 3 === 0 ? 800 : 0,
    latencyMs: 300 + (i % 2000),
    success: !failed,
    ...(failed ? { errorMessage: 'upstream timeout after 30000 ms (request id req_0123456789abcdef)' } : {}),
    metadata: { chatId: 100_000 + (i % 5000), userId: `user_${i % 997}`, sessionId: `sess_${Math.floor(i / 7)}`, locale: 'en-GB' },
    // Spread evenly over the last 399 days, newest last, none in the last hour (the load writes there).
    createdAt: new Date(now - 3_600_000 - Math.floor(((EVENTS - i) / EVENTS) * (RANGE_DAYS - 1) * DAY)).toISOString(),
  }
}

async function seed(server: Server): Promise<void> {
  const pool = new Pool(server.url, { connections: 4 })
  const now = Date.now()
  const BATCH = 1000
  let next = 0
  const started = performance.now()
  const worker = async () => {
    while (next < EVENTS) {
      const from = next
      next = Math.min(EVENTS, next + BATCH)
      const events = Array.from({ length: next - from }, (_, k) => seedEvent(from + k, now))
      for (;;) {
        const res = await pool.request({ path: '/api/usage/batch', method: 'POST', headers: authHeaders, body: JSON.stringify({ events }) })
        const body = (await res.body.json()) as { created?: number }
        if (res.statusCode === 200 && body.created === events.length) break
        if (res.statusCode !== 503) throw new Error(`seeding failed: ${res.statusCode} ${JSON.stringify(body).slice(0, 300)}`)
        await new Promise((r) => setTimeout(r, 200))
      }
    }
  }
  await Promise.all(Array.from({ length: 4 }, worker))
  await pool.close()
  process.stderr.write(`    seeded ${fmt(EVENTS)} events in ${fmt((performance.now() - started) / 1000, 1)} s\n`)
}

interface Stream {
  name: string
  rate: number
  request: (i: number) => { path: string; method: 'GET' | 'POST'; body?: string }
}

interface StreamResult {
  p50: number
  p99: number
  max: number
  ok: number
  statusCounts: Record<string, number>
  errors: number
}

/**
 * Open loop: request i of a stream is due at start + i/rate, whatever happened to earlier ones,
 * and its latency runs from that due time (no coordinated omission). Runs until `until` settles
 * and at least `minSeconds` passed; then waits for every answer.
 */
async function openLoop(server: Server, streams: Stream[], until: Promise<unknown>, minSeconds: number): Promise<StreamResult[]> {
  const pool = new Pool(server.url, { connections: 64 })
  let stop = false
  void until.finally(() => (stop = true))
  const start = performance.now()
  const results = await Promise.all(
    streams.map(async (s) => {
      const latencies: number[] = []
      const statusCounts: Record<string, number> = {}
      let errors = 0
      const inFlight: Promise<void>[] = []
      let sent = 0
      for (;;) {
        const elapsed = performance.now() - start
        if (stop && elapsed >= minSeconds * 1000) break
        const due = Math.floor((elapsed * s.rate) / 1000) + 1
        for (; sent < due; sent++) {
          const dueAt = start + (sent * 1000) / s.rate
          const r = s.request(sent)
          inFlight.push(
            pool
              .request({ path: r.path, method: r.method, headers: authHeaders, body: r.body })
              .then(async (res) => {
                await res.body.dump()
                latencies.push(performance.now() - dueAt)
                statusCounts[res.statusCode] = (statusCounts[res.statusCode] ?? 0) + 1
              })
              .catch(() => void errors++),
          )
        }
        await new Promise((r) => setTimeout(r, 2))
      }
      await Promise.all(inFlight)
      const ok = Object.entries(statusCounts).reduce((n, [code, c]) => (Number(code) < 300 ? n + c : n), 0)
      return { ...sortedPercentiles(latencies), ok, statusCounts, errors }
    }),
  )
  await pool.close()
  return results
}

interface ExportResult {
  seconds: number
  megabytes: number
  lines: number
  status: number
}

async function runExport(server: Server): Promise<ExportResult> {
  const end = new Date()
  const startDate = new Date(end.getTime() - (RANGE_DAYS - 1) * DAY).toISOString().slice(0, 10)
  const endDate = end.toISOString().slice(0, 10)
  const pool = new Pool(server.url, { connections: 1, bodyTimeout: 600_000, headersTimeout: 600_000 })
  const started = performance.now()
  const res = await pool.request({ path: `/api/usage/export?format=jsonl&startDate=${startDate}&endDate=${endDate}`, method: 'GET', headers: authHeaders })
  let bytes = 0
  let lines = 0
  for await (const chunk of res.body) {
    const buf = chunk as Buffer
    bytes += buf.length
    for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) lines++
  }
  const seconds = (performance.now() - started) / 1000
  await pool.close()
  return { seconds, megabytes: bytes / 1e6, lines, status: res.statusCode }
}


let failures = 0

async function runEngine(engine: Engine): Promise<string[]> {
  process.stderr.write(`... ${engine}: seeding\n`)
  const server = await startServer({ engine, env: serverEnv })
  const lines: string[] = []
  try {
    await seed(server)
    if (engine === 'postgres') {
      // Autovacuum would analyze the freshly loaded table within a minute or so; do it now so
      // the run does not depend on when it wakes up. (The embedded engine does it itself.)
      const client = new pg.Client({ connectionString: BENCH_DATABASE_URL, options: `-c search_path=${server.schema}` })
      await client.connect()
      const tables = await client.query<{ tablename: string }>('SELECT tablename FROM pg_tables WHERE schemaname = $1', [server.schema])
      for (const { tablename } of tables.rows) await client.query(`ANALYZE "${server.schema}"."${tablename}"`)
      await client.end()
    }
    const ingestStream = (phase: string): Stream => ({
      name: 'single-event POST',
      rate: INGEST_RATE,
      request: (i) => ({
        path: '/api/usage',
        method: 'POST',
        body: JSON.stringify({ id: `${phase}-${i}`, botId: 'bot_live', model: MODELS[0], provider: PROVIDERS[0], inputTokens: 1200, outputTokens: 300, latencyMs: 900 }),
      }),
    })
    const readStream: Stream = {
      name: 'small read (summary, last 24 h, one bot)',
      rate: READ_RATE,
      request: () => ({ path: '/api/usage/summary?botId=bot_live', method: 'GET' }),
    }
    const smallRead: Stream = {
      name: 'small read (events, first page of 20)',
      rate: READ_RATE,
      request: () => ({ path: '/api/usage/events?limit=20', method: 'GET' }),
    }
    // Warm-up: JIT, pools, the first queries' plans.
    const warm = await openLoop(server, [ingestStream('warm'), readStream, smallRead], Promise.resolve(), 2)
    process.stderr.write(`... ${engine}: ${QUIET_SECONDS} s without an export\n`)
    const quiet = await openLoop(server, [ingestStream('quiet'), readStream, smallRead], Promise.resolve(), QUIET_SECONDS)
    process.stderr.write(`... ${engine}: the same load during a ${RANGE_DAYS}-day export\n`)
    const exporting = runExport(server)
    const during = await openLoop(server, [ingestStream('during'), readStream, smallRead], exporting, 2)
    const exported = await exporting
    const acknowledged = EVENTS + warm[0].ok + quiet[0].ok + during[0].ok
    const stored = await storedEvents(server)
    lines.push(
      `#### ${engine}: ${fmt(EVENTS)} events over ${RANGE_DAYS} days; export ${fmt(exported.lines)} lines, ${fmt(exported.megabytes, 1)} MB in ${fmt(exported.seconds, 1)} s (status ${exported.status})`,
    )
    lines.push('')
    lines.push('| request (rate) | without export: p50 / p99 / max | during export: p50 / p99 / max | p99 during / without | statuses during |')
    lines.push('| --- | --- | --- | --- | --- |')
    const streams = [ingestStream(''), readStream, smallRead]
    streams.forEach((s, k) => {
      const a = quiet[k]
      const b = during[k]
      lines.push(
        `| ${s.name} (${s.rate}/s) | ${fmt(a.p50, 1)} / ${fmt(a.p99, 1)} / ${fmt(a.max, 1)} ms | ${fmt(b.p50, 1)} / ${fmt(b.p99, 1)} / ${fmt(b.max, 1)} ms | ${fmt(b.p99 / a.p99, 2)} | ${JSON.stringify(b.statusCounts)}${b.errors ? `, ${b.errors} errors` : ''} |`,
      )
    })
    lines.push('')
    if (stored !== acknowledged) {
      failures++
      lines.push(`MISMATCH: stored ${stored}, acknowledged ${acknowledged}`)
    } else {
      lines.push(`stored = acknowledged = ${fmt(stored)} (seed, warm-up and both phases)`)
    }
    const worstP99 = Math.max(...during.map((d) => d.p99))
    lines.push(`worst p99 of a small request during the export: ${fmt(worstP99, 1)} ms (target <= 100 ms)`)
    lines.push('')
  } finally {
    await server.dispose()
  }
  return lines
}

const report: string[] = []
for (const engine of engines) report.push(...(await runEngine(engine)))
out()
out(`Isolation benchmark, ${new Date().toISOString()}, small requests at ${INGEST_RATE} POST/s and 2 x ${READ_RATE} reads/s`)
out()
for (const l of report) out(l)
if (failures > 0) {
  out(`FAILED: ${failures} engine(s) stored a different number of events than acknowledged`)
  process.exitCode = 1
}
