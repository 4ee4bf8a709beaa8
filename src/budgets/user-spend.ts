import { sql } from 'drizzle-orm'
import { spendBy } from '../analytics/reader.js'
import type { Database } from '../db/connect.js'
import { parseUsd } from '../lib/money.js'
import type { BudgetScope } from './budget-store.js'
import type { PeriodWindow } from './periods.js'
import { scopeFilter } from './spend.js'

/** A per-user budget's scope (always one bot: definition.ts refuses others) and its user key. */
export interface UserScope {
  scope: BudgetScope
  /** The metadata key whose values are the users. */
  key: string
}

export interface UserSpend {
  userId: string
  /** pico-USD */
  spent: bigint
}

/**
 * The `limit` users who spent most in the window, highest first, through the read side's reader
 * (raw events of the bot's period, grouped by metadata[key]). Events without the key belong to
 * nobody; a value is read as its text (the number 42 is user "42").
 */
export async function topUsers(database: Database, u: UserScope, window: PeriodWindow, limit: number): Promise<UserSpend[]> {
  // One more row: the group of events without the key may take a place.
  const rows = await spendBy(database, { filter: scopeFilter(u.scope), from: window.start, to: window.end, dimension: { metadataKey: u.key }, limit: limit + 1 })
  return rows.flatMap((r) => (r.value === null || r.spent <= 0n ? [] : [{ userId: r.value, spent: r.spent }])).slice(0, limit)
}

/**
 * What one user spent in the window. The reader has no filter on a metadata value, so this one
 * statement is here: the bot's events of the period through the (bot_id, created_at) index.
 */
export async function spendOfUser(database: Database, u: UserScope, window: PeriodWindow, userId: string): Promise<bigint> {
  const [row] = await database.rows<{ spent: string | null }>(sql`
    SELECT coalesce(sum(cost), 0)::text AS spent FROM usage_events
    WHERE bot_id = ${u.scope.botId ?? ''}
      AND created_at >= ${window.start.toISOString()}::timestamptz AND created_at < ${window.end.toISOString()}::timestamptz
      AND (${u.scope.provider}::text IS NULL OR provider = ${u.scope.provider})
      AND (${u.scope.model}::text IS NULL OR model = ${u.scope.model})
      AND metadata ->> ${u.key} = ${userId}`)
  return parseUsd(row?.spent ?? '0')
}

/** The user an event belongs to, as the database reads metadata ->> key for strings, numbers and booleans. */
export function userOf(metadata: Record<string, unknown> | null | undefined, key: string): string | null {
  const value = metadata?.[key]
  if (typeof value === 'string') return value
  if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean') return String(value)
  return null
}
