import { sql, type SQL } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import { ERROR_ROLLUPS, errorMessageKey, filterConditions, type EventFilter, type RollupKey } from '../db/event-store.js'
import { planSources, spansCondition, TAIL, tailCte, tailRowsIn } from './sources.js'

export interface ErrorMessageCount {
  /** The message's first ERROR_MESSAGE_KEY_LENGTH characters; null for failures without one. */
  message: string | null
  count: number
  lastSeen: Date
}

/** The error rollup with every key the filter needs, narrowest first (none: raw failures only). */
function errorRollupFor(filter: EventFilter) {
  const needed: RollupKey[] = []
  if (filter.botIds) needed.push('bot_id')
  if (filter.model !== undefined) needed.push('model')
  if (filter.provider !== undefined) needed.push('provider')
  if (filter.requestType !== undefined) needed.push('request_type')
  return ERROR_ROLLUPS.find((r) => needed.every((k) => r.keys.includes(k)))
}

/**
 * The most frequent error messages among failures matching the filter: whole UTC days from the
 * error rollup, the partial days at the edges from raw failures (the failures index), summed per
 * message key (plus the failures of those days not yet folded into the rollup). Exact: equal to a
 * GROUP BY over the raw failures of the range.
 */
export async function topErrorMessages(database: Database, filter: EventFilter, limit: number): Promise<ErrorMessageCount[]> {
  if (limit === 0 || filter.success === true) return []
  const from = filter.from?.getTime() ?? -Infinity
  const to = filter.to?.getTime() ?? Infinity
  const rollup = errorRollupFor(filter)
  const plan = planSources(from, to, [], { grains: rollup ? ['day'] : [], subtract: false })
  const dimensions = filterConditions({ ...filter, success: undefined, from: undefined, to: undefined })
  const branches: SQL[] = []
  let tail = sql``
  if (rollup && plan.day.length > 0) {
    branches.push(sql`SELECT message, failures AS n, last_seen FROM ${sql.raw(rollup.name)}
      WHERE ${dimensions} AND ${spansCondition('day', plan.day)}`)
    // The failures of those days not yet folded into the error rollup.
    tail = sql`WITH ${tailCte(sql`${dimensions} AND NOT success`, Math.min(...plan.day.map((s) => s.from)), Math.max(...plan.day.map((s) => s.to)))} `
    branches.push(sql`SELECT ${sql.raw(errorMessageKey())} AS message, count(*) AS n, max(created_at) AS last_seen FROM ${sql.raw(TAIL)}
      WHERE ${tailRowsIn('day', plan.day)} GROUP BY 1`)
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
