import { sql, type SQL } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import {
  filterConditions,
  GRAIN_MS,
  grainStart,
  METADATA_ROLLUPS,
  metadataEventGroup,
  metadataRowGroup,
  ROLLUP_GRAINS,
  ROLLUPS_NARROWEST_FIRST,
  type EventFilter,
  type MetadataRollupKey,
  type MetadataRollupTable,
  type RollupGrain,
  type RollupKey,
  type RollupTable,
  UNFOLDED_EVENTS,
} from '../db/event-store.js'
import { compileRecordBuilder, quoted } from '../lib/record-builder.js'
import { LATENCY_BUCKETS, measuresFor, TOTALS_MEASURES, type CoreMeasureName, type LatencyDetail, type Measure, type Totals } from '../db/measures.js'

/**
 * Exact aggregates over any time range, read mostly from rollups.
 *
 * A range is cut at every bucket boundary (local days, weeks, months of a time zone). Each piece
 * between two cuts is covered by whole UTC days, hours and quarter-hours of the rollups, and raw
 * events only for what no rollup row fits. A piece that covers more than half of a UTC day is
 * read as that day's row MINUS the hours outside the piece (and likewise an hour as its row minus
 * the quarter-hours outside), so a Berlin day is one daily row per key plus one hour and minus
 * one hour, not 24 hourly rows. Sums and histograms subtract exactly; the maximum latency does
 * not, so questions that need it are planned without subtraction. A piece that reaches the present
 * is read as its row minus the part after now, which holds next to no events (PlanOptions.present).
 *
 * Rows of a subtracted part and of the coarser row it is taken from belong to the bucket of that
 * row: the piece covers more than half of the row's span and is contiguous, so it contains the
 * row's midpoint, and grouping them at that midpoint puts them in the piece's bucket.
 */

export const HOUR_MS = 3_600_000
export const DAY_MS = 86_400_000

/** [from, to) in epoch ms; -Infinity / Infinity for an open side. */
export interface TimeSpan {
  from: number
  to: number
}

/**
 * Where the rows of a span are grouped: a grain (at the midpoint of the coarser row of that grain
 * they belong to), an instant (epoch ms: every row at that time), or null (at the rows' own time).
 */
export type Anchor = RollupGrain | number | null

export interface PlanSpan extends TimeSpan {
  /** -1: the part of a coarser row that lies outside its piece, subtracted. */
  sign: 1 | -1
  /**
   * Where the coarser row this span belongs to is grouped: the midpoint of its grain's row when
   * the piece holds that midpoint, else the piece's start (a piece reaching the present, below).
   * Null when the span lies inside its piece (grouped at the rows' own time).
   */
  anchor: Anchor
}

export type Source = RollupGrain | 'raw'
export type SourcePlan = Record<Source, PlanSpan[]>

export interface PlanOptions {
  /** Rollup grains that can answer the question, coarsest first; the rest is raw. */
  grains: readonly RollupGrain[]
  /** Whether a coarser row minus finer rows may replace finer rows (not for maxima). */
  subtract: boolean
  /**
   * The present (epoch ms; default: none, every instant counts as past). Events after it are
   * rare (only those dated ahead within the allowed clock skew), so reading a span after it
   * costs next to nothing: a piece that reaches the present, the end of "the last 24 hours",
   * is read as its coarser row minus the part after now, not as raw events since the last
   * quarter-hour, whose number grows with the ingest rate.
   */
  present?: number
  /**
   * With subtract off (a maximum is asked for): still read a piece that reaches the present as its
   * row minus the rest of the row when at most FUTURE_REST_PAST_MS of that rest lies before now.
   * Subtracted rows then add nothing to the maximum, and the statement counts them
   * (SUBTRACTED_ROWS): the row's maximum is the piece's when there were none (runAggregate).
   */
  subtractFuture?: boolean
}

const floorTo = (t: number, unit: number) => (Number.isFinite(t) ? Math.floor(t / unit) * unit : t)
const ceilTo = (t: number, unit: number) => (Number.isFinite(t) ? Math.ceil(t / unit) * unit : t)

