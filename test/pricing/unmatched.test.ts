// GET /api/prices/unmatched and what GET /api/prices/resolve says about corrections and refused
// matches, against a real database (both engines).
import t from 'tap'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase, resetTables } from '../helpers/db.js'
import { getJson, postBatch, SEED_EVENT } from '../helpers/usage.js'

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)
const admin = bearer(ADMIN_KEY)

interface Unmatched {
  models: { provider: string; model: string; events: number; inputTokens: number; outputTokens: number; firstSeen: string; lastSeen: string; pricedNow: boolean; refusedMatch: string | null; reason: string }[]
}

async function boundKey(botId: string): Promise<Record<string, string>> {
  const res = await app.inject({ method: 'POST', url: '/api/keys', headers: admin, payload: { name: botId, scopes: ['read', 'ingest'], botId } })
  return bearer((res.json() as { key: string }).key)
}

t.beforeEach(async () => {
  await resetTables(database)
  await app.inject({ method: 'DELETE', url: '/api/prices/overrides/none', headers: admin })
})

const event = (id: string, botId: string, model: string, createdAt: string, provider = 'anthropic') => ({
  ...SEED_EVENT,
  id,
  botId,
  model,
  provider,
  createdAt,
})

t.test('unpriced models are listed with counts, tokens and when they were seen', async (t) => {
  const res = await postBatch(app, [
    event('a', 'bot_a', 'claude-sonnet-5-5', '2025-03-01T08:15:00Z'),
    event('b', 'bot_a', 'claude-sonnet-5-5', '2025-03-02T10:00:00Z'),
    event('c', 'bot_b', 'claude-sonnet-5-5', '2025-03-05T23:59:59.500Z'),
    event('d', 'bot_b', 'acme-private', '2025-03-03T12:00:00Z', 'acme'),
    event('e', 'bot_a', 'claude-3-5-sonnet-20241022', '2025-03-03T12:00:00Z'),
  ])
  t.equal(res.statusCode, 200)
  const { status, body } = await getJson<Unmatched>(app, '/api/prices/unmatched', admin)
  t.equal(status, 200)
  t.same(
    body.models.map((m) => [m.provider, m.model, m.events, m.inputTokens, m.outputTokens, m.firstSeen, m.lastSeen, m.pricedNow, m.refusedMatch]),
    [
      ['anthropic', 'claude-sonnet-5-5', 3, 450, 900, '2025-03-01T08:15:00.000Z', '2025-03-05T23:59:59.500Z', false, 'anthropic/claude-sonnet-5'],
      ['acme', 'acme-private', 1, 150, 300, '2025-03-03T12:00:00.000Z', '2025-03-03T12:00:00.000Z', false, null],
    ],
    'the priced sonnet 3.5 event is not listed; the newer sonnet is not priced as sonnet 5',
  )
  t.match(body.models[0].reason, /only by prefix/)

  const ranged = await getJson<Unmatched>(app, '/api/prices/unmatched?startDate=2025-03-02&endDate=2025-03-04', admin)
  t.same(
    ranged.body.models.map((m) => [m.model, m.firstSeen, m.lastSeen]),
    [
      ['acme-private', '2025-03-03T12:00:00.000Z', '2025-03-03T12:00:00.000Z'],
      ['claude-sonnet-5-5', '2025-03-02T10:00:00.000Z', '2025-03-02T10:00:00.000Z'],
    ],
  )

  const bound = await getJson<Unmatched>(app, '/api/prices/unmatched', await boundKey('bot_b'))
  t.same(bound.body.models.map((m) => [m.model, m.events]), [['acme-private', 1], ['claude-sonnet-5-5', 1]], 'a bound key sees only its bot')
  const other = await getJson(app, '/api/prices/unmatched?botId=bot_a', await boundKey('bot_b'))
  t.equal(other.status, 403)

  const limited = await getJson<Unmatched>(app, '/api/prices/unmatched?limit=1&provider=acme', admin)
  t.same(limited.body.models.map((m) => m.model), ['acme-private'])
})

