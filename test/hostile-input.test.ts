import { sql } from 'drizzle-orm'
import fc from 'fast-check'
import t from 'tap'
import { foldAll } from '../src/usage/rollups.js'
import { ADMIN_KEY, bearer, buildTestApp } from './helpers/app.js'
import { createTestDatabase, resetTables } from './helpers/db.js'
import { SEED_EVENT } from './helpers/usage.js'

/**
 * Property-based hostile input over every route's bodies, query strings and path parameters:
 * no 5xx, nothing stored from a rejected request, good writes beside hostile ones all stored,
 * and what is stored is exactly what was acknowledged. Run counts are bounded so the file
 * takes well under a minute per engine; a failure prints the shrunk request and fast-check's seed.
 */

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)

// ---- hostile values -----------------------------------------------------------------------------

const POISON_STRINGS = [
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfff',
  '\udc00\ud800',
  '0000-01',
  '0000-01-01',
  '9999-12-31',
  '99999-01-01',
  '2024-01-01T23:59:60Z',
  '2024-02-30',
  '1969-12-31T23:59:59Z',
  '+010000-01-01T00:00:00.000Z',
  '-000001-01-01T00:00:00Z',
  'NaN',
  '1e400',
  '-1',
  '2147483648',
  '9223372036854775808',
  '',
  ' ',
  '%00',
  "'; DROP TABLE usage_events; --",
  '*a*a*a*a*a*a*b',
  'US/Pacific-New',
  'Europe/Berlin',
  'x'.repeat(5000),
]
const POISON_NUMBERS = [-1, 0, 0.5, 2 ** 31, 2 ** 31 - 1, 2 ** 32, 2 ** 53, 4e9, 1e20, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2]

const hostileString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...POISON_STRINGS) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 10 }) },
)
const hostileScalar = fc.oneof(
  hostileString,
  fc.constantFrom(...POISON_NUMBERS),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
)
/** Any JSON-ish value, with hostile keys too, sometimes nested very deep. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostileScalar },
  { weight: 1, arbitrary: fc.array(hostileScalar, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(hostileString, hostileScalar, { maxKeys: 3 }) },
  { weight: 1, arbitrary: fc.integer({ min: 30, max: 3000 }).map(nest) },
)

function nest(levels: number): unknown {
  let v: unknown = 'leaf'
  for (let i = 0; i < levels; i++) v = { n: v }
  return v
}

// ---- routes -------------------------------------------------------------------------------------

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
interface RouteTemplate {
  method: Method
  /** Path with `:id` where a path parameter goes. */
  path: string
  /** A request the route accepts, as a starting point for mutation. */
  body?: Record<string, unknown>
  query?: Record<string, string>
  /** Fields worth mutating beyond the base's own (all optional query fields). */
  fields: string[]
}

const event = (extra: Record<string, unknown> = {}) => ({ ...SEED_EVENT, botId: 'bot_h', ...extra })
const FILTERS = ['botId', 'model', 'provider', 'requestType', 'success', 'startDate', 'endDate', 'tz']
const EVENT_FIELDS = [...Object.keys(SEED_EVENT), 'id', 'cacheReadTokens', 'cacheWriteTokens', 'cacheWrite1hTokens', 'reasoningTokens', 'errorMessage', 'latencyMs', 'metadata', 'createdAt']
const OVERRIDE = { provider: 'acme', modelPattern: 'h-*', effectiveFrom: '2024-01-01T00:00:00Z', input: 1, output: 2 }
// No channels: a fuzzed webhook or Telegram channel could make the service reach beyond loopback.
const BUDGET = { name: 'h', period: 'day', limitUsd: 1000 }

