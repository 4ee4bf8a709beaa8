import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { ev, get, seed } from './support.js'

/** Hand-computed fixtures: local days around DST changes and a half-hour-offset zone. */

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)

interface Bucket {
  start: string
  calls: number
  failures: number
  successRate: number | null
  inputTokens: number
  cost: number
  avgLatencyMs: number | null
}
interface Series {
  from: string
  to: string
  buckets: Bucket[]
  series: { group: string; totals: Bucket; buckets: Bucket[] }[]
  otherGroups: number
}

const berlin = (id: string, at: string, extra: Record<string, unknown> = {}) => ev(id, at, { botId: 'berlin', ...extra })
const kolkata = (id: string, at: string, extra: Record<string, unknown> = {}) => ev(id, at, { botId: 'kolkata', ...extra })

await seed(app, [
  // Europe/Berlin springs forward at 2024-03-31T01:00Z (02:00 CET -> 03:00 CEST): local 03-31 has 23 hours.
  berlin('b1', '2024-03-30T22:30:00Z', { latencyMs: 100 }), // 23:30 CET, local 03-30
  berlin('b2', '2024-03-30T23:30:00Z', { latencyMs: 300 }), // 00:30 CET, local 03-31
  berlin('b3', '2024-03-31T01:30:00Z', { model: 'acme-small', estimatedCost: 0.02 }), // 03:30 CEST
  berlin('b4', '2024-03-31T21:59:59.999Z', { inputTokens: 20 }), // 23:59:59.999 CEST, local 03-31
  berlin('b5', '2024-03-31T22:00:00Z'), // 00:00 CEST, local 04-01
  berlin('b6', '2024-04-01T12:00:00Z', { success: false, errorMessage: 'boom' }),
  // Falls back at 2024-10-27T01:00Z (03:00 CEST -> 02:00 CET): local 10-27 has 25 hours.
  berlin('b7', '2024-10-26T22:00:00Z'), // 00:00 CEST, local 10-27
  berlin('b8', '2024-10-27T22:30:00Z'), // 23:30 CET, local 10-27
  berlin('b9', '2024-10-27T23:00:00Z'), // 00:00 CET, local 10-28
  // Asia/Kolkata is UTC+05:30: its days start at 18:30Z, inside a UTC hour.
  kolkata('k1', '2024-03-31T18:10:00Z'),
  kolkata('k2', '2024-03-31T18:29:59.999Z'),
  kolkata('k3', '2024-03-31T18:30:00Z'),
  kolkata('k4', '2024-03-31T18:50:00Z'),
  kolkata('k5', '2024-04-01T03:00:00Z'),
])

const calls = (s: Series) => s.buckets.map((b) => [b.start, b.calls])

t.test('local days in Europe/Berlin across the spring DST change', async (t) => {
  const res = await get<Series>(app, '/api/usage/timeseries?botId=berlin&tz=Europe/Berlin&startDate=2024-03-30&endDate=2024-04-01')
  t.equal(res.status, 200)
  t.equal(res.body.from, '2024-03-29T23:00:00.000Z', 'date-only startDate is local midnight')
  t.equal(res.body.to, '2024-04-01T22:00:00.000Z', 'date-only endDate includes the whole local day')
  t.same(calls(res.body), [
    ['2024-03-29T23:00:00.000Z', 1],
    ['2024-03-30T23:00:00.000Z', 3],
    ['2024-03-31T22:00:00.000Z', 2],
  ])
  const [first, second, third] = res.body.buckets
  t.match(first, { cost: 0.01, inputTokens: 10, successRate: 1, avgLatencyMs: 100 })
  t.match(second, { cost: 0.04, inputTokens: 40, failures: 0, avgLatencyMs: 300 })
  t.match(third, { calls: 2, failures: 1, successRate: 0.5, avgLatencyMs: null })
})

t.test('the same events by UTC day', async (t) => {
  const res = await get<Series>(app, '/api/usage/timeseries?botId=berlin&startDate=2024-03-30&endDate=2024-04-01')
  t.same(calls(res.body), [
    ['2024-03-30T00:00:00.000Z', 2],
    ['2024-03-31T00:00:00.000Z', 3],
    ['2024-04-01T00:00:00.000Z', 1],
  ])
})

