import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { connectDatabase, type Database } from '../../src/db/connect.js'
import { ADMIN_KEY, bearer } from '../helpers/app.js'
import { alertsOf, api, buildBudgetApp, costEvent, createBudget, postEvents, TestClock } from '../helpers/budgets.js'
import { createTestDatabase, resetTables, TEST_DATABASE_URL } from '../helpers/db.js'
import { startWebhookReceiver } from '../helpers/fake-alert-receivers.js'
import { postUsage } from '../helpers/usage.js'
import { waitFor } from '../helpers/wait.js'

const database = await createTestDatabase(t)
const webhook = await startWebhookReceiver()
t.teardown(() => webhook.close())
t.beforeEach(async () => {
  await resetTables(database)
  webhook.received.length = 0
})

const MARCH_20 = '2025-03-20T12:00:00Z'

interface Allowance {
  allowed: boolean
  remainingUsd: number | null
  resetsAt: string | null
  blockedBy: { budgetId: string; name: string; limitUsd?: number; spentUsd?: number; resetsAt: string; userId?: string }[]
}

async function allowance(app: FastifyInstance, query: string, key = ADMIN_KEY): Promise<{ status: number; body: Allowance }> {
  const res = await app.inject({ method: 'GET', url: `/api/budgets/allowance?${query}`, headers: bearer(key) })
  return { status: res.statusCode, body: res.json() as Allowance }
}

async function key(app: FastifyInstance, scopes: string[], botId?: string): Promise<string> {
  const res = await api<{ key: string }>(app, 'POST', '/api/keys', { name: `k ${scopes.join(',')}`, scopes, ...(botId ? { botId } : {}) })
  if (res.status !== 201) throw new Error(`key: ${res.status}`)
  return res.body.key
}

/** Waits until the allowance of `query` says `allowed` (the budget was loaded, the spend counted). */
async function until(app: FastifyInstance, query: string, allowed: boolean, what: string): Promise<Allowance> {
  let last: Allowance | null = null
  await waitFor(async () => {
    last = (await allowance(app, query)).body
    return last.allowed === allowed
  }, what)
  return last as unknown as Allowance
}

t.test('definitions: action and perUser are validated, stored and changed', async (t) => {
  const { app } = await buildBudgetApp(t, database)
  const refused = [
    [{ period: 'day', limitUsd: 1, perUser: { key: 'userId' } }, /body\.perUser needs scope\.botId/],
    [{ scope: { botId: 'bot_x' }, period: 'day', limitUsd: 1, perUser: { key: 'user id!' } }, /body\/perUser\/key|body\.perUser\.key/],
    [{ scope: { botId: 'bot_x' }, period: 'day', limitUsd: 1, perUser: {} }, /perUser/],
    [{ scope: { botId: 'bot_x' }, period: 'day', limitUsd: 1, action: 'stop' }, /action/],
  ] as const
  for (const [body, message] of refused) {
    const res = await api<{ message: string }>(app, 'POST', '/api/budgets', body)
    t.equal(res.status, 400, JSON.stringify(body))
    t.match(res.body.message, message)
  }
  t.same((await api<{ budgets: unknown[] }>(app, 'GET', '/api/budgets')).body.budgets, [], 'a refused budget stores nothing')

  const plain = await createBudget(app, { scope: { botId: 'bot_x' }, period: 'day', limitUsd: 1 })
  t.match(plain, { action: 'alert', perUser: null }, 'defaults: alert, whole scope')
  const b = await createBudget(app, { scope: { botId: 'bot_x' }, period: 'day', limitUsd: 0.5, action: 'block', perUser: { key: 'userId' } })
  t.match(b, { action: 'block', perUser: { key: 'userId' } })
  const unscoped = await api<{ message: string }>(app, 'PATCH', `/api/budgets/${b.id}`, { scope: {} })
  t.equal(unscoped.status, 400, 'a per-user budget cannot lose its bot')
  t.match(unscoped.body.message, /body\.perUser needs scope\.botId/)
  const patched = await api(app, 'PATCH', `/api/budgets/${b.id}`, { perUser: null, action: 'alert' })
  t.match(patched.body, { action: 'alert', perUser: null }, 'null makes it whole-scope again')
  t.match((await api(app, 'GET', `/api/budgets/${b.id}`)).body, { action: 'alert', perUser: null }, 'stored')
})

