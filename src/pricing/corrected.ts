/**
 * Applies the committed corrections (corrections.ts) over dataset prices: which corrections hold
 * for a model at an instant, the prices they set, and the range the combined price is valid in.
 */
import { CORRECTIONS, type CatalogCorrection, type CorrectedPrices } from './corrections.js'
import { namePatternMatches } from './matching.js'
import type { DatasetRates } from './dataset.js'
import type { AppliedCorrection } from './types.js'

const day = (value: string | null) => (value === null ? null : new Date(`${value}T00:00:00Z`))

export function holdsAt(c: CatalogCorrection, at: Date): boolean {
  const from = day(c.effectiveFrom)
  const to = day(c.effectiveTo)
  return (from === null || at >= from) && (to === null || at < to)
}

export interface CorrectedRates {
  rates: DatasetRates
  applied: AppliedCorrection[]
  effectiveFrom: Date | null
  effectiveTo: Date | null
}

export class CorrectionIndex {
  readonly #byModel = new Map<string, CatalogCorrection[]>()
  readonly #adds: CatalogCorrection[] = []

  constructor(readonly corrections: readonly CatalogCorrection[] = CORRECTIONS) {
    for (const c of corrections) {
      const key = `${c.provider}/${c.model}`
      this.#byModel.set(key, [...(this.#byModel.get(key) ?? []), c])
      if (c.adds !== undefined) this.#adds.push(c)
    }
  }

  /** The correction naming `name` (lower-case, normalised) for a dataset provider id, if any. */
  added(providerId: string, name: string): CatalogCorrection | null {
    return this.#adds.find((c) => c.provider === providerId && c.adds?.some((pattern) => namePatternMatches(pattern, name))) ?? null
  }

  /** Rates of a model for an instant with the corrections that hold then applied, in file order. */
  apply(providerId: string, modelId: string, base: DatasetPrice, at: Date): CorrectedRates {
    const all = this.#byModel.get(`${providerId}/${modelId}`) ?? []
    let rates = base.rates
    const applied: AppliedCorrection[] = []
    let effectiveFrom = base.effectiveFrom
    let effectiveTo = base.effectiveTo
    for (const c of all) {
      // The combined price changes at every correction boundary.
      for (const boundary of [day(c.effectiveFrom), day(c.effectiveTo)]) {
        if (boundary === null) continue
        if (boundary <= at && (effectiveFrom === null || boundary > effectiveFrom)) effectiveFrom = boundary
        if (boundary > at && (effectiveTo === null || boundary < effectiveTo)) effectiveTo = boundary
      }
      if (!holdsAt(c, at)) continue
      rates = withPrices(rates, c.prices)
      applied.push({ id: c.id, source: c.source, checked: c.checked, fields: Object.keys(c.prices), why: c.why })
    }
    return { rates, applied, effectiveFrom, effectiveTo }
  }
}

/** The dataset price a correction starts from (effective range included). */
export interface DatasetPrice {
  rates: DatasetRates
  effectiveFrom: Date | null
  effectiveTo: Date | null
}

function withPrices(rates: DatasetRates, prices: CorrectedPrices): DatasetRates {
  const { tiers, ...flat } = prices
  return { ...rates, ...flat, tiers: tiers === undefined ? rates.tiers : tiers.map((tier) => ({ ...tier })) }
}

/** Rates of a model only a correction prices (no dataset entry): what it sets, the rest unset. */
export function ratesOfAddedModel(c: CatalogCorrection): DatasetRates {
  if (c.prices.input === undefined || c.prices.output === undefined) {
    throw new TypeError(`correction ${c.id} adds a model and must set input and output`)
  }
  return withPrices({ input: '0', output: '0', cacheRead: null, cacheWrite: null, cacheWrite1h: null, tiers: [] }, c.prices)
}
