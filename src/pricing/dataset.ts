/**
 * Read-only view of the prices bundled in @pydantic/genai-prices.
 *
 * The package only replaces its bundled data when a host calls its `updatePrices()` with a
 * fetching factory; this module never does, so prices are exactly those of the installed version
 * and nothing is fetched at runtime.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import {
  calcPrice,
  findProvider,
  type ConditionalPrice,
  type ModelInfo,
  type ModelPrice,
  type Provider,
} from '@pydantic/genai-prices'
import { decimalFromNumber } from '../lib/money.js'
import { datasetSpellings, strictlyMatches } from './matching.js'
import type { PriceSchedule } from './types.js'

export const DATASET_PACKAGE = '@pydantic/genai-prices'

function readDatasetVersion(): string {
  const entry = createRequire(import.meta.url).resolve(DATASET_PACKAGE)
  const manifestPath = join(dirname(entry), '..', 'package.json')
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { name?: unknown; version?: unknown }
  if (manifest.name !== DATASET_PACKAGE || typeof manifest.version !== 'string') {
    throw new Error(`cannot read the version of ${DATASET_PACKAGE} from ${manifestPath}`)
  }
  return manifest.version
}

export const DATASET_VERSION = readDatasetVersion()

/** Listed by listDataset when no provider is asked for: the providers our clients instrument. */
export const DEFAULT_LISTED_PROVIDERS = ['anthropic', 'openai', 'google'] as const

/** The dataset's id for a provider name ('gemini', 'Google', 'vertex_ai' -> 'google'), else the name lowercased. */
export function canonicalProvider(provider: string): string {
  const trimmed = provider.trim()
  return findProvider({ providerId: trimmed })?.id ?? trimmed.toLowerCase()
}

