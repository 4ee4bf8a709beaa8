/**
 * The exact cost of one call's usage at a price: every billed unit (text and audio tokens, cache
 * reads and writes, reasoning, web searches), the long-context tier, the service-tier modifier.
 * Pure; docs/pricing.md ("Buckets") is the specification.
 */
import { costForTokens, formatUsd, multiplyDecimals, multiplyUsd } from '../lib/money.js'
import type { AppliedModifier, BillableUsage, CostBreakdown, PriceSchedule, PriceTier, ServiceTier } from './types.js'

export interface UsageCost {
  cost: string
  costPico: bigint
  breakdown: CostBreakdown
  tierAboveInputTokens: number | null
}

const REQUIRED_FIELDS = [
  'inputTokens',
  'outputTokens',
  'cacheReadTokens',
  'cacheWriteTokens',
  'cacheWrite1hTokens',
  'reasoningTokens',
] as const satisfies readonly (keyof BillableUsage)[]

const OPTIONAL_FIELDS = ['inputAudioTokens', 'outputAudioTokens', 'webSearchRequests'] as const satisfies readonly (keyof BillableUsage)[]

function checkCount(field: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`usage.${field} must be a non-negative integer, got ${String(value)}`)
  }
}

/**
 * Buckets: uncached text input, cache read, cache write (5-minute and 1-hour), audio input (the
 * part of it beyond the uncached input is taken to be cache reads of audio), text output,
 * reasoning, audio output, web searches. When the parts exceed their total the remainder is
 * clamped to 0 rather than negative: the service validates usage before it gets here. The
 * modifiers (service tier, region) multiply every token bucket, not web searches.
 */
export function costOfUsage(price: PriceSchedule, usage: BillableUsage, ...modifiers: (AppliedModifier | null)[]): UsageCost {
  for (const field of REQUIRED_FIELDS) checkCount(field, usage[field])
  for (const field of OPTIONAL_FIELDS) if (usage[field] !== undefined) checkCount(field, usage[field])
  const inputAudioTokens = usage.inputAudioTokens ?? 0
  const outputAudioTokens = usage.outputAudioTokens ?? 0
  const webSearchRequests = usage.webSearchRequests ?? 0

  const tier = applicableTier(price.tiers, usage.inputTokens)
  const input = tier?.input ?? price.input
  const thinking = usage.reasoningTokens > 0 ? (price.thinkingOutput ?? null) : null
  const output = thinking ?? tier?.output ?? price.output
  const cacheRead = tier?.cacheRead ?? price.cacheRead ?? input
  const cacheWrite = tier?.cacheWrite ?? price.cacheWrite ?? input
  const cacheWrite1h = tier?.cacheWrite1h ?? price.cacheWrite1h ?? cacheWrite
  const reasoning = thinking ?? price.reasoning ?? output
  const inputAudio = price.inputAudio ?? input
  const cacheAudioRead = price.cacheAudioRead ?? cacheRead
  const outputAudio = price.outputAudio ?? output

  const notCached = Math.max(0, usage.inputTokens - usage.cacheReadTokens - usage.cacheWriteTokens)
  const uncachedAudio = Math.min(inputAudioTokens, notCached)
  const cachedAudio = Math.min(inputAudioTokens - uncachedAudio, usage.cacheReadTokens)
  const uncachedText = notCached - uncachedAudio
  const cacheReadText = usage.cacheReadTokens - cachedAudio
  const cacheWrite5mTokens = Math.max(0, usage.cacheWriteTokens - usage.cacheWrite1hTokens)
  const plainOutputTokens = Math.max(0, usage.outputTokens - usage.reasoningTokens - outputAudioTokens)

  // Several modifiers (a tier and a region) multiply exactly, then round once per bucket.
  const factors = modifiers.flatMap((m) => (m === null ? [] : [m.multiplier]))
  const factor = factors.length === 0 ? null : factors.reduce(multiplyDecimals)
  const scale = (pico: bigint) => (factor === null ? pico : multiplyUsd(pico, factor))
  const inputCost = scale(costForTokens(uncachedText, input))
  const cacheReadCost = scale(costForTokens(cacheReadText, cacheRead))
  const cacheWriteCost = scale(costForTokens(cacheWrite5mTokens, cacheWrite) + costForTokens(usage.cacheWrite1hTokens, cacheWrite1h))
  const outputCost = scale(costForTokens(plainOutputTokens, output) + costForTokens(usage.reasoningTokens, reasoning))
  const inputAudioCost = scale(costForTokens(uncachedAudio, inputAudio) + costForTokens(cachedAudio, cacheAudioRead))
  const outputAudioCost = scale(costForTokens(outputAudioTokens, outputAudio))
  // USD per 1,000 requests = per million thousandths of a request.
  const webSearchCost = price.webSearch == null ? 0n : costForTokens(webSearchRequests * 1000, price.webSearch)
  const costPico = inputCost + cacheReadCost + cacheWriteCost + outputCost + inputAudioCost + outputAudioCost + webSearchCost
  return {
    cost: formatUsd(costPico),
    costPico,
    breakdown: {
      input: formatUsd(inputCost),
      cacheRead: formatUsd(cacheReadCost),
      cacheWrite: formatUsd(cacheWriteCost),
      output: formatUsd(outputCost),
      inputAudio: formatUsd(inputAudioCost),
      outputAudio: formatUsd(outputAudioCost),
      webSearch: formatUsd(webSearchCost),
    },
    tierAboveInputTokens: tier === null ? null : tier.aboveInputTokens,
  }
}

/** What a cost leaves out, in words: searches with no price, a tier with no published modifier. */
export function unbilledParts(
  price: PriceSchedule & { provider: string; model: string },
  usage: BillableUsage,
  serviceTier: ServiceTier,
  modifier: AppliedModifier | null,
): string[] {
  const parts: string[] = []
  if ((usage.webSearchRequests ?? 0) > 0 && price.webSearch == null) {
    parts.push(`webSearchRequests: no web search price for ${price.provider}/${price.model}; the searches are not billed`)
  }
  if (serviceTier !== 'standard' && modifier === null) {
    parts.push(`serviceTier ${serviceTier}: no published modifier for ${price.provider}; billed at the standard price`)
  }
  return parts
}

/** The tier with the highest threshold the prompt exceeds; the whole request is billed at it. */
function applicableTier(tiers: readonly PriceTier[], inputTokens: number): PriceTier | null {
  let best: PriceTier | null = null
  for (const tier of tiers) {
    if (inputTokens > tier.aboveInputTokens && (best === null || tier.aboveInputTokens > best.aboveInputTokens)) {
      best = tier
    }
  }
  return best
}
