import Fastify from 'fastify'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { Errors } from '../../src/errors.js'
import { errorHandler } from '../../src/plugins/error-handler.js'

// The error handler alone on a bare Fastify (no database): Fastify's own body errors come out as
// the errors declared in src/errors.ts, with their declared status, code and message.
const limits = { bodyLimit: 1024, queryTimeoutMs: 1000, pgConnectTimeoutMs: 1000 }

t.test("Fastify's body errors become our declared errors", async (t) => {
  const app = Fastify({ logger: false, bodyLimit: limits.bodyLimit })
  await app.register(errorHandler, { config: limits })
  app.post('/echo', { schema: { body: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } } }, async (request) => request.body)
  t.teardown(() => app.close())

  const cases = [
    { name: 'invalid JSON', headers: { 'content-type': 'application/json' }, payload: '{"n":', expected: new Errors.invalidJson(''), prefix: true },
    { name: 'empty JSON body', headers: { 'content-type': 'application/json' }, payload: '', expected: new Errors.emptyJson() },
    { name: 'body too large', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ n: 1, pad: 'x'.repeat(2000) }), expected: new Errors.bodyTooLarge(limits.bodyLimit) },
    { name: 'text/plain', headers: { 'content-type': 'text/plain' }, payload: 'hello', expected: new Errors.unsupportedMediaType('text/plain') },
    { name: 'validation', headers: { 'content-type': 'application/json' }, payload: '{}', expected: new Errors.validation('body.n is required') },
  ]
  for (const c of cases) {
    const res = await app.inject({ method: 'POST', url: '/echo', headers: c.headers, payload: c.payload })
    t.equal(res.statusCode, c.expected.statusCode, `${c.name}: status`)
    t.equal(res.json().code, c.expected.code, `${c.name}: code`)
    if ('prefix' in c) t.ok(res.json().message.startsWith(c.expected.message), `${c.name}: message`)
    else t.equal(res.json().message, c.expected.message, `${c.name}: message`)
  }
  const missing = await app.inject({ method: 'GET', url: '/nowhere?key=secret' })
  t.same(missing.json(), { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: 'Route GET /nowhere not found' })
})

t.test('every declared error is used somewhere in src/ (none declared and bypassed)', async (t) => {
  const root = path.resolve(import.meta.dirname, '../../src')
  const sources = (readdirSync(root, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts') && f !== 'errors.ts')
    .map((f) => readFileSync(path.join(root, f), 'utf8'))
    .join('\n')
  for (const name of Object.keys(Errors)) t.match(sources, new RegExp(`Errors\\.${name}\\b`), `Errors.${name} is used`)
})