t.test('a hard budget: ingest goes on, the allowance says no until the period ends', async (t) => {
  const clock = new TestClock(new Date(MARCH_20))
  const { app } = await buildBudgetApp(t, database, {}, clock)
  const b = await createBudget(app, { name: 'bot_x daily cap', scope: { botId: 'bot_x' }, period: 'day', timeZone: 'UTC', limitUsd: 1, action: 'block', thresholds: [100] })
  await createBudget(app, { name: 'alert only', scope: { botId: 'bot_x' }, period: 'day', limitUsd: 0.1 })

  const fresh = await allowance(app, 'botId=bot_x')
  t.equal(fresh.status, 200)
  t.same(fresh.body, { allowed: true, remainingUsd: 1, resetsAt: '2025-03-21T00:00:00.000Z', blockedBy: [] }, 'nothing spent: allowed, the whole limit left')
  t.same((await allowance(app, 'botId=bot_y')).body, { allowed: true, remainingUsd: null, resetsAt: null, blockedBy: [] }, 'no block budget applies to another bot')

  await postEvents(app, [costEvent(0.4, { createdAt: '2025-03-20T10:00:00Z' }), costEvent(0.35, { createdAt: '2025-03-20T11:00:00Z' })])
  await waitFor(async () => (await allowance(app, 'botId=bot_x')).body.remainingUsd === 0.25, 'the spend counted')
  t.equal((await allowance(app, 'botId=bot_x')).body.allowed, true, 'under the limit: allowed (the alert-only budget does not block)')

  const over = await postUsage(app, costEvent(0.3, { createdAt: '2025-03-20T11:30:00Z' }))
  t.equal(over.statusCode, 201, 'the event that crosses the limit is stored: the call happened')
  const blocked = await until(app, 'botId=bot_x', false, 'blocked')
  t.same(blocked, {
    allowed: false,
    remainingUsd: -0.05,
    resetsAt: '2025-03-21T00:00:00.000Z',
    blockedBy: [{ budgetId: b.id, name: 'bot_x daily cap', limitUsd: 1, spentUsd: 1.05, resetsAt: '2025-03-21T00:00:00.000Z' }],
  })
  t.equal((await postUsage(app, costEvent(0.1, { createdAt: '2025-03-20T11:40:00Z' }))).statusCode, 201, 'ingest still accepts events once blocked')
  const status = await api(app, 'GET', `/api/budgets/${b.id}/status`)
  t.match(status.body, { action: 'block', blocked: true, userId: null, spentUsd: 1.15 }, 'the status says it blocks')

  t.equal((await api(app, 'PATCH', `/api/budgets/${b.id}`, { action: 'alert' })).status, 200)
  await until(app, 'botId=bot_x', true, 'an alert-only budget does not block')
  await api(app, 'PATCH', `/api/budgets/${b.id}`, { action: 'block' })
  t.match(await until(app, 'botId=bot_x', false, 'blocking again'), { blockedBy: [{ spentUsd: 1.15 }] }, 'made a block budget again, its spend is read')
  await api(app, 'PATCH', `/api/budgets/${b.id}`, { enabled: false })
  await until(app, 'botId=bot_x', true, 'a disabled budget does not block')
  await api(app, 'PATCH', `/api/budgets/${b.id}`, { enabled: true })
  await until(app, 'botId=bot_x', false, 'enabled again')

  clock.set('2025-03-21T00:00:01Z')
  t.same((await allowance(app, 'botId=bot_x')).body, { allowed: true, remainingUsd: 1, resetsAt: '2025-03-22T00:00:00.000Z', blockedBy: [] }, 'the next day it allows again, at once')
})

