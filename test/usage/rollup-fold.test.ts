import { sql } from 'drizzle-orm'
import t, { type Test } from 'tap'
import { connectDatabase, type Database } from '../../src/db/connect.js'
import { ERROR_ROLLUPS, ROLLUP_TABLES, type EventFilter } from '../../src/db/event-store.js'
import { spendOf, spendPerHour, topErrorMessages } from '../../src/analytics/reader.js'
import { runAggregate, type AggregateSpec } from '../../src/analytics/sources.js'
import { bucketStarts } from '../../src/analytics/time-window.js'
import { insertEvents, repriceEvents, type NewUsageEvent } from '../../src/usage/repository.js'
import { deleteExpiredEvents } from '../../src/usage/retention.js'
import { foldAll, foldRollups, rebuildRollups } from '../../src/usage/rollups.js'
import { createTestDatabase, ENGINE, resetTables, TEST_DATABASE_URL } from '../helpers/db.js'
import { errorRollupMismatches, rollupMismatches } from '../analytics/support.js'

/**
 * The rollups are folded off the write path, in txid order up to a watermark (foldRollups). These
 * prove that the fold never passes an open transaction, never counts an event twice (concurrent
 * folds, repricing, retention) and that every read adds the unfolded tail: answers equal raw
 * GROUP BYs before and after folding. No app here: no worker folds behind the test's back.
 */

const database = await createTestDatabase(t)
t.beforeEach(() => resetTables(database))

const START = Date.parse('2024-03-29T00:00:00Z')
let serial = 0
function event(overrides: Partial<NewUsageEvent> = {}): NewUsageEvent {
  const n = serial++
  const success = n % 5 !== 0
  return {
    id: `f${n}`,
    botId: ['bot_a', 'bot_b', 'bot_c'][n % 3],
    createdAt: new Date(START + ((n * 7_919_000) % (4 * 86_400_000))),
    provider: 'acme',
    model: ['acme-large', 'acme-small'][n % 2],
    requestType: 'message',
    success,
    errorMessage: success ? null : ['timeout', 'overloaded'][n % 2],
    inputTokens: 100 + (n % 37),
    outputTokens: 10 + (n % 11),
    totalTokens: 110 + (n % 37) + (n % 11),
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    reasoningTokens: 0,
    inputAudioTokens: 0,
    outputAudioTokens: 0,
    webSearchRequests: 0,
    serviceTier: 'standard',
    inferenceGeo: null,
    latencyMs: n % 4 === 0 ? null : 50 + ((n * 13) % 5000),
    cost: n % 6 === 0 ? null : `0.${String(1000 + n).padStart(6, '0')}`,
    reportedCost: null,
    priced: n % 6 !== 0,
    priceSource: null,
    metadata: null,
    ...overrides,
  }
}
const events = (count: number, overrides: Partial<NewUsageEvent> = {}) => Array.from({ length: count }, () => event(overrides))

const tailSize = async (db: Database = database) => {
  const [row] = await db.rows<{ n: string | number }>(sql`SELECT count(*) AS n FROM usage_events WHERE txid >= (SELECT rolled_below FROM rollup_watermark)`)
  return Number(row.n)
}

async function assertRollupsEqualRaw(t: Test, when: string, db: Database = database) {
  for (const rollup of ROLLUP_TABLES) t.same(await rollupMismatches(db, rollup), [], `${rollup.name} equals raw ${when}`)
  for (const rollup of ERROR_ROLLUPS) t.same(await errorRollupMismatches(db, rollup), [], `${rollup.name} equals raw ${when}`)
}

const value = (v: unknown): string | null => {
  if (v === null || v === undefined) return null
  if (v instanceof Date) return v.toISOString()
  if (typeof v === 'string' && !Number.isFinite(Number(v))) return Number.isFinite(Date.parse(v)) ? new Date(v).toISOString() : v
  return String(Number(v))
}
const norm = (rows: Record<string, unknown>[]) =>
  rows.map((r) => JSON.stringify(Object.keys(r).sort().map((k) => [k, value(r[k])]))).sort()

