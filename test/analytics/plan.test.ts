import t from 'tap'
import { GRAIN_MS, ROLLUP_GRAINS, type RollupGrain } from '../../src/db/event-store.js'
import { planSources, rollupFor, type AggregateSpec, type PlanOptions, type PlanSpan, type Source, type SourcePlan } from '../../src/analytics/sources.js'

/**
 * The planner alone (no database): over random ranges and bucket cuts, every instant of every
 * bucket is counted exactly once in that bucket and nowhere else, once the signed spans of all
 * sources are added up and each row is grouped where the reader groups it (its own time, or the
 * midpoint of the coarser row it was subtracted from). That is what makes subtraction exact.
 */

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

function prng(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** Where the reader groups a row at time x read through `span` (see rowTime in sources.ts). */
function groupedAt(span: PlanSpan, source: Source, x: number): number {
  if (span.anchor === null) return source === 'raw' ? x : Math.floor(x / GRAIN_MS[source]) * GRAIN_MS[source]
  if (typeof span.anchor === 'number') return span.anchor
  const unit = GRAIN_MS[span.anchor]
  return Math.floor(x / unit) * unit + unit / 2
}

function segmentOf(points: number[], x: number): number {
  for (let i = 0; i + 1 < points.length; i++) if (x >= points[i] && x < points[i + 1]) return i
  return -1
}

/** For instant x: the net count per segment over every span of the plan that contains x. */
function netCounts(plan: SourcePlan, points: number[], x: number): Map<number, number> {
  const counts = new Map<number, number>()
  for (const source of ['day', 'hour', 'quarter_hour', 'raw'] as const) {
    for (const span of plan[source]) {
      // A rollup row covers its whole unit: x is in the row when the row's start is in the span.
      const rowStart = source === 'raw' ? x : Math.floor(x / GRAIN_MS[source]) * GRAIN_MS[source]
      if (rowStart < span.from || rowStart >= span.to) continue
      const segment = segmentOf(points, groupedAt(span, source, x))
      counts.set(segment, (counts.get(segment) ?? 0) + span.sign)
    }
  }
  for (const [k, v] of counts) if (v === 0) counts.delete(k)
  return counts
}

const grainSets: PlanOptions[] = [
  { grains: ['day', 'hour', 'quarter_hour'], subtract: true },
  { grains: ['day', 'hour'], subtract: true },
  { grains: ['day', 'hour', 'quarter_hour'], subtract: false },
  { grains: ['day', 'hour', 'quarter_hour'], subtract: false, subtractFuture: true },
  { grains: ['hour'], subtract: true },
  { grains: [], subtract: true },
]

t.test('every instant counts once, in its own bucket, whatever the grains and cuts', async (t) => {
  const random = prng(15)
  const base = Date.parse('2024-03-25T00:00:00Z')
  let checked = 0
  let withPresent = 0
  for (let round = 0; round < 600; round++) {
    // Half the rounds with a present somewhere around the range (parts after it cost nothing to read).
    const present = Math.floor(round / grainSets.length) % 2 === 0 ? undefined : base + Math.floor(random() * 12 * DAY) - DAY
    const opts = { ...grainSets[round % grainSets.length], present }
    // Offsets on a 15-minute grid, on whole minutes and on milliseconds: zone boundaries and range edges.
    const at = () => base + Math.floor(random() * 10 * DAY / [15 * MINUTE, MINUTE, 1][round % 3]) * [15 * MINUTE, MINUTE, 1][round % 3]
    const [from, to] = [at(), at()].sort((a, b) => a - b)
    if (from === to) continue
    const cuts = Array.from({ length: Math.floor(random() * 6) }, at).sort((a, b) => a - b)
    const plan = planSources(from, to, cuts, opts)
    if (present !== undefined) withPresent++
    const points = [from, ...cuts.filter((c) => c > from && c < to), to]
    for (let x = from - 2 * DAY; x < to + 2 * DAY; x += 7 * MINUTE + Math.floor(random() * 8 * MINUTE)) {
      const net = netCounts(plan, points, x)
      const inside = segmentOf(points, x)
      const expected = inside === -1 ? [] : [[inside, 1]]
      if (JSON.stringify([...net]) !== JSON.stringify(expected)) {
        t.fail(`range ${new Date(from).toISOString()}..${new Date(to).toISOString()} cuts ${cuts.length} ${JSON.stringify(opts)}: at ${new Date(x).toISOString()} got ${JSON.stringify([...net])}`)
        return
      }
      checked++
    }
  }
  t.ok(checked > 20_000, `${checked} instants checked`)
  t.ok(withPresent > 250, `${withPresent} ranges planned with a present`)
})

const rows = (plan: SourcePlan, source: Source) =>
  plan[source].reduce((n, s) => n + (source === 'raw' ? 0 : (s.to - s.from) / GRAIN_MS[source as RollupGrain]), 0)

t.test('a local day reads its UTC day plus or minus the hours (or quarters) where the two differ', async (t) => {
  const full: PlanOptions = { grains: ['day', 'hour', 'quarter_hour'], subtract: true }
  // Europe/Berlin, 2024-03-15 (UTC+1): 2024-03-14T23:00Z .. 2024-03-15T23:00Z.
  const berlin = planSources(Date.parse('2024-03-14T23:00:00Z'), Date.parse('2024-03-15T23:00:00Z'), [], full)
  t.same(
    { day: rows(berlin, 'day'), hour: rows(berlin, 'hour'), quarter: rows(berlin, 'quarter_hour'), raw: berlin.raw.length },
    { day: 1, hour: 2, quarter: 0, raw: 0 },
    'one daily row, one hour added and one subtracted',
  )
  t.same(berlin.hour.map((s) => s.sign).sort(), [-1, 1])
  // Asia/Kathmandu (+05:45): 2024-03-14T18:15Z .. 2024-03-15T18:15Z, no raw events at all.
  const kathmandu = planSources(Date.parse('2024-03-14T18:15:00Z'), Date.parse('2024-03-15T18:15:00Z'), [], full)
  t.equal(kathmandu.raw.length, 0, 'quarter-hours cover the split hour')
  t.equal(rows(kathmandu, 'day'), 1)
  t.ok(rows(kathmandu, 'hour') + rows(kathmandu, 'quarter_hour') <= 16, 'a few edge rows instead of 24 hours')
  // Without quarter-hours (a question no quarter rollup has keys for) the split hour reads raw.
  const kathmanduRaw = planSources(Date.parse('2024-03-14T18:15:00Z'), Date.parse('2024-03-15T18:15:00Z'), [], { grains: ['day', 'hour'], subtract: true })
  t.ok(kathmanduRaw.raw.length > 0)
  // Without subtraction (maxima needed) the same Berlin day is 24 hourly spans' worth.
  const additive = planSources(Date.parse('2024-03-14T23:00:00Z'), Date.parse('2024-03-15T23:00:00Z'), [], { ...full, subtract: false })
  t.same([rows(additive, 'day'), rows(additive, 'hour')], [0, 24])
  t.ok([...additive.day, ...additive.hour, ...additive.raw].every((s) => s.sign === 1 && s.anchor === null))
})

t.test('a range ending now reads no raw events before now but at its start', async (t) => {
  const full: PlanOptions = { grains: ['day', 'hour', 'quarter_hour'], subtract: true }
  const rawBefore = (plan: SourcePlan, at: number) => plan.raw.reduce((ms, s) => ms + Math.max(0, Math.min(s.to, at) - s.from), 0)
  // Now is 3 minutes into a quarter-hour and an hour, 3 hours into the day: the last 24 hours.
  const now = Date.parse('2024-03-15T03:03:23.456Z')
  const last24 = planSources(now - DAY, now, [], { ...full, present: now })
  t.equal(rawBefore(last24, now - DAY + 15 * MINUTE), rawBefore(last24, now), 'raw events only at the start edge')
  t.ok(rawBefore(last24, now) <= 7.5 * MINUTE, 'at most half a quarter-hour of them')
  t.ok(last24.day.some((s) => s.sign === 1 && s.from === Date.parse('2024-03-15T00:00:00Z')), "today's row, minus the rest of the day")
  // Without a present, the end edge is read as raw events since the last quarter-hour.
  const past = planSources(now - DAY, now, [], full)
  t.equal(rawBefore(past, now) - rawBefore(past, now - DAY + 15 * MINUTE), 3 * MINUTE + 23_456)
  // With hour buckets in Asia/Kolkata (cuts at :30), the 3 minutes since 03:00Z are the 03:00 hour's
  // row minus the rest of that hour, grouped at 03:00Z (in the 02:30Z bucket, as its midpoint is not).
  const cuts = Array.from({ length: 25 }, (_, i) => Date.parse('2024-03-14T03:30:00Z') + i * HOUR)
  const kolkata = planSources(now - DAY, now, cuts, { ...full, present: now })
  t.ok([...kolkata.hour, ...kolkata.quarter_hour, ...kolkata.raw].some((s) => s.anchor === Date.parse('2024-03-15T03:00:00Z')))
  t.equal(rawBefore(kolkata, now - DAY + 15 * MINUTE), rawBefore(kolkata, now))
})

t.test('each grain is read from the narrowest rollup with the keys of the question', async (t) => {
  const spec = (extra: Partial<AggregateSpec>): AggregateSpec => ({ filter: {}, from: 0, to: DAY, ...extra })
  const tables = (s: AggregateSpec) => ROLLUP_GRAINS.map((g) => rollupFor(g, s)?.name ?? null)
  t.same(tables(spec({})), ['usage_daily_totals', 'usage_hourly_totals', 'usage_quarter_hourly_totals'], 'unfiltered totals: two rows per unit')
  t.same(tables(spec({ dimensions: [{ column: 'model' }] })), ['usage_daily_models', 'usage_hourly_models', 'usage_quarter_hourly_models'])
  t.same(tables(spec({ filter: { botIds: ['b'] } })), ['usage_daily_bots', 'usage_hourly_bots', null], 'no quarter-hours per bot')
  t.same(tables(spec({ filter: { botIds: ['b'] }, dimensions: [{ column: 'model' }] })), ['usage_daily', 'usage_hourly', null])
})
