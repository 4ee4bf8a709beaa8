import t from 'tap'
import { connectDatabase, type Database } from '../../src/db/connect.js'
import { checkHour, median } from '../../src/budgets/anomaly.js'
import { createTestDatabase, resetTables, TEST_DATABASE_URL } from '../helpers/db.js'
import { api, buildBudgetApp, costEvent, postEvents, TestClock } from '../helpers/budgets.js'
import { startWebhookReceiver } from '../helpers/fake-alert-receivers.js'
import { FakeTelegram } from '../helpers/fake-telegram.js'
import { rollupMismatches } from '../helpers/usage.js'
import { waitFor } from '../helpers/wait.js'

const database = await createTestDatabase(t)
const webhook = await startWebhookReceiver()
t.teardown(() => webhook.close())
t.beforeEach(async () => {
  await resetTables(database)
  webhook.received.length = 0
})

const DAY = 86_400_000
const NOW = '2025-03-20T14:30:00Z'

interface Spike {
  id: string
  botId: string
  model: string | null
  hourStart: string
  spentUsd: number
  baselineUsd: number
  thresholdUsd: number
  partial: boolean
  deliveries: { channel: string; status: string; attempts: number }[]
}

/** `usd` spent by `botId` at `time` of each of the `days` days before 2025-03-20 (through the normal write path). */
function history(botId: string, time: string, usdPerDay: number[], extra: Record<string, unknown> = {}) {
  return usdPerDay.map((usd, i) =>
    costEvent(usd, { botId, id: `h-${botId}-${time}-${i}-${String(extra.model ?? '')}`, createdAt: new Date(Date.parse(`2025-03-20T${time}Z`) - (i + 1) * DAY).toISOString(), ...extra }),
  )
}

async function spikesOf(app: Parameters<typeof api>[0], ruleId: string): Promise<Spike[]> {
  const res = await api<{ spikes: Spike[] }>(app, 'GET', `/api/spend-alerts/${ruleId}/spikes?limit=500`)
  return res.body.spikes
}

