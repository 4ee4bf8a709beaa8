import t from 'tap'
import { ConcurrencyLimit } from '../../src/lib/concurrency-limit.js'


const limit = (maxQueueWaitMs = 60_000) => new ConcurrencyLimit({ maxConcurrent: 2, maxQueued: 1, maxQueueWaitMs, refuse: () => new Error('busy') })

t.test('two run, one waits, the next is refused at once; a released turn passes to the waiter', async (t) => {
  const l = limit()
  const first = await l.acquire()
  const second = await l.acquire()
  let thirdGranted = false
  const third = l.acquire().then((release) => {
    thirdGranted = true
    return release
  })
  await t.rejects(l.acquire(), { message: 'busy' }, 'the queue holds one')
  t.equal(thirdGranted, false)
  first()
  first() // a second release of the same turn changes nothing
  const releaseThird = await third
  t.equal(thirdGranted, true)
  // Two run (second, third); the queue has room for one again.
  const fourth = l.acquire()
  await t.rejects(l.acquire(), { message: 'busy' })
  second()
  const releaseFourth = await fourth
  releaseThird()
  releaseFourth()
  // Both turns are free: two more run at once.
  const a = await l.acquire()
  const b = await l.acquire()
  a()
  b()
})

t.test('a waiter gives up after maxQueueWaitMs', async (t) => {
  const l = limit(20)
  const held = [await l.acquire(), await l.acquire()]
  await t.rejects(l.acquire(), { message: 'busy' })
  for (const release of held) release()
  const again = await l.acquire()
  again()
})

t.test('run() gives the turn back when the task fails', async (t) => {
  const l = limit()
  for (let i = 0; i < 5; i++) await t.rejects(l.run(async () => Promise.reject(new Error('boom'))), { message: 'boom' })
  t.equal(await l.run(async () => 42), 42)
})
