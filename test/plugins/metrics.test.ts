import t from 'tap'
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { listenMetrics } from '../../src/plugins/metrics.js'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase, ENGINE } from '../helpers/db.js'
import { waitFor } from '../helpers/wait.js'

/** Scrape, parse the exposition format, send known traffic, scrape again: counters moved by exactly that. */

type Samples = Map<string, number>

/** Parses Prometheus text exposition: `name{a="x",b="y"} value` lines, keyed with labels sorted. */
function parse(text: string): Samples {
  const samples: Samples = new Map()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) throw new Error(`not exposition format: ${line}`)
    const labels = m[2] ? [...m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}=${l[2]}`).sort() : []
    samples.set(`${m[1]}{${labels.join(',')}}`, Number(m[3]))
  }
  return samples
}

const key = (name: string, labels: Record<string, string> = {}) =>
  `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .sort()
    .join(',')}}`

async function scrape(app: FastifyInstance, auth = ADMIN_KEY): Promise<Samples> {
  const res = await app.inject({ url: '/metrics', headers: bearer(auth) })
  if (res.statusCode !== 200) throw new Error(`scrape: ${res.statusCode} ${res.body}`)
  return parse(res.body)
}

function delta(before: Samples, after: Samples, name: string, labels: Record<string, string> = {}): number {
  const k = key(name, labels)
  return (after.get(k) ?? 0) - (before.get(k) ?? 0)
}

const database = await createTestDatabase(t)

t.test('GET /metrics', async (t) => {
  const { app } = await buildTestApp(t, database, { METRICS_MAX_BOTS: '2' })
  const keyWith = async (scopes: string[]) =>
    ((await app.inject({ method: 'POST', url: '/api/keys', headers: bearer(ADMIN_KEY), payload: { name: scopes.join(), scopes } })).json() as { key: string }).key

  await t.test('needs a key with the metrics scope (admin implies it)', async (t) => {
    t.equal((await app.inject({ url: '/metrics' })).statusCode, 401)
    t.equal((await app.inject({ url: '/metrics', headers: bearer(await keyWith(['ingest', 'read'])) })).statusCode, 403)
    const res = await app.inject({ url: '/metrics', headers: bearer(await keyWith(['metrics'])) })
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
    t.ok(parse(res.body).size > 0)
  })

  await t.test('counters move by exactly the traffic sent', async (t) => {
    const before = await scrape(app)
    const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, headers: bearer(ADMIN_KEY), payload: payload as object })
    const event = (botId: string, id: string, extra: Record<string, unknown> = {}) => ({
      id,
      botId,
      provider: 'openai',
      model: 'gpt-4o-mini',
      inputTokens: 1000,
      outputTokens: 200,
      cacheReadTokens: 400,
      reasoningTokens: 50,
      ...extra,
    })
    const costs: number[] = []
    for (const [bot, id] of [['bot-a', 'e1'], ['bot-b', 'e2'], ['bot-c', 'e3']]) {
      const res = await post('/api/usage', event(bot, id))
      t.equal(res.statusCode, 201)
      costs.push((res.json() as { estimatedCost: number }).estimatedCost)
    }
    t.equal((await post('/api/usage', event('bot-a', 'e1'))).statusCode, 200, 'a duplicate')
    t.equal((await post('/api/usage', { botId: 'bot-a' })).statusCode, 400, 'an invalid event')
    const batch = await post('/api/usage/batch', {
      events: [event('bot-a', 'b1'), event('bot-a', 'b2', { provider: 'acme', model: 'acme-unknown' }), { botId: 'bot-a', model: 'x' }],
    })
    t.match(batch.json(), { created: 2, invalid: 1 })
    const after = await scrape(app)

    const d = (name: string, labels: Record<string, string> = {}) => delta(before, after, name, labels)
    t.equal(d('usage_ingest_events_total', { route: '/api/usage', outcome: 'created' }), 3)
    t.equal(d('usage_ingest_events_total', { route: '/api/usage', outcome: 'duplicate' }), 1)
    t.equal(d('usage_ingest_events_total', { route: '/api/usage/batch', outcome: 'created' }), 2)
    t.equal(d('usage_ingest_events_total', { route: '/api/usage/batch', outcome: 'rejected' }), 1)
    t.equal(d('usage_ingest_requests_total', { route: '/api/usage' }), 4)
    t.equal(d('usage_ingest_requests_total', { route: '/api/usage/batch' }), 1)
    t.equal(d('usage_ingest_rejections_total', { route: '/api/usage', reason: 'validation_error' }), 1)
    t.equal(d('usage_ingest_rejections_total', { route: '/api/usage/batch', reason: 'invalid_event' }), 1)
    t.equal(d('http_request_duration_seconds_count', { method: 'POST', route: '/api/usage', status: '201' }), 3)
    t.equal(d('http_request_duration_seconds_count', { method: 'POST', route: '/api/usage', status: '400' }), 1)
    t.equal(d('usage_group_commit_flush_events_sum'), 6, 'every event handed to the writer, duplicates included')
    t.ok(d('usage_group_commit_flush_duration_seconds_count') >= 1)
    t.equal(after.get(key('usage_ingest_queue_events')), 0)

    const openai = { provider: 'openai', model: 'gpt-4o-mini' }
    // METRICS_MAX_BOTS=2: bot-a and bot-b keep their label, bot-c is `other`.
    t.equal(d('llm_calls_total', { bot: 'bot-a', ...openai }), 2)
    t.equal(d('llm_calls_total', { bot: 'bot-b', ...openai }), 1)
    t.equal(d('llm_calls_total', { bot: 'other', ...openai }), 1)
    t.equal(d('llm_calls_total', { bot: 'bot-a', provider: 'acme', model: 'acme-unknown' }), 1)
    t.equal(d('llm_tokens_total', { bot: 'bot-a', ...openai, type: 'input' }), 2000)
    t.equal(d('llm_tokens_total', { bot: 'bot-a', ...openai, type: 'cache_read' }), 800)
    t.equal(d('llm_tokens_total', { bot: 'bot-b', ...openai, type: 'output' }), 200)
    t.equal(d('llm_tokens_total', { bot: 'other', ...openai, type: 'reasoning' }), 50)
    t.ok(costs[0] > 0, 'the catalog priced it')
    t.equal(Number(d('llm_cost_usd_total', { bot: 'bot-b', ...openai }).toFixed(9)), costs[1])
    t.equal(d('usage_unpriced_events_total', { provider: 'acme' }), 1)
    t.equal(d('usage_unpriced_events_total', { provider: 'openai' }), 0)
    if (ENGINE === 'postgres') t.ok(after.has(key('db_pool_connections', { state: 'in_use' })), 'pool gauges on Postgres')
    t.ok(after.has(key('usage_rollup_lag_events')) && after.has(key('usage_rollup_lag_seconds')), 'the rollup lag gauges')
    // The worker folds soon after each commit: the lag goes back to zero.
    let lag = after
    for (let i = 0; i < 100 && lag.get(key('usage_rollup_lag_events')) !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100))
      lag = await scrape(app)
    }
    t.equal(lag.get(key('usage_rollup_lag_events')), 0, 'nothing left to fold')
  })

  await t.test('the Grafana dashboard queries only metrics the service exports', async (t) => {
    const dashboard = JSON.parse(readFileSync(new URL('../../deploy/grafana/dashboards/llm-usage.json', import.meta.url), 'utf8')) as {
      panels: { targets: { expr: string }[] }[]
    }
    const exported = new Set([...(await scrape(app)).keys()].map((k) => k.slice(0, k.indexOf('{'))))
    const used = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((q) => [...q.expr.matchAll(/\b((?:llm|usage|http|db|budget)_[a-z_]+)\b/g)].map((m) => m[1]))))
    t.ok(used.size >= 10)
    // Counters with no sample yet are absent from the samples; their HELP line is not.
    const text = (await app.inject({ url: '/metrics', headers: bearer(ADMIN_KEY) })).body
    for (const name of used) {
      if (name.startsWith('db_pool_') && ENGINE !== 'postgres') continue // the embedded engine has no pool
      t.ok(exported.has(name) || text.includes(`# HELP ${name} `) || text.includes(`# HELP ${name.replace(/_(bucket|count|sum)$/, '')} `), name)
    }
  })

  await t.test('OTLP exports are counted as ingest too', async (t) => {
    const before = await scrape(app)
    const attrs = (tokens: number) =>
      [
        ['gen_ai.provider.name', { stringValue: 'openai' }],
        ['gen_ai.request.model', { stringValue: 'gpt-4o-mini' }],
        ['gen_ai.usage.input_tokens', { intValue: tokens }],
        ['gen_ai.usage.output_tokens', { intValue: 1 }],
      ].map(([k, value]) => ({ key: k, value }))
    const span = (id: string, tokens: number) => ({ traceId: 'ab'.repeat(16), spanId: id.repeat(16), startTimeUnixNano: '1767261600000000000', endTimeUnixNano: '1767261601000000000', attributes: attrs(tokens) })
    const body = { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'bot-a' } }] }, scopeSpans: [{ spans: [span('1', 5), span('2', -1)] }] }] }
    const res = await app.inject({ method: 'POST', url: '/v1/traces', headers: bearer(ADMIN_KEY), payload: body })
    t.equal(res.statusCode, 200)
    const after = await scrape(app)
    t.equal(delta(before, after, 'usage_ingest_events_total', { route: '/v1/traces', outcome: 'created' }), 1)
    t.equal(delta(before, after, 'usage_ingest_rejections_total', { route: '/v1/traces', reason: 'rejected_span' }), 1)
  })
})

