/**
 * The price catalog: which price applies to a model call and what the call costs, exactly.
 * Pure: overrides are handed in by the caller (the admin routes load them from the database).
 * How costs are computed is documented in docs/pricing.md.
 */
import { canonicalProvider, DATASET_VERSION, DatasetIndex, normalizeModelName, type DatasetPrice } from './dataset.js'
import { costForTokens, formatUsd } from '../lib/money.js'
import { compileOverride, overrideProblems, pickOverride, type CompiledOverride } from './overrides.js'
import type { BillableUsage, CostBreakdown, PriceOverride, PriceQuote, PriceSchedule, PriceTier, ResolvedPrice } from './types.js'

export type {
  BillableUsage,
  CostBreakdown,
  OverrideProblem,
  PriceOverride,
  PriceQuote,
  PriceSchedule,
  PriceSource,
  PriceTier,
  ResolvedPrice,
} from './types.js'
export { overrideProblems } from './overrides.js'

export const DATASET_LABEL = 'genai-prices'

export interface UsageCost {
  cost: string
  costPico: bigint
  breakdown: CostBreakdown
  tierAboveInputTokens: number | null
}

export class PriceCatalog {
  #dataset = new DatasetIndex()
  #overrides: CompiledOverride[] = []

  constructor(opts?: { overrides?: PriceOverride[] }) {
    this.setOverrides(opts?.overrides ?? [])
  }

  /**
   * Replaces all overrides; call it whenever the stored overrides change. Throws on an override
   * that overrideProblems() would reject, rather than pricing events with it.
   */
  setOverrides(overrides: PriceOverride[]): void {
    for (const override of overrides) {
      const problems = overrideProblems(override, [])
      if (problems.length > 0) {
        const details = problems.map((problem) => `${problem.field} ${problem.message}`).join('; ')
        throw new TypeError(`invalid price override ${override.id}: ${details}`)
      }
    }
    this.#overrides = overrides.map(compileOverride)
  }

  /** The override active at `at` if one matches, else the dataset price effective at `at`, else null. */
  resolve(provider: string, model: string, at: Date): ResolvedPrice | null {
    assertValidDate(at)
    if (this.#overrides.length > 0) {
      const providerId = canonicalProvider(provider)
      const override = pickOverride(this.#overrides, providerId, this.#spellings(provider, model), at)
      if (override !== null) return fromOverride(override, providerId)
    }
    const price = this.#dataset.priceAt(provider, model, at)
    return price === null ? null : fromDataset(price)
  }

  quote(provider: string, model: string, at: Date, usage: BillableUsage): PriceQuote {
    const price = this.resolve(provider, model, at)
    if (price === null) return { priced: false, reason: `no price for provider ${provider} model ${model}` }
    return { priced: true, price, ...costOfUsage(price, usage) }
  }

  /**
   * Dataset prices effective at `at`. `provider` accepts aliases; `model` keeps entries whose id
   * contains it (case-insensitive) or that the spelling resolves to.
   */
  listDataset(filter: { provider?: string; model?: string; at: Date }): ResolvedPrice[] {
    assertValidDate(filter.at)
    let prices = this.#dataset.list(filter.at, filter.provider)
    const model = filter.model
    if (model !== undefined) {
      const needle = normalizeModelName(model)
      const resolved = new Set<string>()
      for (const providerId of new Set(prices.map((price) => price.providerId))) {
        const found = this.#dataset.find(providerId, model)
        if (found !== null) resolved.add(`${found.provider.id}/${found.model.id}`)
      }
      prices = prices.filter(
        (price) => price.modelId.toLowerCase().includes(needle) || resolved.has(`${price.providerId}/${price.modelId}`),
      )
    }
    return prices.map(fromDataset)
  }

  static datasetVersion(): string {
    return DATASET_VERSION
  }

  /** The names an override pattern is tried against: the spelling, without a 'x/' prefix, and the dataset id. */
  #spellings(provider: string, model: string): string[] {
    const name = normalizeModelName(model)
    const names = [name]
    if (name.includes('/')) names.push(name.slice(name.lastIndexOf('/') + 1))
    const found = this.#dataset.find(provider, model)
    if (found !== null) names.push(found.model.id.toLowerCase())
    return names
  }
}

