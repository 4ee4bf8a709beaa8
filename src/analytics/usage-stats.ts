import { toUsageEvent, type EventRow } from '../db/event-store.js'
import type { StatsAggregateRow } from './queries.js'
import type { StatsResponse, StatsRow } from './schemas.js'

/** GET /api/usage's seed-compatible answer, rendered from its groups and recent events. */

const num = (v: string | number | null) => (v === null ? 0 : Number(v))

export function statsResponse(rows: StatsAggregateRow[], recent: EventRow[]): StatsResponse {
  const stats: StatsRow[] = rows.map((r) => ({
    model: r.model,
    provider: r.provider,
    _sum: {
      inputTokens: num(r.input_tokens),
      outputTokens: num(r.output_tokens),
      totalTokens: num(r.total_tokens),
      cacheReadTokens: num(r.cache_read_tokens),
      cacheWriteTokens: num(r.cache_write_tokens),
      reasoningTokens: num(r.reasoning_tokens),
      estimatedCost: num(r.cost),
    },
    _count: { id: num(r.calls), failed: num(r.failed) },
    unpriced: { events: num(r.unpriced_calls), inputTokens: num(r.unpriced_input_tokens), outputTokens: num(r.unpriced_output_tokens) },
  }))
  stats.sort((a, b) => b._sum.estimatedCost - a._sum.estimatedCost || b._count.id - a._count.id || a.model.localeCompare(b.model))
  // Summed exactly in SQL alongside the groups; rows are empty when nothing matched.
  const totalCost = rows.length > 0 ? num(rows[0].total_cost) : 0
  return { stats, recentUsage: recent.map(toUsageEvent), totalCost }
}
