import { toUsageEvent, type EventRow } from '../db/event-store.js'
import { parseTotals, type SqlRow } from './sources.js'
import type { StatsResponse, StatsRow } from './schemas.js'
import { usd } from './totals.js'

/** GET /api/usage's seed-compatible answer, rendered from its groups and recent events. */

export function statsResponse(rows: SqlRow[], recent: EventRow[]): StatsResponse {
  const stats: StatsRow[] = rows.map((r) => {
    const t = parseTotals(r)
    return {
      model: String(r.model),
      provider: String(r.provider),
      _sum: {
        inputTokens: t.inputTokens,
        outputTokens: t.outputTokens,
        totalTokens: t.totalTokens,
        cacheReadTokens: t.cacheReadTokens,
        cacheWriteTokens: t.cacheWriteTokens,
        reasoningTokens: t.reasoningTokens,
        estimatedCost: usd(t.cost),
      },
      _count: { id: t.calls, failed: t.failures },
      unpriced: { events: t.unpricedCalls, inputTokens: t.unpricedInputTokens, outputTokens: t.unpricedOutputTokens },
    }
  })
  stats.sort((a, b) => b._sum.estimatedCost - a._sum.estimatedCost || b._count.id - a._count.id || a.model.localeCompare(b.model))
  // Summed exactly in SQL alongside the groups; rows are empty when nothing matched.
  const totalCost = rows.length > 0 ? Number(rows[0].total_cost) : 0
  return { stats, recentUsage: recent.map(toUsageEvent), totalCost }
}
