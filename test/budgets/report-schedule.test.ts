import t from 'tap'
import { connectDatabase } from '../../src/db/connect.js'
import { atLocalHour, nextSendAt } from '../../src/budgets/report-schedule.js'
import { createTestDatabase, resetTables, TEST_DATABASE_URL } from '../helpers/db.js'
import { api, buildBudgetApp, costEvent, postEvents, TestClock } from '../helpers/budgets.js'
import { slackPayloadProblem, startFakeSlack, startSmtpServer, startWebhookReceiver } from '../helpers/fake-alert-receivers.js'
import { FakeTelegram } from '../helpers/fake-telegram.js'
import { waitFor } from '../helpers/wait.js'

const database = await createTestDatabase(t)
const webhook = await startWebhookReceiver()
const slack = await startFakeSlack()
t.teardown(() => Promise.all([webhook.close(), slack.close()]))
t.beforeEach(async () => {
  await resetTables(database)
  webhook.received.length = 0
  slack.received.length = 0
})

type App = Parameters<typeof api>[0]

interface Send {
  id: string
  manual: boolean
  from: string
  to: string
  deliveries: { channel: string; status: string; attempts: number }[]
}

async function createSchedule(app: App, body: Record<string, unknown>): Promise<{ id: string; nextSendAt: string }> {
  const res = await api<{ id: string; nextSendAt: string }>(app, 'POST', '/api/report-schedules', body)
  if (res.status !== 201) throw new Error(`create report schedule: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body
}

const sendsOf = async (app: App, id: string) => (await api<{ sends: Send[] }>(app, 'GET', `/api/report-schedules/${id}/sends`)).body.sends

/** February and March 2025 in Berlin, with events on both sides of each month's edge (Berlin is UTC+1 then). */
function seedMonths() {
  const e = (id: string, usd: number, at: string, fields: Record<string, unknown> = {}) => costEvent(usd, { id, createdAt: at, ...fields })
  return [
    e('feb-1', 2, '2025-02-10T10:00:00Z'),
    e('feb-2', 1.5, '2025-02-20T10:00:00Z', { botId: 'bot_y', model: 'acme-small' }),
    e('feb-edge', 0.25, '2025-02-28T22:30:00Z'), // 23:30 in Berlin: still February
    e('mar-edge', 0.5, '2025-02-28T23:30:00Z'), // 00:30 on 1 March in Berlin
    e('mar-1', 3, '2025-03-05T10:00:00Z'),
    e('mar-2', 1.25, '2025-03-06T10:00:00Z', { model: 'acme-small' }),
    e('mar-3', 4, '2025-03-07T10:00:00Z', { botId: 'bot_y', model: 'acme-small' }),
    e('mar-fail-1', 0, '2025-03-08T10:00:00Z', { success: false, errorMessage: 'rate limited' }),
    e('mar-fail-2', 0, '2025-03-09T10:00:00Z', { success: false, errorMessage: 'rate limited' }),
    e('mar-fail-3', 0, '2025-03-10T10:00:00Z', { botId: 'bot_y', success: false, errorMessage: 'overloaded' }),
    e('apr-edge', 9, '2025-03-31T22:30:00Z'), // 00:30 on 1 April in Berlin (UTC+2 since 30 March)
  ]
}

t.test('local send times, DST included', async (t) => {
  t.equal(atLocalHour(new Date('2025-03-30T00:00:00+01:00'), 9, 'Europe/Berlin').toISOString(), '2025-03-30T07:00:00.000Z', '09:00 on the day clocks go forward is 07:00 UTC')
  t.equal(atLocalHour(new Date('2025-03-29T00:00:00+01:00'), 9, 'Europe/Berlin').toISOString(), '2025-03-29T08:00:00.000Z')
  const month = { period: 'month' as const, timeZone: 'Europe/Berlin', sendHour: 9 }
  t.equal(nextSendAt(month, new Date('2025-03-20T12:00:00Z')).toISOString(), '2025-04-01T07:00:00.000Z')
  t.equal(nextSendAt(month, new Date('2025-04-01T06:59:59Z')).toISOString(), '2025-04-01T07:00:00.000Z', 'before 09:00 on the 1st: March is still due')
  t.equal(nextSendAt(month, new Date('2025-04-01T07:00:00Z')).toISOString(), '2025-05-01T07:00:00.000Z')
  const week = { period: 'week' as const, timeZone: 'Asia/Tokyo', sendHour: 0 }
  t.equal(nextSendAt(week, new Date('2025-03-12T12:00:00Z')).toISOString(), '2025-03-16T15:00:00.000Z', 'Monday 00:00 in Tokyo')
})

t.test('a monthly report is sent once, at its hour, with the numbers of GET /api/reports/monthly', async (t) => {
  const clock = new TestClock(new Date('2025-03-25T10:00:00Z'))
  const first = await buildBudgetApp(t, database, {}, clock)
  const schedule = await createSchedule(first.app, {
    name: 'Ops monthly',
    period: 'month',
    timeZone: 'Europe/Berlin',
    sendHour: 9,
    channels: { webhook: { url: webhook.url }, slack: { webhookUrl: slack.url } },
  })
  t.equal(schedule.nextSendAt, '2025-04-01T07:00:00.000Z')
  await postEvents(first.app, seedMonths())

  clock.set('2025-04-01T06:59:00Z')
  await first.app.reportScheduler.check()
  t.same(await sendsOf(first.app, schedule.id), [], 'not before 09:00 Berlin')

  clock.set('2025-04-01T07:00:00Z')
  await first.app.reportScheduler.check()
  await first.app.reportScheduler.check()
  await waitFor(() => webhook.received.length === 1 && slack.received.length === 1, 'the report on both channels')
  const report = webhook.received[0].json
  const march = await api<{ rows: unknown[]; totals: Record<string, unknown> }>(first.app, 'GET', '/api/reports/monthly?month=2025-03&tz=Europe/Berlin')
  const february = await api<{ totals: Record<string, unknown> }>(first.app, 'GET', '/api/reports/monthly?month=2025-02&tz=Europe/Berlin')
  t.equal(march.status, 200)
  t.same(report.rows, march.body.rows, 'the same rows as the monthly report')
  t.same(report.totals, march.body.totals, 'the same totals')
  t.same((report.previous as { totals: unknown }).totals, february.body.totals, 'the previous month as its monthly report')
  t.match(report, { type: 'report.scheduled', label: '2025-03', from: '2025-02-28T23:00:00.000Z', to: '2025-03-31T22:00:00.000Z' })
  t.equal((report.totals as { costExact: string }).costExact, '8.75', 'March in Berlin: 0.5 + 3 + 1.25 + 4')
  t.same(report.byBot, [
    { botId: 'bot_x', calls: 5, cost: 4.75, costExact: '4.75' },
    { botId: 'bot_y', calls: 2, cost: 4, costExact: '4' },
  ])
  t.same(report.byModel, [
    { provider: 'acme', model: 'acme-small', calls: 2, cost: 5.25, costExact: '5.25' },
    { provider: 'acme', model: 'acme-large', calls: 5, cost: 3.5, costExact: '3.5' },
  ])
  t.same(report.topErrors, [{ message: 'rate limited', count: 2 }, { message: 'overloaded', count: 1 }])
  t.same(report.change, { calls: (7 - 3) / 3, cost: (8.75 - 3.75) / 3.75, failures: null })
  t.equal(slackPayloadProblem(slack.received[0].json), null, 'Slack accepts the message')
  t.match(String(slack.received[0].json.text), /Monthly usage report "Ops monthly", 2025-03 \(Europe\/Berlin\): \$8\.75, 7 calls \(cost \+133\.3% vs the previous month\)/)
  t.match(String(slack.received[0].json.text), /Calls: 7 \(\+133\.3%; previous 3\)\nCost: \$8\.75 \(\+133\.3%; previous \$3\.75\)\nFailures: 3 \(previous 0\)/)

  // Another process, nothing in memory: the period's claim holds.
  await first.app.close()
  const second = await buildBudgetApp(t, database, {}, clock)
  clock.set('2025-04-15T12:00:00Z')
  await second.app.reportScheduler.check()
  const sends = await sendsOf(second.app, schedule.id)
  t.equal(sends.length, 1, 'sent once across checks and a restart')
  t.same(sends[0].deliveries.map((d) => [d.channel, d.attempts]).sort(), [['slack', 1], ['webhook', 1]])
  t.equal(webhook.received[0].headers['x-alert-id'], sends[0].id)
})

t.test('a weekly report in its own time zone, by email and Telegram, equals the summary of that week', async (t) => {
  const smtp = await startSmtpServer()
  const telegram = await FakeTelegram.start({ tokens: ['777:ReportBotToken_abcdef'] })
  t.teardown(() => Promise.all([smtp.close(), telegram.close()]))
  const clock = new TestClock(new Date('2025-03-12T00:00:00Z'))
  const { app } = await buildBudgetApp(t, database, { SMTP_URL: smtp.url, ALERT_EMAIL_FROM: 'reports@example.com', TELEGRAM_API_ROOT: telegram.apiRoot }, clock)
  const schedule = await createSchedule(app, {
    period: 'week',
    timeZone: 'Asia/Tokyo',
    sendHour: 8,
    scope: { botId: 'bot_x' },
    channels: { email: { to: ['ops@example.com'] }, telegram: { chatId: -100777, botToken: '777:ReportBotToken_abcdef' } },
  })
  await postEvents(app, [
    costEvent(1, { id: 'w-before', createdAt: '2025-03-09T14:59:00Z' }), // Sunday 23:59 in Tokyo: the week before
    costEvent(2, { id: 'w-1', createdAt: '2025-03-09T15:00:00Z' }), // Monday 00:00 in Tokyo
    costEvent(0.5, { id: 'w-2', createdAt: '2025-03-12T03:00:00Z', model: 'acme-small' }),
    costEvent(7, { id: 'w-other-bot', createdAt: '2025-03-12T03:00:00Z', botId: 'bot_y' }),
    costEvent(0, { id: 'w-fail', createdAt: '2025-03-13T03:00:00Z', success: false, errorMessage: 'timeout' }),
    costEvent(3, { id: 'w-after', createdAt: '2025-03-16T15:00:00Z' }), // the next Monday in Tokyo
  ])
  clock.set('2025-03-16T23:00:00Z') // Monday 08:00 in Tokyo
  await app.reportScheduler.check()
  await waitFor(() => smtp.mails.length === 1 && telegram.sent.length === 1, 'the email and the Telegram message')

  const preview = await api<{ report: Record<string, unknown> }>(app, 'GET', `/api/report-schedules/${schedule.id}/preview`)
  const summary = await api<{ totals: { calls: number; cost: number; failures: number }; byModel: { model: string; cost: number; calls: number }[] }>(
    app,
    'GET',
    '/api/usage/summary?botId=bot_x&startDate=2025-03-10&endDate=2025-03-16&tz=Asia/Tokyo',
  )
  const report = preview.body.report as { label: string; totals: { calls: number; cost: number; failures: number }; byModel: { model: string; cost: number; calls: number }[] }
  t.equal(report.label, '2025-03-10..2025-03-16')
  t.same([report.totals.calls, report.totals.cost, report.totals.failures], [summary.body.totals.calls, summary.body.totals.cost, summary.body.totals.failures])
  t.same(
    report.byModel.map((m) => [m.model, m.cost, m.calls]),
    summary.body.byModel.map((m) => [m.model, m.cost, m.calls]),
    'cost by model as the summary of the same week',
  )
  t.equal(report.totals.cost, 2.5)
  t.match(smtp.mails[0].subject, /Weekly usage report "Weekly usage of bot_x", 2025-03-10\.\.2025-03-16 \(Asia\/Tokyo\): \$2\.50, 3 calls/)
  t.match(smtp.mails[0].raw, /Top errors: 1x timeout/)
  t.match(telegram.sent[0].text, /Cost by model:\n {2}acme\/acme-large: \$2\.00 \(2 calls\)\n {2}acme\/acme-small: \$0\.50 \(1 calls\)/)
  t.equal(telegram.sent[0].token, '777:ReportBotToken_abcdef')
})

t.test('a schedule created after its period was due waits for the next one; bad definitions store nothing', async (t) => {
  const clock = new TestClock(new Date('2025-04-01T08:00:00Z'))
  const { app } = await buildBudgetApp(t, database, {}, clock)
  const schedule = await createSchedule(app, { period: 'month', timeZone: 'UTC', sendHour: 0, channels: { webhook: { url: webhook.url } } })
  await app.reportScheduler.check()
  t.same(await sendsOf(app, schedule.id), [], 'March was due at 00:00, before the schedule existed')
  const patched = await api<{ enabled: boolean; sendHour: number; nextSendAt: string }>(app, 'PATCH', `/api/report-schedules/${schedule.id}`, { enabled: false, sendHour: 6 })
  t.match(patched, { status: 200, body: { enabled: false, sendHour: 6, nextSendAt: '2025-05-01T06:00:00.000Z' } })
  clock.set('2025-05-01T07:00:00Z')
  await app.reportScheduler.check()
  t.same(await sendsOf(app, schedule.id), [], 'disabled: April is not sent')
  await api(app, 'PATCH', `/api/report-schedules/${schedule.id}`, { enabled: true })
  await app.reportScheduler.check()
  t.same((await sendsOf(app, schedule.id)).map((s) => [s.from, s.manual]), [['2025-04-01T00:00:00.000Z', false]], 'enabled again: April is sent')
  for (const [body, message] of [
    [{ period: 'month', channels: {} }, /body\.channels must name at least one channel/],
    [{ period: 'day', channels: { webhook: { url: webhook.url } } }, /period/],
    [{ period: 'week', sendHour: 24, channels: { webhook: { url: webhook.url } } }, /sendHour/],
    [{ period: 'week', timeZone: 'Mars/Olympus', channels: { webhook: { url: webhook.url } } }, /timeZone/],
  ] as const) {
    const res = await api<{ message: string }>(app, 'POST', '/api/report-schedules', body)
    t.equal(res.status, 400, JSON.stringify(body))
    t.match(res.body.message, message)
  }
  t.equal((await api<{ reportSchedules: unknown[] }>(app, 'GET', '/api/report-schedules')).body.reportSchedules.length, 1)
  t.equal((await api(app, 'DELETE', `/api/report-schedules/${schedule.id}`)).status, 200)
  t.equal((await api(app, 'GET', `/api/report-schedules/${schedule.id}`)).status, 404)
})

t.test('the timer sends a report once its hour has come', async (t) => {
  const clock = new TestClock(new Date('2025-03-25T10:00:00Z'))
  const { app } = await buildBudgetApp(t, database, { REPORT_INTERVAL_MS: '25' }, clock)
  const schedule = await createSchedule(app, { period: 'month', timeZone: 'UTC', sendHour: 2, channels: { webhook: { url: webhook.url } } })
  await postEvents(app, [costEvent(1.5, { id: 'timer-1', createdAt: '2025-03-10T10:00:00Z' })])
  clock.set('2025-04-01T02:00:00Z')
  await waitFor(() => webhook.received.length === 1, 'the report')
  t.match(webhook.received[0].json, { scheduleId: schedule.id, label: '2025-03', totals: { calls: 1, costExact: '1.5' } })
})

t.test('two instances on one database send a period once', { skip: TEST_DATABASE_URL === null ? 'two instances need two connections to one database: the embedded engine is one process\'s single connection (run with DATABASE_URL)' : false }, async (t) => {
  const other = await connectDatabase({ databaseUrl: TEST_DATABASE_URL, dataDir: 'memory://', schema: database.schema })
  t.teardown(() => other.close())
  const clock = new TestClock(new Date('2025-03-25T10:00:00Z'))
  const a = await buildBudgetApp(t, database, {}, clock)
  const b = await buildBudgetApp(t, other, {}, clock)
  const schedule = await createSchedule(a.app, { period: 'month', timeZone: 'Europe/Berlin', channels: { webhook: { url: webhook.url } } })
  await postEvents(a.app, seedMonths())
  clock.set('2025-04-02T12:00:00Z')
  await Promise.all([a.app.reportScheduler.check(), b.app.reportScheduler.check(), a.app.reportScheduler.check(), b.app.reportScheduler.check()])
  await waitFor(async () => (await sendsOf(b.app, schedule.id))[0]?.deliveries[0]?.status === 'delivered', 'the delivery')
  const sends = await sendsOf(a.app, schedule.id)
  t.equal(sends.length, 1)
  t.same(sends[0].deliveries.map((d) => [d.channel, d.attempts]), [['webhook', 1]])
  t.equal(webhook.received.length, 1)
})
