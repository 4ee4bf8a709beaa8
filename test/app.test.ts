import { readFileSync } from 'node:fs'
import t from 'tap'
import { OPENAPI_PATH, renderOpenApi } from '../src/plugins/openapi.js'
import { buildTestApp } from './helpers/app.js'
import { createTestDatabase } from './helpers/db.js'

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)

t.test('openapi.yaml is what the routes produce (run `npm run openapi` after changing a route)', async (t) => {
  t.equal(await renderOpenApi(app), readFileSync(OPENAPI_PATH, 'utf8'))
})

t.test('Swagger UI and the JSON spec are served', async (t) => {
  const ui = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(ui.statusCode, 200)
  t.match(ui.headers['content-type'], /text\/html/)
  const spec = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(spec.statusCode, 200)
  const doc = spec.json()
  t.ok(doc.paths['/api/usage'].post, 'POST /api/usage documented')
  t.ok(doc.paths['/api/usage/batch'].post, 'POST /api/usage/batch documented')
})

t.test('every route documents its tags and all its responses', async (t) => {
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json() as {
    paths: Record<string, Record<string, { tags?: string[]; responses: Record<string, unknown> }>>
  }
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      t.ok(op.tags && op.tags.length > 0, `${method} ${path} has a tag`)
      t.ok(Object.keys(op.responses).some((s) => s.startsWith('2')), `${method} ${path} documents success`)
    }
  }
})

t.test('CORS: no cross-origin access unless configured', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://evil.example' } })
  t.notOk(res.headers['access-control-allow-origin'])
  const db2 = await createTestDatabase(t)
  const { app: open } = await buildTestApp(t, db2, { CORS_ORIGINS: 'https://dash.example.com' })
  const ok = await open.inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://dash.example.com' } })
  t.equal(ok.headers['access-control-allow-origin'], 'https://dash.example.com')
  const other = await open.inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://evil.example' } })
  t.notOk(other.headers['access-control-allow-origin'])
})

t.test('responses carry a request id', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'abc-123' } })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-request-id'], 'abc-123')
})
