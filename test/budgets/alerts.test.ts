import { createHmac, timingSafeEqual } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { createTestDatabase, resetTables } from '../helpers/db.js'
import { postUsage } from '../helpers/usage.js'
import {
  alertsOf,
  api,
  buildBudgetApp,
  costEvent,
  createBudget,
  postEvents,
  TestClock,
  type AlertView,
} from '../helpers/budgets.js'
import { FakeTelegram } from '../helpers/fake-telegram.js'
import {
  startSmtpServer,
  startWebhookReceiver,
  type ReceivedRequest,
} from '../helpers/fake-alert-receivers.js'
import { waitFor } from '../helpers/wait.js'

const database = await createTestDatabase(t)
const webhook = await startWebhookReceiver()
t.teardown(() => webhook.close())
t.beforeEach(async () => {
  await resetTables(database)
  webhook.received.length = 0
})

/** What a receiver does with X-Signature: HMAC-SHA256 over the raw body, compared in constant time. */
function verifySignature(r: ReceivedRequest, secret: string): boolean {
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(r.rawBody).digest('hex')}`)
  const given = Buffer.from(String(r.headers['x-signature']))
  return given.length === expected.length && timingSafeEqual(given, expected)
}

const MARCH_20 = '2025-03-20T12:00:00Z'

/**
 * A budget whose only threshold the next `usd` of spend crosses: once its alert exists, an
 * evaluation that saw that spend has run for every budget the same commit touched.
 */
async function sentinel(app: Parameters<typeof createBudget>[0], spentSoFar: number, scope: Record<string, string> = { botId: 'bot_x' }) {
  const b = await createBudget(app, { name: 'sentinel', scope, period: 'month', timeZone: 'UTC', limitUsd: spentSoFar + 0.5, thresholds: [100], notifyProjected: false })
  return {
    crossed: () => waitFor(async () => (await alertsOf(app, b.id)).length === 1, 'the sentinel alert'),
  }
}

t.test('one large event crossing 50, 80 and 100% records each once and delivers the highest', async (t) => {
  const clock = new TestClock(new Date(MARCH_20))
  const { app } = await buildBudgetApp(t, database, {}, clock)
  const b = await createBudget(app, { scope: { botId: 'bot_x' }, period: 'month', limitUsd: 10, channels: { webhook: { url: webhook.url } } })
  const secret = b.channels.webhook?.secret ?? ''

  await postEvents(app, [costEvent(12, { createdAt: '2025-03-20T10:00:00Z' })])
  await waitFor(() => webhook.received.length === 1, 'the webhook')
  const [hook] = webhook.received
  t.ok(verifySignature(hook, secret), 'X-Signature verifies with the secret shown at creation')
  t.notOk(verifySignature({ ...hook, rawBody: hook.rawBody.replace('"spentUsd":12', '"spentUsd":1') }, secret), 'a changed body does not verify')
  t.match(hook.headers['x-timestamp'], /^\d{10}$/)
  t.match(hook.json, {
    type: 'budget.threshold_reached',
    threshold: 100,
    alsoCrossed: [50, 80],
    spentUsd: 12,
    limitUsd: 10,
    percent: 120,
    periodStart: '2025-03-01T00:00:00.000Z',
    periodEnd: '2025-04-01T00:00:00.000Z',
    budget: { id: b.id, scope: { botId: 'bot_x', provider: null, model: null }, period: 'month', timeZone: 'UTC' },
    attempt: 1,
  })
  t.equal(hook.headers['x-alert-id'], hook.json.id)

  await waitFor(async () => (await alertsOf(app, b.id)).some((a) => a.deliveries[0]?.status === 'delivered'), 'the delivery to be recorded')
  const alerts = await alertsOf(app, b.id)
  const byThreshold = new Map(alerts.map((a) => [a.threshold, a]))
  t.same([...byThreshold.keys()].sort((x, y) => x - y), [50, 80, 100])
  const top = byThreshold.get(100) as AlertView
  t.match(top, { kind: 'threshold', spentUsd: 12, limitUsd: 10, supersededBy: null, deliveries: [{ channel: 'webhook', status: 'delivered', attempts: 1, lastError: null }] })
  t.equal(top.id, hook.json.id)
  for (const lower of [50, 80]) t.match(byThreshold.get(lower), { supersededBy: top.id, deliveries: [] })

  // More spend in the same period fires nothing again.
  const s = await sentinel(app, 12)
  await postEvents(app, [costEvent(1, { createdAt: '2025-03-20T11:00:00Z' })])
  await s.crossed()
  t.equal((await alertsOf(app, b.id)).length, 3)
  t.equal(webhook.received.length, 1)

  const status = await api<{ thresholds: Array<{ percent: number; crossed: boolean; alertedAt: string | null }> }>(app, 'GET', `/api/budgets/${b.id}/status`)
  t.ok(status.body.thresholds.every((x) => x.crossed && x.alertedAt !== null), 'status lists every threshold as crossed and alerted')
})

t.test('many small concurrent events cross each threshold exactly once', async (t) => {
  const { app } = await buildBudgetApp(t, database, { BUDGET_DEBOUNCE_MS: '0' }, new TestClock(new Date(MARCH_20)))
  const b = await createBudget(app, { period: 'month', limitUsd: 10, thresholds: [25, 50, 80, 100], channels: { webhook: { url: webhook.url } } })
  const responses = await Promise.all(
    Array.from({ length: 200 }, (_, i) => postUsage(app, costEvent(0.05, { id: `e${i}`, createdAt: '2025-03-20T11:00:00Z' }))),
  )
  t.ok(responses.every((r) => r.statusCode === 201), 'all 200 stored')
  await waitFor(async () => (await alertsOf(app, b.id)).some((a) => a.threshold === 100), 'the 100% alert')
  await waitFor(async () => (await alertsOf(app, b.id)).every((a) => a.deliveries.every((d) => d.status === 'delivered')), 'every delivery')
  const alerts = await alertsOf(app, b.id)
  t.same(alerts.map((a) => a.threshold).sort((x, y) => x - y), [25, 50, 80, 100], 'one alert per threshold')
  const delivered = alerts.filter((a) => a.deliveries.length > 0).map((a) => a.id).sort()
  t.same(webhook.received.map((r) => String(r.json.id)).sort(), delivered, 'one webhook call per delivered alert, none twice')
  const status = await api(app, 'GET', `/api/budgets/${b.id}/status`)
  t.equal(status.body.spentUsd, 10)
})

t.test('a new period resets spend and re-arms the thresholds', async (t) => {
  const clock = new TestClock(new Date('2025-03-31T23:00:00Z'))
  const { app } = await buildBudgetApp(t, database, {}, clock)
  const b = await createBudget(app, { period: 'month', timeZone: 'UTC', limitUsd: 10, thresholds: [50], notifyProjected: false })
  await postEvents(app, [costEvent(6, { createdAt: '2025-03-31T22:00:00Z' })])
  await waitFor(async () => (await alertsOf(app, b.id)).length === 1, 'the March alert')

  clock.set('2025-04-01T01:00:00Z')
  const before = await api(app, 'GET', `/api/budgets/${b.id}/status`)
  t.match(before.body, { periodStart: '2025-04-01T00:00:00.000Z', spentUsd: 0, percent: 0 })
  await postEvents(app, [costEvent(4, { createdAt: '2025-04-01T00:10:00Z' })])
  const s = await sentinel(app, 4)
  await postEvents(app, [costEvent(1, { createdAt: '2025-04-01T00:20:00Z' })])
  await waitFor(async () => (await alertsOf(app, b.id)).length === 2, 'the April alert')
  await s.crossed()
  const alerts = await alertsOf(app, b.id)
  t.same(alerts.map((a) => [a.periodStart, a.threshold, a.spentUsd]), [
    ['2025-04-01T00:00:00.000Z', 50, 5],
    ['2025-03-01T00:00:00.000Z', 50, 6],
  ])
})

t.test('time zone edges: a Kolkata day starts at 18:30 UTC and partial hours come from raw events', async (t) => {
  const { app } = await buildBudgetApp(t, database, {}, new TestClock(new Date(MARCH_20)))
  const kolkata = await createBudget(app, { period: 'day', timeZone: 'Asia/Kolkata', limitUsd: 10, thresholds: [100], notifyProjected: false })
  const utc = await createBudget(app, { period: 'day', timeZone: 'UTC', limitUsd: 100, thresholds: [100], notifyProjected: false })
  await postEvents(app, [
    costEvent(4, { createdAt: '2025-03-19T18:29:59.999Z' }), // 23:59:59.999 on the 19th in Kolkata: the day before
    costEvent(5, { createdAt: '2025-03-19T18:30:00Z' }), // 00:00 on the 20th: same UTC hour as the one above
    costEvent(1.5, { createdAt: '2025-03-19T18:45:00Z' }),
    costEvent(2, { createdAt: '2025-03-20T09:00:00Z' }),
    costEvent(1.25, { createdAt: '2025-03-20T18:15:00Z' }), // 23:45 in Kolkata, the last partial hour
    costEvent(7, { createdAt: '2025-03-20T18:30:00Z' }), // the 21st in Kolkata
  ])
  const k = await api(app, 'GET', `/api/budgets/${kolkata.id}/status`)
  t.match(k.body, { periodStart: '2025-03-19T18:30:00.000Z', periodEnd: '2025-03-20T18:30:00.000Z', spentUsd: 9.75 })
  const u = await api(app, 'GET', `/api/budgets/${utc.id}/status`)
  t.match(u.body, { periodStart: '2025-03-20T00:00:00.000Z', spentUsd: 10.25 })

  await postEvents(app, [costEvent(0.25, { createdAt: '2025-03-20T18:29:59Z' })])
  await waitFor(async () => (await alertsOf(app, kolkata.id)).length === 1, 'the Kolkata alert')
  t.match((await alertsOf(app, kolkata.id))[0], { threshold: 100, spentUsd: 10, periodStart: '2025-03-19T18:30:00.000Z' })
  t.equal((await alertsOf(app, utc.id)).length, 0)
})

t.test('a projected overrun fires once per period, from the timer', async (t) => {
  const clock = new TestClock(new Date('2025-03-02T00:00:00Z'))
  const { app } = await buildBudgetApp(t, database, { BUDGET_EVAL_INTERVAL_MS: '20' }, clock)
  const b = await createBudget(app, { period: 'month', timeZone: 'UTC', limitUsd: 100, thresholds: [100], channels: { webhook: { url: webhook.url } } })
  const s = await sentinel(app, 20)
  await postEvents(app, [costEvent(20, { createdAt: '2025-03-01T12:00:00Z' })])
  await postEvents(app, [costEvent(1, { createdAt: '2025-03-01T13:00:00Z' })])
  await s.crossed()
  // $21 after 1 of 31 days projects $651, but a rate over 3% of the month is noise (BUDGET_PROJECTION_MIN_ELAPSED_PERCENT=10).
  t.equal((await alertsOf(app, b.id)).length, 0, 'no projection this early in the period')
  const early = await api(app, 'GET', `/api/budgets/${b.id}/status`)
  t.match(early.body, { projectedUsd: 651, projectedOverrun: true, projectedAlertedAt: null })

  // No new events: only the timer can notice. 4 days in: 21 / 4 * 31 = 162.75.
  clock.set('2025-03-05T00:00:00Z')
  await waitFor(async () => (await alertsOf(app, b.id)).length === 1, 'the projected alert')
  const [alert] = await alertsOf(app, b.id)
  t.match(alert, { kind: 'projected', threshold: 100, spentUsd: 21, projectedUsd: 162.75, limitUsd: 100 })
  await waitFor(() => webhook.received.length === 1, 'the projection webhook')
  t.match(webhook.received[0].json, { type: 'budget.projected_overrun', projectedUsd: 162.75, spentUsd: 21 })

  clock.set('2025-03-06T00:00:00Z')
  const s2 = await sentinel(app, 22)
  await postEvents(app, [costEvent(1.5, { createdAt: '2025-03-05T12:00:00Z' })])
  await s2.crossed()
  t.equal((await alertsOf(app, b.id)).length, 1, 'still one projected alert this period')
  const status = await api(app, 'GET', `/api/budgets/${b.id}/status`)
  t.match(status.body, { projectedOverrun: true, projectedAlertedAt: /^2\d{3}-/ })
})

t.test('a webhook answering 500 is retried with backoff, each attempt signed and recorded', async (t) => {
  const { app } = await buildBudgetApp(t, database, {}, new TestClock(new Date(MARCH_20)))
  const b = await createBudget(app, { period: 'month', limitUsd: 10, thresholds: [50], channels: { webhook: { url: webhook.url, secret: 'the-shared-secret-0123456789' } } })
  webhook.failNext(500, 500)
  await postEvents(app, [costEvent(6, { createdAt: '2025-03-20T10:00:00Z' })])
  await waitFor(() => webhook.received.length === 3, 'three attempts')
  t.ok(webhook.received.every((r) => verifySignature(r, 'the-shared-secret-0123456789')), 'every attempt is signed')
  t.same(webhook.received.map((r) => r.json.attempt), [1, 2, 3])
  t.equal(new Set(webhook.received.map((r) => r.headers['x-alert-id'])).size, 1, 'same alert id on every attempt')
  await waitFor(async () => (await alertsOf(app, b.id))[0]?.deliveries[0]?.status === 'delivered', 'delivered')
  t.match((await alertsOf(app, b.id))[0].deliveries, [{ channel: 'webhook', status: 'delivered', attempts: 3, lastError: null }])
})

t.test('email through a real SMTP server and Telegram through the Bot API', async (t) => {
  const smtp = await startSmtpServer()
  t.teardown(() => smtp.close())
  const telegram = await FakeTelegram.start({ tokens: ['111:DefaultAlertBotToken_abc', '222:DedicatedToken_of_a_bot'] })
  t.teardown(() => telegram.close())
  const { app } = await buildBudgetApp(
    t,
    database,
    {
      SMTP_URL: smtp.url,
      ALERT_EMAIL_FROM: 'Budget alerts <alerts@example.com>',
      ALERT_TELEGRAM_BOT_TOKEN: '111:DefaultAlertBotToken_abc',
      TELEGRAM_API_ROOT: telegram.apiRoot,
    },
    new TestClock(new Date(MARCH_20)),
  )
  await createBudget(app, {
    name: 'Bot X monthly',
    scope: { botId: 'bot_x' },
    period: 'month',
    limitUsd: 50,
    thresholds: [80],
    channels: { email: { to: ['ops@example.com', 'cfo@example.com'] }, telegram: { chatId: -100123 } },
  })
  await createBudget(app, { name: 'Model budget', scope: { model: 'acme-large' }, period: 'month', limitUsd: 50, thresholds: [80], channels: { telegram: { chatId: '@acme_alerts', botToken: '222:DedicatedToken_of_a_bot' } } })
  await postEvents(app, [costEvent(41, { createdAt: '2025-03-20T10:00:00Z' })])

  await waitFor(() => smtp.mails.length === 1, 'the email')
  const [mail] = smtp.mails
  t.equal(mail.from, 'alerts@example.com')
  t.same(mail.to, ['ops@example.com', 'cfo@example.com'])
  t.equal(mail.subject, 'Budget "Bot X monthly" reached 80%: $41.00 of $50.00 monthly')
  t.match(mail.raw, /Scope: bot bot_x/)

  await waitFor(() => telegram.sent.length === 2, 'both Telegram messages')
  const byToken = new Map(telegram.sent.map((m) => [m.token, m]))
  t.match(byToken.get('111:DefaultAlertBotToken_abc'), { chatId: -100123, text: /^Budget "Bot X monthly" reached 80%/ })
  t.match(byToken.get('222:DedicatedToken_of_a_bot'), { chatId: '@acme_alerts', text: /^Budget "Model budget" reached 80%/ })
})

t.test('a failing channel does not block the others', async (t) => {
  const closed = createServer()
  closed.listen(0, '127.0.0.1')
  await once(closed, 'listening')
  const deadPort = (closed.address() as AddressInfo).port
  closed.close()
  const telegram = await FakeTelegram.start({ tokens: ['333:SecretTokenThatMustNotLeak'] })
  t.teardown(() => telegram.close())
  const { app, rawLog } = await buildBudgetApp(
    t,
    database,
    { SMTP_URL: `smtp://127.0.0.1:${deadPort}`, ALERT_EMAIL_FROM: 'alerts@example.com', TELEGRAM_API_ROOT: telegram.apiRoot, ALERT_MAX_ATTEMPTS: '2' },
    new TestClock(new Date(MARCH_20)),
  )
  const b = await createBudget(app, {
    period: 'month',
    limitUsd: 10,
    thresholds: [50],
    channels: { email: { to: ['ops@example.com'] }, webhook: { url: webhook.url }, telegram: { chatId: 5, botToken: '333:SecretTokenThatMustNotLeak' } },
  })
  await postEvents(app, [costEvent(6, { createdAt: '2025-03-20T10:00:00Z' })])
  await waitFor(() => webhook.received.length === 1 && telegram.sent.length === 1, 'webhook and Telegram')
  await waitFor(async () => (await alertsOf(app, b.id))[0]?.deliveries.find((d) => d.channel === 'email')?.status === 'failed', 'email to give up')
  const [alert] = await alertsOf(app, b.id)
  t.match(alert.deliveries, [
    { channel: 'email', status: 'failed', attempts: 2, lastError: /ECONNREFUSED/, deliveredAt: null },
    { channel: 'telegram', status: 'delivered', attempts: 1 },
    { channel: 'webhook', status: 'delivered', attempts: 1 },
  ])
  t.notOk(rawLog().includes('333:SecretTokenThatMustNotLeak'), 'the bot token is not logged')
  t.match(rawLog(), /budget alert delivery failed for good/)
})

