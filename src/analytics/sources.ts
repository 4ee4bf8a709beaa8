import { sql, type SQL } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import {
  DAILY_ROLLUPS_NARROWEST_FIRST,
  filterConditions,
  HOURLY_ROLLUP,
  type EventFilter,
  type RollupKey,
  type RollupTable,
} from '../db/event-store.js'
import { LATENCY_BUCKETS, MEASURES, measuresFor, type CoreMeasureName, type LatencyDetail, type Measure, type Totals } from '../db/measures.js'

/**
 * Exact aggregates over any time range, read mostly from rollups.
 *
 * A range is cut at every bucket boundary (local days, weeks, months of a time zone). Between two
 * cuts, whole UTC days come from usage_daily, the remaining whole UTC hours from usage_hourly, and
 * only the partial hours at the edges from raw usage_events. A rollup row is used only when its
 * whole hour or day lies inside one bucket, so a zone whose offset is not a whole number of hours
 * (Asia/Kolkata, +05:30) reads raw events for the hour its boundary splits, and answers stay exact.
 */

export const HOUR_MS = 3_600_000
export const DAY_MS = 86_400_000

/** [from, to) in epoch ms; -Infinity / Infinity for an open side. */
export interface TimeSpan {
  from: number
  to: number
}

export interface SourcePlan {
  daily: TimeSpan[]
  hourly: TimeSpan[]
  raw: TimeSpan[]
}

const floorTo = (t: number, unit: number) => (Number.isFinite(t) ? Math.floor(t / unit) * unit : t)
const ceilTo = (t: number, unit: number) => (Number.isFinite(t) ? Math.ceil(t / unit) * unit : t)

function push(spans: TimeSpan[], from: number, to: number): void {
  if (from >= to) return
  const last = spans[spans.length - 1]
  if (last && last.to === from) last.to = to
  else spans.push({ from, to })
}

/** Which source answers which part of [from, to), given the bucket boundaries inside it. */
export function planSources(from: number, to: number, cuts: readonly number[] = []): SourcePlan {
  const plan: SourcePlan = { daily: [], hourly: [], raw: [] }
  const points = [from, ...cuts.filter((c) => c > from && c < to).sort((a, b) => a - b), to]
  for (let i = 0; i + 1 < points.length; i++) {
    const [a, b] = [points[i], points[i + 1]]
    const [hourFrom, hourTo] = [ceilTo(a, HOUR_MS), floorTo(b, HOUR_MS)]
    if (hourFrom >= hourTo) {
      push(plan.raw, a, b)
      continue
    }
    push(plan.raw, a, hourFrom)
    const [dayFrom, dayTo] = [ceilTo(hourFrom, DAY_MS), floorTo(hourTo, DAY_MS)]
    if (dayFrom >= dayTo) {
      push(plan.hourly, hourFrom, hourTo)
    } else {
      push(plan.hourly, hourFrom, dayFrom)
      push(plan.daily, dayFrom, dayTo)
      push(plan.hourly, dayTo, hourTo)
    }
    push(plan.raw, hourTo, b)
  }
  return plan
}

/** Every part of the range from raw events: for dimensions no rollup has (metadata keys). */
export const rawOnlyPlan = (from: number, to: number): SourcePlan => ({ daily: [], hourly: [], raw: from < to ? [{ from, to }] : [] })

export type ColumnDimension = 'bot_id' | 'provider' | 'model' | 'request_type'
export type Dimension = { column: ColumnDimension } | { metadataKey: string }

export type { LatencyDetail, Totals }

export type BucketUnit = 'hour' | 'day' | 'week' | 'month'

export interface AggregateSpec {
  /** Dimension filters; its from/to are ignored (the plan decides the time ranges). */
  filter: EventFilter
  from: number
  to: number
  dimensions?: Dimension[]
  /** Group by the bucket of `unit` in `tz` too; the plan must then be cut at the bucket starts. */
  bucket?: { unit: BucketUnit; tz: string; starts: readonly number[] }
  latency?: LatencyDetail
  /** Aggregate only these measures (e.g. just the cost, for budgets); default: all of `latency`'s. */
  only?: readonly CoreMeasureName[]
}