const emptyPlan = (): SourcePlan => ({ day: [], hour: [], quarter_hour: [], raw: [] })

function push(spans: PlanSpan[], span: PlanSpan): void {
  if (span.from >= span.to) return
  const last = spans[spans.length - 1]
  if (last && last.to === span.from && last.sign === span.sign && last.anchor === span.anchor) last.to = span.to
  else spans.push(span)
}

/**
 * How much of the rest of a row may lie before now for subtractFuture, ms. A range "ending now"
 * ends when the client said now, a little before the server plans it (and more with a client
 * clock behind the server's); the rest then begins in the past. The count of subtracted rows
 * keeps the answer exact whatever this is: it only decides how often a first read is wasted.
 */
export const FUTURE_REST_PAST_MS = 1000

/** The past part of [from, to): what reading it costs, in time (see PlanOptions.present). */
const pastPart = (from: number, to: number, present: number) => Math.max(0, Math.min(to, present) - from)

/** Adds [a, b) with `sign` to the plan from grain `level` of opts.grains down to raw events. */
function cover(plan: SourcePlan, a: number, b: number, level: number, sign: 1 | -1, anchor: Anchor, opts: PlanOptions): void {
  if (a >= b) return
  const grain = opts.grains[level]
  if (grain === undefined) return push(plan.raw, { from: a, to: b, sign, anchor })
  const unit = GRAIN_MS[grain]
  const present = opts.present ?? Infinity
  // A part of [a, b) that lies inside one unit of this grain: read as the unit's row minus the
  // rest of the unit when the rest costs less to read than the piece (in the past: when the piece
  // is more than half of the unit).
  const piece = (p: number, q: number) => {
    if (p >= q) return
    const u = floorTo(p, unit)
    const restInPast = pastPart(u, p, present) + pastPart(q, u + unit, present)
    if ((opts.subtract || (opts.subtractFuture && restInPast <= FUTURE_REST_PAST_MS)) && restInPast < pastPart(p, q, present)) {
      // The piece holds the row's midpoint when it is more than half of the unit; else (a piece
      // reaching the present) its rows are grouped at the piece's start, which is in its bucket.
      const rowAnchor = anchor ?? (q - p > unit / 2 ? grain : p)
      push(plan[grain], { from: u, to: u + unit, sign, anchor: rowAnchor })
      const minus = sign === 1 ? -1 : 1
      cover(plan, u, p, level + 1, minus, rowAnchor, opts)
      cover(plan, q, u + unit, level + 1, minus, rowAnchor, opts)
    } else {
      cover(plan, p, q, level + 1, sign, anchor, opts)
    }
  }
  const [first, last] = [ceilTo(a, unit), floorTo(b, unit)]
  if (first > last) return piece(a, b)
  piece(a, first)
  push(plan[grain], { from: first, to: last, sign, anchor })
  piece(last, b)
}

/** Which source answers which part of [from, to), given the bucket boundaries inside it. */
export function planSources(from: number, to: number, cuts: readonly number[], opts: PlanOptions): SourcePlan {
  const plan = emptyPlan()
  const points = [from, ...cuts.filter((c) => c > from && c < to).sort((a, b) => a - b), to]
  for (let i = 0; i + 1 < points.length; i++) cover(plan, points[i], points[i + 1], 0, 1, null, opts)
  return plan
}

/** Every part of the range from raw events: for dimensions no rollup has (metadata keys). */
export const rawOnlyPlan = (from: number, to: number): SourcePlan => planSources(from, to, [], { grains: [], subtract: false })

export type ColumnDimension = 'bot_id' | 'provider' | 'model' | 'request_type'
/** rawColumn: an event column no rollup keys on (service_tier): read from raw events, like metadata keys. */
export type Dimension =
  | { column: ColumnDimension }
  /** rolledUpSince: the key is declared and folded from then on (epoch ms); absent: raw events only. */
  | { metadataKey: string; rolledUpSince?: number }
  | { rawColumn: 'service_tier' }

