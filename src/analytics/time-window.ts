import { sql } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import { Errors } from '../errors.js'
import { parseInstant, SUPPORTED_DATES } from '../lib/time.js'
import { canonicalTimeZone, timeZoneProblem } from '../lib/time-zone.js'
import { DAY_MS, HOUR_MS, type BucketUnit } from './sources.js'

/**
 * Validates time zone names with the service's one rule (canonicalTimeZone), returning the
 * canonical name. The database does the arithmetic, so the name is also tried there once per
 * process: a runtime newer than the database's zone data could know a zone it does not, and
 * that must be the same 400, not a failed query.
 */
export class TimeZones {
  private readonly known = new Map<string, string>([['UTC', 'UTC']])

  constructor(private readonly database: Database) {}

  async check(tz: string, field = 'querystring.tz'): Promise<string> {
    const cached = this.known.get(tz)
    if (cached !== undefined) return cached
    const zone = canonicalTimeZone(tz)
    if (zone === null) throw new Errors.validation(timeZoneProblem(field, tz))
    try {
      await this.database.rows(sql`SELECT now() AT TIME ZONE ${zone}`)
    } catch {
      throw new Errors.validation(timeZoneProblem(field, tz))
    }
    if (this.known.size < 1000) this.known.set(tz, zone)
    return zone
  }
}

export interface Window {
  from: Date
  /** Exclusive. */
  to: Date
}

const toDate = (v: Date | string) => (v instanceof Date ? v : new Date(v))

/** Instant of local midnight starting `date` (YYYY-MM-DD) in `tz`. */
async function localMidnight(database: Database, date: string, tz: string): Promise<Date> {
  if (tz === 'UTC') return new Date(`${date}T00:00:00Z`)
  const [row] = await database.rows<{ at: Date | string }>(sql`SELECT (${date}::date::timestamp AT TIME ZONE ${tz}) AS at`)
  return toDate(row.at)
}

const nextDay = (date: string) => new Date(Date.parse(`${date}T00:00:00Z`) + DAY_MS).toISOString().slice(0, 10)

export interface WindowOptions {
  /** Longest allowed range. */
  maxDays: number
  /** Range when startDate is omitted: this many days before the end. */
  defaultDays: number
  now: Date
  root?: string
}

/**
 * The [from, to) a query covers. startDate and endDate are inclusive; a date-only value means
 * the local day in `tz`, so endDate=2024-03-31&tz=Europe/Berlin ends at Berlin midnight. Omitted:
 * endDate is now, startDate is defaultDays before it.
 */
export async function resolveWindow(
  database: Database,
  q: { startDate?: string; endDate?: string },
  tz: string,
  opts: WindowOptions,
): Promise<Window> {
  const root = opts.root ?? 'querystring'
  const parse = (field: 'startDate' | 'endDate', value: string) => {
    const p = parseInstant(value)
    if (!p) throw new Errors.validation(`${root}.${field} must be a date (YYYY-MM-DD) or an ISO 8601 timestamp with zone, ${SUPPORTED_DATES}`)
    return p
  }
  let to = opts.now
  if (q.endDate !== undefined) {
    const end = parse('endDate', q.endDate)
    to = end.dateOnly ? await localMidnight(database, nextDay(q.endDate), tz) : new Date(end.date.getTime() + 1)
  }
  let from = new Date(to.getTime() - opts.defaultDays * DAY_MS)
  if (q.startDate !== undefined) {
    const start = parse('startDate', q.startDate)
    from = start.dateOnly ? await localMidnight(database, q.startDate, tz) : start.date
  }
  if (from.getTime() >= to.getTime()) {
    throw new Errors.validation(
      q.endDate === undefined
        ? `${root}.startDate must be before now when ${root}.endDate is omitted`
        : `${root}.startDate must not be after ${root}.endDate`,
    )
  }
  // A DST change can make whole local days one hour longer than maxDays * 24 h.
  if (to.getTime() - from.getTime() > opts.maxDays * DAY_MS + HOUR_MS) {
    throw new Errors.validation(`${root}.startDate..endDate covers more than ${opts.maxDays} days (MAX_QUERY_RANGE_DAYS)`)
  }
  return { from, to }
}

/** [from, to) of the calendar month `month` (YYYY-MM) in `tz`. */
export async function monthWindow(database: Database, month: string, tz: string): Promise<Window> {
  const [year, m] = month.split('-').map(Number)
  const next = m === 12 ? `${year + 1}-01-01` : `${year}-${String(m + 1).padStart(2, '0')}-01`
  const [from, to] = await Promise.all([localMidnight(database, `${month}-01`, tz), localMidnight(database, next, tz)])
  return { from, to }
}

/** The current month (YYYY-MM) in `tz`. */
export async function currentMonth(database: Database, tz: string, now: Date): Promise<string> {
  const [row] = await database.rows<{ month: string }>(sql`SELECT to_char(${now.toISOString()}::timestamptz AT TIME ZONE ${tz}, 'YYYY-MM') AS month`)
  return row.month
}

/**
 * Starts of the `unit` buckets of `tz` that overlap [from, to), first one at or before `from`.
 * Day, week (ISO, Monday) and month steps are taken in local time, so a bucket spans a whole
 * local day even when DST makes it 23 or 25 hours long.
 */
export async function bucketStarts(database: Database, window: Window, unit: BucketUnit, tz: string, maxBuckets: number): Promise<number[]> {
  const from = window.from.toISOString()
  const to = window.to.toISOString()
  const rows =
    unit === 'hour'
      ? await database.rows<{ b: Date | string }>(sql`
          SELECT b FROM generate_series(date_trunc('hour', ${from}::timestamptz, ${tz}), ${to}::timestamptz, interval '1 hour') b
          WHERE b < ${to}::timestamptz LIMIT ${maxBuckets + 1}`)
      : await database.rows<{ b: Date | string }>(sql`
          SELECT b FROM (
            SELECT local AT TIME ZONE ${tz} AS b
            FROM generate_series(date_trunc(${unit}, ${from}::timestamptz AT TIME ZONE ${tz}),
                                 ${to}::timestamptz AT TIME ZONE ${tz}, ${`1 ${unit}`}::interval) local
          ) s WHERE b < ${to}::timestamptz LIMIT ${maxBuckets + 1}`)
  return rows.map((r) => toDate(r.b).getTime())
}
