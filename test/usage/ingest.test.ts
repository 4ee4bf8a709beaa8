import t from 'tap'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase, resetTables } from '../helpers/db.js'
import { countEvents, getJson, postBatch, postUsage, SEED_EVENT } from '../helpers/usage.js'

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)
t.beforeEach(() => resetTables(database))

t.test('the seed example round-trips exactly', async (t) => {
  const res = await postUsage(app, SEED_EVENT)
  t.equal(res.statusCode, 201)
  const stored = res.json()
  t.match(stored, { ...SEED_EVENT, errorMessage: null, metadata: null })
  t.type(stored.id, 'string')
  t.ok(Date.parse(stored.createdAt))

  const { body } = await getJson<{ stats: unknown[]; recentUsage: Record<string, unknown>[]; totalCost: number }>(app, '/api/usage')
  t.same(body.stats, [
    {
      model: 'claude-opus',
      provider: 'anthropic',
      _sum: { inputTokens: 150, outputTokens: 300, totalTokens: 450, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, estimatedCost: 0.00675 },
      _count: { id: 1, failed: 0 },
      unpriced: { events: 1, inputTokens: 150, outputTokens: 300 },
    },
  ])
  t.equal(body.totalCost, 0.00675)
  t.same(body.recentUsage, [stored])
})

t.test('optional fields are stored and defaults applied', async (t) => {
  const res = await postUsage(app, {
    id: 'evt-1',
    botId: 'b1',
    model: 'in-house-model',
    provider: 'acme',
    inputTokens: 1000,
    outputTokens: 200,
    cacheReadTokens: 600,
    cacheWriteTokens: 100,
    reasoningTokens: 50,
    latencyMs: 812,
    success: false,
    errorMessage: 'rate limited',
    metadata: { chatId: 42, tags: ['a', 'b'] },
    createdAt: '2024-05-01T10:00:00.123Z',
  })
  t.equal(res.statusCode, 201)
  t.match(res.json(), {
    id: 'evt-1',
    totalTokens: 1200,
    requestType: 'message',
    success: false,
    errorMessage: 'rate limited',
    latencyMs: 812,
    metadata: { chatId: 42, tags: ['a', 'b'] },
    createdAt: '2024-05-01T10:00:00.123Z',
    estimatedCost: null,
    reportedCost: null,
    priced: false,
  })
  const minimal = await postUsage(app, { botId: 'b1', model: 'm', provider: 'p', inputTokens: 0, outputTokens: 0 })
  t.equal(minimal.statusCode, 201)
  t.match(minimal.json(), { success: true, requestType: 'message', totalTokens: 0 })
})

t.test('re-sending the same (botId, id) returns 200 with the stored record and changes no total', async (t) => {
  const event = { ...SEED_EVENT, id: 'dup-1' }
  const first = await postUsage(app, event)
  t.equal(first.statusCode, 201)
  const again = await postUsage(app, { ...event, inputTokens: 999, totalTokens: 1299 })
  t.equal(again.statusCode, 200)
  t.same(again.json(), first.json(), 'the stored record, not the re-sent body')
  // Same id under another bot is a different event.
  const otherBot = await postUsage(app, { ...event, botId: 'bot_456' })
  t.equal(otherBot.statusCode, 201)
  t.equal(await countEvents(database), 2)
  const { body } = await getJson<{ totalCost: number }>(app, '/api/usage?botId=bot_123')
  t.equal(body.totalCost, 0.00675)
})

t.test('bad input gets 400 naming the field and stores nothing', async (t) => {
  const future = new Date(Date.now() + 60 * 60 * 1000).toISOString()
  const cases: [string, unknown, RegExp][] = [
    ['wrong type', { ...SEED_EVENT, inputTokens: '150' }, /body\.inputTokens must be integer/],
    ['negative tokens', { ...SEED_EVENT, outputTokens: -1 }, /body\.outputTokens must be >= 0/],
    ['fractional tokens', { ...SEED_EVENT, inputTokens: 1.5 }, /body\.inputTokens must be integer/],
    ['missing model', { ...SEED_EVENT, model: undefined }, /body\.model is required/],
    ['empty provider', { ...SEED_EVENT, provider: '' }, /body\.provider must not be empty/],
    ['over-long model', { ...SEED_EVENT, model: 'x'.repeat(201) }, /body\.model must be at most 200 characters/],
    ['unknown field', { ...SEED_EVENT, costUsd: 1 }, /body has unknown field 'costUsd'/],
    ['bad botId characters', { ...SEED_EVENT, botId: 'bot 1' }, /body\.botId has invalid characters/],
    ['missing botId', { ...SEED_EVENT, botId: undefined }, /body\.botId is required/],
    ['inconsistent totalTokens', { ...SEED_EVENT, totalTokens: 451 }, /body\.totalTokens \(451\) must equal inputTokens \+ outputTokens \(450\)/],
    ['cache exceeds input', { ...SEED_EVENT, cacheReadTokens: 100, cacheWriteTokens: 51 }, /body\.cacheReadTokens.*exceed inputTokens/],
    ['1h cache exceeds cache writes', { ...SEED_EVENT, cacheWriteTokens: 10, cacheWrite1hTokens: 11 }, /body\.cacheWrite1hTokens/],
    ['reasoning exceeds output', { ...SEED_EVENT, reasoningTokens: 301 }, /body\.reasoningTokens .*exceeds outputTokens/],
    ['negative cost', { ...SEED_EVENT, estimatedCost: -0.01 }, /body\.estimatedCost must be >= 0/],
    ['invalid createdAt', { ...SEED_EVENT, createdAt: '2024-13-45' }, /body\.createdAt must be a valid date-time/],
    ['createdAt in the future', { ...SEED_EVENT, createdAt: future }, /body\.createdAt is more than 300 s in the future/],
    ['metadata not an object', { ...SEED_EVENT, metadata: 'x' }, /body\.metadata must be object/],
    ['metadata too large', { ...SEED_EVENT, metadata: { blob: 'x'.repeat(17000) } }, /body\.metadata is \d+ bytes/],
    ['bad idempotency key', { ...SEED_EVENT, id: 'has space' }, /body\.id has invalid characters/],
    ['success not boolean', { ...SEED_EVENT, success: 'yes' }, /body\.success must be boolean/],
    ['body is an array', [SEED_EVENT], /body must be object/],
  ]
  for (const [name, body, message] of cases) {
    const res = await postUsage(app, body)
    t.equal(res.statusCode, 400, name)
    t.match(res.json(), { statusCode: 400, code: 'VALIDATION_ERROR', error: 'Bad Request', message }, name)
  }
  t.equal(await countEvents(database), 0)
})