t.test('after an override the model is reported as priced now, to be repriced', async (t) => {
  await postBatch(app, [event('a', 'bot_a', 'claude-sonnet-5-5', '2025-03-01T08:15:00Z')])
  const created = await app.inject({
    method: 'POST',
    url: '/api/prices/overrides',
    headers: admin,
    payload: { provider: 'anthropic', modelPattern: 'claude-sonnet-5-5', effectiveFrom: '2025-01-01T00:00:00Z', input: 2, output: 10 },
  })
  t.equal(created.statusCode, 201)
  const { body } = await getJson<Unmatched>(app, '/api/prices/unmatched', admin)
  t.match(body.models, [{ model: 'claude-sonnet-5-5', pricedNow: true, reason: /reprice/ }])
  const repriced = await app.inject({ method: 'POST', url: '/api/prices/reprice', headers: admin, payload: { startDate: '2025-03-01', endDate: '2025-03-01' } })
  t.match(repriced.json(), { changed: 1 })
  t.same((await getJson<Unmatched>(app, '/api/prices/unmatched', admin)).body.models, [], 'nothing unmatched after repricing')
  const id = (created.json() as { id: string }).id
  t.equal((await app.inject({ method: 'DELETE', url: `/api/prices/overrides/${id}`, headers: admin })).statusCode, 200)
})

t.test('resolve says when a correction applied, and why a newer model is not priced', async (t) => {
  const o3 = await getJson<Record<string, unknown>>(app, '/api/prices/resolve?provider=openai&model=o3&at=2025-05-01', admin)
  t.match(o3.body, {
    priced: true,
    corrected: true,
    reason: /corrected by openai-o3-cached-input-before-2025-06-10 \(https:\/\/.+, checked \d{4}-\d{2}-\d{2}\)/,
    price: { cacheRead: 2.5, effectiveTo: '2025-06-10T00:00:00.000Z', corrections: [{ id: 'openai-o3-cached-input-before-2025-06-10', fields: ['cacheRead'] }] },
  })
  const after = await getJson<Record<string, unknown>>(app, '/api/prices/resolve?provider=openai&model=o3&at=2025-07-01', admin)
  t.match(after.body, { corrected: false, price: { cacheRead: 0.5, corrections: [] } })
  const ft = await getJson<Record<string, unknown>>(app, '/api/prices/resolve?provider=openai&model=ft:gpt-4.1-2025-04-14:acme::x1', admin)
  t.match(ft.body, { priced: true, corrected: true, price: { source: 'correction', model: 'ft:gpt-4.1', input: 3, cacheRead: 0.75, output: 12 } })
  const newer = await getJson<Record<string, unknown>>(app, '/api/prices/resolve?provider=anthropic&model=claude-sonnet-5-5', admin)
  t.match(newer.body, { priced: false, refusedMatch: 'anthropic/claude-sonnet-5', reason: /newer version number/ })
})

t.test('quote shows every unit and the service-tier modifier', async (t) => {
  const res = await app.inject({
    method: 'POST',
    url: '/api/prices/quote',
    headers: admin,
    payload: { provider: 'anthropic', model: 'claude-sonnet-4-5', at: '2025-10-01T00:00:00Z', inputTokens: 10_000, outputTokens: 1000, webSearchRequests: 3, serviceTier: 'batch' },
  })
  t.equal(res.statusCode, 200)
  // tokens at half price: (10000*3/1e6 + 1000*15/1e6) * 0.5 = 0.0225; searches not halved: 3*10/1000 = 0.03
  t.match(res.json(), {
    priced: true,
    costExact: '0.0525',
    breakdown: { input: 0.015, output: 0.0075, webSearch: 0.03 },
    serviceTier: 'batch',
    modifier: { multiplier: '0.5', source: /^https:/ },
    unbilled: [],
  })
  const audio = await app.inject({
    method: 'POST',
    url: '/api/prices/quote',
    headers: admin,
    payload: { provider: 'openai', model: 'gpt-4o-audio-preview', inputTokens: 100, inputAudioTokens: 101, outputTokens: 5 },
  })
  t.equal(audio.statusCode, 400)
  t.match(audio.json(), { message: /body\.inputAudioTokens \(101\) exceeds inputTokens \(100\)/ })
})
