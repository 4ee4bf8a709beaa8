import { sql, type SQL } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import { ERROR_ROLLUPS, errorMessageKey, filterConditions, GRAIN_MS, type ErrorRollupTable, type EventFilter, type RollupKey } from '../db/event-store.js'
import { planSources, spansCondition, TAIL, tailCte, tailRowsIn } from './sources.js'

export interface ErrorMessageCount {
  /** The message's first ERROR_MESSAGE_KEY_LENGTH characters; null for failures without one. */
  message: string | null
  count: number
  lastSeen: Date
}

/** The error rollup of `grain` with every key the filter needs, narrowest first (none: that grain reads finer sources). */
function errorRollupFor(filter: EventFilter, grain: ErrorRollupTable['grain']): ErrorRollupTable | undefined {
  const needed: RollupKey[] = []
  if (filter.botIds) needed.push('bot_id')
  if (filter.model !== undefined) needed.push('model')
  if (filter.provider !== undefined) needed.push('provider')
  if (filter.requestType !== undefined) needed.push('request_type')
  return ERROR_ROLLUPS.find((r) => r.grain === grain && needed.every((k) => r.keys.includes(k)))
}

const ERROR_GRAINS = ['day', 'hour'] as const

/**
 * The most frequent error messages among failures matching the filter: whole UTC days and hours
 * from the error rollups (plus the failures of those days and hours not yet folded into them),
 * the partial hours at the edges from raw failures (the failures index), summed per message key.
 * Exact: equal to a GROUP BY over the raw failures of the range.
 */
export async function topErrorMessages(database: Database, filter: EventFilter, limit: number): Promise<ErrorMessageCount[]> {
  if (limit === 0 || filter.success === true) return []
  const from = filter.from?.getTime() ?? -Infinity
  const to = filter.to?.getTime() ?? Infinity
  const rollups = ERROR_GRAINS.map((grain) => errorRollupFor(filter, grain)).filter((r) => r !== undefined)
  // No subtraction: the last occurrence is a maximum.
  const plan = planSources(from, to, [], { grains: rollups.map((r) => r.grain), subtract: false })
  const dimensions = filterConditions({ ...filter, success: undefined, from: undefined, to: undefined })
  const branches: SQL[] = []
  const rolled = rollups.filter((r) => plan[r.grain].length > 0)
  for (const rollup of rolled) {
    branches.push(sql`SELECT message, failures AS n, last_seen FROM ${sql.raw(rollup.name)}
      WHERE ${dimensions} AND ${spansCondition(rollup.grain, plan[rollup.grain], GRAIN_MS[rollup.grain])}`)
    // The failures of those days or hours not yet folded into the error rollup.
    branches.push(sql`SELECT ${sql.raw(errorMessageKey())} AS message, count(*) AS n, max(created_at) AS last_seen FROM ${sql.raw(TAIL)}
      WHERE ${tailRowsIn(rollup.grain, plan[rollup.grain])} GROUP BY 1`)
  }
  let tail = sql``
  if (rolled.length > 0) {
    const spans = rolled.flatMap((r) => plan[r.grain])
    tail = sql`WITH ${tailCte(sql`${dimensions} AND NOT success`, Math.min(...spans.map((s) => s.from)), Math.max(...spans.map((s) => s.to)))} `
  }
  if (plan.raw.length > 0) {
    branches.push(sql`SELECT ${sql.raw(errorMessageKey())} AS message, count(*) AS n, max(created_at) AS last_seen FROM usage_events
      WHERE ${dimensions} AND NOT success AND ${spansCondition('created_at', plan.raw)} GROUP BY 1`)
  }
  if (branches.length === 0) return []
  const rows = await database.rows<{ message: string | null; n: string | number; last_seen: Date | string }>(sql`
    ${tail}SELECT message, sum(n) AS n, max(last_seen) AS last_seen FROM (${sql.join(branches, sql` UNION ALL `)}) x
    GROUP BY message ORDER BY n DESC, last_seen DESC, message LIMIT ${limit}`)
  return rows.map((r) => ({ message: r.message, count: Number(r.n), lastSeen: r.last_seen instanceof Date ? r.last_seen : new Date(r.last_seen) }))
}
