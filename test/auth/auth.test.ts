import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase, resetTables } from '../helpers/db.js'
import { countEvents, getJson, postBatch, postUsage, SEED_EVENT } from '../helpers/usage.js'

const database = await createTestDatabase(t)
const { app, rawLog } = await buildTestApp(t, database, { LOG_LEVEL: 'trace' })
t.beforeEach(() => resetTables(database))

async function createKey(app: FastifyInstance, body: Record<string, unknown>): Promise<{ id: string; key: string }> {
  const res = await app.inject({ method: 'POST', url: '/api/keys', payload: body, headers: bearer(ADMIN_KEY) })
  if (res.statusCode !== 201) throw new Error(`create key: ${res.statusCode} ${res.body}`)
  return res.json()
}

interface RouteCase {
  method: 'GET' | 'POST' | 'DELETE' | 'PUT' | 'PATCH'
  url: string
  scope: 'ingest' | 'read' | 'admin'
  /** Other scopes that may call it too (the allowance: a bot's ingest or read key). */
  alsoAllowed?: readonly ('ingest' | 'read')[]
  payload?: Record<string, unknown>
}

/** Every authenticated route; a test below fails when a route is added without a row here. */
const ROUTES: RouteCase[] = [
  { method: 'POST', url: '/api/usage', scope: 'ingest', payload: SEED_EVENT },
  { method: 'POST', url: '/api/usage/batch', scope: 'ingest', payload: { events: [SEED_EVENT] } },
  { method: 'GET', url: '/api/usage', scope: 'read' },
  { method: 'POST', url: '/api/keys', scope: 'admin', payload: { name: 'x', scopes: ['read'] } },
  { method: 'GET', url: '/api/keys', scope: 'admin' },
  { method: 'GET', url: '/api/keys/self', scope: 'read' },
  { method: 'DELETE', url: '/api/keys/nonexistent', scope: 'admin' },
  { method: 'GET', url: '/api/prices', scope: 'read' },
  { method: 'GET', url: '/api/prices/resolve?provider=openai&model=gpt-4o', scope: 'read' },
  { method: 'POST', url: '/api/prices/quote', scope: 'read', payload: { provider: 'openai', model: 'gpt-4o', inputTokens: 1, outputTokens: 1 } },
  { method: 'GET', url: '/api/prices/overrides', scope: 'read' },
  { method: 'POST', url: '/api/prices/overrides', scope: 'admin', payload: { provider: 'acme', modelPattern: 'm', effectiveFrom: '2024-01-01T00:00:00Z', input: 1, output: 2 } },
  { method: 'PUT', url: '/api/prices/overrides/nonexistent', scope: 'admin', payload: { provider: 'acme', modelPattern: 'm2', effectiveFrom: '2024-01-01T00:00:00Z', input: 1, output: 2 } },
  { method: 'DELETE', url: '/api/prices/overrides/nonexistent', scope: 'admin' },
  { method: 'POST', url: '/api/prices/reprice', scope: 'admin', payload: { startDate: '2024-01-01', endDate: '2024-01-31' } },
  { method: 'GET', url: '/api/usage/timeseries', scope: 'read' },
  { method: 'GET', url: '/api/usage/summary', scope: 'read' },
  { method: 'GET', url: '/api/usage/breakdown?groupBy=model', scope: 'read' },
  { method: 'GET', url: '/api/usage/errors', scope: 'read' },
  { method: 'GET', url: '/api/usage/events', scope: 'read' },
  { method: 'GET', url: '/api/usage/export', scope: 'read' },
  { method: 'GET', url: '/api/reports/monthly', scope: 'read' },
  { method: 'POST', url: '/api/budgets', scope: 'admin', payload: { period: 'month', limitUsd: 1 } },
  { method: 'GET', url: '/api/budgets', scope: 'admin' },
  { method: 'GET', url: '/api/budgets/nonexistent', scope: 'admin' },
  { method: 'PATCH', url: '/api/budgets/nonexistent', scope: 'admin', payload: { limitUsd: 1 } },
  { method: 'DELETE', url: '/api/budgets/nonexistent', scope: 'admin' },
  { method: 'GET', url: '/api/budgets/nonexistent/status', scope: 'admin' },
  { method: 'GET', url: '/api/alerts', scope: 'admin' },
  { method: 'GET', url: '/api/budgets/allowance?botId=bot_a', scope: 'read', alsoAllowed: ['ingest'] },
  { method: 'GET', url: '/api/prices/unmatched', scope: 'read' },
  { method: 'POST', url: '/api/spend-alerts', scope: 'admin', payload: {} },
  { method: 'GET', url: '/api/spend-alerts', scope: 'admin' },
  { method: 'GET', url: '/api/spend-alerts/nonexistent', scope: 'admin' },
  { method: 'PATCH', url: '/api/spend-alerts/nonexistent', scope: 'admin', payload: { enabled: false } },
  { method: 'DELETE', url: '/api/spend-alerts/nonexistent', scope: 'admin' },
  { method: 'GET', url: '/api/spend-alerts/nonexistent/status', scope: 'admin' },
  { method: 'GET', url: '/api/spend-alerts/nonexistent/spikes', scope: 'admin' },
  { method: 'POST', url: '/api/report-schedules', scope: 'admin', payload: { period: 'week', channels: { slack: { webhookUrl: 'https://hooks.slack.com/services/T/B/X' } } } },
  { method: 'GET', url: '/api/report-schedules', scope: 'admin' },
  { method: 'GET', url: '/api/report-schedules/nonexistent', scope: 'admin' },
  { method: 'PATCH', url: '/api/report-schedules/nonexistent', scope: 'admin', payload: { enabled: false } },
  { method: 'DELETE', url: '/api/report-schedules/nonexistent', scope: 'admin' },
  { method: 'GET', url: '/api/report-schedules/nonexistent/preview', scope: 'admin' },
  { method: 'GET', url: '/api/report-schedules/nonexistent/sends', scope: 'admin' },
]

