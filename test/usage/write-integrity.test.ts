import { sql } from 'drizzle-orm'
import t from 'tap'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase, resetTables } from '../helpers/db.js'
import { countEvents, postBatch, postUsage, rollupMismatches, SEED_EVENT } from '../helpers/usage.js'

/**
 * Issue "write-path integrity": no input can fail someone else's write, a duplicate is a
 * duplicate whatever raced it, and nothing the database would refuse reaches it as a 5xx.
 */

const database = await createTestDatabase(t)
const { app, rawLog } = await buildTestApp(t, database)
t.beforeEach(() => resetTables(database))

const event = (i: number, extra: Record<string, unknown> = {}) => ({ ...SEED_EVENT, id: `evt-${i}`, botId: 'bot_a', ...extra })

/**
 * A refusal validation cannot foresee: the database itself refuses this model name (a CHECK
 * constraint, SQLSTATE 23514), as it would any value the edge let through by mistake.
 */
async function withPoisonConstraint(t: { teardown(fn: () => unknown): void }): Promise<void> {
  await database.db.execute(sql`ALTER TABLE usage_events ADD CONSTRAINT poison_for_test CHECK (model <> 'poison-model')`)
  t.teardown(() => database.db.execute(sql`ALTER TABLE usage_events DROP CONSTRAINT poison_for_test`))
}

t.test('60 concurrent good POSTs beside one with a NUL: the NUL gets 400 naming the field, all 60 are stored', async (t) => {
  const poisoned = postUsage(app, event(999, { metadata: { note: 'a\u0000b' } }))
  const good = Array.from({ length: 60 }, (_, i) => postUsage(app, event(i)))
  const [bad, ...rest] = await Promise.all([poisoned, ...good])
  t.equal(bad.statusCode, 400)
  t.match(bad.json(), { code: 'VALIDATION_ERROR', message: 'body.metadata.note contains a NUL character' })
  t.same(rest.map((r) => r.statusCode), Array(60).fill(201))
  t.equal(await countEvents(database), 60)
})

t.test('an event the database refuses fails alone with 422 UNSTORABLE_EVENT; its group is stored', async (t) => {
  await withPoisonConstraint(t)
  const requests = Array.from({ length: 61 }, (_, i) => postUsage(app, i === 30 ? event(i, { model: 'poison-model' }) : event(i)))
  const answers = await Promise.all(requests)
  const poisoned = answers[30]
  t.equal(poisoned.statusCode, 422)
  t.match(poisoned.json(), { code: 'UNSTORABLE_EVENT', message: /^body could not be stored: .*SQLSTATE 23514/ })
  t.same(
    answers.filter((_, i) => i !== 30).map((r) => r.statusCode),
    Array(60).fill(201),
  )
  t.equal(await countEvents(database), 60)
  t.same(await rollupMismatches(database), [])
  // One line per refusal with the cause and the route, never the SQL or the values.
  const refusals = rawLog().split('\n').filter((l) => l.includes('the database refused an event'))
  t.equal(refusals.length, 1)
  t.match(refusals[0], /"sqlState":"23514"/)
  t.match(refusals[0], /"route":"\/api\/usage"/)
  t.notMatch(rawLog(), /INSERT INTO|json_to_recordset|poison-model/)
})

t.test('a batch with one poisoned item: that item is invalid with its error, the rest are stored', async (t) => {
  await withPoisonConstraint(t)
  const events = Array.from({ length: 10 }, (_, i) => event(i))
  events[2] = event(2, { metadata: { ['bad\u0000key']: 1 } })
  events[5] = event(5, { model: 'poison-model' })
  events[7] = event(7, { errorMessage: 'cut \ud83d' })
  const res = await postBatch(app, events)
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.match(body, { created: 7, duplicates: 0, invalid: 3 })
  t.match(body.results[2], {
    status: 'invalid',
    error: { code: 'VALIDATION_ERROR', message: 'body.events[2].metadata has a key that contains a NUL character' },
  })
  t.match(body.results[5], { status: 'invalid', error: { code: 'UNSTORABLE_EVENT', message: /^body\.events\[5\] could not be stored/ } })
  t.match(body.results[7], {
    status: 'invalid',
    error: { code: 'VALIDATION_ERROR', message: /^body\.events\[7\]\.errorMessage contains a lone UTF-16 surrogate/ },
  })
  t.equal(await countEvents(database), 7)
  t.same(await rollupMismatches(database), [])
})