t.test('per-user budgets: each user has the limit; status and alerts name the user', async (t) => {
  const clock = new TestClock(new Date(MARCH_20))
  const { app } = await buildBudgetApp(t, database, {}, clock)
  const b = await createBudget(app, {
    name: 'each user 50c a day',
    scope: { botId: 'bot_x' },
    period: 'day',
    timeZone: 'UTC',
    limitUsd: 0.5,
    action: 'block',
    perUser: { key: 'userId' },
    thresholds: [80, 100],
    channels: { webhook: { url: webhook.url } },
  })
  const at = '2025-03-20T10:00:00Z'
  await postEvents(app, [
    costEvent(0.3, { createdAt: at, metadata: { userId: 4242 } }),
    costEvent(0.25, { createdAt: at, metadata: { userId: 4242 } }),
    costEvent(0.1, { createdAt: at, metadata: { userId: 'u_7' } }),
    costEvent(5, { createdAt: at }),
    costEvent(5, { createdAt: at, metadata: { chatId: 1 } }),
  ])
  const blocked = await until(app, 'botId=bot_x&userId=4242', false, 'user 4242 blocked')
  t.same(blocked.blockedBy, [{ budgetId: b.id, name: 'each user 50c a day', limitUsd: 0.5, spentUsd: 0.55, resetsAt: '2025-03-21T00:00:00.000Z', userId: '4242' }], 'a numeric user id is its text')
  t.match((await allowance(app, 'botId=bot_x&userId=u_7')).body, { allowed: true, remainingUsd: 0.4 }, 'another user keeps their own limit')
  t.match((await allowance(app, 'botId=bot_x&userId=nobody')).body, { allowed: true, remainingUsd: 0.5 }, 'a new user has the whole limit')
  t.match((await allowance(app, 'botId=bot_x')).body, { allowed: true, remainingUsd: null }, 'without userId a per-user budget does not apply')

  await waitFor(async () => (await alertsOf(app, b.id)).length === 2, 'the alerts of user 4242')
  const alerts = (await api<{ alerts: { userId: string | null; threshold: number; supersededBy: string | null; deliveries: unknown[] }[] }>(app, 'GET', `/api/alerts?budgetId=${b.id}`)).body.alerts
  t.same(alerts.map((a) => [a.userId, a.threshold]).sort(), [['4242', 100], ['4242', 80]], 'thresholds fire for the user who crossed them')
  await waitFor(() => webhook.received.length === 1, 'the webhook of user 4242')
  t.match(webhook.received[0].json, { userId: '4242', threshold: 100, alsoCrossed: [80], message: /reached 100% for user 4242/ }, 'the message names the user')

  await postEvents(app, [costEvent(0.35, { createdAt: at, metadata: { userId: 'u_7' } })])
  await waitFor(async () => (await alertsOf(app, b.id)).length === 3, 'the 80% alert of u_7')
  await postEvents(app, [costEvent(0.01, { createdAt: at, metadata: { userId: 4242 } })])
  // Another user's crossing after it proves the evaluation after 4242's new spend ran: still no new alert for 4242.
  await postEvents(app, [costEvent(0.1, { createdAt: at, metadata: { userId: 'u_7' } })])
  await waitFor(async () => (await alertsOf(app, b.id)).length === 4, 'the 100% alert of u_7')
  const byUser = (await api<{ alerts: { userId: string | null; threshold: number }[] }>(app, 'GET', `/api/alerts?budgetId=${b.id}`)).body.alerts
  t.same(byUser.map((a) => `${a.userId}:${a.threshold}`).sort(), ['4242:100', '4242:80', 'u_7:100', 'u_7:80'], 'once per user per period')

  const status = await api<Record<string, unknown>>(app, 'GET', `/api/budgets/${b.id}/status`)
  t.match(status.body, { userId: '4242', spentUsd: 0.56, blocked: true }, 'without userId: the top spender')
  t.same(
    (status.body.users as unknown[]).map((u) => u),
    [
      { userId: 'u_7', spentUsd: 0.55, remainingUsd: -0.05, percent: 110, blocked: true },
      { userId: '4242', spentUsd: 0.56, remainingUsd: -0.06, percent: 112, blocked: true },
    ].sort((p, q) => q.spentUsd - p.spentUsd),
    'the users, highest spender first',
  )
  const one = await api<Record<string, unknown>>(app, 'GET', `/api/budgets/${b.id}/status?userId=nobody`)
  t.match(one.body, { userId: 'nobody', spentUsd: 0, blocked: false, thresholds: [{ percent: 80, crossed: false, alertedAt: null }, { percent: 100, crossed: false }] })
  const mine = await api<{ thresholds: { percent: number; alertedAt: string | null }[] }>(app, 'GET', `/api/budgets/${b.id}/status?userId=4242`)
  t.ok(mine.body.thresholds.every((x) => x.alertedAt !== null), "the user's own alerts are shown")
})

