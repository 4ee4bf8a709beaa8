import t from 'tap'
import { formatChange, formatLatency, formatPointChange, formatRate, formatTokens, formatUsd, formatUsdExact } from '../../web/src/format.js'
import { errorRates, isEmptyRange, sortRows, stackLayers, stackTops, tokenLayers, zeroFill } from '../../web/src/shape.js'
import { addDays, apiFilters, defaultFilters, parseFilters, resolveRange, serializeFilters } from '../../web/src/state.js'

/** The dashboard's data shaping, imported straight from the page's own modules. */

const b = (start: string, cost: number, calls = 1) => ({ start, cost, calls })

t.test('zeroFill lines a series up with the buckets and fills missing starts with 0', async (t) => {
  const starts = ['2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z', '2026-01-03T00:00:00.000Z']
  // A series may use another spelling of the same instant (no milliseconds) and lack buckets.
  t.same(zeroFill(starts, [{ start: '2026-01-03T00:00:00Z', v: 5 }], (p) => p.v), [0, 0, 5])
  t.same(zeroFill(starts, [], () => 1), [0, 0, 0])
})

t.test('stackLayers: one layer per series plus Other, so the stack top equals the total', async (t) => {
  const buckets = [b('2026-01-01T00:00:00Z', 0.3), b('2026-01-02T00:00:00Z', 0), b('2026-01-03T00:00:00Z', 1.1)]
  const series = [
    { group: 'gpt', buckets: [b('2026-01-01T00:00:00Z', 0.1), b('2026-01-03T00:00:00Z', 0.6)] },
    { group: 'claude', buckets: [b('2026-01-01T00:00:00Z', 0.1), b('2026-01-02T00:00:00Z', 0), b('2026-01-03T00:00:00Z', 0.2)] },
  ]
  const layers = stackLayers({ buckets, series, otherGroups: 3 }, (p) => p.cost)
  t.same(
    layers.map((l) => l.label),
    ['gpt', 'claude', 'Other'],
  )
  t.same(layers[0].values, [0.1, 0, 0.6])
  // 0.3 - 0.1 - 0.1 is 0.09999999999999998 in floating point: cleaned to 0.1.
  t.same(layers[2].values, [0.1, 0, 0.3])
  const tops = stackTops(layers)
  t.same(tops[tops.length - 1], [0.3, 0, 1.1], 'the top of the stack is each bucket total')
  t.same(tops[0], layers[0].values)

  const complete = stackLayers({ buckets, series: [{ group: 'all', buckets }], otherGroups: 0 }, (p) => p.cost)
  t.same(
    complete.map((l) => l.label),
    ['all'],
    'no Other layer when the series cover everything',
  )
})

t.test('token layers split the cache and reasoning parts out of input and output', async (t) => {
  const layers = tokenLayers([{ inputTokens: 100, outputTokens: 50, cacheReadTokens: 60, cacheWriteTokens: 10, reasoningTokens: 20 }])
  t.same(
    layers.map((l) => [l.label, l.values[0]]),
    [
      ['Input (uncached)', 30],
      ['Cache read', 60],
      ['Cache write', 10],
      ['Output (non-reasoning)', 30],
      ['Reasoning', 20],
    ],
  )
  t.equal(
    layers.reduce((s, l) => s + l.values[0], 0),
    150,
    'the layers add up to the total tokens',
  )
})

t.test('error rate is a gap, not 0%, where there were no calls; empty ranges are detected', async (t) => {
  t.same(errorRates([{ calls: 4, failures: 1 }, { calls: 0, failures: 0 }]), [0.25, null])
  t.ok(isEmptyRange([{ calls: 0 }, { calls: 0 }]))
  t.notOk(isEmptyRange([{ calls: 0 }, { calls: 2 }]))
  t.ok(isEmptyRange([]))
})

t.test('sortRows: numbers, natural text order, nulls last', async (t) => {
  const rows = [{ k: 'bot_10', v: 2 }, { k: 'bot_9', v: null }, { k: 'bot_1', v: 5 }]
  t.same(
    sortRows(rows, (r) => r.k, 'asc').map((r) => r.k),
    ['bot_1', 'bot_9', 'bot_10'],
  )
  t.same(
    sortRows(rows, (r) => r.v, 'desc').map((r) => r.k),
    ['bot_1', 'bot_10', 'bot_9'],
  )
  t.same(
    sortRows(rows, (r) => r.v, 'asc').map((r) => r.k),
    ['bot_10', 'bot_1', 'bot_9'],
  )
})

