import { sql } from 'drizzle-orm'
import t from 'tap'
import { recordAlerts, type AlertCandidate } from '../../src/budgets/alert-store.js'
import { createTestDatabase, resetTables } from '../helpers/db.js'
import { api, buildBudgetApp, costEvent, createBudget, postEvents, TestClock } from '../helpers/budgets.js'

const database = await createTestDatabase(t)
const clock = new TestClock(new Date('2025-03-20T12:00:00Z'))
const TELEGRAM_TOKEN = '987654:Dedicated_Budget_Bot_Token_xyz'
const WEBHOOK_SECRET = 'a-webhook-secret-nobody-may-see'
const { app, rawLog } = await buildBudgetApp(
  t,
  database,
  { LOG_LEVEL: 'trace', SMTP_URL: 'smtp://127.0.0.1:1', ALERT_EMAIL_FROM: 'alerts@example.com', BUDGET_TIMEZONE: 'Europe/Berlin' },
  clock,
)
t.beforeEach(() => resetTables(database))

t.test('the README example: bot X may spend $50 a month, email and webhook at 80%', async (t) => {
  const res = await api<Record<string, unknown>>(app, 'POST', '/api/budgets', {
    scope: { botId: 'bot_x' },
    period: 'month',
    limitUsd: 50,
    thresholds: [80],
    channels: { email: { to: ['ops@example.com'] }, webhook: { url: 'https://example.com/hooks/budget' } },
  })
  t.equal(res.status, 201)
  t.match(res.body, {
    name: 'Bot bot_x, monthly',
    scope: { botId: 'bot_x', provider: null, model: null },
    period: 'month',
    timeZone: 'Europe/Berlin',
    limitUsd: 50,
    thresholds: [80],
    notifyProjected: true,
    enabled: true,
    channels: { email: { to: ['ops@example.com'] }, webhook: { url: 'https://example.com/hooks/budget', secret: /^whsec_[A-Za-z0-9_-]{43}$/ } },
  })
  const id = String(res.body.id)
  const secret = (res.body.channels as { webhook: { secret: string } }).webhook.secret

  const one = await api(app, 'GET', `/api/budgets/${id}`)
  t.equal(one.status, 200)
  t.same((one.body.channels as Record<string, unknown>).webhook, { url: 'https://example.com/hooks/budget' }, 'the secret is shown once')
  const list = await api<{ budgets: Array<{ id: string }> }>(app, 'GET', '/api/budgets')
  t.same(list.body.budgets.map((b) => b.id), [id])
  t.notOk(JSON.stringify(list.body).includes(secret))
})

t.test('defaults, PATCH semantics and delete', async (t) => {
  const created = await createBudget(app, {
    period: 'week',
    limitUsd: 12.5,
    timeZone: 'america/new_york',
    channels: { webhook: { url: 'http://127.0.0.1:9/hook', secret: WEBHOOK_SECRET }, telegram: { chatId: -1001234567890, botToken: TELEGRAM_TOKEN } },
  })
  t.match(created, {
    name: 'All usage, weekly',
    timeZone: 'America/New_York',
    thresholds: [50, 80, 100],
    scope: { botId: null, provider: null, model: null },
    channels: { webhook: { secret: WEBHOOK_SECRET }, telegram: { chatId: '-1001234567890', dedicatedBotToken: true } },
  })

  const patched = await api<Record<string, unknown>>(app, 'PATCH', `/api/budgets/${created.id}`, {
    limitUsd: 20,
    thresholds: [90, 25],
    scope: { provider: 'openai', model: 'gpt-4o' },
    channels: { webhook: { url: 'http://127.0.0.1:9/other' }, telegram: { chatId: '@alerts_channel' } },
  })
  t.equal(patched.status, 200)
  t.match(patched.body, {
    limitUsd: 20,
    thresholds: [25, 90],
    scope: { botId: null, provider: 'openai', model: 'gpt-4o' },
    channels: { webhook: { url: 'http://127.0.0.1:9/other' }, telegram: { chatId: '@alerts_channel', dedicatedBotToken: true } },
  })
  t.notOk('secret' in ((patched.body.channels as Record<string, Record<string, unknown>>).webhook), 'a kept secret is not shown again')

  const removed = await api<Record<string, unknown>>(app, 'PATCH', `/api/budgets/${created.id}`, { channels: { telegram: null } })
  t.same(Object.keys(removed.body.channels as object), ['webhook'])

  t.equal((await api(app, 'DELETE', `/api/budgets/${created.id}`)).status, 200)
  const gone = await api(app, 'GET', `/api/budgets/${created.id}`)
  t.equal(gone.status, 404)
  t.equal(gone.body.code, 'NOT_FOUND')
  t.equal((await api(app, 'DELETE', `/api/budgets/${created.id}`)).status, 404)
  t.equal((await api(app, 'PATCH', `/api/budgets/${created.id}`, { limitUsd: 1 })).status, 404)
})