t.test('who may ask: the bot\'s own ingest or read key, and admin', async (t) => {
  const { app } = await buildBudgetApp(t, database, {}, new TestClock(new Date(MARCH_20)))
  await createBudget(app, { name: 'everyone cap', period: 'day', limitUsd: 0.2, action: 'block' })
  await createBudget(app, { name: 'bot_x cap', scope: { botId: 'bot_x' }, period: 'day', limitUsd: 10, action: 'block' })
  await postEvents(app, [costEvent(0.3, { botId: 'bot_other', createdAt: '2025-03-20T10:00:00Z' })])
  await until(app, 'botId=bot_x', false, 'the shared cap blocks bot_x too')

  const ingest = await key(app, ['ingest'], 'bot_x')
  const read = await key(app, ['read'], 'bot_x')
  for (const k of [ingest, read]) {
    const own = await allowance(app, '', k)
    t.equal(own.status, 200, 'the bound key asks for its bot without naming it')
    t.equal(own.body.allowed, false)
    t.same(own.body.blockedBy.map((x) => x.name), ['everyone cap'])
    t.notOk('spentUsd' in own.body.blockedBy[0] || 'limitUsd' in own.body.blockedBy[0], "a budget spanning other bots does not show other bots' spend to a bot key")
    t.equal(own.body.remainingUsd, 10, "remainingUsd is that of the bot's own budget")
    t.equal((await allowance(app, 'botId=bot_x', k)).status, 200)
    t.equal((await allowance(app, 'botId=bot_other', k)).status, 403, 'another bot is 403')
  }
  // An event committed while a sync read runs is counted once more until the next sync (by
  // design, towards blocking early): the figure settles at the exact spend.
  await waitFor(async () => (await allowance(app, 'botId=bot_x')).body.blockedBy[0]?.spentUsd === 0.3, 'the synced spend')
  t.match((await allowance(app, 'botId=bot_x')).body.blockedBy[0], { name: 'everyone cap', spentUsd: 0.3, limitUsd: 0.2 }, 'admin sees the figures')
  const none = await allowance(app, '')
  t.equal(none.status, 400)
  t.match(none.body, { message: 'querystring.botId is required for a key bound to no bot' })
  const metrics = await key(app, ['metrics'])
  t.equal((await allowance(app, 'botId=bot_x', metrics)).status, 403, 'a key without ingest or read is refused')
  t.equal((await app.inject({ method: 'GET', url: '/api/budgets/allowance?botId=bot_x' })).statusCode, 401)
  t.equal((await allowance(app, 'botId=bot_x&userId=')).status, 400, 'an empty userId is refused')
})

t.test('provider and model scoped block budgets apply when the call names them', async (t) => {
  const { app } = await buildBudgetApp(t, database, {}, new TestClock(new Date(MARCH_20)))
  await createBudget(app, { name: 'acme cap', scope: { botId: 'bot_x', model: 'acme-large' }, period: 'day', limitUsd: 0.1, action: 'block' })
  await postEvents(app, [costEvent(0.2, { createdAt: '2025-03-20T10:00:00Z' })])
  await until(app, 'botId=bot_x&model=acme-large', false, 'the model cap')
  t.equal((await allowance(app, 'botId=bot_x&model=other')).body.allowed, true, 'another model is allowed')
  t.equal((await allowance(app, 'botId=bot_x')).body.allowed, true, 'a call naming no model is not checked against model budgets')
})

