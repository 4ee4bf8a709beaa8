export const PERIODS = ['day', 'week', 'month'] as const
export type BudgetPeriod = (typeof PERIODS)[number]

/** A calendar period as instants: start inclusive, end exclusive. */
export interface PeriodWindow {
  start: Date
  end: Date
}

interface LocalDate {
  year: number
  month: number
  day: number
}

const HOUR_MS = 3_600_000
const formatters = new Map<string, Intl.DateTimeFormat>()

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    })
    formatters.set(timeZone, f)
  }
  return f
}

/** The wall clock in `timeZone` at `instant`, as if it were a UTC timestamp (ms, whole seconds). */
function wallClockMs(instant: number, timeZone: string): number {
  const parts: Record<string, number> = {}
  for (const p of formatterFor(timeZone).formatToParts(new Date(instant))) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value)
  }
  return Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second)
}

function localDateOf(instant: number, timeZone: string): LocalDate {
  const wall = new Date(wallClockMs(instant, timeZone))
  return { year: wall.getUTCFullYear(), month: wall.getUTCMonth() + 1, day: wall.getUTCDate() }
}

/** Offset of `timeZone` from UTC at `instant`, ms (east positive). */
function offsetAt(instant: number, timeZone: string): number {
  const whole = Math.floor(instant / 1000) * 1000
  return wallClockMs(whole, timeZone) - whole
}

/** Normalizes day overflow: 2024-01-32 -> 2024-02-01. */
function addDays(d: LocalDate, days: number): LocalDate {
  const dt = new Date(Date.UTC(d.year, d.month - 1, d.day + days))
  return { year: dt.getUTCFullYear(), month: dt.getUTCMonth() + 1, day: dt.getUTCDate() }
}

const dayNumber = (d: LocalDate) => Date.UTC(d.year, d.month - 1, d.day)

/**
 * The first instant of local day `d` in `timeZone`: usually local midnight; where a DST change
 * skips midnight (America/Sao_Paulo before 2019, for one) the day starts at 01:00.
 */
export function startOfLocalDay(d: LocalDate, timeZone: string): Date {
  const day = dayNumber(d)
  const onOrAfter = (t: number) => dayNumber(localDateOf(t, timeZone)) >= day
  const guess = day - offsetAt(day - offsetAt(day, timeZone), timeZone)
  if (onOrAfter(guess) && !onOrAfter(guess - 1000)) return new Date(guess)
  // UTC offsets lie within -12 h..+14 h, so the day starts within this range; transitions fall on whole seconds.
  let lo = (day - 15 * HOUR_MS) / 1000
  let hi = (day + 13 * HOUR_MS) / 1000
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2)
    if (onOrAfter(mid * 1000)) hi = mid
    else lo = mid
  }
  return new Date(hi * 1000)
}

/** The calendar period containing `at` in `timeZone`. Weeks start on Monday (ISO 8601). */
export function periodWindow(at: Date, period: BudgetPeriod, timeZone: string): PeriodWindow {
  const today = localDateOf(at.getTime(), timeZone)
  let first: LocalDate
  let next: LocalDate
  if (period === 'day') {
    first = today
    next = addDays(today, 1)
  } else if (period === 'week') {
    const weekday = new Date(dayNumber(today)).getUTCDay()
    first = addDays(today, -((weekday + 6) % 7))
    next = addDays(first, 7)
  } else {
    first = { year: today.year, month: today.month, day: 1 }
    next = today.month === 12 ? { year: today.year + 1, month: 1, day: 1 } : { year: today.year, month: today.month + 1, day: 1 }
  }
  return { start: startOfLocalDay(first, timeZone), end: startOfLocalDay(next, timeZone) }
}
