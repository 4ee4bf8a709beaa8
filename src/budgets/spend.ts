import { sql } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import { parseUsd } from '../lib/money.js'
import type { BudgetScope } from './budget-store.js'
import { wholeHours, type PeriodWindow } from './periods.js'

export interface SpendRequest {
  budgetId: string
  scope: BudgetScope
  window: PeriodWindow
}

/**
 * Spend of each budget in its window, in pico-USD, in one statement. Whole UTC hours come from
 * the hourly rollup; the partial hours at the edges (zones offset by :30 or :45) from raw events.
 */
export async function spendByBudget(database: Database, requests: SpendRequest[]): Promise<Map<string, bigint>> {
  const spent = new Map<string, bigint>()
  if (requests.length === 0) return spent
  const payload = JSON.stringify(
    requests.map((r) => {
      const hours = wholeHours(r.window)
      return {
        id: r.budgetId,
        bot_id: r.scope.botId,
        provider: r.scope.provider,
        model: r.scope.model,
        start_at: r.window.start.toISOString(),
        end_at: r.window.end.toISOString(),
        hour_from: hours.from.toISOString(),
        hour_to: hours.to.toISOString(),
      }
    }),
  )
  const rows = await database.rows<{ id: string; spent: string }>(sql`
    SELECT b.id, (
      (SELECT coalesce(sum(h.cost), 0) FROM usage_hourly h
        WHERE h.hour >= b.hour_from AND h.hour < b.hour_to
          AND (b.bot_id IS NULL OR h.bot_id = b.bot_id)
          AND (b.provider IS NULL OR h.provider = b.provider)
          AND (b.model IS NULL OR h.model = b.model))
      + CASE WHEN b.start_at = b.hour_from AND b.end_at = b.hour_to THEN 0 ELSE
        (SELECT coalesce(sum(e.cost), 0) FROM usage_events e
          WHERE ((e.created_at >= b.start_at AND e.created_at < b.hour_from) OR (e.created_at >= b.hour_to AND e.created_at < b.end_at))
            AND (b.bot_id IS NULL OR e.bot_id = b.bot_id)
            AND (b.provider IS NULL OR e.provider = b.provider)
            AND (b.model IS NULL OR e.model = b.model)) END
    )::text AS spent
    FROM json_to_recordset(${payload}::json) AS b(id text, bot_id text, provider text, model text,
      start_at timestamptz, end_at timestamptz, hour_from timestamptz, hour_to timestamptz)`)
  for (const r of rows) spent.set(r.id, parseUsd(r.spent))
  return spent
}
