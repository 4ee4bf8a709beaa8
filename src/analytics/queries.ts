import { declaredMetadataKeys } from '../db/metadata-registry.js'
import { sql, type SQL } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import { filterConditions, type EventFilter, type EventRow } from '../db/event-store.js'
import {
  aggregateSql,
  runAggregate,
  decodeMetadataGroup,
  measureAggregates,
  metadataGroupsEncoded,
  metadataRollupOf,
  measureColumns,
  parseTotals,
  type AggregateSpec,
  type BucketUnit,
  type ColumnDimension,
  type Dimension,
  type LatencyDetail,
  type SqlRow,
  type Totals,
  SUBTRACTED_ROWS,
} from './sources.js'

/** Half-open [from, to) in epoch ms; ±Infinity for an open side. */
export interface Span {
  from: number
  to: number
}

const spanOf = (f: EventFilter): Span => ({ from: f.from?.getTime() ?? -Infinity, to: f.to?.getTime() ?? Infinity })

/** The dimensions with each declared metadata key's since attached (so the planner reads its rollup). */
export async function withRolledUpKeys(database: Database, dimensions: Dimension[]): Promise<Dimension[]> {
  if (!dimensions.some((d) => 'metadataKey' in d)) return dimensions
  const keys = await declaredMetadataKeys(database)
  return dimensions.map((d) => ('metadataKey' in d && keys.has(d.metadataKey) ? { metadataKey: d.metadataKey, rolledUpSince: keys.get(d.metadataKey) } : d))
}

/**
 * The part of a breakdown's range read from raw events beyond the edges, in ms: all of it for a
 * dimension no rollup has, the part before since for a declared metadata key, else none.
 */
export function rawPartOf(spec: { filter: EventFilter; span: Span; dimensions: Dimension[] }): number {
  if (spec.dimensions.every((d) => 'column' in d)) return 0
  const metadata = metadataRollupOf({ filter: spec.filter, dimensions: spec.dimensions })
  const { from, to } = spec.span
  return metadata ? Math.max(0, Math.min(to, metadata.since) - from) : to - from
}

// ---- GET /api/usage -------------------------------------------------------------------------

export function recentEvents(database: Database, f: EventFilter, limit: number): Promise<EventRow[]> {
  return database.rows<EventRow>(sql`
    SELECT * FROM usage_events WHERE ${filterConditions(f)}
    ORDER BY created_at DESC, id DESC LIMIT ${limit}`)
}

/**
 * GET /api/usage's groups (model + provider) with the exact total, from rollups for whole hours
 * and days and raw events for partial edge hours. Columns: model, provider, the measures of
 * parseTotals, and total_cost over all groups.
 */
export function statsFromRollups(database: Database, f: EventFilter): Promise<SqlRow[]> {
  const grouped = aggregateSql({ filter: f, ...spanOf(f), dimensions: [{ column: 'model' }, { column: 'provider' }] })
  return database.rows<SqlRow>(sql`
    SELECT g0 AS model, g1 AS provider, ${sql.raw(measureColumns('none').join(', '))}, sum(cost) OVER () AS total_cost
    FROM (${grouped}) g WHERE calls > 0`)
}

/** Totals over a span, no grouping. */
export async function totalsOver(database: Database, filter: EventFilter, span: Span, latency: LatencyDetail = 'none'): Promise<Totals> {
  const [row] = await runAggregate(database, { filter, ...span, latency })
  return parseTotals(row)
}

export interface SummaryGroups {
  totals: Totals
  byModel: { model: string; provider: string; totals: Totals }[]
  byBot: { botId: string; totals: Totals }[]
}

/**
 * Totals with the latency histogram, plus cost by model and by bot: three small aggregates, each
 * read from the narrowest rollup that has its keys (and run concurrently on a pool).
 */
export async function summaryGroups(database: Database, filter: EventFilter, span: Span, limit: number): Promise<SummaryGroups> {
  const [totalRows, modelRows, botRows] = await Promise.all([
    runAggregate(database, { filter, ...span, latency: 'histogram' }),
    database.rows<SqlRow>(aggregateSql({ filter, ...span, dimensions: [{ column: 'provider' }, { column: 'model' }] })),
    database.rows<SqlRow>(aggregateSql({ filter, ...span, dimensions: [{ column: 'bot_id' }] })),
  ])
  const byCost = (a: { totals: Totals }, b: { totals: Totals }) => compareDecimal(b.totals.cost, a.totals.cost) || b.totals.calls - a.totals.calls
  return {
    totals: parseTotals(totalRows[0] ?? {}),
    byModel: modelRows
      .map((r) => ({ provider: String(r.g0), model: String(r.g1), totals: parseTotals(r) }))
      .sort((a, b) => byCost(a, b) || a.model.localeCompare(b.model))
      .slice(0, limit),
    byBot: botRows
      .map((r) => ({ botId: String(r.g0), totals: parseTotals(r) }))
      .sort((a, b) => byCost(a, b) || a.botId.localeCompare(b.botId))
      .slice(0, limit),
  }
}

