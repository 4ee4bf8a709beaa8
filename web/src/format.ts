/** Number and date formatting for the dashboard. Pure: unit-tested from Node. */

const nf = (options: Intl.NumberFormatOptions) => new Intl.NumberFormat('en-US', options)
const usd2 = nf({ style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 2 })
const usdSmall = nf({ style: 'currency', currency: 'USD', maximumSignificantDigits: 3 })
const integer = nf({ maximumFractionDigits: 0 })

/**
 * Money: cents from $1 up, three significant digits below a dollar (costs per call are often
 * fractions of a cent), "$0.00" for zero.
 */
export function formatUsd(value: number): string {
  if (!Number.isFinite(value)) return '–'
  if (value === 0) return '$0.00'
  const abs = Math.abs(value)
  if (abs >= 1) return usd2.format(value)
  if (abs < 0.000001) return value < 0 ? '-<$0.000001' : '<$0.000001'
  // At least the cents: "$0.50", not "$0.5".
  return usdSmall.format(value).replace(/\.(\d)$/, (_, digit: string) => `.${digit}0`)
}

/** Exact dollars for tooltips and tables (up to 6 decimals, trailing zeros trimmed past the cents). */
export function formatUsdExact(value: number): string {
  if (!Number.isFinite(value)) return '–'
  const fixed = Math.abs(value).toFixed(6).replace(/0{1,4}$/, '')
  const [whole, fraction] = fixed.split('.')
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',')
  return `${value < 0 ? '-' : ''}$${grouped}.${fraction}`
}

/** Tokens: exact below 10,000, then k / M / B with at most one decimal. */
export function formatTokens(value: number): string {
  if (!Number.isFinite(value)) return '–'
  const abs = Math.abs(value)
  if (abs < 10_000) return integer.format(value)
  const units: [number, string][] = [
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'k'],
  ]
  for (const [size, suffix] of units) {
    if (abs >= size) {
      const scaled = value / size
      const text = Math.abs(scaled) >= 100 ? scaled.toFixed(0) : scaled.toFixed(1).replace(/\.0$/, '')
      return `${text}${suffix}`
    }
  }
  return integer.format(value)
}

export function formatInteger(value: number): string {
  return Number.isFinite(value) ? integer.format(value) : '–'
}

/** A 0..1 fraction as a percentage with one decimal; "–" for null. */
export function formatRate(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return '–'
  return `${(value * 100).toFixed(1)}%`
}

export function formatLatency(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '–'
  if (ms < 1000) return `${Math.round(ms)} ms`
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`
}

export interface ChangeText {
  text: string
  /** up, down or flat: the direction, independent of whether that is good. */
  direction: 'up' | 'down' | 'flat' | 'none'
}

/** A relative change (0.12 = +12%) as text; null means there was nothing before. */
export function formatChange(change: number | null): ChangeText {
  if (change === null || !Number.isFinite(change)) return { text: 'no previous data', direction: 'none' }
  const pct = change * 100
  if (Math.abs(pct) < 0.05) return { text: '±0%', direction: 'flat' }
  const digits = Math.abs(pct) >= 10 ? 0 : 1
  return { text: `${pct > 0 ? '▲ +' : '▼ −'}${Math.abs(pct).toFixed(digits)}%`, direction: pct > 0 ? 'up' : 'down' }
}

/** A difference of two rates in percentage points (0.02 = +2.0 pp). */
export function formatPointChange(change: number | null): ChangeText {
  if (change === null || !Number.isFinite(change)) return { text: 'no previous data', direction: 'none' }
  const pp = change * 100
  if (Math.abs(pp) < 0.05) return { text: '±0 pp', direction: 'flat' }
  return { text: `${pp > 0 ? '▲ +' : '▼ −'}${Math.abs(pp).toFixed(1)} pp`, direction: pp > 0 ? 'up' : 'down' }
}

export type Interval = 'hour' | 'day' | 'week' | 'month'

/** A bucket start as a short label in the chosen time zone. */
export function formatBucket(iso: string, interval: Interval, tz: string): string {
  const date = new Date(iso)
  const options: Intl.DateTimeFormatOptions =
    interval === 'hour'
      ? { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: tz }
      : interval === 'month'
        ? { year: 'numeric', month: 'short', timeZone: tz }
        : { month: 'short', day: 'numeric', timeZone: tz }
  return new Intl.DateTimeFormat('en-US', options).format(date)
}

/** A timestamp with date and time in the chosen zone, for tables. */
export function formatTimestamp(iso: string, tz: string): string {
  return new Intl.DateTimeFormat('en-CA', {
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
    timeZone: tz,
  })
    .format(new Date(iso))
    .replace(',', '')
}
