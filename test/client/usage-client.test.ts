import t from 'tap'
import { UsageClient, UsageClientConfigError, fromEnv, usageClientOptionsFromEnv } from '../../src/client/index.js'
import { clientFor, sampleEvent, startUsageServer } from './support.js'
import { waitFor } from '../helpers/wait.js'

t.test('batches events and sends each once with ids and createdAt assigned at track()', async (t) => {
  const server = await startUsageServer(t)
  const { client, errors } = clientFor(t, server, { batchSize: 10, flushIntervalMs: 60_000 })
  const before = Date.now()
  for (let i = 0; i < 5; i++) client.track(sampleEvent(i))
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(server.requests.length, 0, 'below batchSize nothing is sent before the interval')
  // Reaching batchSize triggers a send; the request drains the whole backlog (up to 1000).
  for (let i = 5; i < 25; i++) client.track(sampleEvent(i))
  await waitFor(() => client.stats().sent === 25, 'the batch')
  t.same(server.requests.map((request) => request.eventCount), [25])
  t.equal(await client.flush(), true)
  t.equal(server.stored.length, 25)
  const first = server.stored[0].event
  t.match(first.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  t.ok(Date.parse(String(first.createdAt)) >= before - 5)
  t.same(server.stored.map((stored) => stored.event.inputTokens), Array.from({ length: 25 }, (_, i) => 100 + i), 'order kept')
  t.same(client.stats(), { queued: 0, sent: 25, retried: 0, spooled: 0, dropped: 0, failed: 0 })
  t.same(errors, [])
})

t.test('flushes on the interval without an explicit flush()', async (t) => {
  const server = await startUsageServer(t)
  const { client } = clientFor(t, server, { batchSize: 100, flushIntervalMs: 30 })
  client.track(sampleEvent(1))
  await waitFor(() => client.stats().sent === 1, 'the timed flush', 5000)
  t.equal(server.stored.length, 1)
})

t.test('trackUsage() matches the existing bot helper', async (t) => {
  const server = await startUsageServer(t)
  const { client } = clientFor(t, server)
  client.trackUsage('gpt-4o', 'openai', 120, 30, false, 'x'.repeat(5000))
  client.trackUsage('gpt-4o', 'openai', 5, 6, true)
  await client.flush()
  const [failed, ok] = server.stored.map((stored) => stored.event)
  t.match(failed, { model: 'gpt-4o', provider: 'openai', inputTokens: 120, outputTokens: 30, success: false, botId: 'test-bot' })
  t.equal(String(failed.errorMessage).length, 4000, 'long error messages are truncated client-side')
  t.match(ok, { inputTokens: 5, outputTokens: 6, success: true })
  t.notOk('errorMessage' in ok)
})

t.test('a given id is kept, so callers can make their own retries idempotent', async (t) => {
  const server = await startUsageServer(t)
  const { client } = clientFor(t, server)
  client.track({ ...sampleEvent(1), id: 'my-call-1' })
  client.track({ ...sampleEvent(1), id: 'my-call-1' })
  await client.flush()
  t.same(server.ids(), ['my-call-1'])
  t.equal(server.duplicatesReceived, 1)
  t.equal(client.stats().sent, 2, 'a duplicate counts as sent')
})

t.test('bad input and client bugs never throw into the host', async (t) => {
  const server = await startUsageServer(t)
  let hookCalls = 0
  const client = new UsageClient({
    baseUrl: server.url,
    apiKey: 'test-key',
    botId: 'test-bot',
    flushIntervalMs: 10,
    onError: () => {
      hookCalls++
      throw new Error('onError hook bug')
    },
  })
  t.teardown(() => client.close({ deadlineMs: 500 }))
  const circular: Record<string, unknown> = { chatId: 1 }
  circular.self = circular
  const garbage: unknown[] = [
    null,
    undefined,
    42,
    'event',
    [],
    { model: 'm' },
    { model: 'm', provider: 'p', inputTokens: -1, outputTokens: 1 },
    { model: 'm', provider: 'p', inputTokens: 1.5, outputTokens: 1 },
    { model: 'm', provider: 'p', inputTokens: 1, outputTokens: 1, totalTokens: 3 },
    { model: 'm', provider: 'p', inputTokens: 1, outputTokens: 1, id: 'has spaces' },
    { model: 'm', provider: 'p', inputTokens: 1, outputTokens: 1, createdAt: 'yesterday' },
    {
      get model(): string {
        throw new Error('getter bug')
      },
    },
  ]
  for (const input of garbage) {
    t.doesNotThrow(() => client.track(input as never))
  }
  // Circular or oversized metadata loses the metadata, not the event.
  t.doesNotThrow(() => client.track({ ...sampleEvent(1), metadata: circular }))
  t.doesNotThrow(() => client.track({ ...sampleEvent(2), metadata: { blob: 'x'.repeat(20_000) } }))
  // Unknown fields are left out (the service would reject them).
  t.doesNotThrow(() => client.track({ ...sampleEvent(3), colour: 'blue' } as never))
  await client.flush()
  t.equal(client.stats().failed, garbage.length)
  t.equal(server.stored.length, 3)
  t.equal(server.invalidReceived, 0)
  t.notOk('metadata' in server.stored[0].event)
  t.notOk('metadata' in server.stored[1].event)
  t.notOk('colour' in server.stored[2].event)
  t.equal(hookCalls, garbage.length + 2)
})

t.test('per-item invalid results fail only that event; 401 fails the batch without retry', async (t) => {
  const server = await startUsageServer(t)
  const { client, errors } = clientFor(t, server)
  // Slips past local validation only because it is far in the future: the service rejects it.
  client.track({ ...sampleEvent(1), createdAt: Date.now() + 3_600_000 })
  client.track(sampleEvent(2))
  await client.flush()
  t.equal(server.stored.length, 1)
  t.match(client.stats(), { sent: 1, failed: 1, retried: 0 })
  t.match(errors, [{ code: 'USAGE_CLIENT_EVENT_REJECTED', serverCode: 'INVALID_EVENT' }])
  t.equal(errors[0].eventIds.length, 1)

  const { client: badKey, errors: badKeyErrors } = clientFor(t, server, { apiKey: 'wrong' })
  badKey.track(sampleEvent(3))
  badKey.track(sampleEvent(4))
  await badKey.flush()
  t.match(badKey.stats(), { sent: 0, failed: 2, retried: 0 })
  t.match(badKeyErrors, [{ code: 'USAGE_CLIENT_REQUEST_REJECTED', statusCode: 401 }])
  t.equal(badKeyErrors[0].eventIds.length, 2)
})

t.test('splits batches to stay under the body limit', async (t) => {
  const server = await startUsageServer(t)
  const { client } = clientFor(t, server, { batchSize: 1000, maxBatchBytes: 50_000 })
  for (let i = 0; i < 60; i++) client.track({ ...sampleEvent(i), metadata: { pad: 'x'.repeat(2000) } })
  await client.flush()
  t.equal(server.stored.length, 60)
  t.ok(server.requests.length >= 3, `sent in ${server.requests.length} requests`)
  t.ok(server.requests.every((request) => request.status === 200))
})

t.test('withMetadata() adds caller context to events tracked inside it', async (t) => {
  const server = await startUsageServer(t)
  const { client } = clientFor(t, server)
  await client.withMetadata({ chatId: 42, userId: 7 }, async () => {
    await Promise.resolve()
    client.track({ ...sampleEvent(1), metadata: { userId: 8 } })
  })
  client.track(sampleEvent(2))
  await client.flush()
  t.same(server.stored[0].event.metadata, { chatId: 42, userId: 8 })
  t.same(server.stored[1].event.metadata, { n: 2 })
})

t.test('track() after close() is counted as dropped, not thrown', async (t) => {
  const server = await startUsageServer(t)
  const { client, errors } = clientFor(t, server)
  await client.close()
  t.doesNotThrow(() => client.track(sampleEvent(1)))
  t.equal(client.stats().dropped, 1)
  t.match(errors, [{ code: 'USAGE_CLIENT_CLOSED' }])
  await client.close()
})

t.test('options are validated at construction', async (t) => {
  t.throws(() => new UsageClient({ baseUrl: 'nope', apiKey: '', botId: '' }), UsageClientConfigError)
  t.throws(() => new UsageClient({ baseUrl: 'http://x', apiKey: 'k', botId: 'b', batchSize: 5000 }), /batchSize/)
})

t.test('fromEnv reads the bot variables and USAGE_CLIENT_* knobs', async (t) => {
  const options = usageClientOptionsFromEnv({
    PLATFORM_URL: 'http://platform:3000',
    USAGE_API_KEY: 'k',
    BOT_ID: 'bot-1',
    USAGE_CLIENT_BATCH_SIZE: '50',
    USAGE_CLIENT_FLUSH_INTERVAL_MS: '250',
    USAGE_CLIENT_SPOOL_DIR: '/var/spool/usage',
    USAGE_CLIENT_RETRY_BASE_MS: '100',
  })
  t.match(options, {
    baseUrl: 'http://platform:3000',
    apiKey: 'k',
    botId: 'bot-1',
    batchSize: 50,
    flushIntervalMs: 250,
    spoolDir: '/var/spool/usage',
    retry: { baseDelayMs: 100 },
  })
  t.equal(usageClientOptionsFromEnv({ USAGE_API_URL: 'http://a', PLATFORM_URL: 'http://b', USAGE_API_KEY: 'k', BOT_ID: 'b' }).baseUrl, 'http://a')
  t.throws(() => fromEnv({ USAGE_CLIENT_MAX_QUEUE: 'many' }), {
    message: /USAGE_API_URL \(or PLATFORM_URL\).*USAGE_API_KEY.*BOT_ID.*USAGE_CLIENT_MAX_QUEUE/,
  })
  const client = fromEnv({ USAGE_API_URL: 'http://127.0.0.1:9', USAGE_API_KEY: 'k', BOT_ID: 'b' }, { flushIntervalMs: 5 })
  t.ok(client instanceof UsageClient)
  await client.close({ deadlineMs: 10 })
})

t.test('an event tracked right after flush() resolved is not stranded (no lost wake-up)', async (t) => {
  const server = await startUsageServer(t)
  const { client } = clientFor(t, server, { batchSize: 1, flushIntervalMs: 60_000 })
  for (let i = 0; i < 5; i++) {
    client.track(sampleEvent(i))
    t.equal(await client.flush({ timeoutMs: 2000 }), true, `event ${i} sent at once`)
  }
  t.equal(server.stored.length, 5)
})