t.test('local hours across the spring gap and a 25-hour autumn day', async (t) => {
  const hours = await get<Series>(
    app,
    '/api/usage/timeseries?botId=berlin&tz=Europe/Berlin&interval=hour&startDate=2024-03-31T00:00:00Z&endDate=2024-03-31T02:59:59Z',
  )
  t.same(calls(hours.body), [
    ['2024-03-31T00:00:00.000Z', 0], // 01:00 CET
    ['2024-03-31T01:00:00.000Z', 1], // 03:00 CEST: 02:00 does not exist
    ['2024-03-31T02:00:00.000Z', 0],
  ])
  const autumn = await get<Series>(app, '/api/usage/timeseries?botId=berlin&tz=Europe/Berlin&startDate=2024-10-27&endDate=2024-10-28')
  t.same(calls(autumn.body), [
    ['2024-10-26T22:00:00.000Z', 2],
    ['2024-10-27T23:00:00.000Z', 1],
  ], 'local 10-27 runs 25 hours, from 22:00Z to 23:00Z the next day')
})

t.test('Asia/Kolkata days start at 18:30Z and stay exact inside a UTC hour', async (t) => {
  const res = await get<Series>(app, '/api/usage/timeseries?botId=kolkata&tz=Asia/Kolkata&startDate=2024-03-31&endDate=2024-04-01')
  t.equal(res.body.from, '2024-03-30T18:30:00.000Z')
  t.same(calls(res.body), [
    ['2024-03-30T18:30:00.000Z', 2],
    ['2024-03-31T18:30:00.000Z', 3],
  ])
  const hours = await get<Series>(
    app,
    '/api/usage/timeseries?botId=kolkata&tz=Asia/Kolkata&interval=hour&startDate=2024-03-31T17:30:00Z&endDate=2024-03-31T19:29:59Z',
  )
  t.same(calls(hours.body), [
    ['2024-03-31T17:30:00.000Z', 2],
    ['2024-03-31T18:30:00.000Z', 2],
  ], 'local hours start at :30 UTC')
})

t.test('weeks start on Monday and months follow the zone', async (t) => {
  const weeks = await get<Series>(app, '/api/usage/timeseries?botId=berlin&interval=week&startDate=2024-03-25&endDate=2024-04-07')
  t.same(calls(weeks.body), [
    ['2024-03-25T00:00:00.000Z', 5],
    ['2024-04-01T00:00:00.000Z', 1],
  ])
  const months = await get<Series>(app, '/api/usage/timeseries?botId=berlin&interval=month&tz=Europe/Berlin&startDate=2024-03-01&endDate=2024-04-30')
  t.same(calls(months.body), [
    ['2024-02-29T23:00:00.000Z', 4],
    ['2024-03-31T22:00:00.000Z', 2],
  ], 'b5 at 2024-03-31T22:00Z is April in Berlin')
  const utcMonths = await get<Series>(app, '/api/usage/timeseries?botId=berlin&interval=month&startDate=2024-03-01&endDate=2024-04-30')
  t.same(calls(utcMonths.body), [
    ['2024-03-01T00:00:00.000Z', 5],
    ['2024-04-01T00:00:00.000Z', 1],
  ])
})

t.test('an empty range is all zeros', async (t) => {
  const res = await get<Series>(app, '/api/usage/timeseries?startDate=2023-01-01&endDate=2023-01-03&groupBy=model')
  t.equal(res.status, 200)
  t.equal(res.body.buckets.length, 3)
  t.same(res.body.buckets[0], {
    start: '2023-01-01T00:00:00.000Z',
    calls: 0,
    successes: 0,
    failures: 0,
    successRate: null,
    inputTokens: 0,
    outputTokens: 0,
    totalTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    reasoningTokens: 0,
    inputAudioTokens: 0,
    outputAudioTokens: 0,
    webSearchRequests: 0,
    cost: 0,
    unpricedCalls: 0,
    unpricedInputTokens: 0,
    unpricedOutputTokens: 0,
    avgLatencyMs: null,
  })
  t.same(res.body.series, [])
  t.equal(res.body.otherGroups, 0)
})

