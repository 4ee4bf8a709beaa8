import { sql } from 'drizzle-orm'
import type { LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase, ENGINE } from '../helpers/db.js'
import { countEvents, postUsage } from '../helpers/usage.js'
import { ev, seed } from './support.js'

/**
 * Reads cannot starve writes: heavy analytics run on their own pool (Postgres) with a statement
 * timeout, a few at a time behind a short queue, and whatever happens to a read it answers
 * 200 or 503 with Retry-After, never 500, while every concurrent ingest write is stored.
 */

const READ_POOL = 2
const QUERY_TIMEOUT_MS = 2000
const database = await createTestDatabase(t, { poolSize: 4, readPoolSize: READ_POOL, queryTimeoutMs: QUERY_TIMEOUT_MS, connectTimeoutMs: 1000 })
const { app } = await buildTestApp(t, database, {
  PG_POOL_SIZE: '4',
  PG_READ_POOL_SIZE: String(READ_POOL),
  PG_CONNECT_TIMEOUT_MS: '1000',
  QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS),
  ANALYTICS_MAX_CONCURRENT: '2',
  ANALYTICS_MAX_QUEUED: '3',
  ANALYTICS_MAX_QUEUE_WAIT_MS: '60000',
  // The heavy query of this test: a metadata breakdown (raw events) over the longest range.
  METADATA_RAW_MAX_DAYS: '400',
})

const END = new Date()
const DAY = 86_400_000
const endDate = END.toISOString().slice(0, 10)
const startDate = new Date(END.getTime() - 399 * DAY).toISOString().slice(0, 10)
const BREAKDOWN = `/api/usage/breakdown?groupBy=metadata.userId&startDate=${startDate}&endDate=${endDate}`

const SEEDED = 3000
await seed(
  app,
  Array.from({ length: SEEDED }, (_, i) =>
    ev(`s${i}`, new Date(END.getTime() - 1000 - Math.floor((i / SEEDED) * 398 * DAY)).toISOString(), { metadata: { userId: `u${i % 97}` } }),
  ),
)

const BUSY_CODES = ['ANALYTICS_BUSY', 'DATABASE_BUSY', 'QUERY_TIMEOUT', 'DATABASE_UNAVAILABLE']

/** A read answered 200, or 503 with Retry-After and one of the load codes; never anything else. */
function checkRead(t: Test, res: LightMyRequestResponse, label: string) {
  if (res.statusCode === 200) return
  t.equal(res.statusCode, 503, `${label}: 200 or 503 (got ${res.statusCode} ${res.body.slice(0, 200)})`)
  t.ok(Number(res.headers['retry-after']) >= 1, `${label}: 503 carries Retry-After`)
  t.ok(BUSY_CODES.includes((res.json() as { code: string }).code), `${label}: 503 says why`)
}

let serial = 0
const ingestOne = () => postUsage(app, ev(`w${serial++}`, new Date(END.getTime() - 5000).toISOString()))

t.test('20 concurrent 400-day metadata breakdowns with concurrent ingest: no 500, every write stored', async (t) => {
  const before = await countEvents(database)
  const reads = Array.from({ length: 20 }, () => app.inject({ method: 'GET', url: BREAKDOWN, headers: bearer(ADMIN_KEY) }))
  const writes = Array.from({ length: 40 }, ingestOne)
  const [readResults, writeResults] = await Promise.all([Promise.all(reads), Promise.all(writes)])
  readResults.forEach((res, i) => checkRead(t, res, `breakdown ${i}`))
  writeResults.forEach((res, i) => t.equal(res.statusCode, 201, `ingest ${i} acknowledged`))
  t.equal(await countEvents(database), before + writes.length, 'every acknowledged write is stored')
  const ok = readResults.filter((r) => r.statusCode === 200)
  t.comment(`${ok.length} of 20 breakdowns answered 200, the rest 503`)
  for (const res of ok) t.equal((res.json() as { totals: { calls: number } }).totals.calls >= SEEDED, true, 'a full answer')
})

/**
 * Holds what heavy reads need until released: every read-pool connection on Postgres, the one
 * connection on the embedded engine.
 */
async function blockReads() {
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  const holders: Promise<unknown>[] = []
  let started = 0
  for (let i = 0; i < (ENGINE === 'postgres' ? READ_POOL : 1); i++) {
    holders.push(
      database.reads.db.transaction(async (tx) => {
        await tx.execute(sql`SELECT 1`)
        started++
        await released
      }),
    )
  }
  while (started < holders.length) await new Promise((r) => setTimeout(r, 10))
  return async () => {
    release()
    await Promise.all(holders)
  }
}

