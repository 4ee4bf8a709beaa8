/**
 * The price catalog: which price applies to a model call and what the call costs, exactly.
 * Pure: overrides are handed in by the caller (the admin routes load them from the database).
 * How costs are computed is documented in docs/pricing.md.
 */
import { canonicalProvider, DATASET_VERSION, DatasetIndex, normalizeModelName, type DatasetPrice } from './dataset.js'
import { CorrectionIndex, holdsAt, ratesOfAddedModel, type CorrectedRates } from './corrected.js'
import type { CatalogCorrection } from './corrections.js'
import { costOfUsage, unbilledParts } from './cost.js'
import { modifierFor, regionModifierFor } from './modifiers.js'
import { compileOverride, overrideProblems, pickOverride, type CompiledOverride } from './overrides.js'
import type { BillableUsage, PriceOverride, PriceQuote, ResolvedPrice } from './types.js'

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
  ServiceTier,
} from './types.js'
export { SERVICE_TIERS } from '../lib/schemas.js'
export { overrideProblems } from './overrides.js'
export { costOfUsage, type UsageCost } from './cost.js'

export const DATASET_LABEL = 'genai-prices'

/** Which price applies and, when none does, the dataset model a stricter match refused. */
export interface Resolution {
  price: ResolvedPrice | null
  /** 'provider/model' the name only extends with a newer version number ('claude-sonnet-5-5' of claude-sonnet-5). */
  refused: string | null
}

export class PriceCatalog {
  #dataset = new DatasetIndex()
  #corrections: CorrectionIndex
  #overrides: CompiledOverride[] = []

  constructor(opts?: { overrides?: PriceOverride[]; corrections?: readonly CatalogCorrection[] }) {
    this.#corrections = new CorrectionIndex(opts?.corrections)
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

  /**
   * The override active at `at` if one matches, else the dataset price effective at `at` with the
   * committed corrections applied, else a model only a correction prices, else null.
   */
  resolve(provider: string, model: string, at: Date): ResolvedPrice | null {
    return this.explain(provider, model, at).price
  }

  explain(provider: string, model: string, at: Date): Resolution {
    assertValidDate(at)
    const own = this.#correctedPrice(provider, model, at)
    if (this.#overrides.length > 0) {
      const providerId = canonicalProvider(provider)
      const override = pickOverride(this.#overrides, providerId, this.#spellings(provider, model, own.price), at)
      // Overrides set token prices; the per-request search price stays the catalog's.
      if (override !== null) return { price: fromOverride(override, providerId, own.price?.webSearch ?? null), refused: null }
    }
    return own
  }

  quote(provider: string, model: string, at: Date, usage: BillableUsage): PriceQuote {
    const { price, refused } = this.explain(provider, model, at)
    if (price === null) return { priced: false, reason: unpricedReason(provider, model, refused) }
    const serviceTier = usage.serviceTier ?? 'standard'
    const modifier = modifierFor(price.provider, serviceTier)
    const regionModifier = regionModifierFor(price.provider, usage.inferenceGeo, serviceTier)
    return {
      priced: true,
      price,
      ...costOfUsage(price, usage, modifier, regionModifier),
      serviceTier,
      modifier,
      regionModifier,
      unbilled: unbilledParts(price, usage, serviceTier, modifier),
    }
  }

  #correctedPrice(provider: string, model: string, at: Date): Resolution {
    const match = this.#dataset.match(provider, model)
    let found = match.found
    if (found === null) {
      const added = this.#addedBy(provider, model)
      if (added !== null) {
        found = this.#dataset.byId(added.provider, added.model)
        if (found === null) return { price: holdsAt(added, at) ? fromAddedModel(added) : null, refused: null }
      }
    }
    if (found === null) {
      const refused = match.refused === null ? null : `${match.refused.provider.id}/${match.refused.model.id}`
      return { price: null, refused }
    }
    const price = this.#dataset.priceOf(found, at)
    if (price === null) return { price: null, refused: null }
    return { price: fromDataset(price, this.#corrections.apply(price.providerId, price.modelId, price, at)), refused: null }
  }

  #addedBy(provider: string, model: string): CatalogCorrection | null {
    const providerId = canonicalProvider(provider)
    const name = normalizeModelName(model)
    const byName = this.#corrections.added(providerId, name)
    if (byName !== null || !name.includes('/')) return byName
    return this.#corrections.added(providerId, name.slice(name.lastIndexOf('/') + 1))
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
    return prices.map((price) => fromDataset(price, this.#corrections.apply(price.providerId, price.modelId, price, filter.at)))
  }

  static datasetVersion(): string {
    return DATASET_VERSION
  }

  /** The names an override pattern is tried against: the spelling, without a 'x/' prefix, and the model id it resolves to. */
  #spellings(provider: string, model: string, resolved: ResolvedPrice | null): string[] {
    const name = normalizeModelName(model)
    const names = [name]
    if (name.includes('/')) names.push(name.slice(name.lastIndexOf('/') + 1))
    if (resolved !== null) names.push(resolved.model.toLowerCase())
    return names
  }
}

function unpricedReason(provider: string, model: string, refused: string | null): string {
  const reason = `no price for provider ${provider} model ${model}`
  if (refused === null) return reason
  return `${reason}: the name extends ${refused} with a newer version number, so it is not priced as ${refused} (add an override)`
}

function fromDataset(price: DatasetPrice, corrected: CorrectedRates): ResolvedPrice {
  const label = `${DATASET_LABEL}@${DATASET_VERSION}:${price.providerId}/${price.modelId}`
  const ids = corrected.applied.map((c) => c.id)
  return {
    source: { kind: 'dataset', version: DATASET_VERSION, providerId: price.providerId, modelId: price.modelId },
    sourceLabel: ids.length === 0 ? label : `${label}+corrections:${ids.join(',')}`,
    provider: price.providerId,
    model: price.modelId,
    reasoning: null,
    ...corrected.rates,
    effectiveFrom: corrected.effectiveFrom,
    effectiveTo: corrected.effectiveTo,
    corrections: corrected.applied,
  }
}

function fromAddedModel(c: CatalogCorrection): ResolvedPrice {
  return {
    source: { kind: 'correction', correctionId: c.id, providerId: c.provider, modelId: c.model },
    sourceLabel: `correction:${c.id}`,
    provider: c.provider,
    model: c.model,
    reasoning: null,
    ...ratesOfAddedModel(c),
    effectiveFrom: c.effectiveFrom === null ? null : new Date(`${c.effectiveFrom}T00:00:00Z`),
    effectiveTo: c.effectiveTo === null ? null : new Date(`${c.effectiveTo}T00:00:00Z`),
    corrections: [{ id: c.id, source: c.source, checked: c.checked, fields: Object.keys(c.prices), why: c.why }],
  }
}

function fromOverride(override: PriceOverride, providerId: string, webSearch: string | null): ResolvedPrice {
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
    webSearch,
    effectiveFrom: override.effectiveFrom,
    effectiveTo: override.effectiveTo,
    corrections: [],
  }
}

function assertValidDate(at: Date): void {
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw new RangeError('at must be a valid Date')
}