const ROUTES: RouteTemplate[] = [
  { method: 'POST', path: '/api/usage', body: event(), fields: EVENT_FIELDS },
  { method: 'POST', path: '/api/usage/batch', body: { events: [event()] }, fields: ['events'] },
  { method: 'GET', path: '/api/usage', query: {}, fields: [...FILTERS, 'limit'] },
  { method: 'GET', path: '/api/usage/timeseries', query: {}, fields: [...FILTERS, 'interval', 'groupBy', 'limit'] },
  { method: 'GET', path: '/api/usage/summary', query: {}, fields: [...FILTERS, 'limit'] },
  { method: 'GET', path: '/api/usage/breakdown', query: { groupBy: 'model' }, fields: [...FILTERS, 'groupBy', 'sort', 'order', 'limit'] },
  { method: 'GET', path: '/api/usage/errors', query: {}, fields: [...FILTERS, 'limit', 'cursor', 'top'] },
  { method: 'GET', path: '/api/usage/events', query: {}, fields: [...FILTERS, 'limit', 'cursor'] },
  { method: 'GET', path: '/api/usage/export', query: { format: 'jsonl' }, fields: [...FILTERS, 'format'] },
  { method: 'GET', path: '/api/reports/monthly', query: {}, fields: ['month', 'tz', 'format', 'botId', 'provider', 'model', 'requestType'] },
  { method: 'GET', path: '/api/prices', query: {}, fields: ['provider', 'model', 'at'] },
  { method: 'GET', path: '/api/prices/resolve', query: { provider: 'openai', model: 'gpt-4o' }, fields: ['provider', 'model', 'at'] },
  {
    method: 'POST',
    path: '/api/prices/quote',
    body: { provider: 'openai', model: 'gpt-4o', inputTokens: 10, outputTokens: 5 },
    fields: ['provider', 'model', 'at', 'inputTokens', 'outputTokens', 'cacheReadTokens', 'cacheWriteTokens', 'cacheWrite1hTokens', 'reasoningTokens'],
  },
  { method: 'POST', path: '/api/prices/overrides', body: OVERRIDE, fields: [...Object.keys(OVERRIDE), 'effectiveTo', 'cacheRead', 'tiers', 'note'] },
  { method: 'PUT', path: '/api/prices/overrides/:id', body: OVERRIDE, fields: [...Object.keys(OVERRIDE), 'effectiveTo', 'tiers', 'note'] },
  { method: 'DELETE', path: '/api/prices/overrides/:id', fields: [] },
  { method: 'POST', path: '/api/prices/reprice', body: { startDate: '2024-01-01', endDate: '2024-01-02' }, fields: ['startDate', 'endDate', 'botId', 'provider', 'model'] },
  { method: 'POST', path: '/api/keys', body: { name: 'h', scopes: ['read'] }, fields: ['name', 'scopes', 'botId'] },
  { method: 'DELETE', path: '/api/keys/:id', fields: [] },
  { method: 'POST', path: '/api/budgets', body: BUDGET, fields: [...Object.keys(BUDGET), 'scope', 'timeZone', 'thresholds', 'notifyProjected', 'enabled'] },
  { method: 'GET', path: '/api/budgets', query: {}, fields: ['botId'] },
  { method: 'GET', path: '/api/budgets/:id', fields: [] },
  { method: 'GET', path: '/api/budgets/:id/status', fields: [] },
  { method: 'PATCH', path: '/api/budgets/:id', body: { enabled: true }, fields: ['name', 'scope', 'period', 'timeZone', 'limitUsd', 'thresholds', 'enabled'] },
  { method: 'DELETE', path: '/api/budgets/:id', fields: [] },
  { method: 'GET', path: '/api/alerts', query: {}, fields: ['budgetId', 'since', 'before', 'limit'] },
]

interface HostileRequest {
  method: Method
  url: string
  payload?: string
}

const queryValue = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v) ?? '')

/** A route's base request with one to three fields replaced (or added) by hostile values. */
const hostileRequest: fc.Arbitrary<HostileRequest> = fc
  .constantFrom(...ROUTES)
  .chain((route) =>
    fc.record({
      route: fc.constant(route),
      edits: fc.array(
        fc.tuple(route.fields.length > 0 ? fc.oneof(fc.constantFrom(...route.fields), hostileString) : hostileString, hostileValue),
        { minLength: 1, maxLength: 3 },
      ),
      id: fc.oneof(fc.constantFrom('x', 'missing-id'), hostileString.filter((s) => s.length > 0)),
      batchItem: hostileValue,
    }),
  )
  .map(({ route, edits, id, batchItem }) => {
    const path = route.path.replace(':id', encodeURIComponent(id.replace(/[\ud800-\udfff]/g, '?')))
    if (route.query) {
      const q = new URLSearchParams(route.query)
      for (const [k, v] of edits) q.set(k, queryValue(v))
      return { method: route.method, url: `${path}?${q.toString()}` }
    }
    if (!route.body) return { method: route.method, url: path }
    const body: Record<string, unknown> = { ...route.body }
    for (const [k, v] of edits) body[k] = v
    // A batch: one good event beside the hostile item (or a hostile events value).
    if (route.path === '/api/usage/batch' && Array.isArray(body.events)) body.events = [event({ id: 'batch-good-template' }), batchItem]
    return { method: route.method, url: path, payload: JSON.stringify(body) }
  })

