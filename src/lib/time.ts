const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/
// ISO 8601 timestamp with an explicit zone (Z or ±hh:mm); a zone-less timestamp is ambiguous.
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(:(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i

export const DAY_MS = 86_400_000

export interface ParsedInstant {
  date: Date
  /** True for YYYY-MM-DD input, which callers may widen to the whole day. */
  dateOnly: boolean
}

function validCalendarDate(y: number, m: number, d: number): boolean {
  const dt = new Date(Date.UTC(y, m - 1, d))
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === m - 1 && dt.getUTCDate() === d
}

/**
 * Strictly parses `YYYY-MM-DD` (UTC midnight) or an ISO 8601 timestamp with zone. Returns null
 * for anything else, including impossible dates that `new Date()` would silently roll over
 * (2024-02-30 is not March 1st).
 */
export function parseInstant(value: string): ParsedInstant | null {
  const d = DATE_ONLY.exec(value)
  if (d) {
    const [y, m, day] = [Number(d[1]), Number(d[2]), Number(d[3])]
    if (!validCalendarDate(y, m, day)) return null
    return { date: new Date(Date.UTC(y, m - 1, day)), dateOnly: true }
  }
  const t = TIMESTAMP.exec(value)
  if (!t) return null
  const [y, m, day, hh, mm, ss] = [Number(t[1]), Number(t[2]), Number(t[3]), Number(t[4]), Number(t[5]), Number(t[7] ?? 0)]
  if (!validCalendarDate(y, m, day) || hh > 23 || mm > 59 || ss > 59) return null
  const ms = Date.parse(value)
  if (Number.isNaN(ms)) return null
  return { date: new Date(ms), dateOnly: false }
}