/**
 * A spec a metadata rollup answers from `since` on: one declared metadata key, perhaps with the
 * bot, filtered at most by bots and success (the keys of METADATA_ROLLUPS).
 */
export function metadataRollupOf(spec: Pick<AggregateSpec, 'dimensions' | 'filter'>): { key: string; since: number } | undefined {
  const dims = spec.dimensions ?? []
  const metadata = dims.filter((d) => 'metadataKey' in d)
  if (metadata.length !== 1) return undefined
  const [d] = metadata
  if (!('metadataKey' in d) || d.rolledUpSince === undefined) return undefined
  if (!dims.every((x) => x === d || ('column' in x && x.column === 'bot_id'))) return undefined
  const f = spec.filter
  if (f.model !== undefined || f.provider !== undefined || f.requestType !== undefined) return undefined
  return { key: d.metadataKey, since: d.rolledUpSince }
}

/**
 * Whether the answer's metadata groups are encoded (metadataEventGroup): when part of its range
 * lies after the key's since, so the values past the bound are one "other" group throughout.
 */
export function metadataGroupsEncoded(spec: Pick<AggregateSpec, 'dimensions' | 'filter' | 'to'>): boolean {
  const metadata = metadataRollupOf(spec)
  return metadata !== undefined && spec.to > metadata.since
}

/** An encoded metadata group as the answer shows it: the value (null when absent), or the other values. */
export function decodeMetadataGroup(g: string | null): { value: string | null; other: boolean } {
  if (g === null) return { value: null, other: false }
  return g === 'o' ? { value: null, other: true } : { value: g.slice(2), other: false }
}

/** The grains of METADATA_ROLLUPS, coarsest first. */
const METADATA_GRAINS = [...new Set(METADATA_ROLLUPS.map((r) => r.grain))]

/**
 * The metadata rollup of `grain` with the fewest keys that has what the spec filters or groups
 * by besides the key (the bot, success): a question over all bots reads one row per value, day
 * and outcome.
 */
function metadataRollupFor(grain: RollupGrain, spec: Pick<AggregateSpec, 'dimensions' | 'filter'>): MetadataRollupTable | undefined {
  const needs: MetadataRollupKey[] = ['success']
  if (spec.filter.botIds || (spec.dimensions ?? []).some((d) => 'column' in d && d.column === 'bot_id')) needs.push('bot_id')
  return METADATA_ROLLUPS.filter((r) => r.grain === grain && needs.every((k) => r.keys.includes(k))).sort((a, b) => a.keys.length - b.keys.length)[0]
}

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

/**
 * The aggregate of a measure column. Counts sum with sum_int8 (a migration's `CREATE AGGREGATE`
 * over int8pl): its state is a plain bigint, where the built-in sum(bigint) keeps a numeric state
 * per group and is 2-3x slower over the hundreds of groups of a series. Exact: an overflow is an
 * error, never a wrong total.
 */
const aggregateOf = (m: Measure): string => (m.kind === 'max' ? 'max' : m.kind === 'count' ? 'sum_int8' : 'sum')

const aggregatesOf = (measures: readonly Measure[]): SQL => sql.raw(measures.map((m) => `${aggregateOf(m)}(${m.column}) AS ${m.column}`).join(', '))

/**
 * `expression AS column` for each measure, negated for subtracted rows. A maximum cannot be
 * subtracted: subtracted rows add nothing to it (only plans with subtractFuture have them, and
 * their answers say how many there were, see SUBTRACTED_ROWS).
 */
function signedMeasures(measures: readonly Measure[], expressionOf: (m: Measure) => string, sign: 1 | -1): string {
  return measures
    .map((m) => {
      const expression = expressionOf(m)
      if (sign === 1) return expression === m.column ? m.column : `${expression} AS ${m.column}`
      if (m.kind === 'max') return `NULL::integer AS ${m.column}`
      return `-(${expression}) AS ${m.column}`
    })
    .join(', ')
}

