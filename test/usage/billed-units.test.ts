// The billed units an event can carry besides text tokens (audio, web searches) and its service
// tier: validated at ingest, stored, priced from the dataset and the modifier table, rolled up,
// and shown in totals, breakdowns, the monthly report, exports and the event list. Both engines.
import { sql } from 'drizzle-orm'
import t from 'tap'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { countEvents } from '../helpers/usage.js'
import { createTestDatabase, resetTables } from '../helpers/db.js'
import { getJson, postBatch, postUsage, rollupMismatches } from '../helpers/usage.js'

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)
const admin = bearer(ADMIN_KEY)
t.beforeEach(() => resetTables(database))

const base = { botId: 'bot_u', createdAt: '2025-10-01T10:00:00Z' }

// Expected costs from the dataset's published prices (genai-prices 0.1.x), exact decimals:
// gpt-audio: text 2.5 / 10, audio 32 / 64 per million (https://platform.openai.com/docs/pricing#audio-tokens)
// claude-sonnet-4-5: 3 / 15, web search $10 per 1,000 (https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/web-search-tool#usage-and-pricing)
// gemini-2.5-flash: text 0.3, audio input 1.0 (https://ai.google.dev/gemini-api/docs/pricing#gemini-2.5-flash)
const events = [
  // 400*2.5/1e6 + 600*32/1e6 + 200*10/1e6 + 300*64/1e6
  { ...base, id: 'audio', provider: 'openai', model: 'gpt-audio', inputTokens: 1000, inputAudioTokens: 600, outputTokens: 500, outputAudioTokens: 300, cost: 0.0414 },
  // batch halves the tokens, not the searches: (10000*3/1e6 + 1000*15/1e6) * 0.5 + 2*10/1000
  { ...base, id: 'search', provider: 'anthropic', model: 'claude-sonnet-4-5-20250929', inputTokens: 10_000, outputTokens: 1000, webSearchRequests: 2, serviceTier: 'batch', cost: 0.0425 },
  // the case: a 1M-token audio prompt is $1.00, not the text rate's $0.30
  { ...base, id: 'gemini-audio', provider: 'google', model: 'gemini-2.5-flash', inputTokens: 1_000_000, inputAudioTokens: 1_000_000, outputTokens: 0, cost: 1 },
  // flex is half: (1000*2/1e6 + 1000*8/1e6) * 0.5
  { ...base, id: 'flex', provider: 'openai', model: 'o3', inputTokens: 1000, outputTokens: 1000, reasoningTokens: 800, serviceTier: 'flex', cost: 0.005 },
  // US-only inference is 1.1x (https://docs.anthropic.com/en/docs/build-with-claude/data-residency): (10000*5 + 1000*25)/1e6 * 1.1
  { ...base, id: 'geo', provider: 'anthropic', model: 'claude-opus-4-6', inputTokens: 10_000, outputTokens: 1000, inferenceGeo: 'us', cost: 0.0825 },
]