t.test('bad budget definitions get 400 naming the field', async (t) => {
  const valid = { period: 'month', limitUsd: 50 }
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ limitUsd: 50 }, /^body\.period is required$/],
    [{ period: 'year', limitUsd: 50 }, /^body\.period must be one of day, week, month$/],
    [{ period: 'month' }, /^body\.limitUsd is required$/],
    [{ ...valid, limitUsd: 0 }, /^body\.limitUsd must be > 0$/],
    [{ ...valid, limitUsd: -5 }, /^body\.limitUsd must be > 0$/],
    [{ ...valid, limitUsd: '50' }, /^body\.limitUsd must be number$/],
    [{ ...valid, limitUsd: 0.0000000000001 }, /^body\.limitUsd has more than 12 decimal places$/],
    [{ ...valid, thresholds: [50, 0] }, /^body\.thresholds\[1\] must be >= 1$/],
    [{ ...valid, thresholds: [50, 80.5] }, /^body\.thresholds\[1\] must be integer$/],
    [{ ...valid, thresholds: [80, 50, 80] }, /^body\.thresholds\[2\] repeats the threshold 80$/],
    [{ ...valid, timeZone: 'Mars/Olympus_Mons' }, /^body\.timeZone must be an IANA time zone/],
    [{ ...valid, timeZone: '+05:30' }, /^body\.timeZone must be an IANA time zone/],
    [{ ...valid, scope: { bot: 'x' } }, /^body\.scope has unknown field 'bot'$/],
    [{ ...valid, scope: { botId: 'has space' } }, /^body\.scope\.botId has invalid characters/],
    [{ ...valid, channels: { webhook: { url: 'not a url' } } }, /^body\.channels\.webhook\.url must be a valid uri$/],
    [{ ...valid, channels: { webhook: { url: 'ftp://example.com/x' } } }, /^body\.channels\.webhook\.url must be an http or https URL$/],
    [{ ...valid, channels: { webhook: { url: 'https://example.com', secret: 'short' } } }, /^body\.channels\.webhook\.secret must be at least 16 characters$/],
    [{ ...valid, channels: { email: { to: [] } } }, /^body\.channels\.email\.to must have at least 1 items$/],
    [{ ...valid, channels: { email: { to: ['not-an-address'] } } }, /^body\.channels\.email\.to\[0\] must be a valid email$/],
    [{ ...valid, channels: { telegram: { chatId: 'general' } } }, /^body\.channels\.telegram\.chatId must be a numeric chat id or @channelusername$/],
    [{ ...valid, channels: { telegram: { chatId: 42 } } }, /^body\.channels\.telegram\.botToken is required: the server has no ALERT_TELEGRAM_BOT_TOKEN$/],
    [{ ...valid, channels: { telegram: { chatId: 42, botToken: 'nope' } } }, /^body\.channels\.telegram\.botToken must be a Bot API token/],
    [{ ...valid, channels: { sms: { to: '+1' } } }, /^body\.channels has unknown field 'sms'$/],
    [{ ...valid, extra: true }, /^body has unknown field 'extra'$/],
  ]
  for (const [body, message] of cases) {
    const res = await api<{ code: string; message: string }>(app, 'POST', '/api/budgets', body)
    t.equal(res.status, 400, JSON.stringify(body))
    t.equal(res.body.code, 'VALIDATION_ERROR')
    t.match(res.body.message, message, JSON.stringify(body))
  }
  const b = await createBudget(app, valid)
  const patch = await api<{ message: string }>(app, 'PATCH', `/api/budgets/${b.id}`, { thresholds: [10, 10] })
  t.equal(patch.status, 400)
  t.equal(patch.body.message, 'body.thresholds[1] repeats the threshold 10')
  t.equal((await api(app, 'GET', '/api/budgets')).body.budgets instanceof Array, true)
  t.equal(((await api(app, 'GET', '/api/budgets')).body.budgets as unknown[]).length, 1, 'nothing stored by the bad requests')
})

t.test('email needs SMTP_URL on the server', async (t) => {
  const bare = await buildBudgetApp(t, database, {})
  const res = await api<{ message: string }>(bare.app, 'POST', '/api/budgets', { period: 'day', limitUsd: 1, channels: { email: { to: ['a@example.com'] } } })
  t.equal(res.status, 400)
  t.equal(res.body.message, 'body.channels.email cannot be used: the server has no SMTP_URL configured')
})

