import { sql } from 'drizzle-orm'
import t from 'tap'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase, resetTables } from '../helpers/db.js'
import { getJson, postBatch, postUsage, rollupMismatches, SEED_EVENT } from '../helpers/usage.js'

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)
const admin = bearer(ADMIN_KEY)
t.beforeEach(async () => {
  await resetTables(database)
  // Overrides are cached in the catalog: reload it after emptying the table.
  await app.inject({ method: 'DELETE', url: '/api/prices/overrides/none', headers: admin })
})

const SONNET = { ...SEED_EVENT, model: 'claude-3-5-sonnet-20241022', createdAt: '2025-01-10T12:00:00Z' }

interface Stats {
  stats: { model: string; _sum: { estimatedCost: number }; _count: { id: number }; unpriced: { events: number; inputTokens: number; outputTokens: number } }[]
  totalCost: number
}

t.test('ingest prices events server-side; the client estimate is kept for audit', async (t) => {
  const res = await postUsage(app, { ...SONNET, estimatedCost: 1 })
  t.equal(res.statusCode, 201)
  t.match(res.json(), {
    estimatedCost: 0.00495,
    reportedCost: 1,
    priced: true,
    priceSource: /^genai-prices@\d+\.\d+\.\d+:anthropic\/claude-3-5-sonnet$/,
  })
})

t.test('an unpriceable model is stored unpriced (reported cost kept) and shows up as unpriced in stats', async (t) => {
  await postBatch(app, [
    { ...SEED_EVENT, id: 'u1', model: 'acme-private-1', provider: 'acme', estimatedCost: 0.5 },
    { ...SEED_EVENT, id: 'u2', model: 'acme-private-1', provider: 'acme', estimatedCost: undefined },
    { ...SONNET, id: 'p1' },
  ])
  const { body } = await getJson<Stats>(app, '/api/usage', admin)
  const acme = body.stats.find((s) => s.model === 'acme-private-1')
  t.match(acme, { _count: { id: 2 }, _sum: { estimatedCost: 0.5 }, unpriced: { events: 2, inputTokens: 300, outputTokens: 600 } })
  t.match(body.stats.find((s) => s.model === SONNET.model), { unpriced: { events: 0 } })
  t.equal(body.totalCost, 0.50495)
  const events = (await getJson<{ recentUsage: { id: string; estimatedCost: number | null; priced: boolean; priceSource: string | null }[] }>(app, '/api/usage', admin)).body.recentUsage
  t.match(events.find((e) => e.id === 'u2'), { estimatedCost: null, priced: false, priceSource: null }, 'no silent $0')
  t.match(events.find((e) => e.id === 'u1'), { estimatedCost: 0.5, priced: false, priceSource: 'reported' })
})

t.test('resolve, quote and list', async (t) => {
  const resolved = await getJson<Record<string, unknown>>(app, '/api/prices/resolve?provider=anthropic&model=claude-3-5-sonnet-latest&at=2025-01-01', admin)
  t.equal(resolved.status, 200)
  t.match(resolved.body, { priced: true, price: { source: 'dataset', model: 'claude-3-5-sonnet', input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 }, reason: /resolves to anthropic\/claude-3-5-sonnet/ })
  const gemini = await getJson<Record<string, unknown>>(app, '/api/prices/resolve?provider=google&model=models/gemini-1.5-pro', admin)
  t.match(gemini.body, { priced: true, price: { provider: 'google' } })
  const unknown = await getJson<Record<string, unknown>>(app, '/api/prices/resolve?provider=acme&model=nope', admin)
  t.match(unknown.body, { priced: false, price: null, reason: /unpriced/ })

  const quote = await app.inject({
    method: 'POST',
    url: '/api/prices/quote',
    headers: admin,
    payload: { provider: 'anthropic', model: 'claude-3-5-sonnet-20241022', at: '2025-01-01T00:00:00Z', inputTokens: 20000, cacheReadTokens: 10000, cacheWriteTokens: 6000, cacheWrite1hTokens: 2000, outputTokens: 1000 },
  })
  t.equal(quote.statusCode, 200)
  t.match(quote.json(), { priced: true, cost: 0.057, costExact: '0.057', breakdown: { input: 0.012, cacheRead: 0.003, cacheWrite: 0.027, output: 0.015 } })

  const list = await getJson<{ prices: { provider: string; model: string }[]; datasetVersion: string }>(app, '/api/prices?provider=openai&model=gpt-4o', admin)
  t.equal(list.status, 200)
  t.ok(list.body.prices.length > 0)
  t.ok(list.body.prices.every((p) => p.provider === 'openai' && p.model.includes('gpt-4o')))
})