t.test('malformed JSON, wrong content type and oversized bodies', async (t) => {
  const bad = await app.inject({ method: 'POST', url: '/api/usage', payload: '{"botId": ', headers: { 'content-type': 'application/json', ...bearer(ADMIN_KEY) } })
  t.equal(bad.statusCode, 400)
  t.match(bad.json(), { code: 'INVALID_JSON', message: /not valid JSON/ })
  const text = await app.inject({ method: 'POST', url: '/api/usage', payload: 'hello', headers: { 'content-type': 'text/plain', ...bearer(ADMIN_KEY) } })
  t.equal(text.statusCode, 415)
  t.match(text.json(), { code: 'UNSUPPORTED_MEDIA_TYPE' })
  const huge = await postBatch(app, [{ ...SEED_EVENT, metadata: { blob: 'x'.repeat(1024 * 1024) } }])
  t.equal(huge.statusCode, 413)
  t.match(huge.json(), { code: 'BODY_TOO_LARGE', message: /1048576 bytes/ })
  t.equal(await countEvents(database), 0)
})

t.test('batch: valid items stored in one go, invalid items rejected on their own', async (t) => {
  const res = await postBatch(app, [
    { ...SEED_EVENT, id: 'a' },
    { ...SEED_EVENT, id: 'b', inputTokens: -5 },
    { ...SEED_EVENT, id: 'c', model: 'claude-haiku' },
    { ...SEED_EVENT, id: 'a' },
    'not an object',
  ])
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.match(body, { created: 2, duplicates: 1, invalid: 2 })
  t.same(
    body.results.map((r: { status: string }) => r.status),
    ['created', 'invalid', 'created', 'duplicate', 'invalid'],
  )
  t.match(body.results[1].error, { code: 'VALIDATION_ERROR', message: 'body.events[1].inputTokens must be >= 0' })
  t.match(body.results[4].error, { message: 'body.events[4] must be object' })
  t.equal(await countEvents(database), 2)

  const again = await postBatch(app, [{ ...SEED_EVENT, id: 'a' }, { ...SEED_EVENT, id: 'd' }])
  t.match(again.json(), { created: 1, duplicates: 1, invalid: 0 })
  t.equal(await countEvents(database), 3)
})

t.test('batch limits and shape', async (t) => {
  const tooMany = await postBatch(app, Array.from({ length: 1001 }, () => SEED_EVENT))
  t.equal(tooMany.statusCode, 400)
  t.match(tooMany.json(), { message: 'body.events must have at most 1000 items' })
  const empty = await postBatch(app, [])
  t.equal(empty.statusCode, 400)
  t.match(empty.json(), { message: 'body.events must have at least 1 items' })
  const wrong = await app.inject({ method: 'POST', url: '/api/usage/batch', payload: { items: [] }, headers: bearer(ADMIN_KEY) })
  t.equal(wrong.statusCode, 400)
  t.equal(await countEvents(database), 0)
})

t.test('many tiny costs sum exactly', async (t) => {
  const n = 1000
  const events = Array.from({ length: n }, (_, i) => ({ ...SEED_EVENT, id: `tiny-${i}`, estimatedCost: 0.000000001 }))
  const res = await postBatch(app, events)
  t.equal(res.json().created, n)
  await postUsage(app, { ...SEED_EVENT, id: 'x', estimatedCost: 0.1 })
  await postUsage(app, { ...SEED_EVENT, id: 'y', estimatedCost: 0.2 })
  const { body } = await getJson<{ totalCost: number; stats: { _sum: { estimatedCost: number } }[] }>(app, '/api/usage')
  // 1000 * 1e-9 + 0.1 + 0.2 is exactly 0.300001; float addition would give 0.30000100000000003 or worse.
  t.equal(body.totalCost, 0.300001)
  t.equal(body.stats[0]._sum.estimatedCost, 0.300001)
})

t.test('concurrent single-event writes are all stored once (group commit)', async (t) => {
  const posts = Array.from({ length: 200 }, (_, i) => postUsage(app, { ...SEED_EVENT, id: `c-${i % 150}` }))
  const statuses = (await Promise.all(posts)).map((r) => r.statusCode)
  t.equal(statuses.filter((s) => s === 201).length, 150)
  t.equal(statuses.filter((s) => s === 200).length, 50)
  t.equal(await countEvents(database), 150)
})

t.test('health and readiness; unknown routes are JSON 404', async (t) => {
  t.same((await getJson(app, '/healthz')).body, { status: 'ok' })
  t.same((await getJson(app, '/readyz')).body, { status: 'ready' })
  const missing = await getJson(app, '/api/nothing-here')
  t.equal(missing.status, 404)
  t.same(missing.body, { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: 'Route GET /api/nothing-here not found' })
})
