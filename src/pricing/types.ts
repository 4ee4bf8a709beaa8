// The pricing contract, re-exported by catalog.ts. Kept apart so dataset.ts and overrides.ts can
// share it without importing the catalog.
import type { ServiceTier } from '../lib/schemas.js'

export type { ServiceTier }

/**
 * Token counts of one model call, in the service's token conventions (README): the cache and reasoning
 * counts are parts of the input and output totals, never additional to them.
 */
export interface BillableUsage {
  /** All prompt tokens, including cache reads and cache writes. */
  inputTokens: number
  /** All generated tokens, including reasoning/thinking. */
  outputTokens: number
  /** Part of inputTokens. */
  cacheReadTokens: number
  /** Part of inputTokens: all cache writes, 5-minute and 1-hour. */
  cacheWriteTokens: number
  /** Part of cacheWriteTokens: Anthropic 1-hour TTL writes. */
  cacheWrite1hTokens: number
  /** Part of outputTokens. */
  reasoningTokens: number
  /** Part of inputTokens: audio input (OpenAI audio models, Gemini audio/video prompts). Default 0. */
  inputAudioTokens?: number
  /** Part of outputTokens: generated audio. Default 0. */
  outputAudioTokens?: number
  /** Server-side web searches the call ran (Anthropic server_tool_use, OpenAI web search calls). Default 0. */
  webSearchRequests?: number
  /** The provider's processing tier; default 'standard'. Batch, flex and priority change the price (modifiers.ts). */
  serviceTier?: ServiceTier
  /** The region the provider reported running the call in (Anthropic inference_geo); null or absent: none. */
  inferenceGeo?: string | null
}



/**
 * Prices that replace the base prices for the whole request once the prompt (inputTokens) is
 * larger than aboveInputTokens. A missing or null cache price inherits the base price's value.
 */
export interface PriceTier {
  aboveInputTokens: number
  input: string
  output: string
  cacheRead?: string | null
  cacheWrite?: string | null
  cacheWrite1h?: string | null
}

/** The prices a cost is computed from: USD per million tokens as decimal strings. */
export interface PriceSchedule {
  input: string
  output: string
  /** null: billed at the input price. */
  cacheRead: string | null
  /** The 5-minute (or only) cache write price; null: billed at the input price. */
  cacheWrite: string | null
  /** null: billed at the cacheWrite price. */
  cacheWrite1h: string | null
  /** null: billed at the output price. */
  reasoning: string | null
  tiers: PriceTier[]
  /** Audio input tokens; null or absent: billed at the input price. */
  inputAudio?: string | null
  /** Audio input tokens read from the cache; null or absent: the cacheRead price. */
  cacheAudioRead?: string | null
  /** Audio output tokens; null or absent: billed at the output price. */
  outputAudio?: string | null
  /**
   * When the call reasoned (reasoningTokens > 0), every output token is billed at this price
   * (Gemini 2.5 Flash preview's "thinking" output price); null or absent: no such rule.
   */
  thinkingOutput?: string | null
  /** USD per 1,000 web search requests; null or absent: the price is unknown and searches are not billed (the quote says so). */
  webSearch?: string | null
}

/** An admin price. */
export interface PriceOverride extends PriceSchedule {
  id: string
  /** 'anthropic' | 'openai' | 'google' | any string; aliases such as 'gemini' count as 'google'. */
  provider: string
  /** An exact model name, or a glob where '*' matches any run of characters ('gpt-4o*'). */
  modelPattern: string
  effectiveFrom: Date
  /** Exclusive; null means open-ended. */
  effectiveTo: Date | null
}

export type PriceSource =
  | { kind: 'dataset'; version: string; providerId: string; modelId: string }
  | { kind: 'override'; overrideId: string }
  /** A model the dataset lacks, priced by a committed correction (corrections.ts). */
  | { kind: 'correction'; correctionId: string; providerId: string; modelId: string }

/** A committed correction that changed a resolved dataset price (corrections.ts). */
export interface AppliedCorrection {
  id: string
  /** The provider's page the corrected values come from. */
  source: string
  /** The date the values were checked against it (YYYY-MM-DD). */
  checked: string
  /** The price fields it set. */
  fields: string[]
  why: string
}

export interface ResolvedPrice extends PriceSchedule {
  source: PriceSource
  /** 'genai-prices@<version>:<provider>/<model>' or 'override:<id>', stored with each event. */
  sourceLabel: string
  /** The canonical provider and model id the price belongs to (for an override, its pattern). */
  provider: string
  model: string
  effectiveFrom: Date | null
  effectiveTo: Date | null
  /** Corrections applied over the dataset price (empty for overrides and uncorrected prices). */
  corrections: AppliedCorrection[]
}

export interface CostBreakdown {
  /** Uncached input tokens. */
  input: string
  cacheRead: string
  /** 5-minute and 1-hour cache writes. */
  cacheWrite: string
  /** Output tokens including reasoning, without audio. */
  output: string
  /** Audio input tokens (cached audio included). */
  inputAudio: string
  /** Audio output tokens. */
  outputAudio: string
  /** Web search requests. */
  webSearch: string
}

/** A price modifier for a processing tier or a region (modifiers.ts). */
export interface AppliedModifier {
  /** The tier it is for; for a region modifier, the call's tier. */
  serviceTier: ServiceTier
  /** Set for a region modifier. */
  inferenceGeo?: string
  /** Multiplies every token bucket (not web searches). */
  multiplier: string
  source: string
  checked: string
  note: string
}

export type PriceQuote =
  | {
      priced: true
      cost: string
      costPico: bigint
      price: ResolvedPrice
      breakdown: CostBreakdown
      /** The tier the request was billed at, or null for the base prices. */
      tierAboveInputTokens: number | null
      serviceTier: ServiceTier
      /** The modifier applied for serviceTier, or null (standard, or no published modifier: see unbilled). */
      modifier: AppliedModifier | null
      /** The modifier applied for inferenceGeo (Anthropic 'us': 1.1x), or null. */
      regionModifier: AppliedModifier | null
      /** What the cost leaves out and why, e.g. web searches of a model with no search price. */
      unbilled: string[]
    }
  | { priced: false; reason: string }

export interface OverrideProblem {
  field: string
  message: string
}