/** Every kind of rollup read (zone buckets with subtraction, dimensions, error messages, budgets' spend) against raw GROUP BYs. */
async function assertReadsEqualRaw(t: Test, when: string) {
  const from = START + 3_600_000 * 5 + 60_000
  const to = START + 4 * 86_400_000 - 7 * 60_000
  for (const tz of ['UTC', 'Europe/Berlin', 'Asia/Kolkata']) {
    const starts = await bucketStarts(database, { from: new Date(from), to: new Date(to) }, 'day', tz, 100)
    const spec: AggregateSpec = { filter: {}, from, to, dimensions: [{ column: 'model' }], bucket: { unit: 'day', tz, starts }, only: ['calls', 'cost', 'inputTokens'] }
    const got = await runAggregate(database, spec)
    const raw = await database.rows<Record<string, unknown>>(sql`
      SELECT date_trunc('day', created_at, ${tz}) AS bucket, model AS g0, count(*) AS calls, coalesce(sum(cost), 0) AS cost, sum(input_tokens) AS input_tokens
      FROM usage_events WHERE created_at >= ${new Date(from).toISOString()} AND created_at < ${new Date(to).toISOString()} GROUP BY 1, 2`)
    t.same(norm(got), norm(raw), `day buckets in ${tz} by model equal raw ${when}`)
  }
  const filter: EventFilter = { botIds: ['bot_a', 'bot_b'], from: new Date(from), to: new Date(to) }
  const spent = await spendOf(database, [{ id: 'x', filter, from: new Date(from), to: new Date(to) }])
  const [rawSpend] = await database.rows<{ cost: string }>(sql`
    SELECT coalesce(sum(cost), 0)::text AS cost FROM usage_events
    WHERE bot_id IN ('bot_a', 'bot_b') AND created_at >= ${new Date(from).toISOString()} AND created_at < ${new Date(to).toISOString()}`)
  t.equal(Number(spent.get('x')) / 1e12, Number(rawSpend.cost), `budget spend equals raw ${when}`)

  const top = await topErrorMessages(database, { from: new Date(START), to: new Date(to) }, 10)
  const rawTop = await database.rows<{ message: string; n: string | number }>(sql`
    SELECT left(error_message, 300) AS message, count(*) AS n FROM usage_events
    WHERE NOT success AND created_at >= ${new Date(START).toISOString()} AND created_at < ${new Date(to).toISOString()} GROUP BY 1`)
  t.same(
    top.map((m) => `${m.message}:${m.count}`).sort(),
    rawTop.map((m) => `${m.message}:${Number(m.n)}`).sort(),
    `top error messages equal raw ${when}`,
  )

  const hours = [START + 3_600_000, START + 86_400_000 + 5 * 3_600_000].map((h) => new Date(h))
  const perHour = await spendPerHour(database, { hours, botIds: null, byModel: true, activeSince: new Date(0) })
  const rawPerHour = await database.rows<{ hour: Date | string; bot_id: string; model: string; cost: string }>(sql`
    SELECT date_trunc('hour', created_at, 'UTC') AS hour, bot_id, model, coalesce(sum(cost), 0)::text AS cost FROM usage_events
    WHERE date_trunc('hour', created_at, 'UTC') IN (${hours[0].toISOString()}::timestamptz, ${hours[1].toISOString()}::timestamptz) GROUP BY 1, 2, 3`)
  t.same(
    perHour.map((r) => `${r.hour.toISOString()} ${r.botId} ${r.model} ${Number(r.spent) / 1e12}`).sort(),
    // spendPerHour lists only the bots that spent anything in those hours.
    rawPerHour
      .filter((r) => rawPerHour.some((o) => o.bot_id === r.bot_id && Number(o.cost) > 0))
      .map((r) => `${new Date(r.hour).toISOString()} ${r.bot_id} ${r.model} ${Number(r.cost)}`)
      .sort(),
    `spend per hour equals raw ${when}`,
  )
}