t.test('groupBy returns zero-filled series for the top groups, filters apply', async (t) => {
  const res = await get<Series>(app, '/api/usage/timeseries?botId=berlin&tz=Europe/Berlin&startDate=2024-03-30&endDate=2024-04-01&groupBy=model')
  t.same(res.body.series.map((s) => [s.group, s.totals.calls, s.buckets.map((b) => b.calls)]), [
    ['acme-large', 5, [1, 2, 2]],
    ['acme-small', 1, [0, 1, 0]],
  ])
  t.equal(res.body.series[0].totals.cost, 0.05)
  const top = await get<Series>(app, '/api/usage/timeseries?botId=berlin&tz=Europe/Berlin&startDate=2024-03-30&endDate=2024-04-01&groupBy=model&limit=1')
  t.equal(top.body.series.length, 1)
  t.equal(top.body.otherGroups, 1)
  const small = await get<Series>(app, '/api/usage/timeseries?botId=berlin&tz=Europe/Berlin&startDate=2024-03-30&endDate=2024-04-01&model=acme-small')
  t.same(small.body.buckets.map((b) => b.calls), [0, 1, 0])
  const failed = await get<Series>(app, '/api/usage/timeseries?tz=Europe/Berlin&startDate=2024-03-30&endDate=2024-04-01&success=false')
  t.same(failed.body.buckets.map((b) => b.calls), [0, 0, 1])
  const byBot = await get<Series>(app, '/api/usage/timeseries?startDate=2024-03-31&endDate=2024-03-31&groupBy=botId')
  t.same(byBot.body.series.map((s) => [s.group, s.totals.calls]), [['kolkata', 4], ['berlin', 3]])
})

t.test('with more groups than the limit: the top groups by cost, calls, then name, any characters in a name', async (t) => {
  const names = (id: string, at: string, model: string, cost: number) => ev(id, at, { botId: 'names', model, estimatedCost: cost })
  await seed(app, [
    names('n1', '2024-06-15T10:00:00Z', 'a,"b', 0.2),
    names('n2', '2024-06-16T10:00:00Z', 'a,"b', 0.1),
    names('n3', '2024-06-15T11:00:00Z', 'f', 0.3),
    names('n4', '2024-06-16T11:00:00Z', 'f', 0),
    names('n5', '2024-06-16T12:00:00Z', 'c\\d}', 0.3),
    names('n6', '2024-06-15T12:00:00Z', '{e}', 0.1),
  ])
  const url = '/api/usage/timeseries?botId=names&startDate=2024-06-15&endDate=2024-06-16&groupBy=model'
  const all = await get<Series>(app, url)
  // Cost 0.3 three times: two calls before one, then by name.
  t.same(all.body.series.map((s) => [s.group, s.totals.calls, s.buckets.map((b) => b.calls)]), [
    ['a,"b', 2, [1, 1]],
    ['f', 2, [1, 1]],
    ['c\\d}', 1, [0, 1]],
    ['{e}', 1, [1, 0]],
  ])
  for (const limit of [1, 2, 3]) {
    const top = await get<Series>(app, `${url}&limit=${limit}`)
    t.same(top.body.series, all.body.series.slice(0, limit), `limit=${limit}: the first ${limit} series, bucket by bucket`)
    t.equal(top.body.otherGroups, 4 - limit)
  }
})

t.test('bad parameters get 400 naming the parameter', async (t) => {
  const cases: [string, RegExp][] = [
    ['interval=minute', /querystring\.interval must be one of hour, day, week, month/],
    ['groupBy=colour', /querystring\.groupBy must be one of model, provider, botId, requestType/],
    ['tz=Mars/Olympus_Mons', /querystring\.tz must be an IANA time zone name/],
    ['tz=UTC%2B3', /querystring\.tz must be an IANA time zone name/],
    ['tz=..%2Fetc', /querystring\.tz must be an IANA time zone name/],
    ['startDate=2024-02-01&endDate=2024-01-01', /querystring\.startDate must not be after querystring\.endDate/],
    ['startDate=2020-01-01&endDate=2024-01-01', /querystring\.startDate\.\.endDate covers more than 400 days/],
    ['startDate=2024-01-01&endDate=2024-04-30&interval=hour', /querystring\.interval=hour gives more than 2000 buckets/],
    ['startDate=soon', /querystring\.startDate must be a date/],
    ['limit=51', /querystring\.limit must be <= 50/],
    ['colour=red', /querystring has unknown field 'colour'/],
  ]
  for (const [qs, message] of cases) {
    const res = await get(app, `/api/usage/timeseries?${qs}`)
    t.equal(res.status, 400, qs)
    t.match(res.body, { code: 'VALIDATION_ERROR', message }, qs)
  }
})

t.test('percentiles over buckets without calls: zero samples and null percentiles, never a serializer error', async (t) => {
  const res = await get<{ buckets: { calls: number; latency: { samples: number; maxMs: number | null; p50Ms: number | null } }[] }>(
    app,
    '/api/usage/timeseries?startDate=2001-01-01&endDate=2001-01-03&interval=day&percentiles=true',
  )
  t.equal(res.status, 200, res.text)
  t.equal(res.body.buckets.length, 3)
  for (const b of res.body.buckets) t.match(b, { calls: 0, latency: { samples: 0, maxMs: null, p50Ms: null } })
})