/**
 * Column of an aggregate whose plan subtracts rows while a maximum is asked for (subtractFuture):
 * how many subtracted rows there were. Zero: the maximum is exact.
 */
export const SUBTRACTED_ROWS = 'subtracted_rows'

const rollupMeasures = (measures: readonly Measure[], sign: 1 | -1 = 1): string => signedMeasures(measures, (m) => m.fromRollup ?? m.column, sign)

const rawMeasures = (measures: readonly Measure[], sign: 1 | -1 = 1): string => signedMeasures(measures, (m) => m.perEvent, sign)

/** Spans of at most this many rollup rows (per key) are matched row by row: one array, cheap to plan. */
const LISTED_SPAN_UNITS = 24

/**
 * `column` lies in one of the spans. With the rollup's `unit`, short spans become one
 * `= ANY(array)` of row times (an edge hour or quarter per bucket makes hundreds of spans, which as
 * OR-ed ranges cost more to plan than to run); long ones stay ranges.
 */
export function spansCondition(column: string, spans: TimeSpan[], unit?: number): SQL {
  const col = sql.raw(column)
  const listed: number[] = []
  const parts: SQL[] = []
  for (const s of spans) {
    if (unit !== undefined && Number.isFinite(s.from) && Number.isFinite(s.to) && s.to - s.from <= LISTED_SPAN_UNITS * unit) {
      for (let t = s.from; t < s.to; t += unit) listed.push(t)
      continue
    }
    const bounds: SQL[] = []
    if (Number.isFinite(s.from)) bounds.push(sql`${col} >= ${new Date(s.from).toISOString()}`)
    if (Number.isFinite(s.to)) bounds.push(sql`${col} < ${new Date(s.to).toISOString()}`)
    parts.push(bounds.length === 0 ? sql`TRUE` : sql`(${sql.join(bounds, sql` AND `)})`)
  }
  if (listed.length > 0) parts.push(sql`${col} = ANY(${`{${listed.map((t) => new Date(t).toISOString()).join(',')}}`}::timestamptz[])`)
  return sql`(${sql.join(parts, sql` OR `)})`
}

/**
 * The g0..gN select list. `metadata`: the answer reads a metadata rollup, so its key's groups are
 * encoded as metadataEventGroup (raw events) or metadataRowGroup (`fromRollup`).
 */
