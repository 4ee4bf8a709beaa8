import { sql } from 'drizzle-orm'
import { request } from 'node:http'
import v8 from 'node:v8'
import vm from 'node:vm'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { ev, get, seed } from './support.js'

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)

/** RFC 4180 parser: quoted fields may hold commas, doubled quotes and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = []
  let row: string[] = []
  let field = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"'
        i++
      } else if (c === '"') quoted = false
      else field += c
    } else if (c === '"') quoted = true
    else if (c === ',') {
      row.push(field)
      field = ''
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field)
      rows.push(row)
      row = []
      field = ''
      i++
    } else field += c
  }
  if (field !== '' || row.length > 0) throw new Error('unterminated last line')
  return rows
}

const nasty = 'bad, "quoted"\nsecond line\r\nthird'
const nastyMetadata = { note: 'a,b "c"\nd', userId: 'u1' }

await seed(app, [
  ev('q1', '2024-03-10T10:00:00Z', { success: false, errorMessage: nasty, metadata: nastyMetadata, estimatedCost: 0.000000000001 }),
  ev('q2', '2024-03-10T11:00:00Z', { model: 'acme,large "v2"', estimatedCost: 1.5, latencyMs: 1234 }),
  ev('q3', '2024-03-31T22:30:00Z', { botId: 'bot_b', estimatedCost: 0.25 }), // April 00:30 in Berlin
  ev('q4', '2024-04-02T00:00:00Z', { botId: 'bot_b', estimatedCost: 0.125 }),
])

t.test('CSV export quotes commas, quotes and line breaks and keeps costs exact', async (t) => {
  const res = await get(app, '/api/usage/export?startDate=2024-03-01&endDate=2024-04-30&format=csv')
  t.equal(res.status, 200)
  t.match(String(res.headers['content-type']), /^text\/csv/)
  t.match(String(res.headers['content-disposition']), /attachment; filename="usage-2024-03-01-2024-05-01\.csv"/)
  const rows = parseCsv(res.text)
  const [header, ...data] = rows
  t.same(header.slice(0, 4), ['id', 'botId', 'createdAt', 'receivedAt'])
  const column = (name: string) => header.indexOf(name)
  t.same(data.map((r) => r[column('id')]), ['q1', 'q2', 'q3', 'q4'], 'oldest first')
  const q1 = data[0]
  t.equal(q1[column('errorMessage')], nasty, 'error message round-trips')
  t.same(JSON.parse(q1[column('metadata')]), nastyMetadata, 'metadata is JSON text and round-trips')
  t.equal(q1[column('cost')], '0.000000000001', 'exact decimal, no exponent')
  t.equal(q1[column('success')], 'false')
  t.equal(data[1][column('model')], 'acme,large "v2"')
  t.equal(data[1][column('cost')], '1.5')
  t.equal(data[1][column('latencyMs')], '1234')
  t.equal(data[1][column('metadata')], '', 'null is an empty field')
})

t.test('CSV export defuses spreadsheet formulas in text, not in numbers', async (t) => {
  const formula = '=HYPERLINK("http://evil.example","click")'
  const model = '+SUM(A1:A9)'
  await seed(app, [ev('f1', '2024-06-05T10:00:00Z', { success: false, errorMessage: formula, model, estimatedCost: 0.5 })])
  const res = await get(app, '/api/usage/export?startDate=2024-06-01&endDate=2024-06-30&format=csv')
  const [header, row] = parseCsv(res.text)
  t.equal(row[header.indexOf('errorMessage')], `'${formula}`, 'a formula is prefixed with an apostrophe')
  t.equal(row[header.indexOf('model')], `'${model}`)
  t.equal(row[header.indexOf('cost')], '0.5')
  const report = parseCsv((await get(app, '/api/reports/monthly?month=2024-06&format=csv')).text)
  t.equal(report[1][report[0].indexOf('model')], `'${model}`, 'the monthly report too')
  const json = await get(app, '/api/usage/export?startDate=2024-06-01&endDate=2024-06-30&format=jsonl')
  t.equal((JSON.parse(json.text) as { errorMessage: string }).errorMessage, formula, 'JSON exports keep the text as it was')
})

t.test('JSON lines export: one event per line, filters apply', async (t) => {
  const res = await get(app, '/api/usage/export?startDate=2024-03-01&endDate=2024-04-30&format=jsonl&botId=bot_b')
  t.match(String(res.headers['content-type']), /^application\/x-ndjson/)
  const lines = res.text.trimEnd().split('\n').map((l) => JSON.parse(l) as { id: string; estimatedCost: number })
  t.same(lines.map((l) => [l.id, l.estimatedCost]), [['q3', 0.25], ['q4', 0.125]])
  const empty = await get(app, '/api/usage/export?startDate=2020-01-01&endDate=2020-01-02&format=jsonl')
  t.equal(empty.status, 200)
  t.equal(empty.text, '')
  const emptyCsv = await get(app, '/api/usage/export?startDate=2020-01-01&endDate=2020-01-02')
  t.equal(parseCsv(emptyCsv.text).length, 1, 'an empty CSV export is just the header')
})

interface Report {
  month: string
  tz: string
  from: string
  to: string
  rows: { botId: string; provider: string; model: string; calls: number; failures: number; cost: number; costExact: string }[]
  totals: { calls: number; failures: number; inputTokens: number; cost: number; costExact: string }
}

t.test('monthly report in JSON follows the zone’s month', async (t) => {
  const utc = await get<Report>(app, '/api/reports/monthly?month=2024-03')
  t.equal(utc.status, 200)
  t.same(utc.body.rows.map((r) => [r.botId, r.model, r.calls, r.failures, r.costExact]), [
    ['bot_a', 'acme,large "v2"', 1, 0, '1.5'],
    ['bot_a', 'acme-large', 1, 1, '0.000000000001'],
    ['bot_b', 'acme-large', 1, 0, '0.25'],
  ])
  t.match(utc.body.totals, { calls: 3, failures: 1, inputTokens: 30, costExact: '1.750000000001', cost: 1.750000000001 })
  const berlin = await get<Report>(app, '/api/reports/monthly?month=2024-03&tz=Europe/Berlin')
  t.same([berlin.body.from, berlin.body.to], ['2024-02-29T23:00:00.000Z', '2024-03-31T22:00:00.000Z'])
  t.equal(berlin.body.totals.calls, 2, 'q3 is April in Berlin')
  const april = await get<Report>(app, '/api/reports/monthly?month=2024-04&tz=Europe/Berlin&botId=bot_b')
  t.same(april.body.rows.map((r) => [r.botId, r.calls, r.costExact]), [['bot_b', 2, '0.375']])
  const empty = await get<Report>(app, '/api/reports/monthly?month=2020-02')
  t.same([empty.body.rows, empty.body.totals.calls, empty.body.totals.costExact], [[], 0, '0'])
})

t.test('monthly report in CSV with a TOTAL row', async (t) => {
  const res = await get(app, '/api/reports/monthly?month=2024-03&format=csv')
  t.equal(res.status, 200)
  t.match(String(res.headers['content-type']), /^text\/csv/)
  const rows = parseCsv(res.text)
  t.same(rows[0], ['botId', 'provider', 'model', 'calls', 'failures', 'inputTokens', 'outputTokens', 'totalTokens', 'cacheReadTokens', 'cacheWriteTokens', 'reasoningTokens', 'inputAudioTokens', 'outputAudioTokens', 'webSearchRequests', 'cost', 'unpricedCalls'])
  t.same(rows[1].slice(0, 5), ['bot_a', 'acme', 'acme,large "v2"', '1', '0'])
  t.same(rows[rows.length - 1], ['TOTAL', '', '', '3', '1', '30', '15', '45', '0', '0', '0', '0', '0', '0', '1.750000000001', '3'])
})

t.test('bad export and report parameters get 400', async (t) => {
  const cases: [string, RegExp][] = [
    ['/api/usage/export?format=xml', /querystring\.format must be one of csv, jsonl/],
    ['/api/usage/export?startDate=2020-01-01&endDate=2022-01-01', /covers more than 400 days/],
    ['/api/reports/monthly?month=2024-13', /querystring\.month must be a month \(YYYY-MM\)/],
    ['/api/reports/monthly?format=pdf', /querystring\.format must be one of json, csv/],
    ['/api/reports/monthly?tz=Not/AZone', /querystring\.tz must be an IANA time zone name/],
    ['/api/reports/monthly?startDate=2024-01-01', /querystring has unknown field 'startDate'/],
  ]
  for (const [url, message] of cases) {
    const res = await get(app, url)
    t.equal(res.status, 400, url)
    t.match(JSON.parse(res.text), { code: 'VALIDATION_ERROR', message }, url)
  }
})

t.test('a 200k-event export streams with bounded memory', async (t) => {
  const count = 200_000
  await database.db.execute(sql`
    INSERT INTO usage_events (id, bot_id, created_at, provider, model, request_type, success, error_message, input_tokens,
      output_tokens, total_tokens, latency_ms, cost, priced, metadata)
    SELECT 'big' || lpad(g::text, 6, '0'), 'bot_big', '2024-08-01T00:00:00Z'::timestamptz + g * interval '100 ms', 'acme', 'acme-large',
      'message', g % 10 <> 0, CASE WHEN g % 10 = 0 THEN 'failure, "number" ' || g END, g % 1000, g % 100, g % 1000 + g % 100,
      g % 5000, (g % 997) * 0.000001, false, jsonb_build_object('userId', 'user_' || (g % 50), 'note', 'line1' || chr(10) || 'line2')
    FROM generate_series(1, ${count}) g`)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  // Live heap, not garbage: collect before each sample (V8 collects old garbage lazily).
  v8.setFlagsFromString('--expose-gc')
  const collect = vm.runInNewContext('gc') as () => void
  collect()
  const before = process.memoryUsage().heapUsed
  let peak = before
  const sampler = setInterval(() => {
    collect()
    peak = Math.max(peak, process.memoryUsage().heapUsed)
  }, 500)
  let bytes = 0
  let lines = 0
  let tail = ''
  try {
    await new Promise<void>((resolve, reject) => {
      const req = request(
        { port, host: '127.0.0.1', path: '/api/usage/export?botId=bot_big&startDate=2024-08-01&endDate=2024-08-01&format=csv', headers: bearer(ADMIN_KEY) },
        (res) => {
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length
            for (const byte of chunk) if (byte === 10) lines++
            tail = (tail + chunk.toString('utf8')).slice(-300)
          })
          res.on('end', resolve)
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end()
    })
  } finally {
    clearInterval(sampler)
  }
  const growth = peak - before
  t.comment(`exported ${(bytes / 1e6).toFixed(1)} MB; live heap grew at most ${(growth / 1e6).toFixed(1)} MB`)
  t.equal(lines, 1 + count, 'header and every event (line breaks inside metadata are JSON-escaped)')
  t.match(tail, /big200000,bot_big/, 'the last event arrived last')
  t.ok(bytes > 30_000_000, 'the export is large')
  t.ok(growth < Math.min(16_000_000, bytes / 2), `live heap growth (${growth}) stays well under the export size (${bytes})`)
})
