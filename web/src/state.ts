/** The dashboard's filter state, kept in the URL so a view can be shared. Pure: unit-tested from Node. */
import type { Interval } from './format.js'

export const RANGES = ['today', '24h', '7d', '30d', 'month', 'lastmonth', 'custom'] as const
export type RangePreset = (typeof RANGES)[number]
export const RANGE_LABELS: Record<RangePreset, string> = {
  today: 'Today',
  '24h': 'Last 24 h',
  '7d': 'Last 7 days',
  '30d': 'Last 30 days',
  month: 'This month',
  lastmonth: 'Last month',
  custom: 'Custom',
}
export const STACKS = ['model', 'botId', 'provider'] as const
export type Stack = (typeof STACKS)[number]

export interface Filters {
  range: RangePreset
  /** Custom range, inclusive local dates (YYYY-MM-DD). */
  from: string
  to: string
  bot: string
  provider: string
  model: string
  requestType: string
  success: '' | 'true' | 'false'
  tz: string
  compare: boolean
  stack: Stack
  /** Breakdown dimension: model, provider, botId, requestType or metadata.<key>. */
  dim: string
}

export function defaultFilters(browserTz: string): Filters {
  return {
    range: '7d',
    from: '',
    to: '',
    bot: '',
    provider: '',
    model: '',
    requestType: '',
    success: '',
    tz: browserTz,
    compare: true,
    stack: 'model',
    dim: 'model',
  }
}

const DATE = /^\d{4}-\d{2}-\d{2}$/

/** Reads filters from a query string; anything unknown or malformed falls back to the default. */
export function parseFilters(search: string, browserTz: string): Filters {
  const p = new URLSearchParams(search)
  const f = defaultFilters(browserTz)
  const range = p.get('range')
  if (range && (RANGES as readonly string[]).includes(range)) f.range = range as RangePreset
  const from = p.get('from') ?? ''
  const to = p.get('to') ?? ''
  if (DATE.test(from)) f.from = from
  if (DATE.test(to)) f.to = to
  if (f.range === 'custom' && (!f.from || !f.to)) f.range = '7d'
  for (const key of ['bot', 'provider', 'model', 'requestType'] as const) f[key] = (p.get(key) ?? '').slice(0, 200)
  const success = p.get('success')
  if (success === 'true' || success === 'false') f.success = success
  const tz = p.get('tz')
  if (tz && isTimeZone(tz)) f.tz = tz
  if (p.get('compare') === '0') f.compare = false
  const stack = p.get('stack')
  if (stack && (STACKS as readonly string[]).includes(stack)) f.stack = stack as Stack
  const dim = p.get('dim')
  if (dim && /^(model|provider|botId|requestType|metadata\.[A-Za-z0-9_.:-]{1,100})$/.test(dim)) f.dim = dim
  return f
}

/** Writes only what differs from the defaults, so the URL stays short. */
export function serializeFilters(f: Filters, browserTz: string): string {
  const d = defaultFilters(browserTz)
  const p = new URLSearchParams()
  if (f.range !== d.range) p.set('range', f.range)
  if (f.range === 'custom') {
    p.set('from', f.from)
    p.set('to', f.to)
  }
  for (const key of ['bot', 'provider', 'model', 'requestType', 'success'] as const) if (f[key]) p.set(key, f[key])
  if (f.tz !== d.tz) p.set('tz', f.tz)
  if (!f.compare) p.set('compare', '0')
  if (f.stack !== d.stack) p.set('stack', f.stack)
  if (f.dim !== d.dim) p.set('dim', f.dim)
  const s = p.toString()
  return s ? `?${s}` : ''
}

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz })
    return true
  } catch {
    return false
  }
}

/** The local calendar date of an instant in a zone, as YYYY-MM-DD. */
export function localDate(instant: Date, tz: string): string {
  return new Intl.DateTimeFormat('en-CA', { year: 'numeric', month: '2-digit', day: '2-digit', timeZone: tz }).format(instant)
}

/** Plain-date arithmetic (no zone involved). */
export function addDays(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() + days)
  return d.toISOString().slice(0, 10)
}

function daysBetween(a: string, b: string): number {
  return Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / 86_400_000)
}

export interface ResolvedRange {
  startDate: string
  endDate: string
  interval: Interval
}

/** The API's startDate/endDate (inclusive) and a bucket size for a preset, at `now` in `tz`. */
export function resolveRange(f: Pick<Filters, 'range' | 'from' | 'to' | 'tz'>, now: Date): ResolvedRange {
  const today = localDate(now, f.tz)
  switch (f.range) {
    case 'today':
      return { startDate: today, endDate: today, interval: 'hour' }
    case '24h':
      return { startDate: new Date(now.getTime() - 86_400_000).toISOString(), endDate: now.toISOString(), interval: 'hour' }
    case '7d':
      return { startDate: addDays(today, -6), endDate: today, interval: 'day' }
    case '30d':
      return { startDate: addDays(today, -29), endDate: today, interval: 'day' }
    case 'month':
      return { startDate: `${today.slice(0, 7)}-01`, endDate: today, interval: 'day' }
    case 'lastmonth': {
      const firstOfThis = `${today.slice(0, 7)}-01`
      const lastOfPrevious = addDays(firstOfThis, -1)
      return { startDate: `${lastOfPrevious.slice(0, 7)}-01`, endDate: lastOfPrevious, interval: 'day' }
    }
    case 'custom': {
      const [a, b] = f.from <= f.to ? [f.from, f.to] : [f.to, f.from]
      const days = daysBetween(a, b) + 1
      const interval: Interval = days <= 2 ? 'hour' : days <= 120 ? 'day' : days <= 730 ? 'week' : 'month'
      return { startDate: a, endDate: b, interval }
    }
  }
}

/** The API filter parameters of the current view (what every analytics call sends). */
export function apiFilters(f: Filters, now: Date): Record<string, string> {
  const r = resolveRange(f, now)
  const q: Record<string, string> = { startDate: r.startDate, endDate: r.endDate, tz: f.tz }
  if (f.bot) q.botId = f.bot
  if (f.provider) q.provider = f.provider
  if (f.model) q.model = f.model
  if (f.requestType) q.requestType = f.requestType
  if (f.success) q.success = f.success
  return q
}