t.test('at start, the capped bot labels go to the top spenders first', async (t) => {
  // The test above stored more cost for bot-a than for bot-b; only one bot keeps its label.
  const { app } = await buildTestApp(t, database, { METRICS_MAX_BOTS: '1' })
  for (const botId of ['bot-b', 'bot-a']) {
    const res = await app.inject({ method: 'POST', url: '/api/usage', headers: bearer(ADMIN_KEY), payload: { botId, provider: 'openai', model: 'gpt-4o-mini', inputTokens: 1, outputTokens: 1 } })
    t.equal(res.statusCode, 201)
  }
  const samples = await scrape(app)
  t.equal(samples.get(key('llm_calls_total', { bot: 'bot-a', provider: 'openai', model: 'gpt-4o-mini' })), 1)
  t.equal(samples.get(key('llm_calls_total', { bot: 'other', provider: 'openai', model: 'gpt-4o-mini' })), 1, 'bot-b, seen first, is other')
})

t.test('load shedding is counted; METRICS_PORT serves the same registry without a key', async (t) => {
  // Any heap is over one byte: once under-pressure has sampled, every request is shed.
  const { app } = await buildTestApp(t, database, { MAX_HEAP_USED_BYTES: '1' })
  await app.ready()
  const { server, close } = await listenMetrics(app.metrics, 0, '127.0.0.1')
  t.teardown(close)
  const port = (server.address() as { port: number }).port
  const scrapePort = async () => parse(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())
  t.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404)

  let shed = 0
  const before = await scrapePort()
  await waitFor(async () => {
    const res = await app.inject({ method: 'POST', url: '/api/usage', headers: bearer(ADMIN_KEY), payload: { botId: 'b', provider: 'p', model: 'm', inputTokens: 1, outputTokens: 1 } })
    if (res.statusCode === 503) shed++
    return shed >= 2
  }, 'a shed request')
  const after = await scrapePort()
  t.equal(delta(before, after, 'http_load_shed_total', { route: '/api/usage' }), 2)
  t.equal(delta(before, after, 'usage_ingest_rejections_total', { route: '/api/usage', reason: 'overloaded' }), 2)
})
