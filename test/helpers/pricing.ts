import type { BillableUsage } from '../../src/pricing/catalog.js'

/** Billable usage with every bucket 0 except those given. */
export function usageOf(partial: Partial<BillableUsage>): BillableUsage {
  return {
    inputTokens: 0,
    outputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    reasoningTokens: 0,
    ...partial,
  }
}
