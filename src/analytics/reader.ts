import { sql } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import type { EventFilter } from '../db/event-store.js'
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