t.test('token counts at the documented maximum do not overflow and render as JSON numbers', async (t) => {
  const res = await postUsage(app, event(1, { inputTokens: 2_000_000_000, outputTokens: 200_000_000, totalTokens: undefined, estimatedCost: undefined }))
  t.equal(res.statusCode, 201)
  t.equal(res.json().totalTokens, 2_200_000_000)
  const second = await postUsage(app, event(2, { inputTokens: 2_000_000_000, outputTokens: 2_000_000_000, totalTokens: 4_000_000_000 }))
  t.equal(second.statusCode, 201)
  t.equal(second.json().totalTokens, 4_000_000_000)

  const stats = await app.inject({ method: 'GET', url: '/api/usage', headers: bearer(ADMIN_KEY) })
  t.equal(stats.statusCode, 200)
  t.match(stats.body, /"totalTokens":6200000000\b/)
  t.match(stats.body, /"totalTokens":4000000000\b/)
  const events = await app.inject({ method: 'GET', url: '/api/usage/events', headers: bearer(ADMIN_KEY) })
  t.equal(events.statusCode, 200)
  t.same(
    events.json().events.map((e: { totalTokens: unknown }) => e.totalTokens).sort(),
    [2_200_000_000, 4_000_000_000],
  )
  const summary = await app.inject({ method: 'GET', url: '/api/usage/summary', headers: bearer(ADMIN_KEY) })
  t.equal(summary.json().totals.totalTokens, 6_200_000_000)
  t.same(await rollupMismatches(database), [])
})

/** JSON text of `levels` nested objects (JSON.stringify itself overflows the stack on it). */
const deep = (levels: number) => `${'{"n":'.repeat(levels)}"leaf"${'}'.repeat(levels)}`
const seedWith = (field: string, json: string) => `${JSON.stringify(SEED_EVENT).slice(0, -1)},"${field}":${json}}`