t.test('overrides: validated, win from their effective date, reprice updates range and totals', async (t) => {
  // Events before, inside and after the override's range.
  await postBatch(app, [
    { ...SONNET, id: 'before', createdAt: '2025-02-14T23:59:59Z' },
    { ...SONNET, id: 'inside-1', createdAt: '2025-02-15T00:00:00Z' },
    { ...SONNET, id: 'inside-2', createdAt: '2025-02-20T10:00:00Z', botId: 'bot_other' },
    { ...SONNET, id: 'after', createdAt: '2025-03-01T00:00:00Z' },
  ])
  const before = await getJson<Stats>(app, '/api/usage', admin)
  t.equal(before.body.totalCost, 0.0198, '4 x 0.00495 at dataset prices')

  const created = await app.inject({
    method: 'POST',
    url: '/api/prices/overrides',
    headers: admin,
    payload: { provider: 'anthropic', modelPattern: 'claude-3-5-sonnet*', effectiveFrom: '2025-02-15T00:00:00Z', effectiveTo: '2025-03-01T00:00:00Z', input: 2.4, output: 12, note: 'negotiated 20% off' },
  })
  t.equal(created.statusCode, 201)
  const override = created.json()
  t.match(override, { input: 2.4, output: 12, cacheRead: null, note: 'negotiated 20% off' })

  // New events are priced with the override at once.
  const fresh = await postUsage(app, { ...SONNET, id: 'fresh', createdAt: '2025-02-16T00:00:00Z' })
  t.match(fresh.json(), { estimatedCost: 0.00396, priceSource: `override:${override.id}` }, '150*2.4/1e6 + 300*12/1e6')

  const reprice = await app.inject({ method: 'POST', url: '/api/prices/reprice', headers: admin, payload: { startDate: '2025-01-01', endDate: '2025-03-31' } })
  t.equal(reprice.statusCode, 200)
  t.same(reprice.json(), { scanned: 5, changed: 2, costDelta: -0.00198, costDeltaExact: '-0.00198' }, '2 x (0.00396 - 0.00495)')
  const events = (await getJson<{ recentUsage: { id: string; estimatedCost: number; priceSource: string }[] }>(app, '/api/usage?limit=10', admin)).body.recentUsage
  const byId = Object.fromEntries(events.map((e) => [e.id, e]))
  t.equal(byId.before.estimatedCost, 0.00495, 'before the override: unchanged')
  t.equal(byId.after.estimatedCost, 0.00495, 'after effectiveTo: unchanged')
  t.equal(byId['inside-1'].estimatedCost, 0.00396)
  t.equal(byId['inside-2'].priceSource, `override:${override.id}`)
  const after = await getJson<Stats>(app, '/api/usage', admin)
  t.equal(after.body.totalCost, 0.02178, '2 x 0.00495 + 3 x 0.00396: totals match the sum of events')

  const again = await app.inject({ method: 'POST', url: '/api/prices/reprice', headers: admin, payload: { startDate: '2025-01-01', endDate: '2025-03-31' } })
  t.match(again.json(), { scanned: 5, changed: 0, costDeltaExact: '0' }, 'idempotent')
  t.same(await rollupMismatches(database), [], 'hourly rollup equals raw totals after repricing')

  // Delete the override and reprice only February for one bot: only that event goes back.
  t.equal((await app.inject({ method: 'DELETE', url: `/api/prices/overrides/${override.id}`, headers: admin })).statusCode, 200)
  const partial = await app.inject({ method: 'POST', url: '/api/prices/reprice', headers: admin, payload: { startDate: '2025-02-01', endDate: '2025-02-28', botId: 'bot_other' } })
  t.match(partial.json(), { scanned: 1, changed: 1, costDeltaExact: '0.00099' })
  t.same(await rollupMismatches(database), [])
  // The check itself can fail: a rollup off by a pico-dollar is reported.
  await database.db.execute(sql`UPDATE usage_hourly SET cost = cost + 0.000000000001 WHERE bot_id = 'bot_other'`)
  t.equal((await rollupMismatches(database)).length, 2)
})

