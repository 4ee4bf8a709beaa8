import { sql } from 'drizzle-orm'
import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { countEvents, holdWrites, postBatch, postUsage, rollupMismatches, SEED_EVENT } from '../helpers/usage.js'

t.test('past the ingest queue bound: fast 503 with Retry-After, and every acknowledged event is stored', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database, { INGEST_MAX_QUEUED_EVENTS: '20' })
  const lock = await holdWrites(database)
  let settled = 0
  const pending = Array.from({ length: 200 }, (_, i) =>
    postUsage(app, { ...SEED_EVENT, id: `bp-${i}` }).finally(() => settled++),
  )
  // While writes are stuck, everything past the first flush and the 20 queued is shed at once.
  const deadline = Date.now() + 10_000
  while (settled < 150 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  t.ok(settled >= 150, `${settled} requests answered while the database was blocked`)
  await lock.release()
  const responses = await Promise.all(pending)
  const created = responses.filter((r) => r.statusCode === 201)
  const shed = responses.filter((r) => r.statusCode === 503)
  t.equal(created.length + shed.length, 200, 'every request is either stored or shed')
  t.ok(created.length >= 20 && created.length <= 21 + 20, `${created.length} stored: the group in flight plus the bounded queue`)
  for (const r of shed) {
    t.equal(r.headers['retry-after'], '1')
    t.match(r.json(), { statusCode: 503, code: 'OVERLOADED' })
  }
  t.equal(await countEvents(database), created.length, 'stored == acknowledged')
})

t.test('small writes are shed once the writer has been behind for INGEST_MAX_QUEUE_DELAY_MS (the oldest queued write has waited, the flush in flight has run)', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database, { INGEST_MAX_QUEUE_DELAY_MS: '200', INGEST_MAX_CONCURRENT_FLUSHES: '1' })
  const lock = await holdWrites(database)
  // Should a write be wrongly admitted below, it would wait for the lock: release it in time to fail, not hang.
  const safety = setTimeout(() => void lock.release(), 10_000)
  t.teardown(() => clearTimeout(safety))
  // The first write is flushed and stuck behind the lock (one flush at a time); later ones queue.
  const inFlight = postUsage(app, { ...SEED_EVENT, id: 'delay-1' })
  await new Promise((r) => setTimeout(r, 20))
  const queued = postUsage(app, { ...SEED_EVENT, id: 'delay-2' })
  await new Promise((r) => setTimeout(r, 50))
  const young = postUsage(app, { ...SEED_EVENT, id: 'delay-3' })
  await new Promise((r) => setTimeout(r, 300))
  const started = Date.now()
  const late = await postUsage(app, { ...SEED_EVENT, id: 'delay-4' })
  t.equal(late.statusCode, 503, 'refused: the oldest queued write has waited, and the flush in flight has run, longer than the bound')
  t.match(late.json(), { code: 'OVERLOADED' })
  t.ok(Date.now() - started < 1000, 'refused at once, not after waiting')
  await lock.release()
  t.same((await Promise.all([inFlight, queued, young])).map((r) => r.statusCode), [201, 201, 201], 'admitted writes are all stored')
  t.equal(await countEvents(database), 3, 'the refused one is not')
})

t.test('a write that arrives during a long flush is refused at once, though nothing is queued yet', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database, { INGEST_MAX_QUEUE_DELAY_MS: '100', INGEST_MAX_CONCURRENT_FLUSHES: '1' })
  // Teach the queue that flushes take about 400 ms: each of these waits for a lock held that long.
  const SLOW_MS = 400
  for (let i = 0; i < 6; i++) {
    const lock = await holdWrites(database)
    const write = postUsage(app, { ...SEED_EVENT, id: `slow-${i}` })
    await new Promise((r) => setTimeout(r, SLOW_MS))
    await lock.release()
    t.equal((await write).statusCode, 201, `slow write ${i} admitted: nothing was queued or in flight`)
  }
  const lock = await holdWrites(database)
  const safety = setTimeout(() => void lock.release(), 10_000)
  t.teardown(() => clearTimeout(safety))
  const inFlight = postUsage(app, { ...SEED_EVENT, id: 'in-flight' })
  await new Promise((r) => setTimeout(r, 20))
  const started = Date.now()
  const late = await postUsage(app, { ...SEED_EVENT, id: 'behind-the-flush' })
  // Waiting for the flush in flight (~400 ms) and then its own (~400 ms) is far past 100 ms.
  t.equal(late.statusCode, 503, 'refused: the flush in flight will take longer than the bound')
  t.equal(late.headers['retry-after'], '1')
  t.match(late.json(), { code: 'OVERLOADED' })
  t.ok(Date.now() - started < SLOW_MS, 'refused at once, not after the flush')
  await lock.release()
  t.equal((await inFlight).statusCode, 201)
  const idle = await postUsage(app, { ...SEED_EVENT, id: 'idle' })
  t.equal(idle.statusCode, 201, 'with nothing queued or in flight, a write is admitted however slow flushes have been')
  t.equal(await countEvents(database), 6 + 2, 'stored == acknowledged')
})

