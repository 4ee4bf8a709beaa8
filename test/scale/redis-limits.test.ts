import { Redis } from 'ioredis'
import t from 'tap'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { freePort, redisTestPrefix, startPrivateRedis } from '../helpers/instances.js'

const database = await createTestDatabase(t)

async function readKey(app: Awaited<ReturnType<typeof buildTestApp>>['app'], name: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/api/keys', headers: bearer(ADMIN_KEY), payload: { name, scopes: ['read'] } })
  return (res.json() as { key: string }).key
}

async function statuses(app: Awaited<ReturnType<typeof buildTestApp>>['app'], key: string, n: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push((await app.inject({ method: 'GET', url: '/api/prices', headers: bearer(key) })).statusCode)
  return out
}

t.test('two apps share one counter through Redis; with Redis stopped each keeps serving under its own limit', async (t) => {
  const redis = await startPrivateRedis(t)
  // A stall of a loaded machine must not pass for a hung Redis here (see the SIGSTOP test for that).
  const env = { REDIS_URL: redis.url, REDIS_KEY_PREFIX: redisTestPrefix(), REDIS_COMMAND_TIMEOUT_MS: '10000', RATE_LIMIT_MAX: '6', RATE_LIMIT_WINDOW_MS: '600000' }
  const first = await buildTestApp(t, database, env)
  const second = await buildTestApp(t, database, env)
  await Promise.all([first.app.ready(), second.app.ready()])
  const shared = await readKey(first.app, 'shared')

  const together = [...(await statuses(first.app, shared, 4)), ...(await statuses(second.app, shared, 4))]
  t.same(together, [200, 200, 200, 200, 200, 200, 429, 429], 'six in total across both apps')

  await redis.kill()
  const alone = await readKey(first.app, 'alone')
  t.same(await statuses(first.app, alone, 8), [200, 200, 200, 200, 200, 200, 429, 429], 'the first app limits by itself')
  t.same(await statuses(second.app, alone, 8), [200, 200, 200, 200, 200, 200, 429, 429], 'and so does the second')
  const ingest = await first.app.inject({
    method: 'POST',
    url: '/api/usage',
    headers: bearer(ADMIN_KEY),
    payload: { botId: 'bot_redis', provider: 'acme', model: 'acme-large', inputTokens: 1, outputTokens: 1 },
  })
  t.equal(ingest.statusCode, 201, 'ingest does not depend on Redis')
  const warnings = first.logs.filter((l) => l.level === 40 && /Redis is unreachable/.test(String(l.msg)))
  t.equal(warnings.length, 1, 'one warning for the outage, not one per request')
  t.notMatch(first.rawLog(), new RegExp(redis.url.replace(/[/.:]/g, '\\$&')), 'the Redis URL (it may carry a password) is not logged')
})

t.test('an unreachable Redis at start: the app starts and limits per instance', async (t) => {
  const port = await freePort()
  const built = await buildTestApp(t, database, { REDIS_URL: `redis://127.0.0.1:${port}`, RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '600000' })
  const { app } = built
  await app.ready()
  const key = await readKey(app, 'no-redis')
  t.same(await statuses(app, key, 5), [200, 200, 200, 429, 429])
  t.ok(built.logs.some((l) => l.level === 40 && /Redis is unreachable/.test(String(l.msg))), 'the degradation is logged as a warning')
})

t.test('a hung Redis (stopped with SIGSTOP): requests are served, each instance limits by itself', async (t) => {
  const redis = await startPrivateRedis(t)
  const built = await buildTestApp(t, database, { REDIS_URL: redis.url, REDIS_KEY_PREFIX: redisTestPrefix(), RATE_LIMIT_MAX: '4', RATE_LIMIT_WINDOW_MS: '600000' })
  await built.app.ready()
  const key = await readKey(built.app, 'hung')
  redis.signal('SIGSTOP')
  t.teardown(() => redis.signal('SIGCONT'))
  t.same(await statuses(built.app, key, 6), [200, 200, 200, 200, 429, 429], 'served; the limit counted here')
  t.ok(built.logs.some((l) => l.level === 40 && /Redis is unreachable/.test(String(l.msg))), 'the degradation is logged as a warning')
})

t.test('the counter lives in Redis under the configured prefix', async (t) => {
  const redis = await startPrivateRedis(t)
  const prefix = redisTestPrefix()
  const { app } = await buildTestApp(t, database, { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, RATE_LIMIT_MAX: '100' })
  await app.ready()
  const key = await readKey(app, 'counted')
  await statuses(app, key, 3)
  const probe = new Redis(redis.url, { maxRetriesPerRequest: 0 })
  t.teardown(() => probe.disconnect())
  const keys = await probe.keys('*')
  t.ok(keys.length > 0 && keys.every((k) => k.startsWith(prefix)), 'every key carries the prefix')
  const values = await Promise.all(keys.map((k) => probe.get(k)))
  t.ok(values.includes('3'), 'three requests of one key counted once each')
  const ttls = await Promise.all(keys.map((k) => probe.pttl(k)))
  t.ok(ttls.every((ms) => ms > 0 && ms <= 60_000), 'each counter expires with its window')
})
