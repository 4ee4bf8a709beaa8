/** Turns API answers into what the charts and tables draw. Pure: unit-tested from Node. */

export interface Point {
  start: string
}

/**
 * One value per bucket start, in the order of `starts`; starts missing from `points` count 0.
 * The API already zero-fills, but a series and the overall buckets must line up exactly even if
 * one of them is shorter.
 */
export function zeroFill<T extends Point>(starts: string[], points: T[], value: (p: T) => number): number[] {
  const byStart = new Map<number, number>()
  for (const p of points) byStart.set(Date.parse(p.start), value(p))
  return starts.map((s) => byStart.get(Date.parse(s)) ?? 0)
}

export interface StackInput<T extends Point> {
  buckets: T[]
  series: { group: string; buckets: T[] }[]
  otherGroups: number
}

export interface StackLayer {
  label: string
  values: number[]
}

/** Rounds away float noise from subtracting sums of money (1e-9 USD is far below a displayed digit). */
const clean = (v: number) => {
  const r = Math.round(v * 1e9) / 1e9
  return Math.abs(r) < 1e-9 ? 0 : r
}

/**
 * Layers for a stacked chart: one per series, plus "Other" (total minus the series, never
 * negative) when groups were left out, so the stack's top always equals the bucket's total.
 */
export function stackLayers<T extends Point>(input: StackInput<T>, value: (p: T) => number, otherLabel = 'Other'): StackLayer[] {
  const starts = input.buckets.map((b) => b.start)
  const layers = input.series.map((s) => ({ label: s.group, values: zeroFill(starts, s.buckets, value) }))
  const totals = input.buckets.map(value)
  const other = totals.map((t, i) => clean(Math.max(0, t - layers.reduce((sum, l) => sum + l.values[i], 0))))
  if (input.otherGroups > 0 || other.some((v) => v > 0)) layers.push({ label: otherLabel, values: other })
  return layers
}

/** Running tops of stacked layers: tops[k][i] is the height of layer k's upper edge at bucket i. */
export function stackTops(layers: StackLayer[]): number[][] {
  const tops: number[][] = []
  layers.forEach((layer, k) => {
    tops.push(layer.values.map((v, i) => clean((k === 0 ? 0 : tops[k - 1][i]) + v)))
  })
  return tops
}

/** Failures / calls per bucket; null (a gap, not 0%) where there were no calls. */
export function errorRates(buckets: { calls: number; failures: number }[]): (number | null)[] {
  return buckets.map((b) => (b.calls === 0 ? null : b.failures / b.calls))
}

/** True when nothing happened in the whole range: the charts then say so instead of drawing axes. */
export function isEmptyRange(buckets: { calls: number }[]): boolean {
  return buckets.every((b) => b.calls === 0)
}

export type SortOrder = 'asc' | 'desc'

/** Sorts table rows by a column; text compares naturally, nulls last either way. */
export function sortRows<T>(rows: T[], key: (row: T) => string | number | null, order: SortOrder): T[] {
  const factor = order === 'asc' ? 1 : -1
  return [...rows].sort((a, b) => {
    const x = key(a)
    const y = key(b)
    if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1
    if (typeof x === 'number' && typeof y === 'number') return (x - y) * factor
    return String(x).localeCompare(String(y), 'en', { numeric: true }) * factor
  })
}

/** Tokens by kind per bucket. Input and output include their cache/reasoning parts, so those are split out. */
export function tokenLayers(
  buckets: { inputTokens: number; outputTokens: number; cacheReadTokens: number; cacheWriteTokens: number; reasoningTokens: number }[],
): StackLayer[] {
  return [
    { label: 'Input (uncached)', values: buckets.map((b) => Math.max(0, b.inputTokens - b.cacheReadTokens - b.cacheWriteTokens)) },
    { label: 'Cache read', values: buckets.map((b) => b.cacheReadTokens) },
    { label: 'Cache write', values: buckets.map((b) => b.cacheWriteTokens) },
    { label: 'Output (non-reasoning)', values: buckets.map((b) => Math.max(0, b.outputTokens - b.reasoningTokens)) },
    { label: 'Reasoning', values: buckets.map((b) => b.reasoningTokens) },
  ]
}

/**
 * Okabe & Ito's palette, distinguishable with the common colour-vision deficiencies; the
 * dashed and dotted line styles of the charts add a second cue beyond colour.
 */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000', '#999999']
export const PALETTE_DARK = ['#56B4E9', '#E69F00', '#009E73', '#CC79A7', '#0072B2', '#D55E00', '#F0E442', '#FFFFFF', '#999999']
