// Anthropic Message Batch results, read with the real SDK from the fake Anthropic (real wire format:
// the batch, then its results_url as .jsonl), tracked through a real UsageClient into the real service.
import Anthropic from '@anthropic-ai/sdk'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { batchEventId, instrumentAnthropic, trackAnthropicBatchResults, UsageClient } from '../../src/client/index.js'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase, resetTables } from '../helpers/db.js'
import { startFakeAnthropic } from '../helpers/fake-providers.js'
import { countEvents, getJson } from '../helpers/usage.js'
import { fastRetry } from './support.js'

const database = await createTestDatabase(t)
t.beforeEach(() => resetTables(database))

const MODEL = 'claude-sonnet-4-5-20250929'
const CACHED = { input_tokens: 2000, cache_read_input_tokens: 6000, cache_creation_input_tokens: 1000, output_tokens: 800 }
const SEARCHED = { ...CACHED, server_tool_use: { web_search_requests: 2 } }

type Stored = Record<string, unknown> & { id: string; estimatedCost: number }

async function setup(t: Test): Promise<{ app: FastifyInstance; usage: UsageClient; anthropic: Anthropic; fake: Awaited<ReturnType<typeof startFakeAnthropic>> }> {
  const { app } = await buildTestApp(t, database)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  const res = await app.inject({ method: 'POST', url: '/api/keys', headers: bearer(ADMIN_KEY), payload: { name: 'bot_batch', scopes: ['ingest'], botId: 'bot_batch' } })
  const usage = new UsageClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: res.json().key, botId: 'bot_batch', flushIntervalMs: 20, timeoutMs: 2000, retry: fastRetry })
  t.teardown(() => usage.close({ deadlineMs: 500 }))
  const fake = await startFakeAnthropic()
  t.teardown(() => fake.close())
  return { app, usage, fake, anthropic: new Anthropic({ apiKey: 'test', baseURL: fake.url, maxRetries: 0 }) }
}

async function stored(app: FastifyInstance): Promise<Map<string, Stored>> {
  const { body } = await getJson<{ recentUsage: Stored[] }>(app, '/api/usage?botId=bot_batch&limit=100', bearer(ADMIN_KEY))
  return new Map(body.recentUsage.map((event) => [event.id, event]))
}

t.test('succeeded results are tracked at the batch tier, errored as failed, expired and canceled skipped; a re-import stores nothing twice', async (t) => {
  const { app, usage, fake, anthropic } = await setup(t)
  const batchId = 'msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d'
  fake.batches.set(batchId, [
    { customId: 'cached-1', type: 'succeeded', model: MODEL, reply: { usage: CACHED } },
    { customId: 'searched-2', type: 'succeeded', model: MODEL, reply: { usage: SEARCHED } },
    { customId: 'broken-3', type: 'errored', status: 400, message: 'messages: at least one message is required' },
    { customId: 'late-4', type: 'expired' },
    { customId: 'stopped-5', type: 'canceled' },
  ])

  const counts = await trackAnthropicBatchResults(usage, batchId, await anthropic.messages.batches.results(batchId), { metadata: { job: 'nightly' }, model: MODEL })
  t.same(counts, { tracked: 2, failed: 1, skipped: 2 })
  t.equal(await usage.flush({ timeoutMs: 10_000 }), true)
  const paths = fake.requests.map((request) => `${request.method} ${request.path}`)
  t.same(paths, [`GET /v1/messages/batches/${batchId}`, `GET /v1/messages/batches/${batchId}/results`], 'the SDK fetched the batch, then its results_url')

  // The same usages at the standard tier, for the price the batch discount is taken from.
  const standard = instrumentAnthropic(new Anthropic({ apiKey: 'test', baseURL: fake.url, maxRetries: 0 }), usage)
  for (const raw of [CACHED, SEARCHED]) {
    fake.enqueue({ model: MODEL, usage: raw })
    await standard.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
  }
  t.equal(await usage.flush({ timeoutMs: 10_000 }), true)

  const events = await stored(app)
  t.equal(events.size, 5)
  const cached = events.get(batchEventId(batchId, 'cached-1'))
  const searched = events.get(batchEventId(batchId, 'searched-2'))
  const broken = events.get(batchEventId(batchId, 'broken-3'))
  const standards = [...events.values()].filter((event) => event.serviceTier !== 'batch' && event.success === true)
  const stdSearched = standards.find((event) => event.webSearchRequests === 2)
  const stdCached = standards.find((event) => event.webSearchRequests !== 2)
  if (!cached || !searched || !broken || !stdCached || !stdSearched) throw new Error('missing events')
  t.match(cached, {
    model: MODEL, provider: 'anthropic', serviceTier: 'batch', success: true, priced: true,
    inputTokens: 9000, cacheReadTokens: 6000, cacheWriteTokens: 1000, outputTokens: 800,
    metadata: { job: 'nightly', anthropicBatchId: batchId, customId: 'cached-1' },
  })
  t.match(searched, { serviceTier: 'batch', webSearchRequests: 2, inputTokens: 9000, outputTokens: 800 })
  t.match(stdCached, { serviceTier: 'standard', inputTokens: 9000, cacheReadTokens: 6000 })
  t.match(stdSearched, { webSearchRequests: 2 })
  t.ok(cached.estimatedCost > 0)
  t.ok(Math.abs(cached.estimatedCost - stdCached.estimatedCost / 2) < 1e-9, `batch ${cached.estimatedCost} = half of standard ${stdCached.estimatedCost}`)
  // Web searches are per request, not discounted: the batch event costs the searches in full.
  const searchFee = stdSearched.estimatedCost - stdCached.estimatedCost
  t.ok(searchFee > 0)
  t.ok(Math.abs(searched.estimatedCost - (stdCached.estimatedCost / 2 + searchFee)) < 1e-9, 'tokens at half price, searches in full')
  t.match(broken, {
    model: MODEL, success: false, inputTokens: 0, outputTokens: 0, errorMessage: 'messages: at least one message is required',
    metadata: { customId: 'broken-3', errorType: 'invalid_request_error' },
  })
  t.equal(broken.estimatedCost, 0, 'errored requests are not billed')

  // Importing the same results again (a re-run of the job) stores nothing new.
  const again = await trackAnthropicBatchResults(usage, batchId, await anthropic.messages.batches.results(batchId))
  t.same(again, counts)
  t.equal(await usage.flush({ timeoutMs: 10_000 }), true)
  t.equal(await countEvents(database), 5)
  t.match(usage.stats(), { failed: 0, dropped: 0 })
})

t.test('a custom_id that cannot be part of an event id is hashed into a valid, stable one', async (t) => {
  const long = 'x'.repeat(120)
  const id = batchEventId('msgbatch_1', long)
  t.match(id, /^[A-Za-z0-9_.:-]{1,128}$/)
  t.equal(batchEventId('msgbatch_1', long), id, 'stable')
  t.not(batchEventId('msgbatch_2', long), id, 'per batch')
  t.equal(batchEventId('msgbatch_1', 'req-1'), 'anthropic-batch:msgbatch_1:req-1', 'readable when it fits')
  t.not(batchEventId('msgbatch_1', 'a b'), batchEventId('msgbatch_1', 'a_b'), 'sanitizing does not merge distinct ids')
})
