/** The wire shape of prices (PriceInfo, OverrideInfo) and the words GET /api/prices/resolve explains a price with. */
import { canonicalProvider } from './dataset.js'
import { PriceCatalog, type PriceOverride, type PriceTier, type ResolvedPrice } from './catalog.js'
import type { StoredOverride } from './repository.js'
import type { OverrideInfo, PriceInfo } from './schemas.js'

export const usd = (v: string) => Number(v)
const usdOrNull = (v: string | null | undefined) => (v === null || v === undefined ? null : Number(v))

function tierInfo(t: PriceTier) {
  return {
    aboveInputTokens: t.aboveInputTokens,
    input: usd(t.input),
    output: usd(t.output),
    cacheRead: usdOrNull(t.cacheRead),
    cacheWrite: usdOrNull(t.cacheWrite),
    cacheWrite1h: usdOrNull(t.cacheWrite1h),
  }
}

function rates(p: Pick<PriceOverride, 'input' | 'output' | 'cacheRead' | 'cacheWrite' | 'cacheWrite1h' | 'reasoning' | 'tiers'>) {
  return {
    input: usd(p.input),
    output: usd(p.output),
    cacheRead: usdOrNull(p.cacheRead),
    cacheWrite: usdOrNull(p.cacheWrite),
    cacheWrite1h: usdOrNull(p.cacheWrite1h),
    reasoning: usdOrNull(p.reasoning),
    tiers: p.tiers.map(tierInfo),
  }
}

function unitRates(p: Pick<ResolvedPrice, 'inputAudio' | 'cacheAudioRead' | 'outputAudio' | 'thinkingOutput' | 'webSearch'>) {
  return {
    inputAudio: usdOrNull(p.inputAudio),
    cacheAudioRead: usdOrNull(p.cacheAudioRead),
    outputAudio: usdOrNull(p.outputAudio),
    thinkingOutput: usdOrNull(p.thinkingOutput),
    webSearch: usdOrNull(p.webSearch),
  }
}

export function toPriceInfo(p: ResolvedPrice): PriceInfo {
  return {
    source: p.source.kind,
    sourceLabel: p.sourceLabel,
    overrideId: p.source.kind === 'override' ? p.source.overrideId : null,
    provider: p.provider,
    model: p.model,
    ...rates(p),
    ...unitRates(p),
    effectiveFrom: p.effectiveFrom?.toISOString() ?? null,
    effectiveTo: p.effectiveTo?.toISOString() ?? null,
    corrections: p.corrections.map((c) => ({ ...c, fields: [...c.fields] })),
  }
}

export function toOverrideInfo(o: StoredOverride): OverrideInfo {
  return {
    id: o.id,
    provider: o.provider,
    modelPattern: o.modelPattern,
    effectiveFrom: o.effectiveFrom.toISOString(),
    effectiveTo: o.effectiveTo?.toISOString() ?? null,
    ...rates(o),
    note: o.note,
    createdAt: o.createdAt.toISOString(),
  }
}

export function overridePriceInfo(o: PriceOverride): PriceInfo {
  return {
    source: 'override',
    sourceLabel: `override:${o.id}`,
    overrideId: o.id,
    provider: canonicalProvider(o.provider),
    model: o.modelPattern,
    ...rates(o),
    ...unitRates({}),
    effectiveFrom: o.effectiveFrom.toISOString(),
    effectiveTo: o.effectiveTo?.toISOString() ?? null,
    corrections: [],
  }
}

export function resolveReason(provider: string, model: string, price: ResolvedPrice | null, refused: string | null): string {
  if (price === null) {
    const base = `No override and no dataset price (genai-prices@${PriceCatalog.datasetVersion()}) matches provider '${provider}' model '${model}'`
    const why = refused === null ? '' : `; the dataset would match ${refused} only by prefix, and the name adds a newer version number`
    return `${base}${why}: events are stored unpriced (add an override to price them)`
  }
  const corrected =
    price.corrections.length === 0 ? '' : `; corrected by ${price.corrections.map((c) => `${c.id} (${c.source}, checked ${c.checked})`).join(', ')}`
  switch (price.source.kind) {
    case 'override':
      return `Override ${price.source.overrideId} (pattern '${price.model}', in effect from ${price.effectiveFrom?.toISOString()}) wins over the dataset and corrections`
    case 'correction':
      return `'${model}' is priced as ${price.provider}/${price.model}, a model the dataset lacks, by a committed correction${corrected}; no override applies`
    case 'dataset':
      return `'${model}' resolves to ${price.provider}/${price.model} in genai-prices@${price.source.version}${corrected}; no override applies`
  }
}

