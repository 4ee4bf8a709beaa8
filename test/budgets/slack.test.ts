import t from 'tap'
import { api, alertsOf, buildBudgetApp, costEvent, createBudget, postEvents, TestClock } from '../helpers/budgets.js'
import { createTestDatabase } from '../helpers/db.js'
import { slackPayloadProblem, startFakeSlack } from '../helpers/fake-alert-receivers.js'
import { waitFor } from '../helpers/wait.js'

/** The slack channel: Block Kit with the numbers and a dashboard link, retried, its URL kept secret. */

const database = await createTestDatabase(t)
const slack = await startFakeSlack()
t.teardown(() => slack.close())
// The alert HTTP guard refuses loopback receivers unless this is set (the fake listens on 127.0.0.1).
const ENV = { PUBLIC_URL: 'https://usage.example.test/', ALERT_WEBHOOK_ALLOW_PRIVATE: 'true' }

t.test('a threshold alert reaches Slack as Block Kit, after a retry, and the URL never leaks', async (t) => {
  const clock = new TestClock(new Date('2025-03-20T12:00:00Z'))
  const { app, rawLog } = await buildBudgetApp(t, database, ENV, clock)
  const budget = await createBudget(app, {
    name: 'Support <bot> & co',
    scope: { botId: 'bot_x' },
    period: 'month',
    timeZone: 'UTC',
    limitUsd: 10,
    thresholds: [80],
    notifyProjected: false,
    channels: { slack: { webhookUrl: slack.url } },
  })
  t.same(budget.channels, { slack: { configured: true } }, 'the URL is not returned, not even on creation')
  const read = await api(app, 'GET', `/api/budgets/${budget.id}`)
  t.notMatch(JSON.stringify(read.body), /XXXXsecretXXXX/)

  slack.failNext(500)
  await postEvents(app, [costEvent(8.5, { createdAt: '2025-03-20T10:00:00Z' })])
  await waitFor(async () => (await alertsOf(app, budget.id))[0]?.deliveries[0]?.status === 'delivered', 'the slack delivery')

  const [alert] = await alertsOf(app, budget.id)
  t.match(alert.deliveries, [{ channel: 'slack', status: 'delivered', attempts: 2 }], 'retried like the other channels')
  t.equal(slack.received.length, 2)
  const message = slack.received[1].json as { text: string; blocks: Record<string, unknown>[] }
  t.equal(slackPayloadProblem(message), null, 'a payload Slack accepts')
  t.match(message.text, /Budget "Support <bot> & co" reached 80%: \$8\.50 of \$10\.00 monthly/, 'the text fallback')
  t.match(message.text, /Dashboard: https:\/\/usage\.example\.test\/dashboard/)
  t.match(message.blocks[0], { type: 'header', text: { type: 'plain_text', text: /reached 80%/ } })
  const fields = (message.blocks[1].fields as { text: string }[]).map((f) => f.text)
  t.ok(fields.includes('*Spent*\n$8.50 of $10.00 (85%)'), 'the numbers')
  t.ok(fields.some((f) => f.startsWith('*Budget*\nSupport &lt;bot&gt; &amp; co')), 'mrkdwn control characters escaped')
  t.match(message.blocks[2], { type: 'actions', elements: [{ type: 'button', url: 'https://usage.example.test/dashboard' }] })

  const metrics = await app.inject({ url: '/metrics', headers: { authorization: 'Bearer usk_test_admin_key_0123456789abcdef' } })
  t.match(metrics.body, /budget_alert_deliveries_total\{channel="slack",status="failed"\} 1\n/)
  t.match(metrics.body, /budget_alert_deliveries_total\{channel="slack",status="delivered"\} 1\n/)
  t.notMatch(rawLog(), /XXXXsecretXXXX/, 'the URL is never logged')
})

t.test('slack channel input: bad URLs are 400 without echoing them; PATCH null removes it', async (t) => {
  const { app } = await buildBudgetApp(t, database, ENV)
  const bad = await api(app, 'POST', '/api/budgets', { period: 'day', limitUsd: 1, channels: { slack: { webhookUrl: 'ftp://hooks.example/secret-part' } } })
  t.equal(bad.status, 400)
  t.match(bad.body, { message: /body\.channels\.slack\.webhookUrl/ })
  t.notMatch(JSON.stringify(bad.body), /secret-part/)
  const b = await createBudget(app, { period: 'day', limitUsd: 1, channels: { slack: { webhookUrl: slack.url } } })
  const patched = await api(app, 'PATCH', `/api/budgets/${b.id}`, { channels: { slack: null } })
  t.same(patched.body.channels, {})
})