/** Lowercased, trimmed, without the Gemini API's 'models/' prefix. */
export function normalizeModelName(model: string): string {
  return model.trim().toLowerCase().replace(/^models\//, '')
}

/**
 * Prices of one dataset entry in our shape: tokens (text and audio) and web searches; units we do
 * not bill (images, video, storage searches, audio hours) are dropped. The dataset has no separate
 * reasoning price.
 */
export type DatasetRates = Omit<PriceSchedule, 'reasoning'>

export interface DatasetPrice {
  providerId: string
  modelId: string
  rates: DatasetRates
  effectiveFrom: Date | null
  effectiveTo: Date | null
}

export interface DatasetModel {
  provider: Provider
  model: ModelInfo
}

/** What the dataset says about a spelling: its model, or the model it would have matched loosely. */
interface MatchResult {
  found: DatasetModel | null
  /** Set when the dataset matched only by extending an older model's name ('claude-sonnet-5-5' as claude-sonnet-5). */
  refused: DatasetModel | null
}

const MATCH_CACHE_LIMIT = 10_000
// Any fixed instant works: calcPrice is only used here to find the model, which does not depend on time.
const MATCH_TIMESTAMP = new Date(0)

/**
 * Finds dataset prices for (provider, model) spellings using the package's own matching, so
 * aliases resolve exactly as the dataset defines them. Matches are cached per instance.
 */
export class DatasetIndex {
  #matches = new Map<string, MatchResult>()

  find(provider: string, model: string): DatasetModel | null {
    return this.match(provider, model).found
  }

  /** The model a spelling resolves to, strictly (see matching.ts), and the one refused if any. */
  match(provider: string, model: string): MatchResult {
    const providerId = provider.trim().toLowerCase()
    const name = normalizeModelName(model)
    const key = `${providerId}\u0000${name}`
    const cached = this.#matches.get(key)
    if (cached !== undefined) return cached
    let result = matchModel(providerId, name)
    // 'anthropic/claude-...', 'publishers/google/models/gemini-...': retry with the last segment.
    if (result.found === null && name.includes('/')) {
      const last = matchModel(providerId, name.slice(name.lastIndexOf('/') + 1))
      result = { found: last.found, refused: last.found === null ? (result.refused ?? last.refused) : null }
    }
    if (this.#matches.size >= MATCH_CACHE_LIMIT) this.#matches.clear()
    this.#matches.set(key, result)
    return result
  }

  priceAt(provider: string, model: string, at: Date): DatasetPrice | null {
    const found = this.find(provider, model)
    return found === null ? null : priceOfModel(found, at)
  }

  /** The price of a model found with find() or byId(), at `at`. */
  priceOf(model: DatasetModel, at: Date): DatasetPrice | null {
    return priceOfModel(model, at)
  }

  /** A dataset model by its provider's and its own id. */
  byId(providerId: string, modelId: string): DatasetModel | null {
    const provider = findProvider({ providerId })
    const model = provider?.models.find((m) => m.id === modelId)
    return provider === undefined || model === undefined ? null : { provider, model }
  }

  /** Every token-priced model of one provider (any alias), or of the default providers, at `at`. */
  list(at: Date, provider?: string): DatasetPrice[] {
    const names = provider === undefined ? DEFAULT_LISTED_PROVIDERS : [provider]
    const prices: DatasetPrice[] = []
    for (const name of names) {
      const entry = findProvider({ providerId: name.trim() })
      if (entry === undefined) continue
      for (const model of entry.models) {
        const price = priceOfModel({ provider: entry, model }, at)
        if (price !== null) prices.push(price)
      }
    }
    return prices
  }
}

const NO_MATCH: MatchResult = { found: null, refused: null }

function matchModel(providerId: string, name: string): MatchResult {
  if (providerId === '' || name === '') return NO_MATCH
  let result: ReturnType<typeof calcPrice>
  try {
    result = calcPrice({}, name, { providerId, timestamp: MATCH_TIMESTAMP })
  } catch {
    // Only malformed dataset entries throw; such a model is reported as unpriced.
    return NO_MATCH
  }
  if (result === null) return NO_MATCH
  const matched = { provider: ownerOf(result.provider, result.model), model: result.model }
  const logic = result.model.match
  const strict = datasetSpellings(name).some((spelling) => strictlyMatches(logic, spelling))
  return strict ? { found: matched, refused: null } : { found: null, refused: matched }
}

// A provider may fall back to another provider's models (google -> anthropic): credit the owner.
function ownerOf(provider: Provider, model: ModelInfo): Provider {
  if (provider.models.includes(model)) return provider
  for (const fallbackId of provider.fallback_model_providers ?? []) {
    const fallback = findProvider({ providerId: fallbackId })
    if (fallback !== undefined && fallback.models.includes(model)) return fallback
  }
  return provider
}

// The dataset is immutable: each price entry's exact decimal rates are worked out once.
const ratesOfPrices = new WeakMap<ModelPrice, DatasetRates | null>()

function cachedRates(prices: ModelPrice): DatasetRates | null {
  let rates = ratesOfPrices.get(prices)
  if (rates === undefined) {
    rates = toRates(prices)
    ratesOfPrices.set(prices, rates)
  }
  return rates
}

function priceOfModel({ provider, model }: DatasetModel, at: Date): DatasetPrice | null {
  const selected = selectConditionalPrice(model, at)
  const rates = cachedRates(selected.prices)
  if (rates === null) return null
  return {
    providerId: provider.id,
    modelId: model.id,
    rates,
    effectiveFrom: selected.effectiveFrom,
    effectiveTo: selected.effectiveTo,
  }
}

interface SelectedPrice {
  prices: ModelPrice
  effectiveFrom: Date | null
  effectiveTo: Date | null
}

/**
 * The same choice as the package's calcPrice: the last entry whose constraint holds at `at`,
 * else the first entry. Start dates are UTC midnights. Time-of-day prices have no date range.
 */
export function selectConditionalPrice(model: ModelInfo, at: Date): SelectedPrice {
  if (!Array.isArray(model.prices)) return { prices: model.prices, effectiveFrom: null, effectiveTo: null }
  const entries: ConditionalPrice[] = model.prices
  let selected = 0
  for (let index = entries.length - 1; index >= 0; index--) {
    if (constraintHolds(entries[index], at)) {
      selected = index
      break
    }
  }
  const entry = entries[selected]
  const constraint = entry.constraint
  if (constraint !== undefined && constraint.type === 'time_of_date') {
    return { prices: entry.prices, effectiveFrom: null, effectiveTo: null }
  }
  let effectiveTo: Date | null = null
  for (const later of entries.slice(selected + 1)) {
    const start = startDateOf(later)
    if (start !== null && start > at && (effectiveTo === null || start < effectiveTo)) effectiveTo = start
  }
  return { prices: entry.prices, effectiveFrom: startDateOf(entry), effectiveTo }
}

function startDateOf(entry: ConditionalPrice): Date | null {
  return entry.constraint !== undefined && entry.constraint.type === 'start_date'
    ? new Date(entry.constraint.start_date)
    : null
}

function constraintHolds(entry: ConditionalPrice, at: Date): boolean {
  const constraint = entry.constraint
  if (constraint === undefined) return true
  if (constraint.type === 'start_date') return at >= new Date(constraint.start_date)
  const now = secondsOfDay(at)
  const start = secondsOfDayUtc(constraint.start_time)
  const end = secondsOfDayUtc(constraint.end_time)
  return end < start ? now >= start || now < end : now >= start && now < end
}

function secondsOfDay(at: Date): number {
  return at.getUTCHours() * 3600 + at.getUTCMinutes() * 60 + at.getUTCSeconds() + at.getUTCMilliseconds() / 1000
}

function secondsOfDayUtc(time: string): number {
  const match = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))$/.exec(time)
  if (match === null) throw new Error(`invalid time-of-day price constraint: ${time}`)
  const [, hours, minutes, seconds, fraction = '', zone, offsetSign, offsetHours = '0', offsetMinutes = '0'] = match
  const local = Number(hours) * 3600 + Number(minutes) * 60 + Number(seconds) + Number(`0.${fraction}`)
  const offset = zone === 'Z' ? 0 : (offsetSign === '-' ? -1 : 1) * (Number(offsetHours) * 3600 + Number(offsetMinutes) * 60)
  return (local - offset + 86_400) % 86_400
}