t.test('past the running and queued heavy reads, more are refused at once with 503 ANALYTICS_BUSY', async (t) => {
  const unblock = await blockReads()
  const pending = Array.from({ length: 10 }, () => app.inject({ method: 'GET', url: BREAKDOWN, headers: bearer(ADMIN_KEY) }))
  // 2 run (waiting on the database), 3 wait for a turn, 5 are refused without touching it.
  const settled: LightMyRequestResponse[] = []
  for (const p of pending) void p.then((res) => settled.push(res))
  while (settled.filter((r) => r.statusCode === 503).length < 5) await new Promise((r) => setTimeout(r, 10))
  await unblock()
  const results = await Promise.all(pending)
  results.forEach((res, i) => checkRead(t, res, `breakdown ${i}`))
  const refused = results.filter((r) => r.statusCode === 503 && (r.json() as { code: string }).code === 'ANALYTICS_BUSY')
  t.equal(refused.length, 5, 'exactly the five beyond 2 running + 3 queued are refused as busy')
  t.match(refused[0].json(), { message: /Too many heavy analytics queries/ })
  const res = await app.inject({ method: 'GET', url: BREAKDOWN, headers: bearer(ADMIN_KEY) })
  t.equal(res.statusCode, 200, 'once the turns are free, heavy reads answer again')
})

t.test('postgres: with every read connection taken, reads answer 503 DATABASE_BUSY and ingest is untouched', { skip: ENGINE !== 'postgres' }, async (t) => {
  const unblock = await blockReads()
  try {
    const before = await countEvents(database)
    const [read, ...writes] = await Promise.all([
      app.inject({ method: 'GET', url: BREAKDOWN, headers: bearer(ADMIN_KEY) }),
      ...Array.from({ length: 10 }, ingestOne),
    ])
    t.equal(read.statusCode, 503, read.body)
    t.equal(read.headers['retry-after'], '1')
    t.match(read.json(), { code: 'DATABASE_BUSY', message: /No database connection became free within 1000 ms/ })
    writes.forEach((res, i) => t.equal(res.statusCode, 201, `ingest ${i} does not wait behind reads`))
    t.equal(await countEvents(database), before + writes.length)
    // The legacy stats route reads on the read pool too.
    const stats = await app.inject({ method: 'GET', url: '/api/usage', headers: bearer(ADMIN_KEY) })
    t.equal(stats.statusCode, 503)
  } finally {
    await unblock()
  }
})

t.test('postgres: a read past QUERY_TIMEOUT_MS is cancelled and answers 503 QUERY_TIMEOUT', { skip: ENGINE !== 'postgres' }, async (t) => {
  // A lock the breakdown must wait for holds it past the statement timeout, however fast the machine.
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  let locked!: () => void
  const isLocked = new Promise<void>((resolve) => (locked = resolve))
  const holder = database.db.transaction(async (tx) => {
    await tx.execute(sql`LOCK TABLE usage_events IN ACCESS EXCLUSIVE MODE`)
    locked()
    await released
  })
  await isLocked
  try {
    const res = await app.inject({ method: 'GET', url: BREAKDOWN, headers: bearer(ADMIN_KEY) })
    t.equal(res.statusCode, 503, res.body)
    t.equal(res.headers['retry-after'], '5')
    t.match(res.json(), { code: 'QUERY_TIMEOUT', message: new RegExp(`longer than ${QUERY_TIMEOUT_MS} ms \\(QUERY_TIMEOUT_MS\\).*narrow the date range`) })
  } finally {
    release()
    await holder
  }
  const res = await app.inject({ method: 'GET', url: BREAKDOWN, headers: bearer(ADMIN_KEY) })
  t.equal(res.statusCode, 200, 'the next read answers')
})

t.test('exports and reports give their turn back when done, however many run one after another', async (t) => {
  // 2 turns and 3 places in the queue: a turn kept after its answer would block the sixth.
  for (let i = 0; i < 8; i++) {
    const exported = await app.inject({ method: 'GET', url: `/api/usage/export?format=jsonl&startDate=${startDate}&endDate=${endDate}`, headers: bearer(ADMIN_KEY) })
    t.equal(exported.statusCode, 200)
    t.ok(exported.body.split('\n').length > SEEDED, 'the whole export')
    const report = await app.inject({ method: 'GET', url: '/api/reports/monthly', headers: bearer(ADMIN_KEY) })
    t.equal(report.statusCode, 200)
  }
  const res = await app.inject({ method: 'GET', url: BREAKDOWN, headers: bearer(ADMIN_KEY) })
  t.equal(res.statusCode, 200)
})
