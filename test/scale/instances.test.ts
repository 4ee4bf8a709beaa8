import { sql } from 'drizzle-orm'
import { Redis } from 'ioredis'
import t from 'tap'
import { createTestDatabase, ENGINE, TEST_DATABASE_URL } from '../helpers/db.js'
import { startWebhookReceiver } from '../helpers/fake-alert-receivers.js'
import { call, redisTestPrefix, startInstance, type Instance } from '../helpers/instances.js'

// Several processes sharing one database need a server; the embedded engine is one process's
// private file (and an exclusive one), so none of this has a meaning there.
if (ENGINE !== 'postgres' || TEST_DATABASE_URL === null) {
  t.pass('skipped', { skip: 'several instances need a shared Postgres (run with DATABASE_URL)' })
} else {
  const databaseUrl = TEST_DATABASE_URL
  const database = await createTestDatabase(t)
  const SHARED_REDIS = 'redis://127.0.0.1:6379'
  const RATE_LIMIT_MAX = 200

  const baseEnv = {
    DATABASE_URL: databaseUrl,
    DATABASE_SCHEMA: database.schema,
    MIGRATE: 'false',
    REDIS_URL: SHARED_REDIS,
    // Three servers and the test on a loaded 2-core machine can stall past the 1 s default;
    // a timed-out command counts locally, which this file would see as a leak in the limit.
    REDIS_COMMAND_TIMEOUT_MS: '10000',
    // The shared limit: one window covers the whole file, so nothing resets it mid-test.
    RATE_LIMIT_MAX: String(RATE_LIMIT_MAX),
    RATE_LIMIT_WINDOW_MS: '600000',
    // The budget's webhook is a fake receiver on 127.0.0.1.
    ALERT_WEBHOOK_ALLOW_PRIVATE: 'true',
    // Caches that would hide a change for minutes: only the change feed can explain a fast one.
    AUTH_CACHE_TTL_MS: '300000',
    PRICE_REFRESH_MS: '0',
    BUDGET_DEBOUNCE_MS: '0',
    BUDGET_EVAL_INTERVAL_MS: '250',
    ALERT_RETRY_BASE_MS: '40',
  }
  const prefix = redisTestPrefix()
  const env = { ...baseEnv, REDIS_KEY_PREFIX: prefix }
  const instances: Instance[] = await Promise.all([startInstance(t, env), startInstance(t, env), startInstance(t, env)])
  const [a, b, c] = instances

  const redis = new Redis(SHARED_REDIS, { lazyConnect: true, maxRetriesPerRequest: 1 })
  await redis.connect()
  t.teardown(async () => {
    // Only this run's keys: the shared Redis is never flushed.
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  })

  /** Polls without a fixed sleep; the bound is generous: a loaded CI machine must not fail it. */
  async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  async function createKey(on: Instance, scopes: string[], name: string): Promise<{ id: string; key: string }> {
    const res = await call<{ id: string; key: string }>(on.url, 'POST', '/api/keys', { body: { name, scopes } })
    if (res.status !== 201) throw new Error(`create key: ${res.status} ${JSON.stringify(res.body)}`)
    return res.body
  }

  t.test('the rate limit holds across the three instances within one window', async (t) => {
    const { key } = await createKey(a, ['read'], 'limited')
    const total = RATE_LIMIT_MAX + 50
    const statuses: number[] = []
    for (let i = 0; i < total; i += 30) {
      const wave = Array.from({ length: Math.min(30, total - i) }, (_, j) => call(instances[(i + j) % 3].url, 'GET', '/api/prices', { key }))
      statuses.push(...(await Promise.all(wave)).map((r) => r.status))
    }
    const degraded = instances.map((i) => (i.output().match(/.*Redis is unreachable.*/) ?? [''])[0])
    t.same(degraded, ['', '', ''], 'every instance reached Redis throughout')
    t.equal(statuses.filter((s) => s === 200).length, RATE_LIMIT_MAX, 'exactly the limit was let through, in total')
    t.equal(statuses.filter((s) => s === 429).length, total - RATE_LIMIT_MAX, 'the rest was refused')
  })

  t.test('a key revoked on one instance is refused by the others, also after their listeners were cut', async (t) => {
    async function revokeAndWatch(label: string): Promise<void> {
      const { id, key } = await createKey(a, ['read'], label)
      // B and C now hold the key in a cache that would trust it for 5 minutes.
      for (const other of [b, c]) t.equal((await call(other.url, 'GET', '/api/prices', { key })).status, 200, `${label}: works before`)
      t.equal((await call(a.url, 'DELETE', `/api/keys/${id}`)).status, 200)
      t.equal((await call(a.url, 'GET', '/api/prices', { key })).status, 401, `${label}: refused at once where it was revoked`)
      await eventually(`${label}: B and C refuse the revoked key`, async () => {
        const answers = await Promise.all([b, c].map((o) => call(o.url, 'GET', '/api/prices', { key })))
        return answers.every((r) => r.status === 401)
      })
      t.pass(`${label}: refused by the other instances`)
    }
    await revokeAndWatch('first key')

    // Cut every instance's listening connection; each must reconnect by itself.
    const listener = `llm-usage-listener:${database.schema}`
    const cut = await database.rows<{ pid: number }>(
      sql`SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ${listener}`,
    )
    t.equal(cut.length, 3, 'one listening connection per instance')
    await eventually('the listeners to reconnect', async () => {
      const rows = await database.rows<{ n: number }>(
        sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = ${listener} AND pid <> ALL(${`{${cut.map((r) => r.pid).join(',')}}`}::int[])`,
      )
      return rows[0].n === 3
    })
    await revokeAndWatch('second key')
  })

  t.test('a price override created on one instance prices the others next events', async (t) => {
    const created = await call<{ id: string }>(a.url, 'POST', '/api/prices/overrides', {
      body: { provider: 'acme', modelPattern: 'acme-contract', effectiveFrom: '2020-01-01T00:00:00Z', input: 1000, output: 3000 },
    })
    t.equal(created.status, 201)
    let n = 0
    for (const other of [b, c]) {
      await eventually('the override on the other instance', async () => {
        const res = await call<{ estimatedCost: number | null; priced: boolean; priceSource: string | null }>(other.url, 'POST', '/api/usage', {
          body: { id: `ov-${n++}`, botId: 'bot_prices', provider: 'acme', model: 'acme-contract', inputTokens: 1000, outputTokens: 1000 },
        })
        if (res.status !== 201) throw new Error(`ingest: ${res.status} ${JSON.stringify(res.body)}`)
        return res.body.priced && res.body.estimatedCost === 4
      })
    }
    t.pass('B and C price with the override')
  })

  t.test('budgets fire each threshold once across the three', async (t) => {
    const webhook = await startWebhookReceiver()
    t.teardown(() => webhook.close())
    const thresholds = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    const budget = await call<{ id: string }>(a.url, 'POST', '/api/budgets', {
      body: { scope: { botId: 'bot_budget' }, period: 'month', limitUsd: 3, thresholds, notifyProjected: false, channels: { webhook: { url: webhook.url } } },
    })
    t.equal(budget.status, 201)
    const posts = Array.from({ length: 30 }, (_, i) =>
      call(instances[i % 3].url, 'POST', '/api/usage', {
        body: { id: `budget-${i}`, botId: 'bot_budget', provider: 'acme', model: 'acme-large', inputTokens: 10, outputTokens: 10, estimatedCost: 0.1 },
      }),
    )
    t.ok((await Promise.all(posts)).every((r) => r.status === 201), 'all 30 events stored')
    type Alert = { id: string; threshold: number; deliveries: { status: string }[] }
    const alerts = async () => (await call<{ alerts: Alert[] }>(a.url, 'GET', `/api/alerts?budgetId=${budget.body.id}&limit=500`)).body.alerts
    await eventually('the 100% alert, delivered', async () => {
      const list = await alerts()
      return list.some((x) => x.threshold === 100) && list.every((x) => x.deliveries.every((d) => d.status === 'delivered'))
    })
    const list = await alerts()
    t.same(list.map((x) => x.threshold).sort((p, q) => p - q), thresholds, 'each threshold recorded once')
    const delivered = list.filter((x) => x.deliveries.length > 0)
    t.ok(delivered.every((x) => x.deliveries.length === 1), 'each delivery made once')
    t.same(webhook.received.map((r) => String(r.json.id)).sort(), delivered.map((x) => x.id).sort(), 'the receiver saw each delivered alert once')
    const reported = new Set([...delivered.map((x) => x.threshold), ...webhook.received.flatMap((r) => (r.json.alsoCrossed as number[] | undefined) ?? [])])
    t.same([...reported].sort((p, q) => p - q), thresholds, 'every threshold reached the receiver, alone or with a higher one')
  })

  t.test('killing one instance under load loses no acknowledged event', async (t) => {
    const { key } = await createKey(a, ['ingest'], 'load')
    const acknowledged: string[] = []
    const alive = new Set(instances)
    let next = 0
    let killed: Promise<void> | null = null
    const worker = async () => {
      for (;;) {
        const i = next++
        if (i >= 200) return
        if (i === 60) killed = c.kill().then(() => void alive.delete(c))
        const targets = [...alive]
        const target = targets[i % targets.length]
        const id = `load-${i}`
        try {
          const res = await call(target.url, 'POST', '/api/usage', {
            key,
            body: { id, botId: 'bot_load', provider: 'acme', model: 'acme-large', inputTokens: 1, outputTokens: 1, estimatedCost: 0.001 },
          })
          if (res.status === 201 || res.status === 200) acknowledged.push(id)
        } catch {
          // The killed instance cut this request: never acknowledged, so the client would retry it.
          alive.delete(target)
        }
      }
    }
    await Promise.all(Array.from({ length: 12 }, worker))
    await killed
    t.ok(acknowledged.length >= 150, `most events were acknowledged (${acknowledged.length} of 200)`)
    const stored = await database.rows<{ id: string }>(sql`SELECT id FROM usage_events WHERE bot_id = 'bot_load'`)
    const storedIds = new Set(stored.map((r) => r.id))
    t.same(acknowledged.filter((id) => !storedIds.has(id)), [], 'every acknowledged event is stored')
  })
}
