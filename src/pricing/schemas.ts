import { Type, type Static } from 'typebox'
import { DATE_OR_TIMESTAMP_FORMAT } from '../lib/time.js'
import { BotId, InferenceGeoField, MAX_TOKENS, Model, Provider, ServiceTierField, TokenCount } from '../lib/schemas.js'

const PerMTok = (description: string) => Type.Number({ minimum: 0, maximum: 1_000_000, description: `${description}, USD per million tokens` })
const NullablePerMTok = (description: string) => Type.Union([PerMTok(description), Type.Null()])
const OptionalPrice = (description: string) => Type.Optional(NullablePerMTok(description))
const Instant = (description: string) => Type.String({ format: 'date-time', description })

export const PriceTierBody = Type.Object(
  {
    aboveInputTokens: Type.Integer({ minimum: 0, maximum: MAX_TOKENS, description: 'The tier applies to the whole request when inputTokens exceeds this' }),
    input: PerMTok('Input'),
    output: PerMTok('Output'),
    cacheRead: OptionalPrice('Cache read (null: the base cacheRead price)'),
    cacheWrite: OptionalPrice('Cache write'),
    cacheWrite1h: OptionalPrice('1-hour cache write'),
  },
  { additionalProperties: false },
)

export const OverrideBody = Type.Object(
  {
    provider: Provider,
    modelPattern: Type.String({ minLength: 1, maxLength: 200, description: "Exact model name or glob with '*', e.g. gpt-4o*" }),
    effectiveFrom: Instant('First instant the override applies'),
    effectiveTo: Type.Optional(Type.Union([Instant('First instant it no longer applies (exclusive)'), Type.Null()])),
    input: PerMTok('Input (uncached)'),
    output: PerMTok('Output'),
    cacheRead: OptionalPrice('Cache read (null or omitted: the input price)'),
    cacheWrite: OptionalPrice('Cache write, 5-minute or only TTL (null: the input price)'),
    cacheWrite1h: OptionalPrice('Cache write, 1-hour TTL (null: the cacheWrite price)'),
    reasoning: OptionalPrice('Reasoning tokens (null: the output price)'),
    tiers: Type.Optional(Type.Array(PriceTierBody, { maxItems: 10 })),
    note: Type.Optional(Type.String({ maxLength: 500, description: 'Why: contract, discount, private model' })),
  },
  { additionalProperties: false },
)
export type OverrideBody = Static<typeof OverrideBody>

const Tier = Type.Object({
  aboveInputTokens: Type.Integer(),
  input: Type.Number(),
  output: Type.Number(),
  cacheRead: Type.Union([Type.Number(), Type.Null()]),
  cacheWrite: Type.Union([Type.Number(), Type.Null()]),
  cacheWrite1h: Type.Union([Type.Number(), Type.Null()]),
})

const Rates = {
  input: Type.Number(),
  output: Type.Number(),
  cacheRead: Type.Union([Type.Number(), Type.Null()]),
  cacheWrite: Type.Union([Type.Number(), Type.Null()]),
  cacheWrite1h: Type.Union([Type.Number(), Type.Null()]),
  reasoning: Type.Union([Type.Number(), Type.Null()]),
  tiers: Type.Array(Tier),
}

export const OverrideInfo = Type.Object({
  id: Type.String(),
  provider: Type.String(),
  modelPattern: Type.String(),
  effectiveFrom: Type.String({ format: 'date-time' }),
  effectiveTo: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  ...Rates,
  note: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
})
export type OverrideInfo = Static<typeof OverrideInfo>

const NullableNumber = (description: string) => Type.Union([Type.Number(), Type.Null()], { description })

export const AppliedCorrectionInfo = Type.Object({
  id: Type.String(),
  source: Type.String({ description: "The provider's page the corrected values come from" }),
  checked: Type.String({ description: 'Date the values were checked against it (YYYY-MM-DD)' }),
  fields: Type.Array(Type.String(), { description: 'Price fields the correction set' }),
  why: Type.String(),
})

export const PriceInfo = Type.Object({
  source: Type.Enum(['dataset', 'override', 'correction'], { description: 'correction: a model the dataset lacks, priced by a committed correction' }),
  sourceLabel: Type.String({ description: 'Stored with each event priced by it' }),
  overrideId: Type.Union([Type.String(), Type.Null()]),
  provider: Type.String(),
  model: Type.String({ description: 'Dataset model id, or the override pattern' }),
  ...Rates,
  inputAudio: NullableNumber('Audio input, USD per million tokens; null: the input price'),
  cacheAudioRead: NullableNumber('Cached audio input; null: the cacheRead price'),
  outputAudio: NullableNumber('Audio output; null: the output price'),
  thinkingOutput: NullableNumber('Every output token of a call that reasoned; null: no such rule'),
  webSearch: NullableNumber('USD per 1,000 web search requests; null: no known price (searches are not billed)'),
  effectiveFrom: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  effectiveTo: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  corrections: Type.Array(AppliedCorrectionInfo, { description: 'Committed corrections applied over the dataset price' }),
})
export type PriceInfo = Static<typeof PriceInfo>