/**
 * The exact cost of `usage` at `price`. Buckets: uncached input, cache read, cache write (5-minute
 * and 1-hour), output and reasoning. When the parts exceed their total (more cache tokens than
 * input tokens, more reasoning than output), the remainder is clamped to 0 rather than negative:
 * the service validates usage before it gets here.
 */
export function costOfUsage(price: PriceSchedule, usage: BillableUsage): UsageCost {
  for (const field of USAGE_FIELDS) {
    const value = usage[field]
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`usage.${field} must be a non-negative integer, got ${String(value)}`)
    }
  }
  const tier = applicableTier(price.tiers, usage.inputTokens)
  const input = tier?.input ?? price.input
  const output = tier?.output ?? price.output
  const cacheRead = tier?.cacheRead ?? price.cacheRead ?? input
  const cacheWrite = tier?.cacheWrite ?? price.cacheWrite ?? input
  const cacheWrite1h = tier?.cacheWrite1h ?? price.cacheWrite1h ?? cacheWrite
  const reasoning = price.reasoning ?? output

  const uncachedTokens = Math.max(0, usage.inputTokens - usage.cacheReadTokens - usage.cacheWriteTokens)
  const cacheWrite5mTokens = Math.max(0, usage.cacheWriteTokens - usage.cacheWrite1hTokens)
  const plainOutputTokens = Math.max(0, usage.outputTokens - usage.reasoningTokens)

  const inputCost = costForTokens(uncachedTokens, input)
  const cacheReadCost = costForTokens(usage.cacheReadTokens, cacheRead)
  const cacheWriteCost =
    costForTokens(cacheWrite5mTokens, cacheWrite) + costForTokens(usage.cacheWrite1hTokens, cacheWrite1h)
  const outputCost = costForTokens(plainOutputTokens, output) + costForTokens(usage.reasoningTokens, reasoning)
  const costPico = inputCost + cacheReadCost + cacheWriteCost + outputCost
  return {
    cost: formatUsd(costPico),
    costPico,
    breakdown: {
      input: formatUsd(inputCost),
      cacheRead: formatUsd(cacheReadCost),
      cacheWrite: formatUsd(cacheWriteCost),
      output: formatUsd(outputCost),
    },
    tierAboveInputTokens: tier === null ? null : tier.aboveInputTokens,
  }
}

const USAGE_FIELDS = [
  'inputTokens',
  'outputTokens',
  'cacheReadTokens',
  'cacheWriteTokens',
  'cacheWrite1hTokens',
  'reasoningTokens',
] as const satisfies readonly (keyof BillableUsage)[]

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

function fromDataset(price: DatasetPrice): ResolvedPrice {
  return {
    source: { kind: 'dataset', version: DATASET_VERSION, providerId: price.providerId, modelId: price.modelId },
    sourceLabel: `${DATASET_LABEL}@${DATASET_VERSION}:${price.providerId}/${price.modelId}`,
    provider: price.providerId,
    model: price.modelId,
    ...price.rates,
    reasoning: null,
    effectiveFrom: price.effectiveFrom,
    effectiveTo: price.effectiveTo,
  }
}

function fromOverride(override: PriceOverride, providerId: string): ResolvedPrice {
  return {
    source: { kind: 'override', overrideId: override.id },
    sourceLabel: `override:${override.id}`,
    provider: providerId,
    model: override.modelPattern,
    input: override.input,
    output: override.output,
    cacheRead: override.cacheRead,
    cacheWrite: override.cacheWrite,
    cacheWrite1h: override.cacheWrite1h,
    reasoning: override.reasoning,
    tiers: override.tiers.map((tier) => ({ ...tier })),
    effectiveFrom: override.effectiveFrom,
    effectiveTo: override.effectiveTo,
  }
}

function assertValidDate(at: Date): void {
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw new RangeError('at must be a valid Date')
}