t.test('audio, web searches and service tiers are stored, priced and rolled up', async (t) => {
  const res = await postBatch(app, events.map(({ cost: _cost, ...e }) => e))
  t.equal(res.statusCode, 200)
  t.match(res.json(), { created: 5, invalid: 0 })
  const listed = await getJson<{ events: Record<string, unknown>[] }>(app, '/api/usage/events?startDate=2025-10-01&endDate=2025-10-01&limit=10', admin)
  t.equal(listed.status, 200)
  for (const e of events as (typeof events[number] & { inputAudioTokens?: number; outputAudioTokens?: number; webSearchRequests?: number; serviceTier?: string; inferenceGeo?: string })[]) {
    const stored = listed.body.events.find((x) => x.id === e.id)
    t.match(stored, {
      estimatedCost: e.cost,
      priced: true,
      inputAudioTokens: e.inputAudioTokens ?? 0,
      outputAudioTokens: e.outputAudioTokens ?? 0,
      webSearchRequests: e.webSearchRequests ?? 0,
      serviceTier: e.serviceTier ?? 'standard',
      inferenceGeo: e.inferenceGeo ?? null,
    }, e.id)
  }
  t.same(await rollupMismatches(database), [])
  const [roll] = await database.rows<Record<string, string | number>>(sql`
    SELECT sum(input_audio_tokens) AS a, sum(output_audio_tokens) AS b, sum(web_search_requests) AS c FROM usage_daily`)
  t.same([Number(roll.a), Number(roll.b), Number(roll.c)], [1_000_600, 300, 2], 'the daily rollup sums the new counts')

  const summary = await getJson<{ totals: Record<string, unknown> }>(app, '/api/usage/summary?startDate=2025-10-01&endDate=2025-10-01', admin)
  t.match(summary.body.totals, { inputAudioTokens: 1_000_600, outputAudioTokens: 300, webSearchRequests: 2, cost: 1.1714 })

  const byTier = await getJson<{ rows: { group: Record<string, string>; calls: number; cost: number }[] }>(
    app,
    '/api/usage/breakdown?groupBy=serviceTier&startDate=2025-10-01&endDate=2025-10-01',
    admin,
  )
  t.equal(byTier.status, 200)
  t.same(
    byTier.body.rows.map((r) => [Object.values(r.group)[0], r.calls, r.cost]).sort(),
    [['batch', 1, 0.0425], ['flex', 1, 0.005], ['standard', 3, 1.1239]],
  )

  const report = await getJson<{ rows: Record<string, unknown>[]; totals: Record<string, unknown> }>(app, '/api/reports/monthly?month=2025-10', admin)
  t.match(report.body.totals, { inputAudioTokens: 1_000_600, outputAudioTokens: 300, webSearchRequests: 2 })
  t.match(report.body.rows.find((r) => r.model === 'claude-sonnet-4-5-20250929'), { webSearchRequests: 2 })

  const csv = await app.inject({ method: 'GET', url: '/api/usage/export?format=csv&startDate=2025-10-01&endDate=2025-10-01', headers: admin })
  const [header, ...lines] = csv.body.trim().split('\n').map((l) => l.split(','))
  const row = (id: string) => Object.fromEntries(header.map((h, i) => [h, lines.find((l) => l[0] === id)?.[i]]))
  t.match(row('search'), { webSearchRequests: '2', serviceTier: 'batch' })
  t.match(row('audio'), { inputAudioTokens: '600', outputAudioTokens: '300', serviceTier: 'standard', inferenceGeo: '' })
  t.match(row('geo'), { inferenceGeo: 'us' })
})

t.test('repricing keeps the tier and the per-request search price under an override', async (t) => {
  await postBatch(app, [events[1]].map(({ cost: _cost, ...e }) => e))
  const created = await app.inject({
    method: 'POST',
    url: '/api/prices/overrides',
    headers: admin,
    payload: { provider: 'anthropic', modelPattern: 'claude-sonnet-4-5*', effectiveFrom: '2025-01-01T00:00:00Z', input: 2, output: 10 },
  })
  t.equal(created.statusCode, 201)
  const repriced = await app.inject({ method: 'POST', url: '/api/prices/reprice', headers: admin, payload: { startDate: '2025-10-01', endDate: '2025-10-01' } })
  // (10000*2/1e6 + 1000*10/1e6) * 0.5 + 2*10/1000 = 0.015 + 0.02; delta against 0.0425
  t.match(repriced.json(), { changed: 1, costDeltaExact: '-0.0075' })
  const id = (created.json() as { id: string }).id
  t.equal((await app.inject({ method: 'DELETE', url: `/api/prices/overrides/${id}`, headers: admin })).statusCode, 200)
})

t.test('parts larger than their totals and unknown tiers are refused, naming the field, storing nothing', async (t) => {
  const ok = { ...base, provider: 'openai', model: 'gpt-audio', inputTokens: 100, outputTokens: 50 }
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...ok, inputAudioTokens: 101 }, /^body\.inputAudioTokens \(101\) exceeds inputTokens \(100\)/],
    [{ ...ok, outputAudioTokens: 51 }, /^body\.outputAudioTokens \+ reasoningTokens \(51\) exceed outputTokens \(50\)/],
    [{ ...ok, outputAudioTokens: 30, reasoningTokens: 30 }, /^body\.outputAudioTokens \+ reasoningTokens \(60\) exceed outputTokens \(50\)/],
    [{ ...ok, webSearchRequests: -1 }, /^body\.webSearchRequests must be >= 0/],
    [{ ...ok, webSearchRequests: 1.5 }, /^body\.webSearchRequests must be integer/],
    [{ ...ok, serviceTier: 'turbo' }, /^body\.serviceTier must be one of standard, flex, priority, batch/],
    [{ ...ok, inferenceGeo: 'US East' }, /^body\.inferenceGeo has invalid characters/],
  ]
  for (const [body, message] of cases) {
    const res = await postUsage(app, body)
    t.equal(res.statusCode, 400, JSON.stringify(body))
    t.match(res.json(), { message }, JSON.stringify(body))
  }
  const batch = await postBatch(app, [ok, { ...ok, inputAudioTokens: 101 }])
  t.match(batch.json(), { created: 1, invalid: 1, results: [{ status: 'created' }, { status: 'invalid', error: { message: /^body\.events\[1\]\.inputAudioTokens \(101\) exceeds/ } }] })
  t.equal(await countEvents(database), 1, 'only the valid item is stored')
})
