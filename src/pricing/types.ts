// The pricing contract, re-exported by catalog.ts. Kept apart so dataset.ts and overrides.ts can
// share it without importing the catalog.

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

export interface ResolvedPrice extends PriceSchedule {
  source: PriceSource
  /** 'genai-prices@<version>:<provider>/<model>' or 'override:<id>', stored with each event. */
  sourceLabel: string
  /** The canonical provider and model id the price belongs to (for an override, its pattern). */
  provider: string
  model: string
  effectiveFrom: Date | null
  effectiveTo: Date | null
}

export interface CostBreakdown {
  /** Uncached input tokens. */
  input: string
  cacheRead: string
  /** 5-minute and 1-hour cache writes. */
  cacheWrite: string
  /** Output tokens including reasoning. */
  output: string
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
    }
  | { priced: false; reason: string }

export interface OverrideProblem {
  field: string
  message: string
}