t.test('ingest leaves the rollups alone; reads include the tail; a fold moves it into the rollups', async (t) => {
  await insertEvents(database, events(40))
  await foldAll(database)
  t.equal(await tailSize(), 0, 'everything folded')
  await insertEvents(database, events(60))
  t.equal(await tailSize(), 60, 'the new events are the tail')
  const [stored] = await database.rows<{ calls: string | number }>(sql`SELECT coalesce(sum(calls), 0) AS calls FROM usage_daily`)
  t.equal(Number(stored.calls), 40, 'the rollups hold only the folded events')
  await assertReadsEqualRaw(t, 'with 60 unfolded events')

  const outcome = await foldRollups(database)
  t.same({ ran: outcome.ran, folded: outcome.folded, behindRows: outcome.behindRows }, { ran: true, folded: 60, behindRows: 0 })
  t.equal(await tailSize(), 0)
  await assertRollupsEqualRaw(t, 'after the fold')
  await assertReadsEqualRaw(t, 'after the fold')
  t.equal((await foldRollups(database)).folded, 0, 'a second fold finds nothing')
  await assertRollupsEqualRaw(t, 'after a second fold')
})

t.test('a fold takes at most about maxRows events, whole transactions only', async (t) => {
  await insertEvents(database, events(30))
  await insertEvents(database, events(30))
  await insertEvents(database, events(30))
  const first = await foldRollups(database, 40)
  t.equal(first.folded, 30, 'the first transaction only: the second would pass 40')
  t.equal(first.behindRows, 60)
  const big = await foldRollups(database, 10)
  t.equal(big.folded, 30, 'a transaction larger than maxRows is folded whole')
  await assertReadsEqualRaw(t, 'with part of the tail folded')
  t.equal(await foldAll(database, 10), 30)
  await assertRollupsEqualRaw(t, 'after folding in steps')
})

t.test('the watermark never passes a transaction still open, whose rows a fold cannot see yet', { skip: ENGINE !== 'postgres' && 'needs two connections' }, async (t) => {
  let release!: () => void
  let inserted!: () => void
  const insertedOnce = new Promise<void>((resolve) => (inserted = resolve))
  const open = database.db.transaction(async (tx) => {
    await insertEvents(database, events(5, { botId: 'bot_slow' }), true, tx)
    inserted()
    await new Promise<void>((resolve) => (release = resolve))
  })
  await insertedOnce
  // A later transaction (higher txid) commits while the first is open; the fold runs.
  await insertEvents(database, events(7))
  const fold = await foldRollups(database)
  t.equal(fold.folded, 0, 'nothing past the open transaction is folded (its txid is below the later one)')
  const [{ open_below: openBelow }] = await database.rows<{ open_below: boolean }>(sql`
    SELECT (SELECT rolled_below FROM rollup_watermark) <= (SELECT txid FROM usage_events ORDER BY txid LIMIT 1) AS open_below`)
  t.ok(openBelow, 'the watermark is at or below every committed event of a later transaction')
  await assertReadsEqualRaw(t, 'while a transaction is open')
  release()
  await open
  t.equal(await tailSize(), 12, 'both transactions are in the tail')
  await assertReadsEqualRaw(t, 'after the open one committed, before folding')
  t.equal(await foldAll(database), 12)
  await assertRollupsEqualRaw(t, 'after it committed and a fold ran')
})

