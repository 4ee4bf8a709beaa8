import t from 'tap'
import { ADMIN_KEY, bearer, buildTestApp } from './helpers/app.js'
import { createTestDatabase } from './helpers/db.js'

const database = await createTestDatabase(t)
const built = await buildTestApp(t, database)
const { app } = built

/** The policy every page must work under, as agreed for the docs and the dashboard. */
const EXPECTED_CSP =
  "default-src 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; " +
  "script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'"

const directives = (csp: string) =>
  csp
    .split(';')
    .map((d) => d.trim().replace(/\s+/g, ' '))
    .filter(Boolean)

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

interface Case {
  name: string
  method?: 'GET' | 'POST'
  url: string
  headers?: Record<string, string>
  payload?: string
  status: number
}

const CASES: Case[] = [
  { name: 'liveness', url: '/healthz', status: 200 },
  { name: 'Swagger UI', url: '/docs/', status: 200 },
  { name: 'Swagger UI script', url: '/docs/static/swagger-initializer.js', status: 200 },
  { name: 'OpenAPI JSON', url: '/docs/json', status: 200 },
  { name: 'unknown page', url: '/nope', status: 404 },
  { name: 'API answer', url: '/api/usage', headers: bearer(ADMIN_KEY), status: 200 },
  { name: 'API without a key', url: '/api/usage', status: 401 },
  { name: 'API validation error', url: '/api/usage?limit=0', headers: bearer(ADMIN_KEY), status: 400 },
  {
    name: 'API malformed JSON',
    method: 'POST',
    url: '/api/usage',
    headers: { ...bearer(ADMIN_KEY), 'content-type': 'application/json' },
    payload: '{',
    status: 400,
  },
  { name: 'unknown API route', url: '/api/nope', headers: bearer(ADMIN_KEY), status: 404 },
]

t.test('every response carries the security headers and exactly the agreed CSP', async (t) => {
  for (const c of CASES) {
    const res = await app.inject({ method: c.method ?? 'GET', url: c.url, headers: c.headers, payload: c.payload })
    t.equal(res.statusCode, c.status, `${c.name}: status`)
    t.same(directives(String(res.headers['content-security-policy'])), directives(EXPECTED_CSP), `${c.name}: CSP`)
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${c.name}: nosniff`)
    t.equal(res.headers['referrer-policy'], 'no-referrer', `${c.name}: referrer policy`)
    t.equal(res.headers['x-frame-options'], 'DENY', `${c.name}: frame options`)
    if (c.url.startsWith('/api/')) t.equal(res.headers['cache-control'], 'no-store', `${c.name}: no-store`)
    else t.not(res.headers['cache-control'], 'no-store', `${c.name}: static and public answers may be cached`)
  }
})

t.test('Swagger UI needs nothing the CSP refuses: no inline script, every script same-origin', async (t) => {
  const html = (await app.inject({ method: 'GET', url: '/docs/' })).body
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)]
  t.ok(scripts.length > 0, 'the page has scripts')
  for (const [, attrs, body] of scripts) {
    const src = /\bsrc="([^"]+)"/.exec(attrs)?.[1]
    t.ok(src, `script has a src (${attrs.trim()})`)
    t.equal(body.trim(), '', 'no inline code')
    t.notMatch(String(src), /^(https?:)?\/\//, 'same-origin')
    const res = await app.inject({ method: 'GET', url: new URL(String(src), 'http://x/docs/').pathname })
    t.equal(res.statusCode, 200, `${src} loads`)
    t.match(res.headers['content-type'], /javascript/)
  }
  t.notMatch(html, /\son[a-z]+=/i, 'no inline event handlers')
})

t.test('request ids: a short safe client id is kept; a long or odd one is replaced by a generated id', async (t) => {
  const cases: { given: string; kept: boolean }[] = [
    { given: 'abc-123', kept: true },
    { given: 'trace:01HF.x_y-z', kept: true },
    { given: 'a'.repeat(64), kept: true },
    { given: 'a'.repeat(65), kept: false },
    { given: 'x'.repeat(8192), kept: false },
    { given: 'two words', kept: false },
    { given: '<script>alert(1)</script>', kept: false },
    { given: '{"level":60}', kept: false },
    { given: '', kept: false },
  ]
  for (const { given, kept } of cases) {
    const res = await app.inject({ method: 'GET', url: '/nope', headers: { 'x-request-id': given } })
    const echoed = String(res.headers['x-request-id'])
    const label = `${given.slice(0, 30)}${given.length > 30 ? `... (${given.length} chars)` : ''}`
    if (kept) t.equal(echoed, given, `${label}: echoed`)
    else t.match(echoed, UUID, `${label}: replaced by a generated id`)
    const line = built.logs.find((l) => l.reqId === echoed)
    t.ok(line, `${label}: the log's reqId is the answered id`)
    t.notOk(
      built.logs.some((l) => l.reqId === given && !kept),
      `${label}: the client's value is not the reqId`,
    )
  }
  const a = await app.inject({ method: 'GET', url: '/healthz' })
  const b = await app.inject({ method: 'GET', url: '/healthz' })
  t.match(String(a.headers['x-request-id']), UUID, 'generated without a header')
  t.not(a.headers['x-request-id'], b.headers['x-request-id'], 'unique')
})

t.test('rate-limited and oversized API requests are answered with the same headers', async (t) => {
  const { app: strict } = await buildTestApp(t, database, { RATE_LIMIT_MAX: '1', BODY_LIMIT_BYTES: '1024' })
  const big = await strict.inject({
    method: 'POST',
    url: '/api/usage',
    headers: { ...bearer(ADMIN_KEY), 'content-type': 'application/json' },
    payload: JSON.stringify({ padding: 'x'.repeat(4096) }),
  })
  const limited = await strict.inject({ method: 'GET', url: '/api/usage', headers: bearer(ADMIN_KEY) })
  for (const [name, res, status] of [['oversized body', big, 413], ['rate limited', limited, 429]] as const) {
    t.equal(res.statusCode, status, `${name}: status`)
    t.equal(res.headers['cache-control'], 'no-store', `${name}: no-store`)
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${name}: nosniff`)
    t.same(directives(String(res.headers['content-security-policy'])), directives(EXPECTED_CSP), `${name}: CSP`)
  }
})
