import { sql } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import { UNFOLDED_EVENTS, type EventFilter } from '../db/event-store.js'
import { parseUsd } from '../lib/money.js'
import { aggregateSql, type Dimension } from './sources.js'

/**
 * The read side's public entry point for other features (budgets, scheduled reports, repricing): the same
 * planner as every GET /api/usage* answer (rollups for whole hours and days, raw events for the
 * edges), so a budget's spend and a report's figures equal what the dashboard shows.
 * The caller passes the database to read: `database` (the primary) where an answer must include
 * what was just committed, `database.reads` where a slightly stale answer is fine.
 */

export { monthlyReport, totalsOver, type MonthlyRow, type Span } from './queries.js'
export { topErrorMessages } from './error-messages.js'
/** The monthly report's measures of one row as GET /api/reports/monthly renders them, and their wire schema. */
export { reportMeasures } from './monthly-report.js'
export { ReportMeasures } from './schemas.js'
/** The startDate/endDate rules of every read endpoint, for other features' date ranges (repricing). */
export { parseRange, type TimeRange } from './query.js'
export type { Totals } from '../db/measures.js'

/** A scope and a time range [from, to) whose spend is asked for. */
export interface SpendQuery {
  id: string
  filter: EventFilter
  from: Date
  to: Date
}

/** Most scopes one statement reads; more are read in several statements. */
const SCOPES_PER_STATEMENT = 50

/** Spend of each query in pico-USD (cost only), in one statement per 50 queries. */
export async function spendOf(database: Database, queries: readonly SpendQuery[]): Promise<Map<string, bigint>> {
  const spent = new Map<string, bigint>()
  for (let i = 0; i < queries.length; i += SCOPES_PER_STATEMENT) {
    const parts = queries.slice(i, i + SCOPES_PER_STATEMENT).map((q) => {
      const aggregate = aggregateSql({ filter: q.filter, from: q.from.getTime(), to: q.to.getTime(), only: ['cost'] })
      return sql`SELECT ${q.id}::text AS id, coalesce(cost, 0)::text AS spent FROM (${aggregate}) a`
    })
    const rows = await database.rows<{ id: string; spent: string }>(sql.join(parts, sql` UNION ALL `))
    for (const r of rows) spent.set(r.id, parseUsd(r.spent))
  }
  return spent
}

/**
 * Spend in [from, to) per value of a dimension (a metadata key such as userId, or a column), in
 * pico-USD, highest first, at most `limit` values. Metadata keys are read from raw events.
 */
export async function spendBy(
  database: Database,
  query: { filter: EventFilter; from: Date; to: Date; dimension: Dimension; limit: number },
): Promise<{ value: string | null; spent: bigint }[]> {
  const aggregate = aggregateSql({ filter: query.filter, from: query.from.getTime(), to: query.to.getTime(), dimensions: [query.dimension], only: ['cost'] })
  const rows = await database.rows<{ g0: string | null; spent: string }>(sql`
    SELECT g0, coalesce(cost, 0)::text AS spent FROM (${aggregate}) a ORDER BY cost DESC, g0 LIMIT ${query.limit}`)
  return rows.map((r) => ({ value: r.g0, spent: parseUsd(r.spent) }))
}

/**
 * Spend (pico-USD) per UTC hour, bot and (with byModel) model, in the given whole hours, for the
 * bots that spent anything since `activeSince` (unusual-spend alerts: a bot quiet lately cannot
 * spike). Whole UTC hours are exact in the hourly rollup, so no raw events are read.
 */
export async function spendPerHour(
  database: Database,
  query: { hours: readonly Date[]; botIds: readonly string[] | null; byModel: boolean; activeSince: Date },
): Promise<{ hour: Date; botId: string; model: string; spent: bigint }[]> {
  const model = query.byModel ? sql`model` : sql`''`
  const hours = sql`(SELECT value::timestamptz FROM json_array_elements_text(${JSON.stringify(query.hours)}::json))`
  const bots = query.botIds === null ? sql`` : sql`AND bot_id IN (SELECT value FROM json_array_elements_text(${JSON.stringify(query.botIds)}::json))`
  const rows = await database.rows<{ hour: Date | string; bot_id: string; model: string; cost: string }>(sql`
    WITH spend AS (
      SELECT hour, bot_id, model, sum(cost) AS cost FROM (
        SELECT hour, bot_id, ${model} AS model, cost FROM usage_hourly WHERE hour IN ${hours} ${bots}
        UNION ALL
        -- The events of those hours not yet folded into the rollup, in the same statement.
        SELECT date_trunc('hour', created_at, 'UTC'), bot_id, ${model}, coalesce(cost, 0) FROM usage_events
        WHERE ${UNFOLDED_EVENTS} AND date_trunc('hour', created_at, 'UTC') IN ${hours} ${bots}
      ) rows
      GROUP BY 1, 2, 3)
    SELECT s.hour, s.bot_id, s.model, s.cost::text AS cost FROM spend s
    WHERE EXISTS (SELECT 1 FROM spend r WHERE r.bot_id = s.bot_id AND r.cost > 0 AND r.hour >= ${query.activeSince.toISOString()}::timestamptz)`)
  return rows.map((r) => ({ hour: new Date(r.hour), botId: r.bot_id, model: r.model, spent: parseUsd(r.cost) }))
}
