import type { FastifyInstance } from 'fastify'
import { PassThrough } from 'node:stream'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { createKey as storeKey } from '../../src/auth/keys.js'
import { ADMIN_KEY, bearer, buildTestApp, testConfig } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { getJson, postBatch, SEED_EVENT } from '../helpers/usage.js'

// A key bound to a bot is limited to that bot on every route, whatever its scopes; it never holds
// admin (README: "A key bound to a bot"). Bot B's data carries markers that must never appear in
// an answer to a key bound to bot A.
const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)
const admin = bearer(ADMIN_KEY)

const OWN = 'bot_a_7f3'
const OTHER = 'bot_b_7f3'
const MARKERS = ['model-secret-7f3', 'error-secret-7f3', 'budget-secret-7f3', 'key-secret-7f3', OTHER]

async function apiKey(app: FastifyInstance, body: Record<string, unknown>): Promise<{ id: string; key: string }> {
  const res = await app.inject({ method: 'POST', url: '/api/keys', payload: body, headers: admin })
  if (res.statusCode !== 201) throw new Error(`create key: ${res.statusCode} ${res.body}`)
  return res.json()
}

const stored = await postBatch(app, [
  { ...SEED_EVENT, id: 'own-1', botId: OWN, model: 'model-own' },
  { ...SEED_EVENT, id: 'other-1', botId: OTHER, model: 'model-secret-7f3', success: false, errorMessage: 'error-secret-7f3' },
])
if (stored.statusCode !== 200 && stored.statusCode !== 201) throw new Error(`seed: ${stored.statusCode} ${stored.body}`)
const otherBudget = await app.inject({
  method: 'POST',
  url: '/api/budgets',
  headers: admin,
  payload: { name: 'budget-secret-7f3', scope: { botId: OTHER }, period: 'month', limitUsd: 5 },
})
const otherBudgetId = (otherBudget.json() as { id: string }).id
const otherKey = await apiKey(app, { name: 'key-secret-7f3', scopes: ['ingest', 'read'], botId: OTHER })

// A key stored with admin and a botId before POST /api/keys refused that combination.
const legacy = await storeKey(database, { name: 'legacy bound admin', scopes: ['admin'], botId: OWN })
const bound = await apiKey(app, { name: 'bound reader', scopes: ['ingest', 'read'], botId: OWN })

type Method = 'GET' | 'POST' | 'DELETE' | 'PUT' | 'PATCH'
interface Probe {
  method: Method
  url: string
  payload?: Record<string, unknown>
}
interface RouteCase {
  route: string
  scope: 'ingest' | 'read' | 'admin'
  /** Requests for the key's own bot (or no bot named). */
  own: Probe[]
  /** Requests that name the other bot or its objects. */
  other: Probe[]
}

const range = 'startDate=2000-01-01&endDate=2100-01-01'
const ev = (botId: string, id: string) => ({ ...SEED_EVENT, botId, id, model: 'model-own' })
const override = { provider: 'acme', modelPattern: 'm', effectiveFrom: '2024-01-01T00:00:00Z', input: 1, output: 2 }
const reads = (path: string, extra = ''): Pick<RouteCase, 'own' | 'other'> => ({
  own: [
    { method: 'GET', url: `${path}?${extra}` },
    { method: 'GET', url: `${path}?botId=${OWN}&${extra}` },
  ],
  other: [{ method: 'GET', url: `${path}?botId=${OTHER}&${extra}` }],
})