t.test('overrides are validated: 400 naming the field', async (t) => {
  const base = { provider: 'openai', modelPattern: 'gpt-4o', effectiveFrom: '2025-01-01T00:00:00Z', input: 2, output: 8 }
  const ok = await app.inject({ method: 'POST', url: '/api/prices/overrides', headers: admin, payload: base })
  t.equal(ok.statusCode, 201)
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...base, modelPattern: 'o1', input: -1 }, /body\.input must be >= 0/],
    [{ ...base, modelPattern: 'o1', effectiveTo: '2024-12-01T00:00:00Z' }, /body\.effectiveTo must be later than effectiveFrom/],
    [{ ...base, effectiveFrom: '2025-06-01T00:00:00Z' }, /body\.effectiveFrom.*overlap/i],
    [{ ...base, modelPattern: 'o1', effectiveFrom: 'soon' }, /body\.effectiveFrom must be a valid date-time/],
    [{ ...base, modelPattern: 'o1', tiers: [{ aboveInputTokens: 200000, input: 4, output: 16 }, { aboveInputTokens: 100000, input: 5, output: 20 }] }, /body\.tiers\[1\]\.aboveInputTokens/],
    [{ ...base, modelPattern: 'o1', colour: 'red' }, /body has unknown field 'colour'/],
    [{ ...base, modelPattern: 'o1', output: undefined }, /body\.output is required/],
  ]
  for (const [payload, message] of cases) {
    const res = await app.inject({ method: 'POST', url: '/api/prices/overrides', headers: admin, payload })
    t.equal(res.statusCode, 400, String(message))
    t.match(res.json(), { code: 'VALIDATION_ERROR', message }, String(message))
  }
  const list = await getJson<{ overrides: unknown[] }>(app, '/api/prices/overrides', admin)
  t.equal(list.body.overrides.length, 1, 'nothing stored by rejected requests')

  const badQuote = await app.inject({ method: 'POST', url: '/api/prices/quote', headers: admin, payload: { provider: 'openai', model: 'gpt-4o', inputTokens: 10, outputTokens: 5, reasoningTokens: 6 } })
  t.equal(badQuote.statusCode, 400)
  t.match(badQuote.json().message, /body\.reasoningTokens \(6\) exceeds outputTokens \(5\)/)
  const badAt = await getJson(app, '/api/prices/resolve?provider=openai&model=gpt-4o&at=tomorrow', admin)
  t.equal(badAt.status, 400)
  t.match(badAt.body, { message: /querystring\.at must be a date/ })
  const missing = await getJson(app, '/api/prices/resolve?provider=openai', admin)
  t.match(missing.body, { message: 'querystring.model is required' })
  const badReprice = await app.inject({ method: 'POST', url: '/api/prices/reprice', headers: admin, payload: { startDate: '2025-03-01', endDate: '2025-01-01' } })
  t.equal(badReprice.statusCode, 400)
  t.match(badReprice.json().message, /body\.startDate must not be after body\.endDate/)
})

t.test('PUT replaces an override; unknown ids are 404', async (t) => {
  const base = { provider: 'openai', modelPattern: 'gpt-4o', effectiveFrom: '2025-01-01T00:00:00Z', input: 2, output: 8 }
  const created = (await app.inject({ method: 'POST', url: '/api/prices/overrides', headers: admin, payload: base })).json()
  const put = await app.inject({ method: 'PUT', url: `/api/prices/overrides/${created.id}`, headers: admin, payload: { ...base, input: 1.5 } })
  t.equal(put.statusCode, 200)
  t.match(put.json(), { id: created.id, input: 1.5 })
  const quote = await app.inject({ method: 'POST', url: '/api/prices/quote', headers: admin, payload: { provider: 'openai', model: 'gpt-4o-2024-08-06', inputTokens: 1000000, outputTokens: 0 } })
  t.match(quote.json(), { cost: 1.5, reason: `priced with override:${created.id}` })
  t.equal((await app.inject({ method: 'PUT', url: '/api/prices/overrides/nope', headers: admin, payload: base })).statusCode, 404)
  t.equal((await app.inject({ method: 'DELETE', url: '/api/prices/overrides/nope', headers: admin })).statusCode, 404)
})
