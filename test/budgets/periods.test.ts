import t from 'tap'
import { planSources } from '../../src/analytics/sources.js'
import { periodWindow, type BudgetPeriod } from '../../src/budgets/periods.js'

const cases: Array<[at: string, period: BudgetPeriod, zone: string, start: string, end: string, why: string]> = [
  ['2025-03-15T12:00:00Z', 'month', 'UTC', '2025-03-01T00:00:00Z', '2025-04-01T00:00:00Z', 'plain UTC month'],
  ['2025-12-31T23:59:59Z', 'month', 'UTC', '2025-12-01T00:00:00Z', '2026-01-01T00:00:00Z', 'December rolls into the next year'],
  ['2025-03-31T22:30:00Z', 'month', 'Europe/Berlin', '2025-03-31T22:00:00Z', '2025-04-30T22:00:00Z', 'already April in Berlin (CEST)'],
  ['2025-03-31T21:30:00Z', 'month', 'Europe/Berlin', '2025-02-28T23:00:00Z', '2025-03-31T22:00:00Z', 'March in Berlin spans the DST change'],
  ['2025-03-20T12:00:00Z', 'day', 'Asia/Kolkata', '2025-03-19T18:30:00Z', '2025-03-20T18:30:00Z', 'half-hour offset'],
  ['2025-01-15T00:00:00Z', 'month', 'Asia/Kathmandu', '2024-12-31T18:15:00Z', '2025-01-31T18:15:00Z', 'quarter-hour offset'],
  ['2024-12-15T00:00:00Z', 'month', 'America/St_Johns', '2024-12-01T03:30:00Z', '2025-01-01T03:30:00Z', 'negative half-hour offset'],
  ['2025-03-09T12:00:00Z', 'day', 'America/New_York', '2025-03-09T05:00:00Z', '2025-03-10T04:00:00Z', 'a 23-hour day (spring forward)'],
  ['2025-11-02T12:00:00Z', 'day', 'America/New_York', '2025-11-02T04:00:00Z', '2025-11-03T05:00:00Z', 'a 25-hour day (fall back)'],
  ['2018-11-04T12:00:00Z', 'day', 'America/Sao_Paulo', '2018-11-04T03:00:00Z', '2018-11-05T02:00:00Z', 'midnight skipped: the day starts at 01:00'],
  ['2025-11-27T12:00:00Z', 'week', 'UTC', '2025-11-24T00:00:00Z', '2025-12-01T00:00:00Z', 'weeks start on Monday'],
  ['2025-11-24T00:00:00Z', 'week', 'UTC', '2025-11-24T00:00:00Z', '2025-12-01T00:00:00Z', 'Monday 00:00 starts its own week'],
  ['2025-11-23T23:59:59Z', 'week', 'UTC', '2025-11-17T00:00:00Z', '2025-11-24T00:00:00Z', 'Sunday night is still the previous week'],
  ['2024-12-31T23:59:59Z', 'week', 'Pacific/Kiritimati', '2024-12-29T10:00:00Z', '2025-01-05T10:00:00Z', 'UTC+14: already Wednesday 1 January'],
  ['2025-06-01T10:30:00Z', 'day', 'Pacific/Pago_Pago', '2025-05-31T11:00:00Z', '2025-06-01T11:00:00Z', 'UTC-11: still the previous day'],
]

t.test('calendar periods in a time zone', async (t) => {
  for (const [at, period, zone, start, end, why] of cases) {
    const w = periodWindow(new Date(at), period, zone)
    t.same({ start: w.start.toISOString(), end: w.end.toISOString() }, { start: new Date(start).toISOString(), end: new Date(end).toISOString() }, `${why}: ${period} of ${at} in ${zone}`)
  }
})

t.test('period boundaries are inclusive at the start and exclusive at the end', async (t) => {
  const w = periodWindow(new Date('2025-03-19T18:30:00Z'), 'day', 'Asia/Kolkata')
  t.equal(w.start.toISOString(), '2025-03-19T18:30:00.000Z')
  const before = periodWindow(new Date('2025-03-19T18:29:59.999Z'), 'day', 'Asia/Kolkata')
  t.equal(before.end.toISOString(), '2025-03-19T18:30:00.000Z')
})

t.test('budget spend reads the partial edge hours of offset zones from raw events, the rest from rollups', async (t) => {
  const iso = (spans: { from: number; to: number }[]) => spans.map((s) => [new Date(s.from).toISOString(), new Date(s.to).toISOString()])
  const kolkata = periodWindow(new Date('2025-03-20T12:00:00Z'), 'day', 'Asia/Kolkata')
  const plan = planSources(kolkata.start.getTime(), kolkata.end.getTime())
  t.same(iso(plan.raw), [
    ['2025-03-19T18:30:00.000Z', '2025-03-19T19:00:00.000Z'],
    ['2025-03-20T18:00:00.000Z', '2025-03-20T18:30:00.000Z'],
  ])
  t.same(iso(plan.hourly), [['2025-03-19T19:00:00.000Z', '2025-03-20T18:00:00.000Z']])
  const utc = periodWindow(new Date('2025-03-20T12:00:00Z'), 'month', 'UTC')
  const month = planSources(utc.start.getTime(), utc.end.getTime())
  t.same(iso(month.raw), [])
  t.same(iso(month.daily), [['2025-03-01T00:00:00.000Z', '2025-04-01T00:00:00.000Z']])
})
