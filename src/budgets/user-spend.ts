import { sql } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import { formatUsd, parseUsd } from '../lib/money.js'
import type { BudgetScope } from './budget-store.js'
import type { PeriodWindow } from './periods.js'

export interface UserSpendRequest {
  /** scope.botId is required: per-user budgets count one bot's users (definition.ts refuses others). */
  scope: BudgetScope & { botId: string }
  /** The metadata key whose values are the users. */
  key: string
  window: PeriodWindow
  /** Rows returned at most: the highest spenders first. */
  limit: number
  /** Only users who spent at least this (pico-USD); default: more than nothing. */
  atLeast?: bigint
  /** Only this user. */
  userId?: string
}

export interface UserSpend {
  /** Highest spend first; ties by user id. */
  users: { userId: string; spent: bigint }[]
  /** Users over `atLeast` in the window, also those past `limit`. */
  total: number
}

/**
 * Spend of each distinct value of metadata[key] in the window, from raw events: one bot's events
 * of the period through the (bot_id, created_at) index, grouped. Values that are strings or
 * numbers count (as their text: the number 42 is user "42"); other values and events without
 * the key belong to nobody.
 */
export async function spendByUser(database: Database, r: UserSpendRequest): Promise<UserSpend> {
  const atLeast = r.atLeast ?? 1n
  const threshold = formatUsd(atLeast)
  const rows = await database.rows<{ user_id: string; spent: string; users: string | number }>(sql`
    SELECT metadata ->> ${r.key} AS user_id, sum(cost)::text AS spent, count(*) OVER () AS users
    FROM usage_events
    WHERE bot_id = ${r.scope.botId}
      AND created_at >= ${r.window.start.toISOString()}::timestamptz AND created_at < ${r.window.end.toISOString()}::timestamptz
      AND (${r.scope.provider}::text IS NULL OR provider = ${r.scope.provider})
      AND (${r.scope.model}::text IS NULL OR model = ${r.scope.model})
      AND jsonb_typeof(metadata -> ${r.key}) IN ('string', 'number')
      AND (${r.userId ?? null}::text IS NULL OR metadata ->> ${r.key} = ${r.userId ?? null})
      AND cost IS NOT NULL
    GROUP BY 1
    HAVING sum(cost) >= ${threshold}::numeric
    ORDER BY sum(cost) DESC, 1
    LIMIT ${r.limit}`)
  return {
    users: rows.map((row) => ({ userId: row.user_id, spent: parseUsd(row.spent) })),
    total: rows.length === 0 ? 0 : Number(rows[0].users),
  }
}

/** The user an event belongs to, read as spendByUser reads it: a string, or a number's text. */
export function userOf(metadata: Record<string, unknown> | null | undefined, key: string): string | null {
  const value = metadata?.[key]
  if (typeof value === 'string') return value
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return null
}
