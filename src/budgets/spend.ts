import { spendOf } from '../analytics/reader.js'
import type { Database } from '../db/connect.js'
import type { EventFilter } from '../db/event-store.js'
import type { BudgetScope } from './budget-store.js'
import type { PeriodWindow } from './periods.js'

export interface SpendRequest {
  budgetId: string
  scope: BudgetScope
  window: PeriodWindow
}

/** The events a budget's scope covers (each null column matches everything). */
export function scopeFilter(scope: BudgetScope): EventFilter {
  return {
    botIds: scope.botId === null ? null : [scope.botId],
    ...(scope.provider === null ? {} : { provider: scope.provider }),
    ...(scope.model === null ? {} : { model: scope.model }),
  }
}

/**
 * Spend of each budget in its window, in pico-USD, through the read side's reader: the same
 * rollups-plus-raw-edges answer as the analytics endpoints. Read from the primary, so spend
 * includes every event committed before the call.
 */
export function spendByBudget(database: Database, requests: SpendRequest[]): Promise<Map<string, bigint>> {
  return spendOf(
    database,
    requests.map((r) => ({ id: r.budgetId, filter: scopeFilter(r.scope), from: r.window.start, to: r.window.end })),
  )
}