/** Every authenticated route; the first test fails when a route is added without a row here. */
const ROUTES: RouteCase[] = [
  { route: 'POST /api/usage', scope: 'ingest', own: [{ method: 'POST', url: '/api/usage', payload: ev(OWN, 'own-2') }], other: [{ method: 'POST', url: '/api/usage', payload: ev(OTHER, 'other-2') }] },
  {
    route: 'POST /api/usage/batch',
    scope: 'ingest',
    own: [{ method: 'POST', url: '/api/usage/batch', payload: { events: [ev(OWN, 'own-3')] } }],
    other: [{ method: 'POST', url: '/api/usage/batch', payload: { events: [ev(OWN, 'own-4'), ev(OTHER, 'other-3')] } }],
  },
  { route: 'GET /api/usage', scope: 'read', ...reads('/api/usage', range) },
  { route: 'GET /api/usage/timeseries', scope: 'read', ...reads('/api/usage/timeseries') },
  { route: 'GET /api/usage/summary', scope: 'read', ...reads('/api/usage/summary') },
  { route: 'GET /api/usage/breakdown', scope: 'read', ...reads('/api/usage/breakdown', 'groupBy=model') },
  { route: 'GET /api/usage/errors', scope: 'read', ...reads('/api/usage/errors') },
  { route: 'GET /api/usage/events', scope: 'read', ...reads('/api/usage/events') },
  {
    route: 'GET /api/usage/export',
    scope: 'read',
    own: [...reads('/api/usage/export').own, ...reads('/api/usage/export', 'format=jsonl').own],
    other: [...reads('/api/usage/export').other, ...reads('/api/usage/export', 'format=jsonl').other],
  },
  {
    route: 'GET /api/reports/monthly',
    scope: 'read',
    own: [...reads('/api/reports/monthly').own, ...reads('/api/reports/monthly', 'format=csv').own],
    other: [...reads('/api/reports/monthly').other, ...reads('/api/reports/monthly', 'format=csv').other],
  },
  { route: 'GET /api/prices', scope: 'read', own: [{ method: 'GET', url: '/api/prices' }], other: [] },
  { route: 'GET /api/prices/resolve', scope: 'read', own: [{ method: 'GET', url: '/api/prices/resolve?provider=openai&model=gpt-4o' }], other: [] },
  { route: 'GET /api/prices/unmatched', scope: 'read', ...reads('/api/prices/unmatched') },
  {
    route: 'POST /api/prices/quote',
    scope: 'read',
    own: [{ method: 'POST', url: '/api/prices/quote', payload: { provider: 'openai', model: 'gpt-4o', inputTokens: 1, outputTokens: 1 } }],
    other: [],
  },
  { route: 'GET /api/prices/overrides', scope: 'read', own: [{ method: 'GET', url: '/api/prices/overrides' }], other: [] },
  { route: 'POST /api/prices/overrides', scope: 'admin', own: [{ method: 'POST', url: '/api/prices/overrides', payload: override }], other: [] },
  { route: 'PUT /api/prices/overrides/{id}', scope: 'admin', own: [{ method: 'PUT', url: '/api/prices/overrides/x', payload: override }], other: [] },
  { route: 'DELETE /api/prices/overrides/{id}', scope: 'admin', own: [{ method: 'DELETE', url: '/api/prices/overrides/x' }], other: [] },
  {
    route: 'POST /api/prices/reprice',
    scope: 'admin',
    own: [{ method: 'POST', url: '/api/prices/reprice', payload: { startDate: '2024-01-01', endDate: '2024-01-31', botId: OWN } }],
    other: [
      { method: 'POST', url: '/api/prices/reprice', payload: { startDate: '2024-01-01', endDate: '2024-01-31' } },
      { method: 'POST', url: '/api/prices/reprice', payload: { startDate: '2024-01-01', endDate: '2024-01-31', botId: OTHER } },
    ],
  },
  {
    route: 'POST /api/keys',
    scope: 'admin',
    own: [{ method: 'POST', url: '/api/keys', payload: { name: 'mine', scopes: ['read'], botId: OWN } }],
    other: [
      { method: 'POST', url: '/api/keys', payload: { name: 'unbound admin', scopes: ['admin'] } },
      { method: 'POST', url: '/api/keys', payload: { name: 'unbound reader', scopes: ['read'] } },
      { method: 'POST', url: '/api/keys', payload: { name: 'theirs', scopes: ['read'], botId: OTHER } },
    ],
  },
  { route: 'GET /api/keys', scope: 'admin', own: [{ method: 'GET', url: '/api/keys' }], other: [] },
  { route: 'GET /api/keys/self', scope: 'read', own: [{ method: 'GET', url: '/api/keys/self' }], other: [] },
  { route: 'DELETE /api/keys/{id}', scope: 'admin', own: [{ method: 'DELETE', url: `/api/keys/${bound.id}` }], other: [{ method: 'DELETE', url: `/api/keys/${otherKey.id}` }] },
  {
    route: 'POST /api/budgets',
    scope: 'admin',
    own: [{ method: 'POST', url: '/api/budgets', payload: { scope: { botId: OWN }, period: 'month', limitUsd: 1 } }],
    other: [{ method: 'POST', url: '/api/budgets', payload: { scope: { botId: OTHER }, period: 'month', limitUsd: 1 } }],
  },
  { route: 'GET /api/budgets', scope: 'admin', own: [{ method: 'GET', url: `/api/budgets?botId=${OWN}` }], other: [{ method: 'GET', url: '/api/budgets' }, { method: 'GET', url: `/api/budgets?botId=${OTHER}` }] },
  { route: 'GET /api/budgets/{id}', scope: 'admin', own: [], other: [{ method: 'GET', url: `/api/budgets/${otherBudgetId}` }] },
  { route: 'PATCH /api/budgets/{id}', scope: 'admin', own: [], other: [{ method: 'PATCH', url: `/api/budgets/${otherBudgetId}`, payload: { limitUsd: 1000 } }] },
  { route: 'DELETE /api/budgets/{id}', scope: 'admin', own: [], other: [{ method: 'DELETE', url: `/api/budgets/${otherBudgetId}` }] },
  { route: 'GET /api/budgets/{id}/status', scope: 'admin', own: [], other: [{ method: 'GET', url: `/api/budgets/${otherBudgetId}/status` }] },
  {
    route: 'GET /api/budgets/allowance',
    scope: 'read',
    own: [{ method: 'GET', url: '/api/budgets/allowance' }, { method: 'GET', url: `/api/budgets/allowance?botId=${OWN}&userId=u1` }],
    other: [{ method: 'GET', url: `/api/budgets/allowance?botId=${OTHER}` }],
  },
  { route: 'GET /api/alerts', scope: 'admin', own: [{ method: 'GET', url: '/api/alerts' }], other: [{ method: 'GET', url: `/api/alerts?budgetId=${otherBudgetId}` }] },
  {
    route: 'POST /api/spend-alerts',
    scope: 'admin',
    own: [{ method: 'POST', url: '/api/spend-alerts', payload: { scope: { botId: OWN } } }],
    other: [{ method: 'POST', url: '/api/spend-alerts', payload: {} }, { method: 'POST', url: '/api/spend-alerts', payload: { scope: { botId: OTHER } } }],
  },
  { route: 'GET /api/spend-alerts', scope: 'admin', own: [], other: [{ method: 'GET', url: '/api/spend-alerts' }] },
  { route: 'GET /api/spend-alerts/{id}', scope: 'admin', own: [], other: [{ method: 'GET', url: '/api/spend-alerts/x' }] },
  { route: 'PATCH /api/spend-alerts/{id}', scope: 'admin', own: [], other: [{ method: 'PATCH', url: '/api/spend-alerts/x', payload: { enabled: false } }] },
  { route: 'DELETE /api/spend-alerts/{id}', scope: 'admin', own: [], other: [{ method: 'DELETE', url: '/api/spend-alerts/x' }] },
  { route: 'GET /api/spend-alerts/{id}/status', scope: 'admin', own: [], other: [{ method: 'GET', url: '/api/spend-alerts/x/status' }] },
  { route: 'GET /api/spend-alerts/{id}/spikes', scope: 'admin', own: [], other: [{ method: 'GET', url: '/api/spend-alerts/x/spikes' }] },
  {
    route: 'POST /api/report-schedules',
    scope: 'admin',
    own: [{ method: 'POST', url: '/api/report-schedules', payload: { period: 'week', scope: { botId: OWN }, channels: { slack: { webhookUrl: 'https://hooks.slack.com/services/T/B/X' } } } }],
    other: [{ method: 'POST', url: '/api/report-schedules', payload: { period: 'week', channels: { slack: { webhookUrl: 'https://hooks.slack.com/services/T/B/X' } } } }],
  },
  { route: 'GET /api/report-schedules', scope: 'admin', own: [], other: [{ method: 'GET', url: '/api/report-schedules' }] },
  { route: 'GET /api/report-schedules/{id}', scope: 'admin', own: [], other: [{ method: 'GET', url: '/api/report-schedules/x' }] },
  { route: 'PATCH /api/report-schedules/{id}', scope: 'admin', own: [], other: [{ method: 'PATCH', url: '/api/report-schedules/x', payload: { enabled: false } }] },
  { route: 'DELETE /api/report-schedules/{id}', scope: 'admin', own: [], other: [{ method: 'DELETE', url: '/api/report-schedules/x' }] },
  { route: 'GET /api/report-schedules/{id}/preview', scope: 'admin', own: [], other: [{ method: 'GET', url: '/api/report-schedules/x/preview' }] },
  { route: 'GET /api/report-schedules/{id}/sends', scope: 'admin', own: [], other: [{ method: 'GET', url: '/api/report-schedules/x/sends' }] },
]