t.test('every /api route requires a key with its scope', async (t) => {
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json() as { paths: Record<string, Record<string, unknown>> }
  const documented = Object.entries(doc.paths)
    .filter(([p]) => p.startsWith('/api/'))
    .flatMap(([p, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${p}`))
  const covered = ROUTES.map((r) => `${r.method} ${r.url.split('?')[0].replace(/\/nonexistent/, '/{id}')}`)
  t.same(documented.sort(), [...new Set(covered)].sort(), 'the table covers every documented /api route')

  const keys = {
    ingest: (await createKey(app, { name: 'i', scopes: ['ingest'] })).key,
    read: (await createKey(app, { name: 'r', scopes: ['read'] })).key,
    admin: (await createKey(app, { name: 'a', scopes: ['admin'] })).key,
  }
  for (const r of ROUTES) {
    const name = `${r.method} ${r.url}`
    const none = await app.inject({ method: r.method, url: r.url, payload: r.payload })
    t.equal(none.statusCode, 401, `${name} without a key`)
    t.same(none.json(), { statusCode: 401, code: 'UNAUTHORIZED', error: 'Unauthorized', message: 'Missing or invalid API key: send Authorization: Bearer <key>' })
    const bogus = await app.inject({ method: r.method, url: r.url, payload: r.payload, headers: bearer('usk_not_a_real_key') })
    t.equal(bogus.statusCode, 401, `${name} with an unknown key`)

    for (const scope of ['ingest', 'read'] as const) {
      if (scope === r.scope) continue
      if (r.alsoAllowed?.includes(scope)) {
        const also = await app.inject({ method: r.method, url: r.url, payload: r.payload, headers: bearer(keys[scope]) })
        t.equal(also.statusCode, 200, `${name} with a ${scope} key`)
        continue
      }
      const wrong = await app.inject({ method: r.method, url: r.url, payload: r.payload, headers: bearer(keys[scope]) })
      t.equal(wrong.statusCode, 403, `${name} with a ${scope} key`)
      t.match(wrong.json(), { code: 'FORBIDDEN', message: `This key lacks the '${r.scope}' scope` })
    }
    const right = await app.inject({ method: r.method, url: r.url, payload: r.payload, headers: bearer(keys[r.scope]) })
    t.ok([200, 201, 404].includes(right.statusCode), `${name} with a ${r.scope} key: ${right.statusCode}`)
    if (r.scope !== 'admin') {
      const admin = await app.inject({ method: r.method, url: r.url, payload: r.payload, headers: bearer(keys.admin) })
      t.ok([200, 201].includes(admin.statusCode), `${name} with an admin key`)
    }
  }
})

t.test('health, readiness and docs need no key; the spec declares the bearer scheme', async (t) => {
  for (const url of ['/healthz', '/readyz', '/docs/', '/docs/json']) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url)
  }
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json()
  t.same(doc.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer', description: 'API key: Authorization: Bearer usk_...' })
  t.same(doc.paths['/api/usage'].post.security, [{ bearerAuth: [] }])
  t.match(doc.paths['/api/usage'].post.description, /Requires an API key with scope `ingest`/)
})

t.test('keys: created once with the secret, listed without it, revoked at once', async (t) => {
  const created = await app.inject({ method: 'POST', url: '/api/keys', payload: { name: 'bot A', scopes: ['ingest', 'read'], botId: 'bot_a' }, headers: bearer(ADMIN_KEY) })
  t.equal(created.statusCode, 201)
  const body = created.json()
  t.match(body.key, /^usk_[A-Za-z0-9_-]{32}$/, '192 random bits behind a recognisable prefix')
  t.equal(body.prefix, body.key.slice(0, 10))
  t.match(body, { name: 'bot A', scopes: ['ingest', 'read'], botId: 'bot_a', revokedAt: null, lastUsedAt: null })

  t.equal((await postUsage(app, { ...SEED_EVENT, botId: 'bot_a' }, bearer(body.key))).statusCode, 201)
  const list = await getJson<{ keys: Record<string, unknown>[] }>(app, '/api/keys', bearer(ADMIN_KEY))
  t.equal(list.status, 200)
  const listed = list.body.keys.find((k) => k.id === body.id)
  t.ok(listed)
  t.notOk(JSON.stringify(list.body).includes(body.key), 'no secret in the listing')
  t.notOk('key' in (listed ?? {}) || 'hash' in (listed ?? {}))
  t.type(listed?.lastUsedAt, 'string', 'lastUsedAt recorded')

  const revoked = await app.inject({ method: 'DELETE', url: `/api/keys/${body.id}`, headers: bearer(ADMIN_KEY) })
  t.equal(revoked.statusCode, 200)
  t.type(revoked.json().revokedAt, 'string')
  const after = await postUsage(app, { ...SEED_EVENT, botId: 'bot_a' }, bearer(body.key))
  t.equal(after.statusCode, 401, 'a revoked key stops working immediately')
  const unknown = await postUsage(app, SEED_EVENT, bearer('usk_unknown'))
  t.same(after.json(), unknown.json(), 'revoked and unknown keys are indistinguishable')

  const missing = await app.inject({ method: 'DELETE', url: '/api/keys/no-such-key', headers: bearer(ADMIN_KEY) })
  t.equal(missing.statusCode, 404)
  const bad = await app.inject({ method: 'POST', url: '/api/keys', payload: { name: 'x', scopes: ['root'] }, headers: bearer(ADMIN_KEY) })
  t.equal(bad.statusCode, 400)
  t.match(bad.json().message, /body\.scopes\[0\] must be one of ingest, read, admin/)
})

t.test('a key bound to bot A can neither write nor read bot B', async (t) => {
  const a = await createKey(app, { name: 'A', scopes: ['ingest', 'read'], botId: 'bot_a' })
  await postBatch(app, [
    { ...SEED_EVENT, id: 'a1', botId: 'bot_a' },
    { ...SEED_EVENT, id: 'b1', botId: 'bot_b', estimatedCost: 5 },
  ])
  const asA = bearer(a.key)

  const other = await postUsage(app, { ...SEED_EVENT, botId: 'bot_b' }, asA)
  t.equal(other.statusCode, 403)
  t.match(other.json().message, /may only write usage for bot 'bot_a'/)
  const mixed = await postBatch(app, [{ ...SEED_EVENT, id: 'ok', botId: 'bot_a' }, { ...SEED_EVENT, id: 'sneaky', botId: 'bot_b' }], asA)
  t.equal(mixed.statusCode, 403, 'a batch with one foreign event is refused whole')
  t.equal(await countEvents(database), 2, 'nothing stored by refused writes')

  const defaulted = await postUsage(app, { ...SEED_EVENT, botId: undefined }, asA)
  t.equal(defaulted.statusCode, 201)
  t.equal(defaulted.json().botId, 'bot_a', 'a missing botId defaults to the bound bot')
  const batchDefault = await postBatch(app, [{ ...SEED_EVENT, id: 'd2', botId: undefined }], asA)
  t.equal(batchDefault.json().created, 1)

  const stats = await getJson<{ stats: { _count: { id: number } }[]; recentUsage: { botId: string }[]; totalCost: number }>(app, '/api/usage', asA)
  t.equal(stats.status, 200)
  t.ok(stats.body.recentUsage.every((e) => e.botId === 'bot_a'), 'reads are silently restricted to bot A')
  t.equal(stats.body.stats[0]._count.id, 3)
  t.equal(stats.body.totalCost, 0.00675 * 3)
  const widen = await getJson(app, '/api/usage?botId=bot_b', asA)
  t.equal(widen.status, 403, 'asking for another bot is 403')
  const own = await getJson(app, '/api/usage?botId=bot_a', asA)
  t.equal(own.status, 200)
  t.equal(await countEvents(database), 4)

  const unboundNoBot = await postUsage(app, { ...SEED_EVENT, botId: undefined })
  t.equal(unboundNoBot.statusCode, 400, 'an unbound key must name the bot')
  t.match(unboundNoBot.json().message, 'body.botId is required')
})

t.test('logs never contain keys', async (t) => {
  const k = await createKey(app, { name: 'secret-bot', scopes: ['ingest'] })
  await postUsage(app, SEED_EVENT, bearer(k.key))
  await postUsage(app, SEED_EVENT, bearer(`${k.key}x`))
  await app.inject({ method: 'GET', url: '/api/usage', headers: bearer(k.key) })
  await app.inject({ method: 'POST', url: '/api/usage', payload: '{bad json', headers: { ...bearer(k.key), 'content-type': 'application/json' } })
  const log = rawLog()
  t.ok(log.length > 1000, 'the app logged at trace level')
  t.notOk(log.includes(k.key), 'a bot key never appears in the log')
  t.notOk(log.includes(ADMIN_KEY), 'the admin key never appears in the log')
  t.notOk(log.includes(k.key.slice(4, 20)), 'not even part of it')
})

t.test('rate limit: 429 with Retry-After, then recovers', async (t) => {
  const db = await createTestDatabase(t)
  const { app: limited } = await buildTestApp(t, db, { RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '1000' })
  const statuses: number[] = []
  let limitedRes
  for (let i = 0; i < 5; i++) {
    const res = await limited.inject({ method: 'GET', url: '/api/usage', headers: bearer(ADMIN_KEY) })
    statuses.push(res.statusCode)
    if (res.statusCode === 429) limitedRes = res
  }
  t.same(statuses, [200, 200, 200, 429, 429])
  t.ok(limitedRes)
  t.match(limitedRes?.headers['retry-after'], /^\d+$/)
  t.match(limitedRes?.json(), { statusCode: 429, code: 'RATE_LIMITED', error: 'Too Many Requests' })
  // Another key has its own budget.
  const other = await limited.inject({ method: 'GET', url: '/api/usage' })
  t.equal(other.statusCode, 401, 'no key: its own (IP) bucket, then 401')
  await new Promise((r) => setTimeout(r, 1100))
  const recovered = await limited.inject({ method: 'GET', url: '/api/usage', headers: bearer(ADMIN_KEY) })
  t.equal(recovered.statusCode, 200, 'recovers after the window')
  t.equal((await limited.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
})

t.test('first start without ADMIN_API_KEY creates one admin key, later starts do not', async (t) => {
  const db = await createTestDatabase(t)
  const announced: string[] = []
  const { buildApp } = await import('../../src/app.js')
  const { testConfig } = await import('../helpers/app.js')
  const config = { ...testConfig(), adminApiKey: null }
  const first = await buildApp(config, { database: db, announceAdminKey: (k) => announced.push(k) })
  t.equal(announced.length, 1)
  const res = await first.inject({ method: 'GET', url: '/api/keys', headers: bearer(announced[0]) })
  t.equal(res.statusCode, 200, 'the announced key is an admin key')
  t.equal(res.json().keys.length, 1)
  await first.close()
  const second = await buildApp(config, { database: db, announceAdminKey: (k) => announced.push(k) })
  t.equal(announced.length, 1, 'no second key')
  await second.close()
})

t.test('AUTH_DISABLED=true opens every route and warns loudly', async (t) => {
  const db = await createTestDatabase(t)
  const { app: open, logs } = await buildTestApp(t, db, { AUTH_DISABLED: 'true' })
  t.ok(logs.some((l) => l.level === 40 && /AUTH_DISABLED=true/.test(String(l.msg))), 'warning logged at start')
  t.equal((await postUsage(open, SEED_EVENT, {})).statusCode, 201)
  t.equal((await open.inject({ method: 'GET', url: '/api/keys' })).statusCode, 200)
})