const AtParam = Type.Optional(Type.String({ maxLength: 40, format: DATE_OR_TIMESTAMP_FORMAT, description: 'Instant the price applies at: YYYY-MM-DD or ISO 8601; default now' }))

export const PricesQuery = Type.Object(
  { provider: Type.Optional(Provider), model: Type.Optional(Model), at: AtParam },
  { additionalProperties: false },
)
export const ResolveQuery = Type.Object({ provider: Provider, model: Model, at: AtParam }, { additionalProperties: false })

export const PricesResponse = Type.Object({
  at: Type.String({ format: 'date-time' }),
  datasetVersion: Type.String(),
  overrides: Type.Array(PriceInfo, { description: 'Overrides in effect at `at` (they win over the dataset)' }),
  prices: Type.Array(PriceInfo, { description: 'Dataset prices in effect at `at`' }),
})

export const ResolveResponse = Type.Object({
  provider: Type.String(),
  model: Type.String(),
  at: Type.String({ format: 'date-time' }),
  priced: Type.Boolean(),
  reason: Type.String({ description: 'Why this price applies, or why none does' }),
  corrected: Type.Boolean({ description: 'True when committed corrections changed the dataset price (see price.corrections)' }),
  refusedMatch: Type.Union([Type.String(), Type.Null()], {
    description: "A dataset model the name only extends with a newer version number ('anthropic/claude-sonnet-5' for claude-sonnet-5-5); not used",
  }),
  price: Type.Union([PriceInfo, Type.Null()]),
})

export const QuoteBody = Type.Object(
  {
    provider: Provider,
    model: Model,
    at: Type.Optional(Instant('When the call happens; default now')),
    inputTokens: TokenCount('All prompt tokens, including cache reads and writes'),
    outputTokens: TokenCount('All generated tokens, including reasoning'),
    cacheReadTokens: Type.Optional(TokenCount('Part of inputTokens')),
    cacheWriteTokens: Type.Optional(TokenCount('Part of inputTokens')),
    cacheWrite1hTokens: Type.Optional(TokenCount('Part of cacheWriteTokens')),
    reasoningTokens: Type.Optional(TokenCount('Part of outputTokens')),
    inputAudioTokens: Type.Optional(TokenCount('Part of inputTokens: audio input')),
    outputAudioTokens: Type.Optional(TokenCount('Part of outputTokens: audio output')),
    webSearchRequests: Type.Optional(TokenCount('Server-side web searches')),
    serviceTier: Type.Optional(ServiceTierField),
    inferenceGeo: Type.Optional(InferenceGeoField),
  },
  { additionalProperties: false },
)
export type QuoteBody = Static<typeof QuoteBody>

const Modifier = Type.Object({
  serviceTier: ServiceTierField,
  inferenceGeo: Type.Optional(Type.String()),
  multiplier: Type.String({ description: 'Multiplies every token bucket (not web searches)' }),
  source: Type.String(),
  checked: Type.String(),
  note: Type.String(),
})

export const QuoteResponse = Type.Object({
  priced: Type.Boolean(),
  cost: Type.Union([Type.Number(), Type.Null()], { description: 'USD' }),
  costExact: Type.Union([Type.String(), Type.Null()], { description: 'USD as an exact decimal string' }),
  breakdown: Type.Union([
    Type.Object({
      input: Type.Number({ description: 'Uncached text input' }),
      cacheRead: Type.Number(),
      cacheWrite: Type.Number(),
      output: Type.Number({ description: 'Text output and reasoning' }),
      inputAudio: Type.Number(),
      outputAudio: Type.Number(),
      webSearch: Type.Number(),
    }),
    Type.Null(),
  ]),
  tierAboveInputTokens: Type.Union([Type.Integer(), Type.Null()]),
  serviceTier: Type.Union([ServiceTierField, Type.Null()]),
  modifier: Type.Union([Modifier, Type.Null()], { description: 'The service-tier modifier applied, or null' }),
  regionModifier: Type.Union([Modifier, Type.Null()], { description: "The region modifier applied (Anthropic inference_geo 'us': 1.1x), or null" }),
  unbilled: Type.Array(Type.String(), { description: 'What the cost leaves out and why' }),
  reason: Type.String(),
  price: Type.Union([PriceInfo, Type.Null()]),
})

export const RepriceBody = Type.Object(
  {
    startDate: Type.String({ maxLength: 40, format: DATE_OR_TIMESTAMP_FORMAT, description: 'Inclusive: YYYY-MM-DD or ISO 8601' }),
    endDate: Type.String({ maxLength: 40, format: DATE_OR_TIMESTAMP_FORMAT, description: 'Inclusive; a date-only value covers the whole UTC day' }),
    botId: Type.Optional(BotId),
    provider: Type.Optional(Provider),
    model: Type.Optional(Model),
  },
  { additionalProperties: false },
)
export type RepriceBody = Static<typeof RepriceBody>

export const RepriceResponse = Type.Object({
  scanned: Type.Integer({ description: 'Events in the range' }),
  changed: Type.Integer({ description: 'Events whose cost or price source changed' }),
  costDelta: Type.Number({ description: 'New total minus old total, USD' }),
  costDeltaExact: Type.String(),
})