t.test('the table covers every documented /api route', async (t) => {
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json() as { paths: Record<string, Record<string, unknown>> }
  const documented = Object.entries(doc.paths)
    .filter(([p]) => p.startsWith('/api/'))
    .flatMap(([p, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${p}`))
  t.same(documented.sort(), ROUTES.map((r) => r.route).sort())
})

for (const [label, key] of [
  ['a key stored with admin and a botId', legacy.key],
  ['a bound ingest+read key', bound.key],
] as const) {
  t.test(`${label}: no route reaches another bot's data`, async (t) => {
    const headers = bearer(key)
    for (const r of ROUTES) {
      for (const [side, probes] of [['own', r.own], ['other', r.other]] as const) {
        for (const p of probes) {
          const res = await app.inject({ method: p.method, url: p.url, payload: p.payload, headers })
          const name = `${p.method} ${p.url} ${p.payload ? JSON.stringify(p.payload) : ''}`
          if (r.scope === 'admin') t.equal(res.statusCode, 403, `${name}: admin routes refuse bound keys`)
          else if (side === 'other') t.equal(res.statusCode, 403, `${name}: another bot is 403`)
          else t.ok(res.statusCode >= 200 && res.statusCode < 300, `${name}: own bot answers ${res.statusCode}`)
          // A refusal may name the bot it was asked for; an answer never holds the other bot's data.
          const hidden = res.statusCode === 403 ? MARKERS.filter((m) => m !== OTHER) : MARKERS
          for (const m of hidden) t.notOk(res.body.includes(m), `${name}: answer holds no '${m}'`)
        }
      }
    }
  })
}

t.test("the other bot's budget, key and events are untouched", async (t) => {
  const budget = await getJson<{ limitUsd: number; name: string }>(app, `/api/budgets/${otherBudgetId}`, admin)
  t.equal(budget.status, 200, 'not deleted')
  t.equal(budget.body.limitUsd, 5, 'not patched')
  const keys = (await getJson<{ keys: { id: string; name: string; botId: string | null; scopes: string[]; revokedAt: string | null }[] }>(app, '/api/keys', admin)).body.keys
  t.equal(keys.find((k) => k.id === otherKey.id)?.revokedAt, null, 'its key is not revoked')
  t.same(
    keys.map((k) => k.name).sort(),
    ['bound reader', 'key-secret-7f3', 'legacy bound admin'].sort(),
    'bound keys created no key at all (so none broader than themselves)',
  )
  const events = await getJson<{ recentUsage: { id: string }[] }>(app, `/api/usage?botId=${OTHER}&${range}`, admin)
  t.same(events.body.recentUsage.map((e) => e.id), ['other-1'], 'no event was written for the other bot')
})

t.test('a key bound to a bot cannot be created with admin', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/api/keys', headers: admin, payload: { name: 'x', scopes: ['admin'], botId: OWN } })
  t.equal(res.statusCode, 400)
  t.match(res.json(), { code: 'VALIDATION_ERROR', message: /body\.scopes must not contain admin when body\.botId is set/ })
  const legacyRefusal = await app.inject({ method: 'GET', url: '/api/keys', headers: bearer(legacy.key) })
  t.match(legacyRefusal.json(), { code: 'FORBIDDEN', message: `This key is bound to bot '${OWN}': admin routes need a key bound to no bot` })
  const unbound = await app.inject({ method: 'POST', url: '/api/keys', headers: admin, payload: { name: 'y', scopes: ['admin'] } })
  t.equal(unbound.statusCode, 201, 'an unbound admin key is still possible for an unbound admin')
  t.equal((await app.inject({ method: 'DELETE', url: `/api/keys/${(unbound.json() as { id: string }).id}`, headers: admin })).statusCode, 200)
})

t.test('a key bound to a bot cannot be created with metrics, and a bound key never reads /metrics', async (t) => {
  // /metrics counts cost and calls of every bot, so it is as wide as admin.
  const res = await app.inject({ method: 'POST', url: '/api/keys', headers: admin, payload: { name: 'x', scopes: ['metrics'], botId: OWN } })
  t.equal(res.statusCode, 400)
  t.match(res.json(), { code: 'VALIDATION_ERROR', message: /body\.scopes must not contain metrics when body\.botId is set/ })
  const scrape = await app.inject({ method: 'GET', url: '/metrics', headers: bearer(legacy.key) })
  t.equal(scrape.statusCode, 403, 'the legacy bound admin key does not imply metrics')
  t.match(scrape.json(), { code: 'FORBIDDEN', message: `This key is bound to bot '${OWN}': metrics routes need a key bound to no bot` })
  t.equal((await app.inject({ method: 'GET', url: '/metrics', headers: admin })).statusCode, 200, 'an unbound admin scrapes')
})

t.test('a bound key stored with admin does not count as the admin key at first start', async (t) => {
  // Only the legacy bound "admin" key is active now: a start without ADMIN_API_KEY must still create a real one.
  const announced: string[] = []
  const bootstrapped = await buildApp({ ...testConfig(), adminApiKey: null }, { database, announceAdminKey: (k) => announced.push(k), logDestination: new PassThrough() })
  t.teardown(() => bootstrapped.close())
  t.equal(announced.length, 1, 'an admin key was created')
  const res = await bootstrapped.inject({ method: 'GET', url: '/api/keys', headers: bearer(announced[0]) })
  t.equal(res.statusCode, 200, 'and it is an admin key')
})