t.test('status: spent, percent, projection and crossed thresholds of the current period', async (t) => {
  const b = await createBudget(app, { scope: { botId: 'bot_x' }, period: 'month', timeZone: 'UTC', limitUsd: 50, thresholds: [10, 50, 80] })
  await postEvents(app, [
    costEvent(3.25, { createdAt: '2025-03-02T10:00:00Z' }),
    costEvent(4.75, { createdAt: '2025-03-20T11:59:00Z' }),
    costEvent(100, { createdAt: '2025-02-28T23:59:59Z' }), // last period
    costEvent(100, { botId: 'bot_other', createdAt: '2025-03-05T00:00:00Z' }), // other bot
  ])
  const status = await api<Record<string, unknown>>(app, 'GET', `/api/budgets/${b.id}/status`)
  t.equal(status.status, 200)
  // 19 of 31 days elapsed at 2025-03-20T12:00Z: 8 / 19.5 * 31 = 12.717948...
  t.match(status.body, {
    budgetId: b.id,
    period: 'month',
    timeZone: 'UTC',
    periodStart: '2025-03-01T00:00:00.000Z',
    periodEnd: '2025-04-01T00:00:00.000Z',
    limitUsd: 50,
    spentUsd: 8,
    remainingUsd: 42,
    percent: 16,
    projectedOverrun: false,
    evaluatedAt: '2025-03-20T12:00:00.000Z',
    thresholds: [
      { percent: 10, amountUsd: 5, crossed: true },
      { percent: 50, amountUsd: 25, crossed: false, alertedAt: null },
      { percent: 80, amountUsd: 40, crossed: false, alertedAt: null },
    ],
  })
  t.equal(status.body.projectedUsd, 12.717948717948)
  t.equal((await api(app, 'GET', '/api/budgets/nope/status')).status, 404)
})

t.test('secrets never appear in responses after creation, nor in logs', async (t) => {
  const b = await createBudget(app, {
    period: 'day',
    limitUsd: 1,
    channels: { webhook: { url: 'http://127.0.0.1:9/hook', secret: WEBHOOK_SECRET }, telegram: { chatId: 1, botToken: TELEGRAM_TOKEN } },
  })
  await api(app, 'PATCH', `/api/budgets/${b.id}`, { name: 'renamed' })
  const bodies = [
    await api(app, 'GET', `/api/budgets/${b.id}`),
    await api(app, 'GET', '/api/budgets'),
    await api(app, 'PATCH', `/api/budgets/${b.id}`, { limitUsd: 2 }),
    await api(app, 'GET', '/api/alerts'),
    await api(app, 'GET', `/api/budgets/${b.id}/status`),
  ].map((r) => JSON.stringify(r.body))
  for (const body of bodies) {
    t.notOk(body.includes(WEBHOOK_SECRET), 'no webhook secret')
    t.notOk(body.includes(TELEGRAM_TOKEN), 'no bot token')
  }
  t.notOk(rawLog().includes(WEBHOOK_SECRET), 'no webhook secret in the log')
  t.notOk(rawLog().includes(TELEGRAM_TOKEN), 'no bot token in the log')
})

t.test('budget routes need the admin scope', async (t) => {
  for (const [method, url] of [
    ['GET', '/api/budgets'],
    ['POST', '/api/budgets'],
    ['GET', '/api/alerts'],
    ['GET', '/api/budgets/x/status'],
  ] as const) {
    const res = await app.inject({ method, url, payload: method === 'POST' ? { period: 'day', limitUsd: 1 } : undefined })
    t.equal(res.statusCode, 401, `${method} ${url}`)
  }
})

t.test('the alert history filters by budget, since and before, newest first', async (t) => {
  const [one, two] = [await createBudget(app, { period: 'month', limitUsd: 10 }), await createBudget(app, { period: 'month', limitUsd: 10 })]
  const window = { start: new Date('2025-03-01T00:00:00Z'), end: new Date('2025-04-01T00:00:00Z') }
  const alert = (budgetId: string, threshold: number): AlertCandidate => ({
    budgetId,
    window,
    kind: 'threshold',
    threshold,
    limit: 10_000_000_000_000n,
    spent: 9_000_000_000_000n,
    projected: null,
    channels: [],
  })
  await recordAlerts(database, [alert(one.id, 50), alert(one.id, 80), alert(two.id, 50)])
  // One creation time each (the insert gave them all the same one).
  for (const [budgetId, threshold, minute] of [[one.id, 50, 0], [one.id, 80, 1], [two.id, 50, 2]] as const) {
    const createdAt = new Date(Date.UTC(2025, 2, 20, 12, minute)).toISOString()
    await database.db.execute(sql`UPDATE budget_alerts SET created_at = ${createdAt} WHERE budget_id = ${budgetId} AND threshold = ${threshold}`)
  }
  const list = async (query: string) =>
    (await api<{ alerts: Array<{ budgetId: string; threshold: number; createdAt: string }> }>(app, 'GET', `/api/alerts?${query}`)).body.alerts.map(
      (a) => `${a.budgetId === one.id ? 'one' : 'two'}:${a.threshold}@${a.createdAt.slice(11, 16)}`,
    )
  t.same(await list(''), ['two:50@12:02', 'one:80@12:01', 'one:50@12:00'])
  t.same(await list(`budgetId=${one.id}`), ['one:80@12:01', 'one:50@12:00'])
  t.same(await list('since=2025-03-20T12:01:00Z'), ['two:50@12:02', 'one:80@12:01'], 'since is inclusive')
  t.same(await list('before=2025-03-20T12:01:00Z'), ['one:50@12:00'], 'before is exclusive')
  t.same(await list('limit=1'), ['two:50@12:02'])
})
