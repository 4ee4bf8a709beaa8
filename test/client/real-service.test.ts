// The usage client against the real service (not the fake), on whichever engine the suite runs:
// outages, restarts with a spool, the real rate limiter's Retry-After, and an instrumented SDK
// whose normalized tokens the service prices.
import { sql } from 'drizzle-orm'
import Anthropic from '@anthropic-ai/sdk'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { instrumentAnthropic, UsageClient, type UsageClientOptions } from '../../src/client/index.js'
import type { Database } from '../../src/db/connect.js'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase, resetTables } from '../helpers/db.js'
import { startFakeAnthropic } from '../helpers/fake-providers.js'
import { countEvents, getJson, rollupMismatches } from '../helpers/usage.js'
import { fastRetry, sampleEvent, tempDir } from './support.js'
import { waitFor } from '../helpers/wait.js'

const database = await createTestDatabase(t)
t.beforeEach(() => resetTables(database))

/** The real service on a fixed port, so it can be stopped and started again where clients expect it. */
async function serve(t: Test, db: Database, port = 0, env: Record<string, string> = {}): Promise<{ app: FastifyInstance; url: string; port: number }> {
  const { app } = await buildTestApp(t, db, env)
  await app.listen({ port, host: '127.0.0.1' })
  const address = app.server.address()
  const bound = typeof address === 'object' && address ? address.port : port
  return { app, url: `http://127.0.0.1:${bound}`, port: bound }
}

async function botKey(app: FastifyInstance, botId: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/api/keys', headers: bearer(ADMIN_KEY), payload: { name: botId, scopes: ['ingest'], botId } })
  return res.json().key
}

function client(t: Test, options: UsageClientOptions): UsageClient {
  const c = new UsageClient({ flushIntervalMs: 20, timeoutMs: 2000, retry: fastRetry, ...options })
  t.teardown(() => c.close({ deadlineMs: 500 }))
  return c
}

t.test('service down for a while, then up again: every event stored exactly once', async (t) => {
  const first = await serve(t, database)
  const key = await botKey(first.app, 'bot_rs')
  const c = client(t, { baseUrl: first.url, apiKey: key, botId: 'bot_rs', spoolDir: await tempDir(t), batchSize: 10 })
  for (let i = 0; i < 25; i++) c.track(sampleEvent(i))
  t.equal(await c.flush({ timeoutMs: 10_000 }), true)
  t.equal(await countEvents(database), 25)

  await first.app.close()
  for (let i = 25; i < 60; i++) c.track(sampleEvent(i))
  t.equal(await c.flush({ timeoutMs: 10_000 }), true, 'everything reaches memory-or-spool while the service is down')
  t.ok(c.stats().spooled > 0, 'events spilled to the spool')

  await serve(t, database, first.port)
  await waitFor(() => c.stats().sent === 60, 'replay once the service is back', 20_000)
  t.equal(await countEvents(database), 60)
  t.match(c.stats(), { dropped: 0, failed: 0 })
  t.same(await rollupMismatches(database), [])
})

t.test('a restarted process replays the spool it left behind', async (t) => {
  const svc = await serve(t, database)
  const key = await botKey(svc.app, 'bot_spool')
  const spoolDir = await tempDir(t)
  const deadPort = svc.port + 1 < 65535 ? svc.port + 1 : svc.port - 1
  // First process: the service is unreachable, so everything goes to the spool; then it exits.
  const before = new UsageClient({ baseUrl: `http://127.0.0.1:${deadPort}`, apiKey: key, botId: 'bot_spool', spoolDir, flushIntervalMs: 20, timeoutMs: 500, retry: fastRetry })
  for (let i = 0; i < 40; i++) before.track(sampleEvent(i))
  await before.flush({ timeoutMs: 10_000 })
  await before.close({ deadlineMs: 200 })
  t.equal(await countEvents(database), 0)

  const after = client(t, { baseUrl: svc.url, apiKey: key, botId: 'bot_spool', spoolDir })
  await waitFor(() => after.stats().sent >= 40, 'replayed on start', 20_000)
  t.equal(await countEvents(database), 40)
})