t.test('a pending retry survives a restart and is sent by the next instance', async (t) => {
  const clock = new TestClock(new Date(MARCH_20))
  const env = { ALERT_RETRY_BASE_MS: '1000' }
  const first = await buildBudgetApp(t, database, env, clock)
  const b = await createBudget(first.app, { period: 'month', limitUsd: 10, thresholds: [50], channels: { webhook: { url: webhook.url } } })
  webhook.failNext(503)
  await postEvents(first.app, [costEvent(6, { createdAt: '2025-03-20T10:00:00Z' })])
  await waitFor(async () => (await alertsOf(first.app, b.id))[0]?.deliveries[0]?.lastError != null, 'the failed first attempt to be recorded')
  t.match((await alertsOf(first.app, b.id))[0].deliveries[0], { status: 'pending', attempts: 1, lastError: 'webhook answered HTTP 503 Service Unavailable' }, 'the status line only, never the receiver body')
  await first.app.close()

  const second = await buildBudgetApp(t, database, env, clock)
  await waitFor(() => webhook.received.length === 2, 'the retry from the new instance')
  await waitFor(async () => (await alertsOf(second.app, b.id))[0]?.deliveries[0]?.status === 'delivered', 'delivered')
  t.match((await alertsOf(second.app, b.id))[0].deliveries[0], { attempts: 2, status: 'delivered' })
  t.equal((await alertsOf(second.app, b.id)).length, 1, 'the restart fired nothing again')
})

t.test('disabled budgets and budgets of other scopes stay quiet', async (t) => {
  const { app } = await buildBudgetApp(t, database, {}, new TestClock(new Date(MARCH_20)))
  const disabled = await createBudget(app, { period: 'month', limitUsd: 1, thresholds: [50], enabled: false })
  const otherBot = await createBudget(app, { scope: { botId: 'bot_y' }, period: 'month', limitUsd: 1, thresholds: [50] })
  const otherModel = await createBudget(app, { scope: { botId: 'bot_x', model: 'gpt-4o' }, period: 'month', limitUsd: 1, thresholds: [50] })
  const s = await sentinel(app, 0)
  await postEvents(app, [costEvent(5, { createdAt: '2025-03-20T10:00:00Z' })])
  await s.crossed()
  for (const b of [disabled, otherBot, otherModel]) t.equal((await alertsOf(app, b.id)).length, 0)
})