t.test('money formatting', async (t) => {
  t.equal(formatUsd(0), '$0.00')
  t.equal(formatUsd(1234.567), '$1,234.57')
  t.equal(formatUsd(1), '$1.00')
  t.equal(formatUsd(0.5), '$0.50')
  t.equal(formatUsd(0.00675), '$0.00675')
  t.equal(formatUsd(0.0001234), '$0.000123')
  t.equal(formatUsd(0.0000001), '<$0.000001')
  t.equal(formatUsd(-2.5), '-$2.50')
  t.equal(formatUsdExact(0.00675), '$0.00675')
  t.equal(formatUsdExact(1234.5), '$1,234.50')
  t.equal(formatUsdExact(0), '$0.00')
  t.equal(formatUsdExact(12.345678), '$12.345678')
})

t.test('token, rate, latency and change formatting', async (t) => {
  t.equal(formatTokens(0), '0')
  t.equal(formatTokens(9999), '9,999')
  t.equal(formatTokens(12_345), '12.3k')
  t.equal(formatTokens(150_000), '150k')
  t.equal(formatTokens(1_000_000), '1M')
  t.equal(formatTokens(2_450_000_000), '2.5B')
  t.equal(formatRate(0.9523), '95.2%')
  t.equal(formatRate(null), '–')
  t.equal(formatLatency(123.4), '123 ms')
  t.equal(formatLatency(1530), '1.53 s')
  t.equal(formatLatency(null), '–')
  t.same(formatChange(0.123), { text: '▲ +12%', direction: 'up' })
  t.same(formatChange(-0.054), { text: '▼ −5.4%', direction: 'down' })
  t.same(formatChange(0), { text: '±0%', direction: 'flat' })
  t.same(formatChange(null), { text: 'no previous data', direction: 'none' })
  t.same(formatPointChange(-0.021), { text: '▼ −2.1 pp', direction: 'down' })
})

t.test('filters round-trip through the URL and resolve to API ranges in the chosen zone', async (t) => {
  const tz = 'Europe/Berlin'
  const d = defaultFilters(tz)
  t.equal(serializeFilters(d, tz), '', 'defaults leave the URL clean')
  const f = { ...d, range: 'custom' as const, from: '2026-03-01', to: '2026-03-31', bot: 'bot a', tz: 'Asia/Kolkata', compare: false }
  const url = serializeFilters(f, tz)
  t.same(parseFilters(url, tz), f)
  t.equal(parseFilters('?tz=Not/AZone&range=bogus&success=maybe', tz).tz, tz, 'bad values fall back to defaults')
  t.equal(parseFilters('?range=custom', tz).range, '7d', 'custom without dates falls back')

  // 2026-03-01T23:30Z is already 2 March in Berlin.
  const now = new Date('2026-03-01T23:30:00Z')
  t.same(resolveRange({ ...d, range: '7d' }, now), { startDate: '2026-02-24', endDate: '2026-03-02', interval: 'day' })
  t.same(resolveRange({ ...d, range: 'today', tz: 'UTC' }, now), { startDate: '2026-03-01', endDate: '2026-03-01', interval: 'hour' })
  t.same(resolveRange({ ...d, range: 'lastmonth' }, now), { startDate: '2026-02-01', endDate: '2026-02-28', interval: 'day' })
  t.same(resolveRange({ ...d, range: 'month' }, now), { startDate: '2026-03-01', endDate: '2026-03-02', interval: 'day' })
  t.same(resolveRange({ ...d, range: '24h' }, now), { startDate: '2026-02-28T23:30:00.000Z', endDate: '2026-03-01T23:30:00.000Z', interval: 'hour' })
  t.equal(resolveRange({ ...d, range: 'custom', from: '2026-01-01', to: '2026-12-31' }, now).interval, 'week')
  t.equal(addDays('2024-03-01', -1), '2024-02-29')
  t.same(apiFilters({ ...d, range: '30d', model: 'gpt-4o', success: 'false' }, now), {
    startDate: '2026-02-01',
    endDate: '2026-03-02',
    tz,
    model: 'gpt-4o',
    success: 'false',
  })
})
