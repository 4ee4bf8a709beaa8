import t from 'tap'
import { clientFor, sampleEvent, startUsageServer, tempDir } from './support.js'
import { waitFor } from '../helpers/wait.js'

t.test('service down for a while, then up: every event arrives exactly once (spool)', async (t) => {
  const server = await startUsageServer(t)
  await server.down()
  const { client } = clientFor(t, server, { spoolDir: await tempDir(t), batchSize: 20 })
  for (let i = 0; i < 50; i++) client.track(sampleEvent(i))
  t.equal(await client.flush(), true, 'flush resolves once everything is spooled')
  t.match(client.stats(), { queued: 0, spooled: 50, sent: 0, dropped: 0 })
  // More events while down.
  for (let i = 50; i < 60; i++) client.track(sampleEvent(i))
  await server.up()
  await waitFor(() => client.stats().sent === 60, 'replay after the service came back')
  t.equal(server.stored.length, 60)
  t.equal(new Set(server.ids()).size, 60)
  t.same(
    server.stored.map((stored) => stored.event.inputTokens),
    Array.from({ length: 60 }, (_, i) => 100 + i),
    'replayed in order',
  )
  t.match(client.stats(), { dropped: 0, failed: 0 })
})

t.test('service down for a while, then up: no spool, events wait in memory', async (t) => {
  const server = await startUsageServer(t)
  await server.down()
  const { client } = clientFor(t, server, { batchSize: 10 })
  for (let i = 0; i < 30; i++) client.track(sampleEvent(i))
  await waitFor(() => client.stats().retried >= 3, 'a few failed attempts')
  t.equal(await client.flush({ timeoutMs: 20 }), false, 'flush times out while down')
  await server.up()
  t.equal(await client.flush({ timeoutMs: 10_000 }), true)
  t.equal(server.stored.length, 30)
  t.equal(new Set(server.ids()).size, 30)
  t.match(client.stats(), { sent: 30, dropped: 0, failed: 0, queued: 0 })
})

t.test('503 with Retry-After is honoured', async (t) => {
  const server = await startUsageServer(t)
  server.failNext(1, 503, '1')
  const { client } = clientFor(t, server)
  client.track(sampleEvent(1))
  await client.flush()
  t.equal(server.requests.length, 2)
  const waited = server.requests[1].at - server.requests[0].at
  t.ok(waited >= 950 && waited < 2500, `waited ${waited} ms for Retry-After: 1`)
  t.equal(server.stored.length, 1)
  t.equal(client.stats().retried, 1)
})

t.test('429 with an HTTP-date Retry-After and 500 are retried', async (t) => {
  const server = await startUsageServer(t)
  server.failNext(1, 429, new Date(Date.now() + 1000).toUTCString())
  server.failNext(1, 500)
  const { client } = clientFor(t, server)
  client.track(sampleEvent(1))
  await client.flush()
  t.same(server.requests.map((request) => request.status), [429, 500, 200])
  t.equal(server.stored.length, 1)
  t.equal(client.stats().retried, 2)
})

t.test('service killed mid-batch: no loss, no duplicate stored', async (t) => {
  const server = await startUsageServer(t)
  server.killNext(1, 'after-store')
  server.killNext(1, 'before-store')
  const { client, errors } = clientFor(t, server, { batchSize: 25, flushIntervalMs: 60_000 })
  for (let i = 0; i < 50; i++) client.track(sampleEvent(i))
  await client.flush()
  t.equal(server.stored.length, 50)
  t.equal(new Set(server.ids()).size, 50)
  const storedThenKilled = server.requests.find((request) => request.status === 'killed' && request.eventCount > 0)
  t.ok(storedThenKilled, 'one request was stored and then lost its answer')
  t.equal(server.duplicatesReceived, storedThenKilled?.eventCount, 'that batch was re-sent and deduped')
  t.match(client.stats(), { sent: 50, failed: 0, dropped: 0 })
  t.same(errors, [])
})