/** The measures a spec aggregates, in select-list order. */
function measuresOf(spec: Pick<AggregateSpec, 'latency' | 'only'>): readonly Measure[] {
  const all = measuresFor(spec.latency ?? 'none')
  const only = spec.only
  return only === undefined ? all : all.filter((m) => (only as readonly string[]).includes(m.name))
}

/** The measure columns an aggregate of this latency detail has, in select-list order. */
export function measureColumns(latency: LatencyDetail): string[] {
  return measuresFor(latency).map((m) => m.column)
}

/**
 * The select list that aggregates measure columns of that name (a union of sources, or an
 * already aggregated relation being rolled up further).
 */
export const measureAggregates = (latency: LatencyDetail): SQL => aggregatesOf(measuresFor(latency))

const aggregatesOf = (measures: readonly Measure[]): SQL =>
  sql.raw(measures.map((m) => `${m.kind === 'max' ? 'max' : 'sum'}(${m.column}) AS ${m.column}`).join(', '))

const rollupMeasures = (measures: readonly Measure[]): string =>
  measures.map((m) => (m.fromRollup === undefined ? m.column : `${m.fromRollup} AS ${m.column}`)).join(', ')

const rawMeasures = (measures: readonly Measure[]): string =>
  measures.map((m) => (m.perEvent === m.column ? m.column : `${m.perEvent} AS ${m.column}`)).join(', ')

function spansCondition(column: string, spans: TimeSpan[]): SQL {
  const col = sql.raw(column)
  const parts = spans.map((s) => {
    const bounds: SQL[] = []
    if (Number.isFinite(s.from)) bounds.push(sql`${col} >= ${new Date(s.from).toISOString()}`)
    if (Number.isFinite(s.to)) bounds.push(sql`${col} < ${new Date(s.to).toISOString()}`)
    return bounds.length === 0 ? sql`TRUE` : sql`(${sql.join(bounds, sql` AND `)})`
  })
  return sql`(${sql.join(parts, sql` OR `)})`
}

function dimensionExpressions(dimensions: Dimension[]): SQL[] {
  return dimensions.map((d, i) => {
    const alias = sql.raw(`g${i}`)
    return 'column' in d ? sql`${sql.raw(d.column)} AS ${alias}` : sql`metadata ->> ${d.metadataKey} AS ${alias}`
  })
}

/** The key columns a spec filters or groups on. */
function neededKeys(spec: AggregateSpec): RollupKey[] {
  const f = spec.filter
  const keys = new Set<RollupKey>(['success'])
  if (f.botIds) keys.add('bot_id')
  if (f.model !== undefined) keys.add('model')
  if (f.provider !== undefined) keys.add('provider')
  if (f.requestType !== undefined) keys.add('request_type')
  for (const d of spec.dimensions ?? []) if ('column' in d) keys.add(d.column)
  return [...keys]
}

/** The daily rollup with the fewest rows that still has every key the spec needs. */
export function dailyRollupFor(spec: AggregateSpec): RollupTable {
  const needed = neededKeys(spec)
  const table = DAILY_ROLLUPS_NARROWEST_FIRST.find((r) => needed.every((k) => r.keys.includes(k)))
  if (!table) throw new Error(`no daily rollup has keys ${needed.join(', ')}`)
  return table
}