/** Every request of the probe that answered 5xx before (issues 12 and 13), with the field its 400 must name. */
const PROBES: { name: string; method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'; url: string; body?: unknown; field: RegExp }[] = [
  { name: 'NUL in a stats filter', method: 'GET', url: '/api/usage?model=%00', field: /^querystring\.model contains a NUL character/ },
  { name: 'NUL in a timeseries filter', method: 'GET', url: '/api/usage/timeseries?provider=a%00', field: /^querystring\.provider contains a NUL/ },
  { name: 'NUL in a summary filter', method: 'GET', url: '/api/usage/summary?requestType=%00', field: /^querystring\.requestType contains a NUL/ },
  { name: 'NUL in a breakdown filter', method: 'GET', url: '/api/usage/breakdown?groupBy=model&model=%00', field: /^querystring\.model contains a NUL/ },
  { name: 'NUL in an errors filter', method: 'GET', url: '/api/usage/errors?model=%00', field: /^querystring\.model contains a NUL/ },
  { name: 'NUL in an events filter', method: 'GET', url: '/api/usage/events?botId=%00', field: /^querystring\.botId/ },
  { name: 'NUL in an events cursor', method: 'GET', url: '/api/usage/events?cursor=%00', field: /^querystring\.cursor contains a NUL/ },
  { name: 'NUL in an export filter', method: 'GET', url: '/api/usage/export?model=%00', field: /^querystring\.model contains a NUL/ },
  { name: 'NUL in a monthly report filter', method: 'GET', url: '/api/reports/monthly?model=%00', field: /^querystring\.model contains a NUL/ },
  { name: 'NUL in an alerts filter', method: 'GET', url: '/api/alerts?budgetId=%00', field: /^querystring\.budgetId contains a NUL/ },
  { name: 'NUL in a budgets filter', method: 'GET', url: '/api/budgets?botId=%00', field: /^querystring\.botId contains a NUL/ },
  { name: 'NUL as a budget id', method: 'GET', url: '/api/budgets/%00', field: /^params\.id contains a NUL/ },
  { name: 'NUL as a budget id (status)', method: 'GET', url: '/api/budgets/%00/status', field: /^params\.id contains a NUL/ },
  { name: 'NUL as a budget id (patch)', method: 'PATCH', url: '/api/budgets/x%00', body: { enabled: false }, field: /^params\.id contains a NUL/ },
  { name: 'NUL as a budget id (delete)', method: 'DELETE', url: '/api/budgets/%00', field: /^params\.id contains a NUL/ },
  { name: 'NUL as a key id', method: 'DELETE', url: '/api/keys/%00', field: /^params\.id contains a NUL/ },
  { name: 'NUL as an override id', method: 'DELETE', url: '/api/prices/overrides/%00', field: /^params\.id contains a NUL/ },
  { name: 'NUL in a price lookup', method: 'GET', url: '/api/prices/resolve?provider=openai&model=gpt%00', field: /^querystring\.model contains a NUL/ },
  { name: 'NUL in a key name', method: 'POST', url: '/api/keys', body: { name: 'k\u0000', scopes: ['read'] }, field: /^body\.name contains a NUL/ },
  { name: 'NUL in a budget name', method: 'POST', url: '/api/budgets', body: { name: 'b\u0000', period: 'day', limitUsd: 1 }, field: /^body\.name contains a NUL/ },
  {
    name: 'lone surrogate in a budget scope',
    method: 'POST',
    url: '/api/budgets',
    body: { scope: { model: '\udc00x' }, period: 'day', limitUsd: 1 },
    field: /^body\.scope\.model contains a lone UTF-16 surrogate/,
  },
  {
    name: 'NUL in an override provider',
    method: 'POST',
    url: '/api/prices/overrides',
    body: { provider: 'a\u0000', modelPattern: 'm', effectiveFrom: '2024-01-01T00:00:00Z', input: 1, output: 1 },
    field: /^body\.provider contains a NUL/,
  },
  {
    name: 'NUL in an override pattern',
    method: 'PUT',
    url: '/api/prices/overrides/abc',
    body: { provider: 'a', modelPattern: 'm*\u0000', effectiveFrom: '2024-01-01T00:00:00Z', input: 1, output: 1 },
    field: /^body\.modelPattern contains a NUL/,
  },
  {
    name: 'an override tier threshold beyond the token range',
    method: 'POST',
    url: '/api/prices/overrides',
    body: { provider: 'a', modelPattern: 'm', effectiveFrom: '2024-01-01T00:00:00Z', input: 1, output: 1, tiers: [{ aboveInputTokens: 1e20, input: 1, output: 1 }] },
    field: /^body\.tiers\[0\]\.aboveInputTokens must be <= 2000000000/,
  },
  { name: 'month 0000-01', method: 'GET', url: '/api/reports/monthly?month=0000-01', field: /^querystring\.month must be a month \(YYYY-MM\) between 1970-01-01 and 9998-12-31/ },
  { name: 'month 9999-12', method: 'GET', url: '/api/reports/monthly?month=9999-12', field: /^querystring\.month must be a month/ },
  { name: 'year 0000 in a range', method: 'GET', url: '/api/usage/summary?startDate=0000-01-01', field: /^querystring\.startDate must be a date/ },
  { name: 'year 9999 in a range', method: 'GET', url: '/api/usage/timeseries?endDate=9999-12-31', field: /^querystring\.endDate must be a date/ },
  { name: 'year 0000 in stats', method: 'GET', url: '/api/usage?endDate=0000-01-01', field: /^querystring\.endDate must be a date/ },
  {
    name: 'a leap second in a quote',
    method: 'POST',
    url: '/api/prices/quote',
    body: { provider: 'openai', model: 'gpt-4o', at: '2024-01-01T23:59:60Z', inputTokens: 1, outputTokens: 1 },
    field: /^body\.at must be a valid date-time .*no leap second/,
  },
  { name: 'a far-future price lookup', method: 'GET', url: '/api/prices?at=99999-01-01', field: /^querystring\.at must be a date/ },
  {
    name: 'reprice ending 9999-12-31',
    method: 'POST',
    url: '/api/prices/reprice',
    body: { startDate: '2024-01-01', endDate: '9999-12-31' },
    field: /^body\.endDate must be a date \(YYYY-MM-DD\) or an ISO 8601 timestamp with zone, between 1970-01-01 and 9998-12-31/,
  },
  { name: 'alerts since year 0', method: 'GET', url: '/api/alerts?since=0000-01-01T00:00:00Z', field: /^querystring\.since must be a valid date-time/ },
  { name: 'metadata 5,000 levels deep', method: 'POST', url: '/api/usage', body: seedWith('metadata', deep(5000)), field: /^body\.metadata(\.n)+ is nested more than 32 levels deep/ },
  {
    name: 'metadata 5,000 levels deep in a batch item',
    method: 'POST',
    url: '/api/usage/batch',
    body: `{"events":[${seedWith('metadata', deep(5000))}]}`,
    field: /^$/,
  },
  { name: 'NUL in the model', method: 'POST', url: '/api/usage', body: { ...SEED_EVENT, model: 'm\u0000' }, field: /^body\.model contains a NUL/ },
  { name: 'NUL in the provider', method: 'POST', url: '/api/usage', body: { ...SEED_EVENT, provider: '\u0000' }, field: /^body\.provider contains a NUL/ },
  { name: 'NUL in the request type', method: 'POST', url: '/api/usage', body: { ...SEED_EVENT, requestType: 'x\u0000' }, field: /^body\.requestType contains a NUL/ },
  { name: 'NUL in the error message', method: 'POST', url: '/api/usage', body: { ...SEED_EVENT, errorMessage: '\u0000' }, field: /^body\.errorMessage contains a NUL/ },
  { name: 'NUL in a nested metadata value', method: 'POST', url: '/api/usage', body: { ...SEED_EVENT, metadata: { a: [{ b: 'x\u0000' }] } }, field: /^body\.metadata\.a\[0\]\.b contains a NUL/ },
  { name: 'a lone surrogate in the model', method: 'POST', url: '/api/usage', body: { ...SEED_EVENT, model: 'claude\ud800' }, field: /^body\.model contains a lone UTF-16 surrogate/ },
  {
    name: 'a telegram chat id beyond a safe integer',
    method: 'POST',
    url: '/api/budgets',
    body: { period: 'day', limitUsd: 1, channels: { telegram: { chatId: 1e20 } } },
    field: /^body\.channels\.telegram\.chatId/,
  },
]