/** Compares two non-negative-or-negative decimal strings exactly. */
export function compareDecimal(a: string, b: string): number {
  const [ai, af = ''] = a.replace(/^-/, '').split('.')
  const [bi, bf = ''] = b.replace(/^-/, '').split('.')
  const width = Math.max(af.length, bf.length)
  const x = BigInt(ai + af.padEnd(width, '0')) * (a.startsWith('-') ? -1n : 1n)
  const y = BigInt(bi + bf.padEnd(width, '0')) * (b.startsWith('-') ? -1n : 1n)
  return x < y ? -1 : x > y ? 1 : 0
}

export interface BucketRow {
  bucket: number
  group: string | null
  totals: Totals
}

function parseBucketRows(rows: SqlRow[], grouped: boolean): BucketRow[] {
  return rows.map((r) => ({
    bucket: new Date(r.bucket instanceof Date ? r.bucket : String(r.bucket)).getTime(),
    group: grouped ? (r.g0 === null || r.g0 === undefined ? null : String(r.g0)) : null,
    totals: parseTotals(r),
  }))
}

export interface TimeseriesData {
  overall: BucketRow[]
  byGroup: BucketRow[]
  /** Groups in ranked order (cost, then calls, then name), at most `limit`. */
  groups: string[]
  groupCount: number
}

/** Bucketed totals, and per-group buckets for the `limit` groups with the highest cost. */
export async function timeseries(
  database: Database,
  spec: {
    filter: EventFilter
    span: Span
    unit: BucketUnit
    tz: string
    starts: number[]
    /** A column: never null, so a group is always named. */
    groupBy: { column: ColumnDimension } | null
    limit: number
    /** Aggregate the latency histogram of the overall buckets (for percentiles per bucket). */
    percentiles?: boolean
  },
): Promise<TimeseriesData> {
  const base: AggregateSpec = {
    filter: spec.filter,
    ...spec.span,
    latency: 'average',
    bucket: { unit: spec.unit, tz: spec.tz, starts: spec.starts },
  }
  const overall = runAggregate(database, spec.percentiles ? { ...base, latency: 'histogram' } : base)
  const [overallRows, ranked] = await Promise.all([overall, spec.groupBy ? topGroups(database, spec.filter, spec.span, spec.groupBy, spec.limit) : null])
  let groupRows: SqlRow[] = []
  if (spec.groupBy && ranked && ranked.groups.length > 0) {
    const perBucket = aggregateSql({ ...base, dimensions: [spec.groupBy] })
    // With more groups than shown, only the shown ones are aggregated per bucket: the condition
    // on the grouping column reaches every branch of the union below.
    const only = ranked.groupCount <= spec.limit ? sql`` : sql` WHERE g0 = ANY(${`{${ranked.groups.map(arrayElement).join(',')}}`}::text[])`
    groupRows = await database.rows<SqlRow>(sql`SELECT * FROM (${perBucket}) a${only}`)
  }
  const groups = ranked?.groups ?? []
  const rank = new Map(groups.map((g, i) => [g, i]))
  const position = (r: BucketRow) => rank.get(r.group ?? '') ?? groups.length
  return {
    overall: parseBucketRows(overallRows, false),
    byGroup: parseBucketRows(groupRows, true).sort((a, b) => position(a) - position(b) || a.bucket - b.bucket),
    groups,
    groupCount: ranked?.groupCount ?? 0,
  }
}

/** A text[] literal element, quoted (any value may hold commas, quotes or braces). */
const arrayElement = (v: string) => `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`

/**
 * The `limit` groups of a dimension with the highest cost over the span (then calls, then name),
 * and how many groups have calls at all: from a cost-and-calls aggregate without buckets, which
 * reads whole days where a series reads every bucket's edges.
 */