async function send(r: HostileRequest) {
  return app.inject({
    method: r.method,
    url: r.url,
    headers: { ...bearer(ADMIN_KEY), ...(r.payload === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(r.payload === undefined ? {} : { payload: r.payload }),
  })
}

/** Everything a request could have written; equal before and after a rejected request. */
async function fingerprint(): Promise<string> {
  // The rollups are folded in the background: fold what earlier accepted requests stored, so
  // only this request can change what is compared.
  await foldAll(database)
  const [row] = await database.rows<Record<string, unknown>>(sql`
    SELECT (SELECT count(*) FROM usage_events) AS events, (SELECT count(*) FROM usage_hourly) AS hourly,
      (SELECT coalesce(sum(calls), 0) FROM usage_daily) AS daily_calls, (SELECT count(*) FROM api_keys) AS keys,
      (SELECT count(*) FROM budgets) AS budgets, (SELECT coalesce(max(updated_at)::text, '') FROM budgets) AS budget_change,
      (SELECT count(*) FROM price_overrides) AS overrides`)
  return JSON.stringify(row)
}

const compact = (s: string) => (s.length > 300 ? `${s.slice(0, 300)}...` : s)

t.test('hostile requests on every route: never a 5xx, and a rejected request stores nothing', async (t) => {
  // A budget and an override to aim PATCH, PUT, DELETE and the id routes at.
  await send({ method: 'POST', url: '/api/budgets', payload: JSON.stringify(BUDGET) })
  await send({ method: 'PUT', url: '/api/prices/overrides/x', payload: JSON.stringify(OVERRIDE) })
  let requests = 0
  await fc.assert(
    fc.asyncProperty(hostileRequest, async (r) => {
      requests++
      const before = await fingerprint()
      const res = await send(r)
      if (res.statusCode >= 500) throw new Error(`${r.method} ${compact(r.url)} ${compact(r.payload ?? '')} -> ${res.statusCode} ${compact(res.body)}`)
      if (res.statusCode >= 400) {
        const after = await fingerprint()
        if (after !== before) throw new Error(`rejected ${r.method} ${compact(r.url)} (${res.statusCode}) still changed ${before} -> ${after}`)
        const body = res.json() as { code?: unknown; message?: unknown }
        if (typeof body.code !== 'string' || typeof body.message !== 'string') throw new Error(`error body without code/message: ${compact(res.body)}`)
      }
    }),
    { numRuns: 150, endOnFailure: true },
  )
  t.equal(requests >= 150, true, `${requests} hostile requests`)
})

/** The `${botId}/${id}` of every event an answer acknowledges as stored (created or duplicate). */
function acknowledgedBy(r: HostileRequest, res: { statusCode: number; json(): unknown }): string[] {
  if (r.method !== 'POST' || !r.url.startsWith('/api/usage')) return []
  if (r.url.startsWith('/api/usage/batch') && res.statusCode === 200) {
    const sent = (JSON.parse(r.payload ?? '{}') as { events: { botId: string }[] }).events
    const { results } = res.json() as { results: { index: number; status: string; id: string }[] }
    return results.filter((x) => x.status !== 'invalid').map((x) => `${sent[x.index].botId}/${x.id}`)
  }
  if (r.url === '/api/usage' && (res.statusCode === 200 || res.statusCode === 201)) {
    const e = res.json() as { botId: string; id: string }
    return [`${e.botId}/${e.id}`]
  }
  return []
}

t.test('good writes beside hostile ones are all stored, and stored = acknowledged', async (t) => {
  await resetTables(database)
  const acknowledged = new Set<string>()
  let run = 0
  await fc.assert(
    fc.asyncProperty(fc.array(hostileRequest, { minLength: 1, maxLength: 3 }), async (hostile) => {
      run++
      const good = Array.from({ length: 8 }, (_, i) => ({
        method: 'POST' as const,
        url: '/api/usage',
        payload: JSON.stringify(event({ id: `good-${run}-${i}`, botId: 'bot_good' })),
      }))
      const requests = [...good, ...hostile]
      const answers = await Promise.all(requests.map(send))
      answers.forEach((res, i) => {
        if (res.statusCode >= 500) throw new Error(`${requests[i].method} ${compact(requests[i].url)} -> ${res.statusCode} ${compact(res.body)}`)
        if (i < good.length && res.statusCode !== 201) throw new Error(`a good write beside hostile ones got ${res.statusCode} ${compact(res.body)}`)
        for (const key of acknowledgedBy(requests[i], res)) acknowledged.add(key)
      })
    }),
    { numRuns: 20, endOnFailure: true },
  )
  const stored = await database.rows<{ key: string }>(sql`SELECT bot_id || '/' || id AS key FROM usage_events`)
  t.same(stored.map((r) => r.key).sort(), [...acknowledged].sort(), 'exactly the acknowledged events are stored')
  t.ok(acknowledged.size >= 20 * 8)
})
