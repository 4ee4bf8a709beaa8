const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/
// ISO 8601 timestamp with an explicit zone (Z or ±hh:mm); a zone-less timestamp is ambiguous.
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(:(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i
const YEAR_MONTH = /^(\d{4})-(\d{2})$/

export const DAY_MS = 86_400_000

/**
 * The instants the service accepts anywhere (bodies, query strings): what both Postgres and
 * JavaScript represent with room to spare. Postgres has no year 0 and refuses JavaScript's
 * six-digit years (+010000-01-01), and a range end is computed past its last day (endDate plus
 * a day, the next month, a time zone's offset), so the last year stays clear of 9999.
 */
export const EARLIEST_INSTANT_MS = Date.UTC(1970, 0, 1)
/** Exclusive. */
export const INSTANT_LIMIT_MS = Date.UTC(9999, 0, 1)
export const SUPPORTED_DATES = 'between 1970-01-01 and 9998-12-31'

/** Names of the string formats the validator knows beyond JSON Schema's (see lib/validation.ts). */
export const DATE_OR_TIMESTAMP_FORMAT = 'date-or-date-time'
export const YEAR_MONTH_FORMAT = 'year-month'

export interface ParsedInstant {
  date: Date
  /** True for YYYY-MM-DD input, which callers may widen to the whole day. */
  dateOnly: boolean
}

function validCalendarDate(y: number, m: number, d: number): boolean {
  const dt = new Date(Date.UTC(y, m - 1, d))
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === m - 1 && dt.getUTCDate() === d
}

const supported = (ms: number) => ms >= EARLIEST_INSTANT_MS && ms < INSTANT_LIMIT_MS

/**
 * Strictly parses `YYYY-MM-DD` (UTC midnight) or an ISO 8601 timestamp with zone. Returns null
 * for anything else, including impossible dates that `new Date()` would silently roll over
 * (2024-02-30 is not March 1st), leap seconds (JavaScript cannot represent 23:59:60) and
 * instants outside SUPPORTED_DATES.
 */
export function parseInstant(value: string): ParsedInstant | null {
  const d = DATE_ONLY.exec(value)
  if (d) {
    const [y, m, day] = [Number(d[1]), Number(d[2]), Number(d[3])]
    if (!validCalendarDate(y, m, day)) return null
    const date = new Date(Date.UTC(y, m - 1, day))
    return supported(date.getTime()) ? { date, dateOnly: true } : null
  }
  const t = TIMESTAMP.exec(value)
  if (!t) return null
  const [y, m, day, hh, mm, ss] = [Number(t[1]), Number(t[2]), Number(t[3]), Number(t[4]), Number(t[5]), Number(t[7] ?? 0)]
  if (!validCalendarDate(y, m, day) || hh > 23 || mm > 59 || ss > 59) return null
  const ms = Date.parse(value)
  if (Number.isNaN(ms) || !supported(ms)) return null
  return { date: new Date(ms), dateOnly: false }
}

/** True for an ISO 8601 timestamp with zone (not a bare date) that parseInstant accepts. */
export const isTimestamp = (value: string) => parseInstant(value)?.dateOnly === false

/** True for `YYYY-MM` whose first and last day are SUPPORTED_DATES. */
export function isYearMonth(value: string): boolean {
  const ym = YEAR_MONTH.exec(value)
  if (!ym) return false
  const [y, m] = [Number(ym[1]), Number(ym[2])]
  return m >= 1 && m <= 12 && supported(Date.UTC(y, m - 1, 1)) && supported(Date.UTC(y, m, 1) - 1)
}