async function topGroups(
  database: Database,
  filter: EventFilter,
  span: Span,
  dimension: { column: ColumnDimension },
  limit: number,
): Promise<{ groups: string[]; groupCount: number }> {
  const rows = await database.rows<SqlRow>(sql`
    SELECT g0, count(*) OVER () AS group_count
    FROM (${aggregateSql({ filter, ...span, dimensions: [dimension], only: ['cost', 'calls'] })}) a
    ORDER BY cost DESC, calls DESC, g0 LIMIT ${limit}`)
  return {
    groups: rows.map((r) => String(r.g0)),
    groupCount: rows.length > 0 ? Number(rows[0].group_count) : 0,
  }
}

export type BreakdownSort = 'cost' | 'calls' | 'failures' | 'totalTokens' | 'inputTokens' | 'outputTokens'

const SORT_COLUMNS: Record<BreakdownSort, string> = {
  cost: 'cost',
  calls: 'calls',
  failures: 'failures',
  totalTokens: 'total_tokens',
  inputTokens: 'input_tokens',
  outputTokens: 'output_tokens',
}

export interface BreakdownData {
  /** other: the row of a declared metadata key's values past its bound (its group value is null). */
  rows: { group: (string | null)[]; other: boolean; totals: Totals }[]
  totals: Totals
  groupCount: number
}

/**
 * Totals per combination of one or two dimensions, sorted and limited in SQL, plus the totals
 * over all groups, in one statement. A declared metadata key reads its rollup from its since on (its
 * values past the bound in one `other` row); other metadata dimensions read raw events.
 */
export async function breakdown(
  database: Database,
  spec: { filter: EventFilter; span: Span; dimensions: Dimension[]; sort: BreakdownSort; order: 'asc' | 'desc'; limit: number },
): Promise<BreakdownData> {
  const aggregate: AggregateSpec = { filter: spec.filter, ...spec.span, dimensions: spec.dimensions, latency: 'histogram' }
  const encoded = metadataGroupsEncoded(aggregate)
  const groupColumns = spec.dimensions.map((_, i) => `g${i}`)
  const columns = sql.raw([...groupColumns, ...measureColumns('histogram')].join(', '))
  const direction = sql.raw(spec.order === 'asc' ? 'ASC' : 'DESC')
  const tieBreak = sql.raw(groupColumns.map((c) => `${c} NULLS LAST`).join(', '))
  const nulls = sql.raw(groupColumns.map((c) => `NULL::text AS ${c}`).join(', '))
  // The totals row carries the subtracted rows of every group (see runAggregate); the ranking
  // never depends on a maximum, so only the maxima could differ on a second read.
  const rows = await runAggregate(database, aggregate, (grouped, counted) => {
    const subtracted = counted ? sql.raw(`, NULL::bigint AS ${SUBTRACTED_ROWS}`) : sql``
    const subtractedTotal = counted ? sql.raw(`, sum(${SUBTRACTED_ROWS}) AS ${SUBTRACTED_ROWS}`) : sql``
    return sql`
    WITH g AS (${grouped}),
    top AS (
      SELECT g.*, row_number() OVER (ORDER BY ${sql.raw(SORT_COLUMNS[spec.sort])} ${direction}, ${tieBreak}) AS position
      FROM g ORDER BY position LIMIT ${spec.limit}
    )
    SELECT false AS is_total, position, ${columns}, NULL::bigint AS group_count${subtracted} FROM top
    UNION ALL
    SELECT true, 0, ${nulls}, ${measureAggregates('histogram')}, count(*)${subtractedTotal} FROM g
    ORDER BY 1, 2`
  })
  const result: BreakdownData = { rows: [], totals: parseTotals({}), groupCount: 0 }
  for (const r of rows) {
    if (r.is_total === true || r.is_total === 't') {
      result.totals = parseTotals(r)
      result.groupCount = Number(r.group_count)
    } else {
      const raw = groupColumns.map((c) => (r[c] === null || r[c] === undefined ? null : String(r[c])))
      let other = false
      const group = encoded
        ? raw.map((g, i) => {
            if (!('metadataKey' in spec.dimensions[i])) return g
            const decoded = decodeMetadataGroup(g)
            other ||= decoded.other
            return decoded.value
          })
        : raw
      result.rows.push({ group, other, totals: parseTotals(r) })
    }
  }
  return result
}

export interface MonthlyRow {
  botId: string
  provider: string
  model: string
  totals: Totals
}