async function createRule(app: Parameters<typeof api>[0], body: Record<string, unknown>): Promise<{ id: string }> {
  const res = await api<{ id: string }>(app, 'POST', '/api/spend-alerts', body)
  if (res.status !== 201) throw new Error(`create spend alert: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body
}

t.test('the method: median of the same hour on the previous days, times the multiple, at least the minimum', async (t) => {
  t.equal(median([]), 0n)
  t.equal(median([5n, 1n, 3n]), 3n)
  t.equal(median([4n, 1n, 3n, 10n]), 3n, 'even count: the mean of the middle two, (3 + 4) / 2 rounded down')
  const hour = Date.parse('2025-03-20T14:00:00Z')
  const usd = (n: number) => BigInt(Math.round(n * 100)) * 10_000_000_000n
  const byHour = new Map<number, bigint>([[hour, usd(9)]])
  ;[1, 2, 1.5, 0, 2, 1, 40].forEach((v, i) => byHour.set(hour - (i + 1) * DAY, usd(v)))
  byHour.set(hour - 3_600_000, usd(100)) // another hour of the day never counts
  const rule = { multipleHundredths: 300n, minSpend: usd(5), baselineDays: 7 }
  const check = checkHour(byHour, hour, rule)
  t.equal(check.baseline, usd(1.5), 'median of 0, 1, 1, 1.5, 2, 2, 40')
  t.equal(check.threshold, usd(5), '3 x 1.5 = 4.5, raised to the minimum of 5')
  t.ok(check.unusual, '9 > 4.5 and 9 >= 5')
  t.notOk(checkHour(byHour, hour, { ...rule, minSpend: usd(10) }).unusual, 'below the minimum')
  t.notOk(checkHour(byHour, hour, { ...rule, multipleHundredths: 600n }).unusual, '9 = 6 x 1.5 does not exceed it')
  t.equal(checkHour(byHour, hour, { ...rule, baselineDays: 3 }).baseline, usd(1.5), 'three days: median of 1, 2, 1.5')
})

t.test('a spike alerts once, also across a restart; a spike lasting hours alerts for its first hour only', async (t) => {
  const clock = new TestClock(new Date(NOW))
  const first = await buildBudgetApp(t, database, {}, clock)
  // bot_x usually spends $1 between 14:00 and 15:00, $10 between 15:00 and 16:00, nothing later.
  await postEvents(first.app, [...history('bot_x', '14:10:00', [1, 1, 1, 1, 1, 1, 1]), ...history('bot_x', '15:10:00', [10, 10, 10, 10, 10, 10, 10])])
  const rule = await createRule(first.app, { scope: { botId: 'bot_x' }, multiple: 3, minSpendUsd: 2, channels: { webhook: { url: webhook.url } } })

  await postEvents(first.app, [costEvent(2, { id: 'now-1', createdAt: '2025-03-20T14:05:00Z' })])
  await first.app.spendWatch.evaluate()
  t.same(await spikesOf(first.app, rule.id), [], '$2 is not more than 3 x $1')

  await postEvents(first.app, [costEvent(2, { id: 'now-2', createdAt: '2025-03-20T14:20:00Z' })])
  await first.app.spendWatch.evaluate()
  await waitFor(() => webhook.received.length === 1, 'the spike delivered')
  const [spike] = await spikesOf(first.app, rule.id)
  t.match(spike, { botId: 'bot_x', model: null, hourStart: '2025-03-20T14:00:00.000Z', spentUsd: 4, baselineUsd: 1, thresholdUsd: 3, partial: true })
  const body = webhook.received[0].json
  t.match(body, { id: spike.id, type: 'spend.unusual', botId: 'bot_x', spentUsd: 4, baselineUsd: 1, thresholdUsd: 3, ratio: 4, partial: true })
  t.equal(webhook.received[0].headers['x-alert-id'], spike.id)
  t.match(String(body.message), /bot_x spent \$4\.00 so far in the hour from 2025-03-20 14:00 UTC, 4x its usual \$1\.00/)

  await postEvents(first.app, [costEvent(5, { id: 'now-3', createdAt: '2025-03-20T14:25:00Z' })])
  await first.app.spendWatch.evaluate()
  await first.app.close()

  // Another process on the same database, knowing nothing in memory: the unique key holds.
  const second = await buildBudgetApp(t, database, {}, clock)
  await second.app.spendWatch.evaluate()
  t.equal((await spikesOf(second.app, rule.id)).length, 1, 'still one spike after more spend and a restart')

  // 15:00-16:00 spends its usual $10: quiet. 16:00 has no history: $3 > 3 x 0 and >= $2 is a new spike.
  clock.set('2025-03-20T15:30:00Z')
  await postEvents(second.app, [costEvent(10, { id: 'now-4', createdAt: '2025-03-20T15:10:00Z' })])
  await second.app.spendWatch.evaluate()
  clock.set('2025-03-20T16:30:00Z')
  await postEvents(second.app, [costEvent(3, { id: 'now-5', createdAt: '2025-03-20T16:10:00Z' })])
  await second.app.spendWatch.evaluate()
  // 17:00 goes on spending: the same spike, no second message.
  clock.set('2025-03-20T17:30:00Z')
  await postEvents(second.app, [costEvent(3, { id: 'now-6', createdAt: '2025-03-20T17:10:00Z' })])
  await second.app.spendWatch.evaluate()
  clock.set('2025-03-20T18:05:00Z')
  await second.app.spendWatch.evaluate()

  const spikes = await spikesOf(second.app, rule.id)
  t.same(spikes.map((s) => [s.hourStart, s.spentUsd, s.baselineUsd]), [['2025-03-20T16:00:00.000Z', 3, 0], ['2025-03-20T14:00:00.000Z', 4, 1]])
  await waitFor(() => webhook.received.length === 2, 'the second spike delivered')
  await waitFor(async () => (await spikesOf(second.app, rule.id)).every((s) => s.deliveries[0]?.status === 'delivered'), 'deliveries recorded')
  t.same(webhook.received.map((r) => r.json.id).sort(), spikes.map((s) => s.id).sort(), 'each spike delivered once')
  t.same(await rollupMismatches(database), [], 'the seeded history went through the normal write path')
})

t.test('a tiny bot below the minimum never fires, however large the multiple', async (t) => {
  const clock = new TestClock(new Date(NOW))
  const { app } = await buildBudgetApp(t, database, {}, clock)
  await postEvents(app, history('bot_tiny', '14:10:00', [0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001], { botId: 'bot_tiny' }))
  const rule = await createRule(app, { multiple: 3, minSpendUsd: 1, channels: { webhook: { url: webhook.url } } })
  await postEvents(app, [costEvent(0.5, { botId: 'bot_tiny', id: 'tiny-now', createdAt: '2025-03-20T14:15:00Z' })])
  await app.spendWatch.evaluate()
  const status = await api<{ series: Record<string, unknown>[] }>(app, 'GET', `/api/spend-alerts/${rule.id}/status`)
  t.same(status.body.series, [
    { botId: 'bot_tiny', model: null, hourStart: '2025-03-20T14:00:00.000Z', spentUsd: 0.5, baselineUsd: 0.001, thresholdUsd: 1, unusual: false },
  ], '500x its baseline, under the $1 minimum')
  clock.set('2025-03-20T15:10:00Z')
  await app.spendWatch.evaluate()
  t.same(await spikesOf(app, rule.id), [])
  t.equal(webhook.received.length, 0)
})

t.test('per model: each of a bot\'s models against its own baseline, through Telegram', async (t) => {
  const telegram = await FakeTelegram.start({ tokens: ['123456:ABCDEFGHIJKLMNOP'] })
  t.teardown(() => telegram.close())
  const clock = new TestClock(new Date(NOW))
  const { app } = await buildBudgetApp(t, database, { TELEGRAM_API_ROOT: telegram.apiRoot }, clock)
  await postEvents(app, [
    ...history('bot_x', '14:10:00', [5, 5, 5, 5, 5, 5, 5], { model: 'big' }),
    ...history('bot_x', '14:10:00', [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], { model: 'small' }),
  ])
  const rule = await createRule(app, {
    scope: { botId: 'bot_x' },
    per: 'model',
    multiple: 2.5,
    minSpendUsd: 1,
    channels: { telegram: { chatId: -1001, botToken: '123456:ABCDEFGHIJKLMNOP' } },
  })
  // $6 in the hour: usual for the bot as a whole ($5.50), but 'small' spends 4x its usual $0.50.
  await postEvents(app, [costEvent(4, { model: 'big', id: 'm1', createdAt: '2025-03-20T14:01:00Z' }), costEvent(2, { model: 'small', id: 'm2', createdAt: '2025-03-20T14:02:00Z' })])
  await app.spendWatch.evaluate()
  const spikes = await spikesOf(app, rule.id)
  t.same(spikes.map((s) => [s.model, s.spentUsd, s.baselineUsd, s.thresholdUsd]), [['small', 2, 0.5, 1.25]])
  await waitFor(() => telegram.sent.length === 1, 'the Telegram message')
  t.match(telegram.sent[0].text, /Bot bot_x on small spent \$2\.00 so far/)
})

t.test('a disabled rule sends nothing; changed and enabled again it alerts', async (t) => {
  const clock = new TestClock(new Date(NOW))
  const { app } = await buildBudgetApp(t, database, {}, clock)
  await postEvents(app, history('bot_x', '14:10:00', [1, 1, 1, 1, 1, 1, 1]))
  const rule = await createRule(app, { enabled: false, multiple: 5, minSpendUsd: 1, channels: { webhook: { url: webhook.url } } })
  await postEvents(app, [costEvent(4, { id: 'p1', createdAt: '2025-03-20T14:05:00Z' })])
  await app.spendWatch.evaluate()
  t.same(await spikesOf(app, rule.id), [], 'disabled')
  const patched = await api<{ enabled: boolean; multiple: number }>(app, 'PATCH', `/api/spend-alerts/${rule.id}`, { enabled: true, multiple: 3.5 })
  t.match(patched, { status: 200, body: { enabled: true, multiple: 3.5 } })
  await app.spendWatch.evaluate()
  t.same((await spikesOf(app, rule.id)).map((s) => [s.spentUsd, s.thresholdUsd]), [[4, 3.5]], '$4 > 3.5 x $1')
  t.equal((await api(app, 'PATCH', '/api/spend-alerts/nope', { enabled: true })).status, 404)
  t.equal((await api(app, 'PATCH', `/api/spend-alerts/${rule.id}`, { per: 'model' })).status, 400, 'per is fixed')
})

t.test('a failed delivery is retried; deleting the rule cancels what is still pending', async (t) => {
  const clock = new TestClock(new Date(NOW))
  const { app } = await buildBudgetApp(t, database, { ALERT_RETRY_BASE_MS: '20' }, clock)
  await postEvents(app, history('bot_x', '14:10:00', [1, 1, 1, 1, 1, 1, 1]))
  const rule = await createRule(app, { scope: { botId: 'bot_x' }, multiple: 2, minSpendUsd: 1, channels: { webhook: { url: webhook.url } } })
  webhook.failNext(500, 503)
  await postEvents(app, [costEvent(3, { id: 'r1', createdAt: '2025-03-20T14:05:00Z' })])
  await app.spendWatch.evaluate()
  await waitFor(async () => (await spikesOf(app, rule.id))[0]?.deliveries[0]?.status === 'delivered', 'delivered after two failures')
  const [spike] = await spikesOf(app, rule.id)
  t.equal(spike.deliveries[0].attempts, 3)
  t.same(new Set(webhook.received.map((r) => r.json.id)), new Set([spike.id]), 'the same alert id on every attempt')

  // A second rule whose receiver keeps failing: deleting it ends its retries.
  const broken = await startWebhookReceiver()
  t.teardown(() => broken.close())
  broken.failNext(...Array.from({ length: 100 }, () => 500))
  const failing = await createRule(app, { scope: { botId: 'bot_x' }, multiple: 2, minSpendUsd: 1, channels: { webhook: { url: broken.url } } })
  await app.spendWatch.evaluate()
  await waitFor(async () => ((await spikesOf(app, failing.id))[0]?.deliveries[0]?.attempts ?? 0) >= 1, 'a failed attempt')
  t.equal((await api(app, 'DELETE', `/api/spend-alerts/${failing.id}`)).status, 200)
  t.equal((await api(app, 'GET', `/api/spend-alerts/${failing.id}/spikes`)).status, 404)
  t.equal((await spikesOf(app, rule.id)).length, 1, 'the other rule keeps its spike')
})

t.test('without being asked: a commit of the hour\'s usage, or the timer once the hour has come, evaluates', async (t) => {
  const clock = new TestClock(new Date(NOW))
  const { app } = await buildBudgetApp(t, database, { SPEND_ALERT_INTERVAL_MS: '25' }, clock)
  await postEvents(app, [...history('bot_x', '14:10:00', [1, 1, 1, 1, 1, 1, 1]), ...history('bot_y', '15:10:00', [1, 1, 1, 1, 1, 1, 1], { botId: 'bot_y' })])
  const rule = await createRule(app, { multiple: 2, minSpendUsd: 1, channels: { webhook: { url: webhook.url } } })
  await postEvents(app, [costEvent(3, { id: 'commit-1', createdAt: '2025-03-20T14:10:00Z' })])
  await waitFor(async () => (await spikesOf(app, rule.id)).length === 1, 'the spike found after the commit')
  // bot_y's usage is reported ahead of the clock: nothing is unusual until 15:00 comes.
  await postEvents(app, [costEvent(3, { botId: 'bot_y', id: 'timer-1', createdAt: '2025-03-20T15:05:00Z' })])
  clock.set('2025-03-20T15:06:00Z')
  await waitFor(async () => (await spikesOf(app, rule.id)).some((s) => s.botId === 'bot_y'), 'the spike found by the timer')
  t.same((await spikesOf(app, rule.id)).map((s) => [s.botId, s.hourStart]).sort(), [['bot_x', '2025-03-20T14:00:00.000Z'], ['bot_y', '2025-03-20T15:00:00.000Z']])
})

t.test('refused definitions store nothing', async (t) => {
  const { app } = await buildBudgetApp(t, database, {}, new TestClock(new Date(NOW)))
  for (const [body, message] of [
    [{ multiple: 1 }, /body\/multiple must be >= 1\.01|multiple/],
    [{ multiple: 2.555 }, /body\.multiple has more than 2 decimal places/],
    [{ minSpendUsd: 0 }, /minSpendUsd/],
    [{ baselineDays: 29 }, /baselineDays/],
    [{ per: 'user' }, /per/],
    [{ channels: { email: { to: ['ops@example.com'] } } }, /body\.channels\.email cannot be used: the server has no SMTP_URL/],
  ] as const) {
    const res = await api<{ message: string }>(app, 'POST', '/api/spend-alerts', body)
    t.equal(res.status, 400, JSON.stringify(body))
    t.match(res.body.message, message)
  }
  t.same((await api<{ spendAlerts: unknown[] }>(app, 'GET', '/api/spend-alerts')).body.spendAlerts, [])
  t.equal((await api(app, 'GET', '/api/spend-alerts/nope')).status, 404)
  t.equal((await api(app, 'DELETE', '/api/spend-alerts/nope')).status, 404)
})

t.test('two instances on one database fire a spike once', { skip: TEST_DATABASE_URL === null ? 'two instances need two connections to one database: the embedded engine is one process\'s single connection (run with DATABASE_URL)' : false }, async (t) => {
  const other: Database = await connectDatabase({ databaseUrl: TEST_DATABASE_URL, dataDir: 'memory://', schema: database.schema })
  t.teardown(() => other.close())
  const clock = new TestClock(new Date(NOW))
  const a = await buildBudgetApp(t, database, { SPEND_ALERT_INTERVAL_MS: '10' }, clock)
  const b = await buildBudgetApp(t, other, { SPEND_ALERT_INTERVAL_MS: '10' }, clock)
  await postEvents(a.app, history('bot_x', '14:10:00', [1, 1, 1, 1, 1, 1, 1]))
  const rule = await createRule(a.app, { multiple: 2, minSpendUsd: 1, channels: { webhook: { url: webhook.url } } })
  await Promise.all(Array.from({ length: 20 }, (_, i) => postEvents([a.app, b.app][i % 2], [costEvent(0.25, { id: `c${i}`, createdAt: '2025-03-20T14:01:00Z' })])))
  await Promise.all([a.app.spendWatch.evaluate(), b.app.spendWatch.evaluate(), a.app.spendWatch.evaluate(), b.app.spendWatch.evaluate()])
  await waitFor(() => webhook.received.length >= 1, 'the delivery')
  await waitFor(async () => (await spikesOf(a.app, rule.id))[0]?.deliveries[0]?.status === 'delivered', 'delivery recorded')
  const spikes = await spikesOf(b.app, rule.id)
  t.equal(spikes.length, 1)
  // Whichever evaluation first saw more than 2 x $1 recorded it (commits trigger evaluations too).
  t.ok(spikes[0].spentUsd > 2 && spikes[0].spentUsd <= 5, `recorded at ${spikes[0].spentUsd} USD, over the threshold`)
  t.same(spikes[0].deliveries.map((d) => [d.channel, d.attempts]), [['webhook', 1]])
  t.equal(webhook.received.length, 1, 'one message')
})