t.test('queue full: spills to disk, nothing dropped, all arrive later', async (t) => {
  const server = await startUsageServer(t)
  await server.down()
  const { client } = clientFor(t, server, { spoolDir: await tempDir(t), maxQueue: 10, batchSize: 10, flushIntervalMs: 60_000 })
  for (let i = 0; i < 500; i++) client.track(sampleEvent(i))
  t.ok(client.stats().queued <= 500)
  await client.flush()
  t.match(client.stats(), { dropped: 0, spooled: 500, queued: 0 })
  await server.up()
  await waitFor(() => client.stats().sent === 500, 'spool replay')
  t.equal(new Set(server.ids()).size, 500)
  t.equal(server.stored.length, 500)
})

t.test('queue full without a spool drops the newest events and counts them', async (t) => {
  const server = await startUsageServer(t)
  await server.down()
  const { client, errors } = clientFor(t, server, { maxQueue: 10, batchSize: 5, flushIntervalMs: 60_000 })
  for (let i = 0; i < 30; i++) client.track({ ...sampleEvent(i), id: `e${i}` })
  const dropped = client.stats().dropped
  t.ok(dropped >= 15, `${dropped} dropped`)
  t.equal(errors.filter((error) => error.code === 'USAGE_CLIENT_QUEUE_FULL').length, dropped)
  t.same(errors.at(-1)?.eventIds, ['e29'], 'the newest is the one dropped')
  await server.up()
  await client.flush()
  t.equal(server.stored.length, 30 - dropped)
  t.equal(server.ids()[0], 'e0', 'the oldest events were kept')
})

t.test('close() with a deadline never hangs: unsent events go to the spool', async (t) => {
  const server = await startUsageServer(t)
  server.hangNext(10)
  const spoolDir = await tempDir(t)
  const { client } = clientFor(t, server, { spoolDir, timeoutMs: 60_000 })
  client.track(sampleEvent(1))
  client.track(sampleEvent(2))
  await waitFor(() => server.requests.length === 1, 'the request to hang')
  const started = Date.now()
  await client.close({ deadlineMs: 200 })
  const took = Date.now() - started
  t.ok(took < 1500, `close took ${took} ms`)
  t.match(client.stats(), { spooled: 2, dropped: 0, queued: 0 })
})

t.test('close() with a deadline never hangs: without a spool, unsent events are counted dropped', async (t) => {
  const server = await startUsageServer(t)
  await server.down()
  const { client, errors } = clientFor(t, server, { retry: { maxRetries: 100, baseDelayMs: 1000, maxDelayMs: 1000 } })
  client.track(sampleEvent(1))
  const started = Date.now()
  await client.close({ deadlineMs: 100 })
  t.ok(Date.now() - started < 1500)
  t.match(client.stats(), { dropped: 1, queued: 0 })
  t.match(errors.at(-1), { code: 'USAGE_CLIENT_CLOSED' })
})

t.test('close() drains queued events when the service is up', async (t) => {
  const server = await startUsageServer(t)
  const { client } = clientFor(t, server, { flushIntervalMs: 60_000 })
  for (let i = 0; i < 7; i++) client.track(sampleEvent(i))
  await client.close()
  t.equal(server.stored.length, 7)
  t.match(client.stats(), { sent: 7, queued: 0 })
})

t.test('no spool: events put back after a failed round are sent at the next probe, with no further activity', async (t) => {
  const server = await startUsageServer(t)
  await server.down()
  // A batch size the queue never reaches: only the flush timer makes these events due.
  let unreachable = 0
  const logger = { warn: (_: object, message?: string) => void (message?.includes('unreachable') && unreachable++) }
  const { client } = clientFor(t, server, { batchSize: 100, flushIntervalMs: 20, logger })
  client.track(sampleEvent(1))
  await waitFor(() => unreachable > 0, 'a whole failed retry round')
  // The loop must probe again by itself (fastRetry caps delays at 50 ms); before the fix it slept
  // until the next track().
  await waitFor(() => client.stats().retried >= 3, 'the probe after the failed round')
  await server.up()
  // Stored by the server first, then acknowledged to the client: wait for both.
  await waitFor(() => server.stored.length === 1 && client.stats().sent === 1, 'delivered at the next probe', 10_000)
  t.match(client.stats(), { sent: 1, queued: 0 })
})