function dimensionExpressions(dimensions: Dimension[], metadata?: { fromRollup: boolean }): SQL[] {
  return dimensions.map((d, i) => {
    const alias = sql.raw(`g${i}`)
    if ('column' in d) return sql`${sql.raw(d.column)} AS ${alias}`
    if ('rawColumn' in d) return sql`${sql.raw(d.rawColumn)} AS ${alias}`
    if (metadata) return sql`${metadata.fromRollup ? metadataRowGroup() : metadataEventGroup(d.metadataKey)} AS ${alias}`
    return sql`metadata ->> ${d.metadataKey} AS ${alias}`
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

/** The rollup of `grain` with the fewest rows that still has every key the spec needs, if any. */
export function rollupFor(grain: RollupGrain, spec: AggregateSpec): RollupTable | undefined {
  const needed = neededKeys(spec)
  return ROLLUPS_NARROWEST_FIRST[grain].find((r) => needed.every((k) => r.keys.includes(k)))
}

/** The time a source row is grouped at: its own, the midpoint of the coarser row it belongs to, or the anchor instant. */
function rowTime(column: string, anchor: Anchor): SQL {
  if (anchor === null) return sql.raw(column)
  // A parameter, not a literal: the statement's text stays the same from one request to the next.
  if (typeof anchor === 'number') return sql`${new Date(anchor).toISOString()}::timestamptz`
  return sql.raw(`${grainStart(anchor, column)} + interval '${GRAIN_MS[anchor] / 2000} seconds'`)
}

/** The spans of one source split by (sign, anchor): each group is one SELECT. */
function spanGroups(spans: PlanSpan[]): { sign: 1 | -1; anchor: Anchor; spans: PlanSpan[] }[] {
  const groups = new Map<string, { sign: 1 | -1; anchor: Anchor; spans: PlanSpan[] }>()
  for (const s of spans) {
    const key = `${s.sign}:${s.anchor}`
    let group = groups.get(key)
    if (!group) groups.set(key, (group = { sign: s.sign, anchor: s.anchor, spans: [] }))
    group.spans.push(s)
  }
  return [...groups.values()]
}

/** The CTE of a rollup read holding the events not yet folded into the rollups (tailCte). */
export const TAIL = 'rollup_tail'

/**
 * `rollup_tail AS MATERIALIZED (...)`: the events above the rollup watermark (UNFOLDED_EVENTS)
 * that match `where`, created in [from, to) widened to whole UTC days (every rollup row a read
 * takes lies in those days). A read that takes rollup rows adds, for each rollup branch, a mirror
 * branch over this CTE with the same sign, anchor and spans (tailRowsIn): a stored rollup row plus
 * the tail events of that row is the row as if every event were folded.
 */
export function tailCte(where: SQL, from: number, to: number): SQL {
  const bounds: SQL[] = [UNFOLDED_EVENTS, where]
  if (Number.isFinite(from)) bounds.push(sql`created_at >= ${new Date(floorTo(from, DAY_MS)).toISOString()}`)
  if (Number.isFinite(to)) bounds.push(sql`created_at < ${new Date(ceilTo(to, DAY_MS)).toISOString()}`)
  return sql`${sql.raw(TAIL)} AS MATERIALIZED (SELECT * FROM usage_events WHERE ${sql.join(bounds, sql` AND `)})`
}

/** A tail event's row of `grain` (the rollup row it would be folded into) lies in the spans. */
export function tailRowsIn(grain: RollupGrain, spans: TimeSpan[]): SQL {
  return spansCondition(grainStart(grain, 'created_at'), spans, GRAIN_MS[grain])
}

/** The widest [from, to) of the rollup spans of a plan (what a tail CTE must cover). */
function rollupExtent(plan: SourcePlan): TimeSpan | null {
  const spans = ROLLUP_GRAINS.flatMap((g) => plan[g])
  if (spans.length === 0) return null
  return { from: Math.min(...spans.map((s) => s.from)), to: Math.max(...spans.map((s) => s.to)) }
}

/**
 * The rows of every source the plan needs, with uniform columns: t, g0..gN, measures, and
 * SUBTRACTED_ROWS (1 on subtracted rows) when `counted`.
 */
function unionOfSources(spec: AggregateSpec, plan: SourcePlan, counted: boolean): SQL {
  const measures = measuresOf(spec)
  const metadata = metadataRollupOf(spec)
  const fromRollups = metadataGroupsEncoded(spec)
  const listOf = (dims: SQL[]) => (dims.length > 0 ? sql`, ${sql.join(dims, sql`, `)}` : sql``)
  const dimList = listOf(dimensionExpressions(spec.dimensions ?? [], fromRollups ? { fromRollup: false } : undefined))
  const where = filterConditions({ ...spec.filter, from: undefined, to: undefined })
  const flag = (sign: 1 | -1) => (counted ? sql.raw(`, ${sign === -1 ? 1 : 0} AS ${SUBTRACTED_ROWS}`) : sql``)
  const branches: SQL[] = []
  for (const grain of ROLLUP_GRAINS) {
    if (plan[grain].length === 0) continue
    // The rollup rows of each span group, then the same rows' events not yet folded (the tail CTE
    // already applies the filters; metadata tail rows are grouped as raw events are).
    const { table, rowDims, condition } = metadata
      ? {
          table: metadataRollupFor(grain, spec)?.name,
          rowDims: listOf(dimensionExpressions(spec.dimensions ?? [], { fromRollup: true })),
          condition: sql`key = ${metadata.key} AND ${where}`,
        }
      : { table: rollupFor(grain, spec)?.name, rowDims: dimList, condition: where }
    if (!table) throw new Error(`no ${grain} rollup has the keys of this question`)
    for (const g of spanGroups(plan[grain])) {
      branches.push(sql`SELECT ${rowTime(grain, g.anchor)} AS t${rowDims}, ${sql.raw(rollupMeasures(measures, g.sign))}${flag(g.sign)}
        FROM ${sql.raw(table)} WHERE ${condition} AND ${spansCondition(grain, g.spans, GRAIN_MS[grain])}`)
      branches.push(sql`SELECT ${rowTime(grainStart(grain, 'created_at'), g.anchor)} AS t${dimList}, ${sql.raw(rawMeasures(measures, g.sign))}${flag(g.sign)}
        FROM ${sql.raw(TAIL)} WHERE ${tailRowsIn(grain, g.spans)}`)
    }
  }
  for (const g of spanGroups(plan.raw)) {
    branches.push(sql`SELECT ${rowTime('created_at', g.anchor)} AS t${dimList}, ${sql.raw(rawMeasures(measures, g.sign))}${flag(g.sign)}
      FROM usage_events WHERE ${where} AND ${spansCondition('created_at', g.spans)}`)
  }
  if (branches.length === 0) {
    // An empty range still yields a well-typed (empty) relation.
    return sql`SELECT created_at AS t${dimList}, ${sql.raw(rawMeasures(measures))} FROM usage_events WHERE FALSE`
  }
  return sql.join(branches, sql` UNION ALL `)
}

/** A plan that subtracts rows while a maximum is asked for: its aggregate counts them (SUBTRACTED_ROWS). */
function countsSubtractedRows(measures: readonly Measure[], plan: SourcePlan): boolean {
  return measures.some((m) => m.kind === 'max') && (['raw', ...ROLLUP_GRAINS] as const).some((source) => plan[source].some((s) => s.sign === -1))
}

/**
 * Subtraction needs every measure to subtract (no maximum) and the calls among them: a group
 * whose rows cancel out is recognized by its zero calls.
 */
function subtractable(measures: readonly Measure[]): boolean {
  return measures.every((m) => m.kind !== 'max') && measures.some((m) => m.column === 'calls')
}

/**
 * The plan for a spec: raw only when a dimension needs raw events, else cut at the bucket starts,
 * from every grain that has a rollup with the spec's keys, subtracting when the measures allow.
 */
export function planFor(spec: AggregateSpec, opts: { subtractFuture?: boolean } = {}): SourcePlan {
  const metadata = metadataRollupOf(spec)
  if (metadata) {
    // Raw events before the key was declared, the metadata rollups (and their edges) after.
    const split = Math.min(Math.max(spec.from, metadata.since), spec.to)
    const subtract = subtractable(measuresOf(spec))
    const plan = planSources(split, spec.to, spec.bucket?.starts ?? [], {
      grains: METADATA_GRAINS,
      subtract,
      subtractFuture: !subtract && opts.subtractFuture === true,
      present: Date.now(),
    })
    const before = rawOnlyPlan(spec.from, split).raw
    return { ...plan, raw: [...before, ...plan.raw] }
  }
  if ((spec.dimensions ?? []).some((d) => !('column' in d))) return rawOnlyPlan(spec.from, spec.to)
  const grains = ROLLUP_GRAINS.filter((g) => rollupFor(g, spec) !== undefined)
  const subtract = subtractable(measuresOf(spec))
  return planSources(spec.from, spec.to, spec.bucket?.starts ?? [], { grains, subtract, subtractFuture: !subtract && opts.subtractFuture === true, present: Date.now() })
}

/**
 * One row per (bucket, g0..gN) with the summed measures. Columns: bucket (when bucketed),
 * g0..gN, then the measure columns (see parseTotals).
 */
export function aggregateSql(spec: AggregateSpec, plan: SourcePlan = planFor(spec)): SQL {
  const measures = measuresOf(spec)
  const groups: SQL[] = []
  if (spec.bucket) groups.push(sql`date_trunc(${spec.bucket.unit}, t, ${spec.bucket.tz}) AS bucket`)
  ;(spec.dimensions ?? []).forEach((_, i) => groups.push(sql.raw(`g${i}`)))
  const groupList = groups.length > 0 ? sql`${sql.join(groups, sql`, `)}, ` : sql``
  // A group whose rows all cancel out (an event seen only in an hour subtracted, then added
  // back in the next bucket) has no calls: it is not a group of the answer.
  const having = measures.some((m) => m.column === 'calls') ? sql` HAVING sum_int8(calls) <> 0` : sql``
  const groupBy = groups.length > 0 ? sql` GROUP BY ${sql.raw(groups.map((_, i) => String(i + 1)).join(', '))}${having}` : sql``
  const extent = rollupExtent(plan)
  const tail = extent ? sql`WITH ${tailCte(filterConditions({ ...spec.filter, from: undefined, to: undefined }), extent.from, extent.to)} ` : sql``
  const counted = countsSubtractedRows(measures, plan)
  const subtracted = counted ? sql.raw(`, sum(${SUBTRACTED_ROWS}) AS ${SUBTRACTED_ROWS}`) : sql``
  return sql`${tail}SELECT ${groupList}${aggregatesOf(measures)}${subtracted} FROM (${unionOfSources(spec, plan, counted)}) sources${groupBy}`
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

const PARSERS = { toNumber, decimalText, nullableNumber }
const PARSER_OF: Record<Measure['kind'], keyof typeof PARSERS> = { count: 'toNumber', usd: 'decimalText', max: 'nullableNumber' }

/**
 * Totals from an aggregate row (columns named as in the measure table); missing columns are zero.
 * Compiled from the measure table (compileRecordBuilder): a series parses ~1000 rows per request.
 */
export const parseTotals: (row: SqlRow) => Totals = compileRecordBuilder(
  ['row'],
  [
    ...TOTALS_MEASURES.map((m) => ({ name: m.name, expression: `${PARSER_OF[m.kind]}(row[${quoted(m.column)}])` })),
    {
      name: 'histogram',
      expression: `row[${quoted(LATENCY_BUCKETS[0].column)}] === undefined ? null : [${LATENCY_BUCKETS.map((b) => `toNumber(row[${quoted(b.column)}])`).join(', ')}]`,
    },
  ],
  PARSERS,
)

/**
 * The rows of aggregateSql(spec), or of `statement` over it (a breakdown ranks and totals its
 * groups in the same statement). One that needs the maximum latency (a summary's totals, a series
 * with percentiles, a breakdown) is first read with subtractFuture: the end of a range ending now
 * as its row minus the part after now, which is exact for the maximum only while that part holds
 * no event. Each group counts its own subtracted rows: a row and the parts subtracted from it are
 * grouped alike, and a group left with no calls (only events after now) is not in the answer at
 * all. `statement` is told whether the aggregate has the SUBTRACTED_ROWS column, and must carry
 * their sum over every group into some row of its result. When any row of the result counts one
 * (events dated ahead of now), the question is read again with the end as raw events.
 */
export async function runAggregate(
  database: Database,
  spec: AggregateSpec,
  statement: (aggregate: SQL, counted: boolean) => SQL = (aggregate) => aggregate,
): Promise<SqlRow[]> {
  const first = planFor(spec, { subtractFuture: true })
  const counted = countsSubtractedRows(measuresOf(spec), first)
  const rows = await database.rows<SqlRow>(statement(aggregateSql(spec, first), counted))
  if (!counted || rows.every((r) => toNumber(r[SUBTRACTED_ROWS]) === 0)) return rows
  // Without subtractFuture a plan with a maximum subtracts nothing, so it counts nothing.
  return database.rows<SqlRow>(statement(aggregateSql(spec), false))
}