t.test("the real rate limiter's 429 + Retry-After is honoured and nothing is lost", async (t) => {
  const db = await createTestDatabase(t)
  const svc = await serve(t, db, 0, { RATE_LIMIT_MAX: '2', RATE_LIMIT_WINDOW_MS: '1000' })
  const key = await botKey(svc.app, 'bot_rl')
  const c = client(t, { baseUrl: svc.url, apiKey: key, botId: 'bot_rl', batchSize: 1, retry: { ...fastRetry, maxRetries: 10 } })
  const started = Date.now()
  for (let i = 0; i < 5; i++) {
    c.track(sampleEvent(i))
    t.equal(await c.flush({ timeoutMs: 5000 }), true, `event ${i} sent`)
  }
  t.ok(c.stats().retried >= 1, `retried ${c.stats().retried} times`)
  t.ok(Date.now() - started >= 900, 'waited for the window to reset')
  t.equal(await countEvents(db), 5)
})

t.test('an instrumented Anthropic client: the service stores normalized tokens and prices them', async (t) => {
  const svc = await serve(t, database)
  const key = await botKey(svc.app, 'bot_sdk')
  const fake = await startFakeAnthropic()
  t.teardown(() => fake.close())
  const usage = client(t, { baseUrl: svc.url, apiKey: key, botId: 'bot_sdk' })
  const anthropic = instrumentAnthropic(new Anthropic({ apiKey: 'test', baseURL: fake.url, maxRetries: 0 }), usage, { metadata: { chatId: 7 } })
  fake.enqueue({
    model: 'claude-3-5-sonnet-20241022',
    usage: { input_tokens: 1000, cache_read_input_tokens: 8000, cache_creation_input_tokens: 1000, output_tokens: 500 },
  })
  await anthropic.messages.create({ model: 'claude-3-5-sonnet-20241022', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] })
  await usage.flush()
  const { body } = await getJson<{ recentUsage: Record<string, unknown>[] }>(svc.app, '/api/usage?botId=bot_sdk', bearer(ADMIN_KEY))
  t.match(body.recentUsage[0], {
    botId: 'bot_sdk',
    model: 'claude-3-5-sonnet-20241022',
    provider: 'anthropic',
    inputTokens: 10000,
    cacheReadTokens: 8000,
    cacheWriteTokens: 1000,
    outputTokens: 500,
    priced: true,
    // 1000*3/1e6 + 8000*0.3/1e6 + 1000*3.75/1e6 + 500*15/1e6
    estimatedCost: 0.01665,
    metadata: { chatId: 7 },
  })
})

t.test("metadata exactly at the service's size limit is sent and stored; one byte more is dropped by the client, never rejected", async (t) => {
  const svc = await serve(t, database)
  const key = await botKey(svc.app, 'bot_meta')
  const c = client(t, { baseUrl: svc.url, apiKey: key, botId: 'bot_meta' })
  const wrapper = Buffer.byteLength(JSON.stringify({ note: '' }))
  c.track({ ...sampleEvent(1), metadata: { note: 'x'.repeat(16 * 1024 - wrapper) } })
  c.track({ ...sampleEvent(2), metadata: { note: 'x'.repeat(16 * 1024 - wrapper + 1) } })
  t.equal(await c.flush({ timeoutMs: 10_000 }), true)
  t.match(c.stats(), { sent: 2, failed: 0, dropped: 0 })
  const rows = await database.rows<{ id: string; bytes: number | null }>(
    sql`SELECT id, octet_length(metadata::text) AS bytes FROM usage_events WHERE bot_id = 'bot_meta' ORDER BY id`,
  )
  t.equal(rows.length, 2)
  t.ok(rows.some((r) => r.bytes !== null && Number(r.bytes) >= 16 * 1024 - 2), 'the event at the limit kept its metadata')
  t.ok(rows.some((r) => r.bytes === null), 'the event over the limit was sent without metadata')
})
