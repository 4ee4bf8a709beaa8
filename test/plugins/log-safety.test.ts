import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { sql } from 'drizzle-orm'
import t from 'tap'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { BUDGET_TEST_ENV } from '../helpers/budgets.js'
import { createTestDatabase } from '../helpers/db.js'
import { startWebhookReceiver } from '../helpers/fake-alert-receivers.js'
import { waitFor } from '../helpers/wait.js'
import { FakeTelegram } from '../helpers/fake-telegram.js'
import { SEED_EVENT } from '../helpers/usage.js'

// At LOG_LEVEL=trace, drive every failing path we can (failed inserts, refused keys, failed alert
// deliveries, validation errors), then grep the whole log for every secret this test created.

const database = await createTestDatabase(t)
const admin = bearer(ADMIN_KEY)

const deadPort = await new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address() as AddressInfo
    s.close(() => resolve(port))
  })
})
const smtpPassword = `smtp-pw-${randomBytes(6).toString('hex')}`
const defaultBotToken = `424242:DefaultAlertToken_${randomBytes(8).toString('hex')}`
const dedicatedBotToken = `515151:DedicatedAlertToken_${randomBytes(8).toString('hex')}`
const chosenWebhookSecret = `whsec_${randomBytes(18).toString('base64url')}`
const telegram = await FakeTelegram.start({ tokens: ['999:SomeOtherBotEntirely_0000'] })
t.teardown(() => telegram.close())
const webhook = await startWebhookReceiver()
t.teardown(() => webhook.close())

const { app, rawLog } = await buildTestApp(t, database, {
  ...BUDGET_TEST_ENV,
  LOG_LEVEL: 'trace',
  ALERT_MAX_ATTEMPTS: '2',
  ALERT_WEBHOOK_ALLOW_PRIVATE: 'true',
  SMTP_URL: `smtp://alerts:${smtpPassword}@127.0.0.1:${deadPort}`,
  ALERT_EMAIL_FROM: 'alerts@example.com',
  ALERT_TELEGRAM_BOT_TOKEN: defaultBotToken,
  TELEGRAM_API_ROOT: telegram.apiRoot,
})

const secrets = new Map<string, string>([
  ['admin key', ADMIN_KEY],
  ['SMTP password', smtpPassword],
  ['default Telegram token', defaultBotToken],
  ['dedicated Telegram token', dedicatedBotToken],
  ['chosen webhook secret', chosenWebhookSecret],
])

async function newKey(body: Record<string, unknown>): Promise<{ id: string; key: string }> {
  const res = await app.inject({ method: 'POST', url: '/api/keys', headers: admin, payload: body })
  if (res.statusCode !== 201) throw new Error(`key: ${res.statusCode} ${res.body}`)
  return res.json()
}
const botKey = await newKey({ name: 'bot', scopes: ['ingest', 'read'], botId: 'bot_x' })
secrets.set('bot key', botKey.key)
const revoked = await newKey({ name: 'revoked', scopes: ['read'], botId: 'bot_x' })
secrets.set('revoked bot key', revoked.key)
await app.inject({ method: 'DELETE', url: `/api/keys/${revoked.id}`, headers: admin })

async function withTableGone(table: string, run: () => Promise<void>): Promise<void> {
  await database.db.execute(sql.raw(`ALTER TABLE ${table} RENAME TO ${table}_gone`))
  try {
    await run()
  } finally {
    await database.db.execute(sql.raw(`ALTER TABLE ${table}_gone RENAME TO ${table}`))
  }
}