t.test('past BUDGET_MAX_TRACKED_USERS an untracked user counts as the highest untracked spend', async (t) => {
  const { app } = await buildBudgetApp(t, database, { BUDGET_MAX_TRACKED_USERS: '2' }, new TestClock(new Date(MARCH_20)))
  await createBudget(app, { scope: { botId: 'bot_x' }, period: 'day', limitUsd: 1, action: 'block', perUser: { key: 'userId' } })
  const at = '2025-03-20T10:00:00Z'
  await postEvents(app, [
    costEvent(0.9, { createdAt: at, metadata: { userId: 'a' } }),
    costEvent(0.8, { createdAt: at, metadata: { userId: 'b' } }),
    costEvent(0.3, { createdAt: at, metadata: { userId: 'c' } }),
  ])
  await waitFor(async () => (await allowance(app, 'botId=bot_x&userId=a')).body.remainingUsd === 0.1, 'a counted')
  t.equal((await allowance(app, 'botId=bot_x&userId=b')).body.remainingUsd, 0.2, 'tracked users are exact')
  // Evicting a user reads the exact top spenders again: c, the highest untracked, bounds the untracked.
  await waitFor(async () => (await allowance(app, 'botId=bot_x&userId=c')).body.remainingUsd === 0.7, 'the read after the eviction')
  t.match((await allowance(app, 'botId=bot_x&userId=someone_else')).body, { allowed: true, remainingUsd: 0.7 }, 'any untracked user counts as the highest untracked spend')
  // A fourth user pushes the lowest tracked one out; the bound stays an upper bound for everyone.
  await postEvents(app, [costEvent(0.95, { createdAt: at, metadata: { userId: 'd' } })])
  await waitFor(async () => (await allowance(app, 'botId=bot_x&userId=d')).body.remainingUsd !== 1, 'd counted')
  for (const [user, spent] of [['a', 0.9], ['b', 0.8], ['c', 0.3], ['d', 0.95]] as const) {
    const r = (await allowance(app, `botId=bot_x&userId=${user}`)).body
    t.ok(r.remainingUsd !== null && r.remainingUsd <= 1 - spent + 1e-9, `${user} is counted at least at what they spent`)
  }
})

/** A second instance's own connection pool on the same schema; the embedded engine has one connection to share. */
async function secondConnection(): Promise<Database> {
  if (TEST_DATABASE_URL === null) return database
  const other = await connectDatabase({ databaseUrl: TEST_DATABASE_URL, dataDir: 'memory://', schema: database.schema })
  t.teardown(() => other.close())
  return other
}

t.test("two instances: the other instance's answer is right within BUDGET_ALLOWANCE_SYNC_MS", async (t) => {
  const clock = new TestClock(new Date(MARCH_20))
  const env = { BUDGET_ALLOWANCE_SYNC_MS: '100' }
  const a = await buildBudgetApp(t, database, env, clock)
  await createBudget(a.app, { scope: { botId: 'bot_x' }, period: 'day', limitUsd: 1, action: 'block', perUser: { key: 'userId' } })
  await createBudget(a.app, { name: 'whole', scope: { botId: 'bot_x' }, period: 'day', limitUsd: 3, action: 'block' })
  const b = await buildBudgetApp(t, await secondConnection(), env, clock)
  t.same((await allowance(b.app, 'botId=bot_x&userId=u1')).body.remainingUsd, 1, 'the second instance knows the budgets')

  await postEvents(a.app, [costEvent(1.2, { createdAt: '2025-03-20T10:00:00Z', metadata: { userId: 'u1' } })])
  t.equal((await until(a.app, 'botId=bot_x&userId=u1', false, 'blocked where ingested')).blockedBy.length, 1)
  const seen = await until(b.app, 'botId=bot_x&userId=u1', false, 'blocked on the other instance after its sync')
  t.match(seen.blockedBy, [{ userId: 'u1', spentUsd: 1.2 }])
  // A sync reads whole-bot and per-user spend in two concurrent statements, each with its own
  // snapshot: one of them may see the commit a sync later than the other.
  await waitFor(async () => (await allowance(b.app, 'botId=bot_x')).body.remainingUsd === 1.8, 'the whole-bot spend synced too', 2000)
  t.equal((await allowance(b.app, 'botId=bot_x')).body.remainingUsd, 1.8, "the whole-bot budget counts the other instance's usage too")

  const started = await buildBudgetApp(t, await secondConnection(), env, clock)
  t.match((await allowance(started.app, 'botId=bot_x&userId=u1')).body, { allowed: false, blockedBy: [{ spentUsd: 1.2 }] }, 'an instance that starts now knows the spend before it answers')
})
