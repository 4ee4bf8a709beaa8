// client.allowance() against the real service: the answer, its cache, and what it says when the
// service cannot be asked (fail open by default, fail closed on request).
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { AllowanceChecker } from '../../src/client/allowance.js'
import { NetworkError, RequestRejectedError, UsageClient, usageClientOptionsFromEnv, UsageClientConfigError, type UsageClientError, type UsageClientOptions } from '../../src/client/index.js'
import { ADMIN_KEY, bearer } from '../helpers/app.js'
import { buildBudgetApp, costEvent, createBudget, postEvents, TestClock } from '../helpers/budgets.js'
import { createTestDatabase, resetTables } from '../helpers/db.js'
import { freePort } from '../helpers/instances.js'
import { waitFor } from '../helpers/wait.js'

const database = await createTestDatabase(t)
t.beforeEach(() => resetTables(database))

async function serve(t: Test): Promise<{ app: FastifyInstance; url: string; key: string }> {
  const { app } = await buildBudgetApp(t, database, {}, new TestClock(new Date('2025-03-20T12:00:00Z')))
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  const res = await app.inject({ method: 'POST', url: '/api/keys', headers: bearer(ADMIN_KEY), payload: { name: 'bot', scopes: ['ingest'], botId: 'bot_x' } })
  return { app, url, key: (res.json() as { key: string }).key }
}

function client(t: Test, options: UsageClientOptions): UsageClient {
  const c = new UsageClient({ flushOnExit: false, ...options })
  t.teardown(() => c.close({ deadlineMs: 200 }))
  return c
}

t.test('allowed, then blocked per user, with resetsAt as a Date', async (t) => {
  const { app, url, key } = await serve(t)
  const b = await createBudget(app, { name: 'per user', scope: { botId: 'bot_x' }, period: 'day', timeZone: 'UTC', limitUsd: 0.5, action: 'block', perUser: { key: 'userId' } })
  const c = client(t, { baseUrl: url, apiKey: key, botId: 'bot_x', allowance: { cacheMs: 0 } })
  const fresh = await c.allowance({ userId: 4242 })
  t.same(fresh, { allowed: true, remainingUsd: 0.5, resetsAt: new Date('2025-03-21T00:00:00Z'), blockedBy: [], unknown: false })

  await postEvents(app, [costEvent(0.6, { createdAt: '2025-03-20T10:00:00Z', metadata: { userId: 4242 } })])
  await waitFor(async () => !(await c.allowance({ userId: 4242 })).allowed, 'blocked')
  const blocked = await c.allowance({ userId: 4242 })
  t.same(blocked.blockedBy, [{ budgetId: b.id, name: 'per user', limitUsd: 0.5, spentUsd: 0.6, resetsAt: new Date('2025-03-21T00:00:00Z'), userId: '4242' }])
  t.equal((await c.allowance({ userId: 'someone' })).allowed, true, 'another user is allowed')
})

t.test('answers are cached per user for cacheMs', async (t) => {
  const { app, url, key } = await serve(t)
  await createBudget(app, { scope: { botId: 'bot_x' }, period: 'day', timeZone: 'UTC', limitUsd: 0.5, action: 'block', perUser: { key: 'userId' } })
  let now = 1_000_000
  const errors: UsageClientError[] = []
  const checker = new AllowanceChecker({ baseUrl: url, apiKey: key, botId: 'bot_x', cacheMs: 3000, report: (e) => errors.push(e), now: () => now })
  t.teardown(() => checker.close())
  const [one, two] = await Promise.all([checker.check({ userId: 'u1' }), checker.check({ userId: 'u1' })])
  t.equal(one, two, 'concurrent checks of one user share one answer')
  t.equal(one.allowed, true)

  await postEvents(app, [costEvent(0.6, { createdAt: '2025-03-20T10:00:00Z', metadata: { userId: 'u1' } })])
  const uncached = new AllowanceChecker({ baseUrl: url, apiKey: key, botId: 'bot_x', cacheMs: 0, report: () => undefined })
  t.teardown(() => uncached.close())
  await waitFor(async () => !(await uncached.check({ userId: 'u1' })).allowed, 'the service blocks u1')

  now += 2999
  t.equal((await checker.check({ userId: 'u1' })).allowed, true, 'within cacheMs the cached answer is kept')
  t.equal((await checker.check({ userId: 'u2' })).allowed, true, 'another user is asked on its own')
  now += 2
  t.equal((await checker.check({ userId: 'u1' })).allowed, false, 'after cacheMs the service is asked again')
  t.same(errors, [])
})

t.test('the service cannot be asked: fail open by default, fail closed on request, the error reported', async (t) => {
  const port = await freePort()
  const errors: UsageClientError[] = []
  const open = client(t, { baseUrl: `http://127.0.0.1:${port}`, apiKey: 'usk_x', botId: 'bot_x', onError: (e) => errors.push(e), allowance: { timeoutMs: 500 } })
  const answer = await open.allowance({ userId: 1 })
  t.match(answer, { allowed: true, unknown: true, remainingUsd: null, resetsAt: null, blockedBy: [] })
  t.ok(answer.error instanceof NetworkError, 'the answer carries the cause')
  t.ok(errors.some((e) => e instanceof NetworkError), 'and onError is told')

  const closed = client(t, { baseUrl: `http://127.0.0.1:${port}`, apiKey: 'usk_x', botId: 'bot_x', onError: () => undefined, allowance: { failOpen: false } })
  t.match(await closed.allowance({ userId: 1 }), { allowed: false, unknown: true })

  const { url } = await serve(t)
  const refused = client(t, { baseUrl: url, apiKey: 'usk_not_a_key', botId: 'bot_x', onError: () => undefined })
  const r = await refused.allowance()
  t.match(r, { allowed: true, unknown: true })
  t.ok(r.error instanceof RequestRejectedError && r.error.statusCode === 401, 'a refused key is a RequestRejectedError')
})

t.test('options and environment are validated', async (t) => {
  t.throws(() => new UsageClient({ baseUrl: 'http://x', apiKey: 'k', botId: 'b', allowance: { cacheMs: 60_000 } }), UsageClientConfigError)
  const env = { USAGE_API_URL: 'http://x', USAGE_API_KEY: 'k', BOT_ID: 'b' }
  t.same(usageClientOptionsFromEnv({ ...env, USAGE_CLIENT_ALLOWANCE_CACHE_MS: '500', USAGE_CLIENT_ALLOWANCE_FAIL_OPEN: 'false' }).allowance, { cacheMs: 500, failOpen: false })
  t.throws(() => usageClientOptionsFromEnv({ ...env, USAGE_CLIENT_ALLOWANCE_FAIL_OPEN: 'maybe' }), /USAGE_CLIENT_ALLOWANCE_FAIL_OPEN must be true or false/)
})