t.test('failing paths', async (t) => {
  // Refused keys, wherever a caller puts them.
  for (const url of [`/api/usage?key=${botKey.key}`, `/api/usage?apiKey=${botKey.key}`, `/api/usage/summary?api_key=${botKey.key}&token=${revoked.key}`, `/nowhere?key=${botKey.key}`]) {
    const res = await app.inject({ method: 'GET', url })
    t.ok([401, 404].includes(res.statusCode), `${url.split('?')[0]} refused`)
  }
  t.equal((await app.inject({ method: 'GET', url: '/api/usage', headers: { 'x-api-key': botKey.key } })).statusCode, 401)
  t.equal((await app.inject({ method: 'GET', url: '/api/usage', headers: bearer(revoked.key) })).statusCode, 401, 'revoked key')
  t.equal((await app.inject({ method: 'GET', url: '/api/usage', headers: { authorization: `Basic ${botKey.key}` } })).statusCode, 401)

  // Validation errors around secrets.
  const shortSecret = await app.inject({ method: 'POST', url: '/api/budgets', headers: admin, payload: { period: 'month', limitUsd: 1, channels: { webhook: { url: webhook.url, secret: 'whsec_short' } } } })
  t.equal(shortSecret.statusCode, 400)
  const badToken = await app.inject({ method: 'POST', url: '/api/budgets', headers: admin, payload: { period: 'month', limitUsd: 1, channels: { telegram: { chatId: 5, botToken: `${dedicatedBotToken}!` } } } })
  t.equal(badToken.statusCode, 400)
  const badJson = await app.inject({
    method: 'POST',
    url: '/api/budgets',
    headers: { ...admin, 'content-type': 'application/json' },
    payload: `{"channels":{"webhook":{"url":"${webhook.url}","secret":"${chosenWebhookSecret}"}},,}`,
  })
  t.equal(badJson.statusCode, 400, 'invalid JSON holding a secret')
  const badKeyBody = await app.inject({ method: 'POST', url: '/api/keys', headers: admin, payload: { name: 'x', scopes: ['root'], key: botKey.key } })
  t.equal(badKeyBody.statusCode, 400)

  // Failed inserts: the SQL parameters hold the webhook secret and the Telegram token.
  await withTableGone('budgets', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/budgets',
      headers: admin,
      payload: { period: 'month', limitUsd: 1, channels: { webhook: { url: webhook.url, secret: chosenWebhookSecret }, telegram: { chatId: 5, botToken: dedicatedBotToken } } },
    })
    t.ok(res.statusCode >= 500, `budget insert fails (${res.statusCode})`)
  })
  await withTableGone('api_keys', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/keys', headers: admin, payload: { name: 'during outage', scopes: ['read'] } })
    t.ok(res.statusCode >= 500, `key insert fails (${res.statusCode})`)
    const lookup = await app.inject({ method: 'GET', url: '/api/usage', headers: bearer(`usk_${randomBytes(24).toString('base64url')}`) })
    t.ok(lookup.statusCode >= 500, `key lookup fails (${lookup.statusCode})`)
  })
  await withTableGone('usage_events', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/usage', headers: bearer(botKey.key), payload: { ...SEED_EVENT, botId: 'bot_x' } })
    t.ok(res.statusCode >= 500, `ingest fails (${res.statusCode})`)
  })

  // Failed deliveries on every channel: the webhook answers 500, Telegram refuses the token, SMTP is down.
  webhook.failNext(500, 500)
  const budget = await app.inject({
    method: 'POST',
    url: '/api/budgets',
    headers: admin,
    payload: {
      period: 'month',
      limitUsd: 0.001,
      thresholds: [50],
      notifyProjected: false,
      channels: { webhook: { url: webhook.url }, email: { to: ['ops@example.com'] }, telegram: { chatId: 5, botToken: dedicatedBotToken } },
    },
  })
  t.equal(budget.statusCode, 201)
  const created = budget.json() as { id: string; channels: { webhook: { secret: string } } }
  secrets.set('generated webhook secret', created.channels.webhook.secret)
  const second = await app.inject({
    method: 'POST',
    url: '/api/budgets',
    headers: admin,
    payload: { period: 'month', limitUsd: 0.001, thresholds: [50], notifyProjected: false, channels: { telegram: { chatId: 6 } } },
  })
  t.equal(second.statusCode, 201, 'a budget on the default Telegram token')
  const usage = await app.inject({ method: 'POST', url: '/api/usage', headers: bearer(botKey.key), payload: { ...SEED_EVENT, botId: 'bot_x', provider: 'acme', model: 'acme-x', estimatedCost: 1 } })
  t.equal(usage.statusCode, 201)
  await waitFor(
    async () => {
      const res = await app.inject({ method: 'GET', url: '/api/alerts?limit=50', headers: admin })
      const alerts = (res.json() as { alerts: { deliveries: { status: string }[] }[] }).alerts
      const deliveries = alerts.flatMap((a) => a.deliveries)
      return deliveries.length === 4 && deliveries.every((d) => d.status === 'failed')
    },
    'every delivery to fail for good',
    30_000,
  )
})

t.test('the log holds none of the secrets', async (t) => {
  const log = rawLog()
  t.ok(log.split('\n').length > 50, 'trace logging was on')
  for (const [name, secret] of secrets) t.notOk(log.includes(secret), `no ${name} in the log`)
  t.notOk(/Failed query|params:|INSERT INTO|insert into/.test(log), 'no SQL text or parameters')
  t.notOk(/usk_\[redacted\]|whsec_\[redacted\]|\[redacted bot token\]/.test(log), 'nothing needed the last-resort scrubber: every path logs safely by construction')
  t.match(log, /"url":"\/api\/usage","query":"\[redacted\]"/, 'requests with a query string log their path')
  t.match(log, /"route":"POST \/api\/budgets"/, 'errors name their route')
  t.match(log, /"sqlState":"42P01"/, 'database errors keep their SQLSTATE')
})