t.test('a flush the infrastructure fails fails exactly the requests in it, retryably, and stores none of them', async (t) => {
  const database = await createTestDatabase(t)
  const testApp = await buildTestApp(t, database, { INGEST_GROUP_MAX_EVENTS: '10' })
  const { app } = testApp
  // A real database error for any group that contains a "poison" event, of a class that is not
  // the data's fault (57014: statement cancelled, as by a timeout). A data error (class 22/23)
  // fails the offending event alone: test/usage/write-integrity.test.ts.
  await database.db.execute(sql.raw(`
    CREATE FUNCTION cancel_poison() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.model = 'poison' THEN RAISE EXCEPTION 'cancelled for the test' USING ERRCODE = '57014'; END IF;
      RETURN NEW;
    END $$`))
  await database.db.execute(sql`CREATE TRIGGER no_poison BEFORE INSERT ON usage_events FOR EACH ROW EXECUTE FUNCTION cancel_poison()`)
  const bodies = Array.from({ length: 120 }, (_, i) => ({ ...SEED_EVENT, id: `ff-${i}`, model: i % 40 === 7 ? 'poison' : 'claude-opus' }))
  const responses = await Promise.all(bodies.map((b) => postUsage(app, b)))
  const ok = responses.filter((r) => r.statusCode === 201)
  const failed = responses.filter((r) => r.statusCode === 503)
  t.equal(ok.length + failed.length, 120)
  responses.forEach((r, i) => {
    if (bodies[i].model === 'poison') t.equal(r.statusCode, 503, `poison ${i} failed`)
  })
  for (const r of failed) {
    t.match(r.json(), { code: 'WRITE_FAILED', message: /nothing was stored/ })
    t.equal(r.headers['retry-after'], '1')
    t.notMatch(r.body, /no_poison|constraint|violates/, 'no SQL in the response')
  }
  t.ok(ok.length >= 120 - 3 * 10, `groups without poison were stored (${ok.length}); groups are at most 10 events`)
  t.equal(await countEvents(database), ok.length, 'exactly the acknowledged events are stored')
  t.same(await rollupMismatches(database), [], 'no rollup change from failed groups')
  const causes = testApp.logs.filter((l) => l.msg === 'ingest flush failed; its requests were answered 503')
  t.ok(causes.length > 0 && causes.every((l) => l.sqlState === '57014'), 'the cause is logged')
  t.notMatch(testApp.rawLog(), /INSERT INTO|json_to_recordset/, 'never the SQL')

  const batch = await postBatch(app, [{ ...SEED_EVENT, id: 'b1' }, { ...SEED_EVENT, id: 'b2', model: 'poison' }])
  t.equal(batch.statusCode, 503, 'a batch is all or nothing')
  t.equal(await countEvents(database), ok.length)
  await database.db.execute(sql`DROP TRIGGER no_poison ON usage_events`)
  const retried = await postBatch(app, [{ ...SEED_EVENT, id: 'b1' }, { ...SEED_EVENT, id: 'b2', model: 'poison' }])
  t.match(retried.json(), { created: 2 }, `a retry after the failure stores both: ${retried.statusCode} ${retried.body}`)
})

t.test('group commit off: one transaction per request, same results', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database, { INGEST_GROUP_COMMIT: 'false' })
  const responses = await Promise.all(Array.from({ length: 50 }, (_, i) => postUsage(app, { ...SEED_EVENT, id: `gc-${i % 40}` })))
  t.equal(responses.filter((r) => r.statusCode === 201).length, 40)
  t.equal(responses.filter((r) => r.statusCode === 200).length, 10)
  t.equal(await countEvents(database), 40)
  t.same(await rollupMismatches(database), [])
})

t.test('under pressure (heap over the limit): 503 with Retry-After instead of work', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database, { MAX_HEAP_USED_BYTES: '1' })
  // under-pressure samples every few ms; the first sample sees the heap over 1 byte.
  let res = await postUsage(app, SEED_EVENT)
  const deadline = Date.now() + 5000
  while (res.statusCode !== 503 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20))
    res = await postUsage(app, SEED_EVENT)
  }
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '1')
  t.match(res.json(), { code: 'OVERLOADED', message: /under pressure/ })
})

t.test('slow startup (embedded engine boot, migrations) does not shed the first requests', async (t) => {
  // Start-up work that holds the event loop, as booting PGlite and migrating it does for
  // seconds, used to count as event-loop delay: the first requests after start got 503.
  const database = await createTestDatabase(t)
  let blocked = false
  const slowToStart: typeof database = {
    ...database,
    rows: async (query) => {
      if (!blocked) {
        blocked = true
        const until = Date.now() + 2500
        while (Date.now() < until) {
          // busy: the event loop is held, like a synchronous WASM boot
        }
      }
      return database.rows(query)
    },
  }
  const { app } = await buildTestApp(t, slowToStart, { MAX_EVENT_LOOP_DELAY_MS: '1000' })
  t.ok(blocked, 'startup ran the blocking query')
  // The load-shedding sample is taken by a timer, so keep asking for longer than its 1 s interval.
  const statuses: number[] = []
  for (let i = 0; i < 15; i++) {
    statuses.push((await postUsage(app, { ...SEED_EVENT, id: `slow-start-${i}` })).statusCode)
    await new Promise((r) => setTimeout(r, 100))
  }
  t.same(new Set(statuses), new Set([201]), 'every request in the first 1.5 s after a slow start is served')
})
