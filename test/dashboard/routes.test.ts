import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import Fastify from 'fastify'
import t from 'tap'
import { dashboardRoutes } from '../../src/dashboard/routes.js'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { ev, get, seed } from '../analytics/support.js'

/** How the service serves the built page, and the two API additions the page reads. */

t.test('the built page: content types, cache headers, redirect, unknown files', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'dashboard-dist-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(path.join(dir, 'assets'))
  writeFileSync(path.join(dir, 'index.html'), '<!doctype html><script type="module" src="/dashboard/assets/index-abc.js"></script>')
  writeFileSync(path.join(dir, 'assets', 'index-abc.js'), 'console.log(1)')
  writeFileSync(path.join(dir, 'assets', 'index-abc.css'), 'body{}')
  const app = Fastify()
  await app.register(dashboardRoutes, { dir })
  t.teardown(() => app.close())

  const root = await app.inject('/')
  t.equal(root.statusCode, 302)
  t.equal(root.headers.location, '/dashboard')
  for (const url of ['/dashboard', '/dashboard/']) {
    const page = await app.inject(url)
    t.equal(page.statusCode, 200, url)
    t.equal(page.headers['content-type'], 'text/html; charset=utf-8')
    t.equal(page.headers['cache-control'], 'no-cache', 'the page is revalidated, so a new build shows at once')
  }
  const js = await app.inject('/dashboard/assets/index-abc.js')
  t.equal(js.headers['content-type'], 'text/javascript; charset=utf-8')
  t.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable', 'hashed assets are cached for good')
  t.equal(js.body, 'console.log(1)')
  t.equal((await app.inject('/dashboard/assets/index-abc.css')).headers['content-type'], 'text/css; charset=utf-8')
  const missing = await app.inject('/dashboard/assets/nope.js')
  t.equal(missing.statusCode, 404)
  t.equal((await app.inject('/dashboard/../package.json')).statusCode, 404, 'nothing outside the build is served')
})

t.test('without a build the page says how to build it', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'dashboard-empty-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const app = Fastify({ logger: false })
  await app.register(dashboardRoutes, { dir })
  t.teardown(() => app.close())
  const res = await app.inject('/dashboard')
  t.equal(res.statusCode, 404)
  t.match(res.body, /npm run build:dashboard/)
})

t.test('GET /api/keys/self and timeseries percentiles', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database)
  await seed(app, [
    ev('a', '2026-01-05T10:10:00Z', { latencyMs: 100 }),
    ev('b', '2026-01-05T10:20:00Z', { latencyMs: 300 }),
    ev('c', '2026-01-06T10:20:00Z', { botId: 'bot_b' }),
  ])
  const admin = await get<{ id: string | null; scopes: string[]; botId: string | null }>(app, '/api/keys/self')
  t.same(admin.body, { id: null, scopes: ['ingest', 'read', 'admin', 'metrics'], botId: null })

  const created = await app.inject({ method: 'POST', url: '/api/keys', headers: bearer(ADMIN_KEY), payload: { name: 'r', scopes: ['read'], botId: 'bot_b' } })
  const { key, id } = created.json() as { key: string; id: string }
  const bound = await get<{ id: string; scopes: string[]; botId: string }>(app, '/api/keys/self', key)
  t.same(bound.body, { id, scopes: ['read'], botId: 'bot_b' })
  t.notOk(JSON.stringify(bound.body).includes(key), 'never the secret')
  t.equal((await get(app, '/api/keys/self', 'usk_wrong')).status, 401)

  const q = '/api/usage/timeseries?startDate=2026-01-05&endDate=2026-01-06&tz=UTC'
  const plain = await get<{ buckets: Record<string, unknown>[] }>(app, q)
  t.notOk('latency' in plain.body.buckets[0], 'no percentiles unless asked for')
  const withLatency = await get<{ buckets: { latency: { samples: number; p50Ms: number | null; maxMs: number | null } }[] }>(app, `${q}&percentiles=true`)
  t.equal(withLatency.status, 200)
  t.equal(withLatency.body.buckets[0].latency.samples, 2)
  t.equal(withLatency.body.buckets[0].latency.maxMs, 300)
  t.ok((withLatency.body.buckets[0].latency.p50Ms ?? 0) >= 100 && (withLatency.body.buckets[0].latency.p50Ms ?? 0) <= 125, 'p50 within the bucket of 100 ms')
  t.equal(withLatency.body.buckets[1].latency.samples, 0)
  t.equal(withLatency.body.buckets[1].latency.p50Ms, null)
})
