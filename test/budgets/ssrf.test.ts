import t from 'tap'
import { defineBudget } from '../../src/budgets/definition.js'
import { isNonPublicAddress } from '../../src/budgets/outbound.js'
import { insertBudget } from '../../src/budgets/budget-store.js'
import { uuidv7 } from '../../src/lib/uuidv7.js'
import { alertsOf, api, buildBudgetApp, costEvent, postEvents } from '../helpers/budgets.js'
import { createTestDatabase, resetTables } from '../helpers/db.js'
import { startWebhookReceiver } from '../helpers/fake-alert-receivers.js'
import { waitFor } from '../helpers/wait.js'

// Budget webhooks must not become a way into the service's own network: private, loopback and
// link-local destinations are refused when a budget is saved and again when an alert is sent,
// unless ALERT_WEBHOOK_ALLOW_PRIVATE=true. A failed delivery records the status line only.
const database = await createTestDatabase(t)
t.beforeEach(() => resetTables(database))
const receiver = await startWebhookReceiver()
t.teardown(() => receiver.close())
const internal = receiver.url.replace('/hooks/budget', '/internal/admin')
const port = new URL(receiver.url).port
const REFUSE = { ALERT_WEBHOOK_ALLOW_PRIVATE: 'false' }

t.test('which addresses are not public', async (t) => {
  const refused = [
    '127.0.0.1', '127.255.0.9', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '0.0.0.0', '100.64.0.1',
    '::1', '::', 'fe80::1', 'fc00::1', 'fd12:3456::1', 'ff02::1',
    '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:169.254.169.254', '::ffff:10.0.0.1', '::127.0.0.1', '64:ff9b::a9fe:a9fe', '[::1]',
  ]
  const allowed = ['8.8.8.8', '93.184.216.34', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808']
  for (const a of refused) t.ok(isNonPublicAddress(a), `${a} is refused`)
  for (const a of allowed) t.notOk(isNonPublicAddress(a), `${a} is public`)
})

t.test('saving a budget refuses a non-public webhook with a 400 naming the field', async (t) => {
  const { app } = await buildBudgetApp(t, database, REFUSE)
  const urls = [
    internal,
    `http://localhost:${port}/internal`,
    `http://app.localhost:${port}/internal`,
    `http://[::1]:${port}/internal`,
    `http://[::ffff:127.0.0.1]:${port}/internal`,
    `http://2130706433:${port}/internal`, // 127.0.0.1 as one number
    `http://0x7f.1:${port}/internal`,
    'http://169.254.169.254/latest/meta-data/',
    'http://10.0.0.5/hook',
  ]
  for (const url of urls) {
    const res = await api(app, 'POST', '/api/budgets', { period: 'month', limitUsd: 1, channels: { webhook: { url } } })
    t.equal(res.status, 400, `${url} refused`)
    t.match(res.body, { code: 'VALIDATION_ERROR', message: /^body\.channels\.webhook\.url is refused: .*private, loopback or link-local.*ALERT_WEBHOOK_ALLOW_PRIVATE=true/ })
  }
  const list = await api<{ budgets: unknown[] }>(app, 'GET', '/api/budgets')
  t.same(list.body.budgets, [], 'nothing stored')

  const ok = await api<{ id: string }>(app, 'POST', '/api/budgets', { period: 'month', limitUsd: 1, channels: { webhook: { url: 'https://hooks.example.com/budget' } } })
  t.equal(ok.status, 201, 'a public host (or one that does not resolve yet) is accepted')
  const patched = await api(app, 'PATCH', `/api/budgets/${ok.body.id}`, { channels: { webhook: { url: internal } } })
  t.equal(patched.status, 400, 'PATCH is checked the same way')
  t.equal(receiver.received.length, 0)
})

t.test('delivery checks the address again: stored private webhooks are never called', async (t) => {
  // Budgets saved while the operator allowed private addresses (or by an older version).
  const stored = []
  for (const url of [`${internal}?via=literal`, `http://localhost:${port}/internal/admin?via=name`]) {
    const { budget } = defineBudget(
      uuidv7(),
      { scope: { botId: 'bot_x' }, period: 'month', limitUsd: 1, thresholds: [50], notifyProjected: false, channels: { webhook: { url } } },
      { defaultTimeZone: 'UTC', hasDefaultTelegramToken: false, emailConfigured: false, webhookAllowPrivate: true },
      new Date(),
    )
    await insertBudget(database, budget)
    stored.push(budget.id)
  }
  const { app } = await buildBudgetApp(t, database, { ...REFUSE, ALERT_MAX_ATTEMPTS: '2' })
  await postEvents(app, [costEvent(5)])
  for (const id of stored) {
    await waitFor(async () => (await alertsOf(app, id))[0]?.deliveries[0]?.status === 'failed', 'the delivery to fail for good')
    const [delivery] = (await alertsOf(app, id))[0].deliveries
    t.match(delivery.lastError, /private, loopback or link-local address: set ALERT_WEBHOOK_ALLOW_PRIVATE=true/)
  }
  t.equal(receiver.received.length, 0, 'the internal endpoint received nothing')
})

t.test('with ALERT_WEBHOOK_ALLOW_PRIVATE a failed delivery stores the status line, never the body', async (t) => {
  const { app } = await buildBudgetApp(t, database, { ALERT_MAX_ATTEMPTS: '1' })
  receiver.failNext(500)
  const res = await api<{ id: string }>(app, 'POST', '/api/budgets', { scope: { botId: 'bot_x' }, period: 'month', limitUsd: 1, thresholds: [50], notifyProjected: false, channels: { webhook: { url: internal } } })
  t.equal(res.status, 201, 'allowed by the operator')
  const before = receiver.received.length
  await postEvents(app, [costEvent(5)])
  await waitFor(async () => (await alertsOf(app, res.body.id))[0]?.deliveries[0]?.status === 'failed', 'the delivery to fail')
  t.equal(receiver.received.length, before + 1, 'the receiver was called')
  const [delivery] = (await alertsOf(app, res.body.id))[0].deliveries
  t.equal(delivery.lastError, 'webhook answered HTTP 500 Internal Server Error')
})