type PriceValue = ModelPrice[string]

const RATE_KEYS = {
  input: 'input_mtok',
  output: 'output_mtok',
  cacheRead: 'cache_read_mtok',
  cacheWrite: 'cache_write_mtok',
  cacheWrite1h: 'cache_write_1h_mtok',
  inputAudio: 'input_audio_mtok',
  cacheAudioRead: 'cache_audio_read_mtok',
  outputAudio: 'output_audio_mtok',
  webSearch: 'web_searches_kcount',
} as const

/**
 * null when the entry has prices but none per input or output token (audio-hour models): it cannot
 * be priced from token counts. An entry with no prices at all is free in the dataset (Gemma).
 */
function toRates(prices: ModelPrice): DatasetRates | null {
  const input = prices[RATE_KEYS.input]
  const output = prices[RATE_KEYS.output]
  const hasAnyPrice = Object.values(prices).some((value) => value !== undefined)
  if (hasAnyPrice && input === undefined && output === undefined) return null
  const cacheRead = prices[RATE_KEYS.cacheRead]
  const cacheWrite = prices[RATE_KEYS.cacheWrite]
  const cacheWrite1h = prices[RATE_KEYS.cacheWrite1h]
  const thresholds = [...new Set([input, output, cacheRead, cacheWrite, cacheWrite1h].flatMap(tierStarts))].sort(
    (a, b) => a - b,
  )
  // Audio and search prices are flat in the dataset for every model that has them; a tiered one
  // would be billed at its base price.
  return {
    input: rateAt(input, -1) ?? '0',
    output: rateAt(output, -1) ?? '0',
    cacheRead: rateAt(cacheRead, -1),
    cacheWrite: rateAt(cacheWrite, -1),
    cacheWrite1h: rateAt(cacheWrite1h, -1),
    inputAudio: rateAt(prices[RATE_KEYS.inputAudio], -1),
    cacheAudioRead: rateAt(prices[RATE_KEYS.cacheAudioRead], -1),
    outputAudio: rateAt(prices[RATE_KEYS.outputAudio], -1),
    webSearch: rateAt(prices[RATE_KEYS.webSearch], -1),
    tiers: thresholds.map((threshold) => ({
      aboveInputTokens: threshold,
      input: rateAt(input, threshold) ?? '0',
      output: rateAt(output, threshold) ?? '0',
      cacheRead: rateAt(cacheRead, threshold),
      cacheWrite: rateAt(cacheWrite, threshold),
      cacheWrite1h: rateAt(cacheWrite1h, threshold),
    })),
  }
}

function tierStarts(value: PriceValue): number[] {
  return value === undefined || typeof value === 'number' ? [] : value.tiers.map((tier) => tier.start)
}

/**
 * The price that applies once the prompt exceeds `threshold` (-1: the base price). The dataset
 * bills a whole request at the highest tier whose start the prompt exceeds, as we do.
 */
function rateAt(value: PriceValue, threshold: number): string | null {
  if (value === undefined) return null
  if (typeof value === 'number') return decimalFromNumber(value)
  let price = value.base
  let reached = -1
  for (const tier of value.tiers) {
    if (tier.start <= threshold && tier.start > reached) {
      price = tier.price
      reached = tier.start
    }
  }
  return decimalFromNumber(price)
}