/** One row per bot x provider x model, sorted by bot, provider, model; totals over all rows. */
export async function monthlyReport(
  database: Database,
  filter: EventFilter,
  span: Span,
  maxRows: number,
): Promise<{ rows: MonthlyRow[]; totals: Totals; rowCount: number }> {
  const grouped = aggregateSql({ filter, ...span, dimensions: [{ column: 'bot_id' }, { column: 'provider' }, { column: 'model' }] })
  const rows = await database.rows<SqlRow>(sql`
    WITH g AS (${grouped})
    SELECT GROUPING(g0) AS is_total, g0, g1, g2, ${measureAggregates('none')}, count(*) OVER (PARTITION BY GROUPING(g0)) AS row_count
    FROM g GROUP BY GROUPING SETS ((), (g0, g1, g2))
    ORDER BY GROUPING(g0), g0, g1, g2
    LIMIT ${maxRows + 1}`)
  const result = { rows: [] as MonthlyRow[], totals: parseTotals({}), rowCount: 0 }
  for (const r of rows) {
    if (Number(r.is_total) === 1) {
      result.totals = parseTotals(r)
    } else {
      result.rowCount = Number(r.row_count)
      if (result.rows.length < maxRows) result.rows.push({ botId: String(r.g0), provider: String(r.g1), model: String(r.g2), totals: parseTotals(r) })
    }
  }
  // With more than maxRows groups the totals row is cut off by LIMIT: compute it on its own.
  if (result.rowCount > maxRows) result.totals = await totalsOver(database, filter, span)
  return result
}

// ---- raw event pages -------------------------------------------------------------------------

/** Where a page ends: the last row's sort key and the snapshot instant of the first page. */
export interface EventPosition {
  /** created_at with microseconds, UTC, as Postgres prints it. */
  createdAt: string
  botId: string
  id: string
  /** Only events received up to this instant are listed, so later inserts cannot shift pages. */
  asOf: string
}

export interface PagedEventRow extends EventRow {
  cursor_at: string
  as_of: string
}

const MICROS_UTC = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`

/**
 * A page of raw events in (created_at, bot_id, id) order, newest first by default, after
 * `position` when given. One more row than `limit` tells the caller whether a next page exists.
 */
export function eventPage(
  database: Database,
  filter: EventFilter,
  position: EventPosition | null,
  limit: number,
  direction: 'asc' | 'desc' = 'desc',
): Promise<PagedEventRow[]> {
  const conditions: SQL[] = [filterConditions(filter)]
  const cmp = sql.raw(direction === 'desc' ? '<' : '>')
  if (position) {
    conditions.push(sql`received_at <= ${position.asOf}::timestamptz`)
    conditions.push(sql`created_at ${sql.raw(direction === 'desc' ? '<=' : '>=')} ${position.createdAt}::timestamptz`)
    conditions.push(sql`(created_at, bot_id, id) ${cmp} (${position.createdAt}::timestamptz, ${position.botId}, ${position.id})`)
  }
  const dir = sql.raw(direction === 'desc' ? 'DESC' : 'ASC')
  return database.rows<PagedEventRow>(sql`
    SELECT *, to_char(created_at AT TIME ZONE 'UTC', ${sql.raw(MICROS_UTC)}) AS cursor_at,
      ${position ? sql`${position.asOf}` : sql`to_char(statement_timestamp() AT TIME ZONE 'UTC', ${sql.raw(MICROS_UTC)})`} AS as_of
    FROM usage_events WHERE ${sql.join(conditions, sql` AND `)}
    ORDER BY created_at ${dir}, bot_id ${dir}, id ${dir}
    LIMIT ${limit + 1}`)
}

/**
 * Every event matching the filter, oldest first, fetched `batchSize` rows per query by keyset:
 * memory stays bounded by one batch however large the export, no transaction is held open, and
 * other requests are served between pages.
 */
export async function* exportEvents(database: Database, filter: EventFilter, batchSize: number): AsyncGenerator<PagedEventRow[]> {
  let position: EventPosition | null = null
  for (;;) {
    const rows = await eventPage(database, filter, position, batchSize - 1, 'asc')
    if (rows.length === 0) return
    yield rows
    if (rows.length < batchSize) return
    const last = rows[rows.length - 1]
    position = { createdAt: last.cursor_at, botId: last.bot_id, id: last.id, asOf: last.as_of }
    // Let requests that arrived meanwhile queue their queries before the next page's: on the
    // embedded engine's one connection, an export then takes turns with them page by page.
    await new Promise((resolve) => setImmediate(resolve))
  }
}
