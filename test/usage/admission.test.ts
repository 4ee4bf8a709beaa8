import t from 'tap'
import { createTestDatabase } from '../helpers/db.js'
import { countEvents, holdWrites, SEED_EVENT } from '../helpers/usage.js'
import { normalizeEvent } from '../../src/usage/ingest.js'
import type { NewUsageEvent } from '../../src/usage/repository.js'
import { remainingFlushMs, WriteQueue, type WriteQueueOptions } from '../../src/usage/write-queue.js'
import { LoopDelayMonitor } from '../../src/lib/loop-delay.js'

type Database = Awaited<ReturnType<typeof createTestDatabase>>

function event(id: string): NewUsageEvent {
  return normalizeEvent(
    { ...SEED_EVENT, id },
    { root: 'body', botId: undefined, now: new Date(), limits: { maxFutureSkewMs: 60_000 }, price: () => ({ cost: null, priced: false, priceSource: null }) },
  )
}

function queue(database: Database, opts: Partial<WriteQueueOptions> = {}): WriteQueue {
  return new WriteQueue(database, {
    enabled: true,
    maxEvents: 500,
    maxWaitMs: 2,
    maxQueuedEvents: 20_000,
    // Large, so that only the rule under test can refuse.
    maxQueueDelayMs: 600_000,
    maxConcurrentFlushes: 1,
    flushWhenIdle: true,
    ...opts,
  })
}

t.test('what is left of a flush: its average while young, then as long again as it has run', async (t) => {
  t.equal(remainingFlushMs(40, 0), 40, 'just started: the whole average')
  t.equal(remainingFlushMs(40, 10), 30, 'young: the rest of the average')
  t.equal(remainingFlushMs(40, 20), 20, 'at half the average both estimates meet')
  t.equal(remainingFlushMs(40, 40), 40, 'at its average it is not about to end (the old estimate said 0)')
  t.equal(remainingFlushMs(40, 300), 300, 'a slow flush: as long again')
})

t.test('small writes are refused while the event loop is late, and admitted again once it is not', async (t) => {
  const database = await createTestDatabase(t)
  let delay = 0
  const q = queue(database, { maxLoopDelayMs: 50, loopDelayMs: () => delay })
  t.teardown(() => q.close())
  delay = 500
  t.ok(q.wouldAdmit(1), 'an idle writer admits whatever the loop says: nothing is queued behind it')
  const lock = await holdWrites(database)
  const first = q.write([event('loop-1')])
  t.notOk(q.wouldAdmit(1), 'a flush in flight and the loop 500 ms late: refused')
  await t.rejects(q.write([event('loop-refused')]), { code: 'OVERLOADED' }, 'write() refuses the same way')
  t.ok(q.wouldAdmit(250), 'a batch of half a group or more is not refused by the loop delay')
  delay = 49
  t.ok(q.wouldAdmit(1), 'under the bound: admitted')
  const second = q.write([event('loop-2')])
  delay = 50
  t.notOk(q.wouldAdmit(1), 'at the bound: refused')
  await lock.release()
  t.same((await Promise.all([first, second])).map(([r]) => r.status), ['created', 'created'], 'the admitted ones are stored')
  t.equal(await countEvents(database), 2, 'the refused one is not')
})

t.test('maxLoopDelayMs 0 turns the loop-delay rule off', async (t) => {
  const database = await createTestDatabase(t)
  const q = queue(database, { maxLoopDelayMs: 0, loopDelayMs: () => 10_000 })
  t.teardown(() => q.close())
  const lock = await holdWrites(database)
  const first = q.write([event('off-1')])
  t.ok(q.wouldAdmit(1), 'admitted though the loop is 10 s late')
  await lock.release()
  t.equal((await first)[0].status, 'created')
})

t.test('a flush that has outrun its average counts as slow: writes arriving during it are refused', async (t) => {
  const database = await createTestDatabase(t)
  const q = queue(database, { maxQueueDelayMs: 100 })
  t.teardown(() => q.close())
  const lock = await holdWrites(database)
  const first = q.write([event('slow-1')])
  t.ok(q.wouldAdmit(1), 'just after the flush started (average flush 5 ms): admitted')
  // Real time passes so that the flush in flight has run past the bound; no assertion on how long anything took.
  await new Promise((r) => setTimeout(r, 150))
  t.notOk(q.wouldAdmit(1), 'the flush in flight has run 150 ms, 30x its average, with nothing queued: refused')
  t.ok(q.wouldAdmit(250), 'a batch is bounded by queued events only')
  await lock.release()
  t.equal((await first)[0].status, 'created')
  await new Promise((r) => setImmediate(r)) // the flush's bookkeeping runs after its callers are answered
  t.ok(q.wouldAdmit(1), 'idle again: admitted')
})

t.test('the loop-delay monitor: busy time of the running turn, or a late tick of the last 100 ms', async (t) => {
  const m = new LoopDelayMonitor()
  // A clock of the test's own, far from the monitor's start.
  const B = 1e9
  for (let at = B - 200; at <= B; at += 10) m.tick(at)
  t.equal(m.delayMs(B + 5), 0, 'within the tick interval: no delay')
  t.equal(m.delayMs(B + 90), 80, 'the turn has run 90 ms without the 10 ms timer: 80 ms late, seen while it runs')
  m.tick(B + 210)
  t.equal(m.delayMs(B + 212), 200, 'just after a tick 200 ms late: requests read now waited through that turn')
  m.tick(B + 220)
  m.tick(B + 230)
  t.equal(m.delayMs(B + 231), 200, 'punctual ticks do not erase a late one at once')
  m.tick(B + 311)
  t.equal(m.delayMs(B + 312), 71, 'over 100 ms after the late tick it is forgotten; the newest lateness counts (311 - 230 - 10)')
  for (let at = B + 321; at <= B + 421; at += 10) m.tick(at)
  t.equal(m.delayMs(B + 422), 0, 'after 100 ms of punctual ticks: no delay')
})