t.test('the 5xx probe list: every request gets a 400 naming the field, and nothing is stored', async (t) => {
  for (const probe of PROBES) {
    const res = await app.inject({
      method: probe.method,
      url: probe.url,
      headers: bearer(ADMIN_KEY),
      ...(probe.body === undefined ? {} : { payload: typeof probe.body === 'string' ? probe.body : JSON.stringify(probe.body), headers: { ...bearer(ADMIN_KEY), 'content-type': 'application/json' } }),
    })
    if (probe.url === '/api/usage/batch') {
      // A batch answers per item: that item is invalid, the request itself succeeds.
      t.equal(res.statusCode, 200, probe.name)
      t.match(res.json().results[0], { status: 'invalid', error: { message: /^body\.events\[0\]\.metadata(\.n)+ is nested more than 32 levels deep/ } }, probe.name)
      continue
    }
    t.equal(res.statusCode, 400, `${probe.name}: ${res.body.slice(0, 300)}`)
    t.match(res.json(), { code: 'VALIDATION_ERROR', message: probe.field }, probe.name)
  }
  t.equal(await countEvents(database), 0)
  for (const table of ['api_keys', 'budgets', 'price_overrides']) {
    const [row] = await database.rows<{ n: string | number }>(sql`SELECT count(*) AS n FROM ${sql.raw(table)}`)
    // The admin key of the test config is not stored; bootstrap keys would be, so count created ones only.
    t.equal(Number(row.n), 0, `nothing stored in ${table}`)
  }
})

t.test('dates at the edges of the supported range are accepted', async (t) => {
  const first = await app.inject({ method: 'GET', url: '/api/reports/monthly?month=1970-01', headers: bearer(ADMIN_KEY) })
  t.equal(first.statusCode, 200, first.body)
  const last = await app.inject({ method: 'GET', url: '/api/reports/monthly?month=9998-12', headers: bearer(ADMIN_KEY) })
  t.equal(last.statusCode, 200, last.body)
  const reprice = await app.inject({
    method: 'POST',
    url: '/api/prices/reprice',
    headers: bearer(ADMIN_KEY),
    payload: { startDate: '1970-01-01', endDate: '9998-12-31' },
  })
  t.equal(reprice.statusCode, 200, reprice.body)
})

t.test('a duplicate is a duplicate whatever raced it: overlapping single and batch posts', async (t) => {
  const ids = Array.from({ length: 20 }, (_, i) => i)
  const requests = []
  for (let round = 0; round < 10; round++) {
    // Each round: singles for every id, and a batch of the same ids in another order.
    for (const i of ids) requests.push(postUsage(app, event(i)).then((r) => ({ kind: 'single' as const, r })))
    const shuffled = [...ids].sort((a, b) => ((a * 7 + round) % 20) - ((b * 7 + round) % 20))
    requests.push(postBatch(app, shuffled.map((i) => event(i))).then((r) => ({ kind: 'batch' as const, r })))
    if (round % 2 === 0) requests.push(postBatch(app, ids.map((i) => event(i))).then((r) => ({ kind: 'batch' as const, r })))
    // The same id twice in one batch, and in reverse order against the others.
    else requests.push(postBatch(app, [...ids, ...ids].reverse().map((i) => event(i))).then((r) => ({ kind: 'batch' as const, r })))
  }
  const answers = await Promise.all(requests)
  const created = new Map<string, number>()
  for (const { kind, r } of answers) {
    if (kind === 'single') {
      t.ok(r.statusCode === 200 || r.statusCode === 201, `single answered ${r.statusCode}: ${r.body.slice(0, 200)}`)
      if (r.statusCode === 201) created.set(r.json().id, (created.get(r.json().id) ?? 0) + 1)
      else t.equal(r.json().botId, 'bot_a', 'a duplicate answers with the stored record')
    } else {
      t.equal(r.statusCode, 200, `batch answered ${r.statusCode}: ${r.body.slice(0, 200)}`)
      for (const item of r.json().results as { status: string; id: string }[]) {
        t.not(item.status, 'invalid')
        if (item.status === 'created') created.set(item.id, (created.get(item.id) ?? 0) + 1)
      }
    }
  }
  t.equal(created.size, 20, 'every id was created by exactly one answer')
  t.ok([...created.values()].every((n) => n === 1))
  t.equal(await countEvents(database), 20)
  t.same(await rollupMismatches(database), [])
})