t.test('a long transaction that writes no events does not hold the fold back', { skip: ENGINE !== 'postgres' && 'needs two connections' }, async (t) => {
  let release!: () => void
  let started!: () => void
  const isOpen = new Promise<void>((resolve) => (started = resolve))
  const open = database.db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_current_xact_id()`) // an xid, below every later one, and no lock on usage_events
    started()
    await new Promise<void>((resolve) => (release = resolve))
  })
  await isOpen
  await insertEvents(database, events(6))
  t.equal((await foldRollups(database)).folded, 6, 'the later events are folded past the open transaction')
  await assertRollupsEqualRaw(t, 'past a long transaction elsewhere')
  release()
  await open
})

t.test('folds running at once, from several connections (instances), count every event once', async (t) => {
  const others: Database[] = []
  if (ENGINE === 'postgres') {
    for (let i = 0; i < 2; i++) {
      const other = await connectDatabase({ databaseUrl: TEST_DATABASE_URL, dataDir: 'memory://', schema: database.schema, poolSize: 3 })
      others.push(other)
      t.teardown(() => other.close())
    }
  }
  const instances = [database, ...others]
  let stop = false
  const folders = instances.flatMap((db) =>
    [0, 1].map(async () => {
      let folded = 0
      while (!stop) folded += (await foldRollups(db, 25)).folded
      return folded
    }),
  )
  let sent = 0
  for (let i = 0; i < 20; i++) {
    const writes = instances.map((db) => insertEvents(db, events(9)))
    await Promise.all(writes)
    sent += 9 * instances.length
  }
  stop = true
  const foldedByThem = (await Promise.all(folders)).reduce((a, b) => a + b, 0)
  const rest = await foldAll(database)
  t.equal(foldedByThem + rest, sent, 'the folds together folded every event exactly once')
  await assertRollupsEqualRaw(t, 'after concurrent folds')
  await assertReadsEqualRaw(t, 'after concurrent folds')
})

t.test('repricing folded and unfolded events keeps rollups and reads exact', async (t) => {
  await insertEvents(database, events(50))
  await foldAll(database)
  await insertEvents(database, events(50))
  t.equal(await tailSize(), 50)
  const outcome = await repriceEvents(database, {}, (e) => ({ cost: (Number(e.input_tokens) / 1000).toFixed(6), priced: true, priceSource: 'test' }), 17)
  t.equal(outcome.scanned, 100)
  const [{ sum }] = await database.rows<{ sum: string }>(sql`SELECT sum(cost)::text AS sum FROM usage_events`)
  t.equal(Number(sum), (await database.rows<{ s: string }>(sql`SELECT sum(input_tokens / 1000.0)::text AS s FROM usage_events`)).map((r) => Number(r.s))[0])
  await assertReadsEqualRaw(t, 'after repricing, tail unfolded')
  t.equal(await foldAll(database), 50)
  await assertRollupsEqualRaw(t, 'after repricing and folding')
  await assertReadsEqualRaw(t, 'after repricing and folding')
})

t.test('retention deletes only folded events; rollups keep what it deleted', async (t) => {
  await insertEvents(database, events(20))
  await foldAll(database)
  await insertEvents(database, events(15))
  const cutoff = new Date(START + 10 * 86_400_000)
  t.equal(await deleteExpiredEvents(database, cutoff, 7), 20, 'the folded events are deleted')
  t.equal(await deleteExpiredEvents(database, cutoff, 7), 0, 'the unfolded ones are kept')
  t.equal(await foldAll(database), 15)
  t.equal(await deleteExpiredEvents(database, cutoff, 7), 15, 'once folded, they expire too')
  const [{ calls }] = await database.rows<{ calls: string | number }>(sql`SELECT sum(calls) AS calls FROM usage_hourly`)
  t.equal(Number(calls), 35, 'the rollups still count every event')
})

t.test('rebuildRollups sets the watermark to what it rebuilt', async (t) => {
  await insertEvents(database, events(25))
  await foldAll(database)
  await insertEvents(database, events(25))
  await rebuildRollups(database)
  t.equal(await tailSize(), 0, 'every finished event was rebuilt')
  await assertRollupsEqualRaw(t, 'after a rebuild')
  await insertEvents(database, events(10))
  await assertReadsEqualRaw(t, 'after a rebuild and more events')
  t.equal(await foldAll(database), 10)
  await assertRollupsEqualRaw(t, 'after a rebuild and a fold')
})

t.test('budget spend right after commit includes the event, before any fold', async (t) => {
  const [e] = events(1, { cost: '1.250000', priced: true, createdAt: new Date() })
  await insertEvents(database, [e])
  const from = new Date(Date.now() - 86_400_000 * 3)
  const spent = await spendOf(database, [{ id: 'b', filter: { botIds: [e.botId] }, from, to: new Date(Date.now() + 60_000) }])
  t.equal(spent.get('b'), 1_250_000_000_000n, 'the spend is there at once')
  t.equal(await tailSize(), 1, 'and it was read from the tail')
})