/** The rows of every source the plan needs, with uniform columns: t, g0..gN, measures. */
function unionOfSources(spec: AggregateSpec, plan: SourcePlan): SQL {
  const measures = measuresOf(spec)
  const dims = dimensionExpressions(spec.dimensions ?? [])
  const dimList = dims.length > 0 ? sql`, ${sql.join(dims, sql`, `)}` : sql``
  const where = filterConditions({ ...spec.filter, from: undefined, to: undefined })
  const branches: SQL[] = []
  const rollup = (table: string, time: string, spans: TimeSpan[]) => {
    if (spans.length === 0) return
    branches.push(sql`SELECT ${sql.raw(time)} AS t${dimList}, ${sql.raw(rollupMeasures(measures))}
      FROM ${sql.raw(table)} WHERE ${where} AND ${spansCondition(time, spans)}`)
  }
  rollup(dailyRollupFor(spec).name, 'day', plan.daily)
  rollup(HOURLY_ROLLUP.name, 'hour', plan.hourly)
  if (plan.raw.length > 0) {
    branches.push(sql`SELECT created_at AS t${dimList}, ${sql.raw(rawMeasures(measures))}
      FROM usage_events WHERE ${where} AND ${spansCondition('created_at', plan.raw)}`)
  }
  if (branches.length === 0) {
    // An empty range still yields a well-typed (empty) relation.
    return sql`SELECT created_at AS t${dimList}, ${sql.raw(rawMeasures(measures))} FROM usage_events WHERE FALSE`
  }
  return sql.join(branches, sql` UNION ALL `)
}

/** The plan for a spec: raw only when a dimension needs raw events, else cut at the bucket starts. */
export function planFor(spec: AggregateSpec): SourcePlan {
  if ((spec.dimensions ?? []).some((d) => 'metadataKey' in d)) return rawOnlyPlan(spec.from, spec.to)
  return planSources(spec.from, spec.to, spec.bucket?.starts ?? [])
}

/**
 * One row per (bucket, g0..gN) with the summed measures. Columns: bucket (when bucketed),
 * g0..gN, then the measure columns (see parseTotals).
 */
export function aggregateSql(spec: AggregateSpec, plan: SourcePlan = planFor(spec)): SQL {
  const groups: SQL[] = []
  if (spec.bucket) groups.push(sql`date_trunc(${spec.bucket.unit}, t, ${spec.bucket.tz}) AS bucket`)
  ;(spec.dimensions ?? []).forEach((_, i) => groups.push(sql.raw(`g${i}`)))
  const groupList = groups.length > 0 ? sql`${sql.join(groups, sql`, `)}, ` : sql``
  const groupBy =
    groups.length > 0 ? sql` GROUP BY ${sql.raw(groups.map((_, i) => String(i + 1)).join(', '))}` : sql``
  return sql`SELECT ${groupList}${aggregatesOf(measuresOf(spec))} FROM (${unionOfSources(spec, plan)}) sources${groupBy}`
}

export type SqlValue = string | number | boolean | null | Date
export type SqlRow = Record<string, SqlValue | undefined>

const toNumber = (v: SqlValue | undefined) => (v === null || v === undefined ? 0 : Number(v))

/** Normalizes a numeric as the drivers return it into a plain decimal string. */
export function decimalText(v: SqlValue | undefined): string {
  if (v === null || v === undefined) return '0'
  return String(v)
}

const nullableNumber = (v: SqlValue | undefined) => (v === null || v === undefined ? null : Number(v))

/** Totals from an aggregate row (columns named as in the measure table); missing columns are zero. */
export function parseTotals(row: SqlRow): Totals {
  const totals: Record<string, number | string | null> = {}
  for (const m of MEASURES) {
    if (m.group === 'histogram' && m.kind !== 'max') continue
    const v = row[m.column]
    totals[m.name] = m.kind === 'usd' ? decimalText(v) : m.kind === 'max' ? nullableNumber(v) : toNumber(v)
  }
  const histogram = row[LATENCY_BUCKETS[0].column] === undefined ? null : LATENCY_BUCKETS.map((b) => toNumber(row[b.column]))
  return { ...(totals as Omit<Totals, 'histogram'>), histogram }
}

export function runAggregate(database: Database, spec: AggregateSpec): Promise<SqlRow[]> {
  return database.rows<SqlRow>(aggregateSql(spec))
}
