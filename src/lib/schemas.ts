import { Type } from 'typebox'

/**
 * Wire primitives every resource shares: who called (bot), which model of which provider, what
 * kind of request, and token counts. Usage, analytics, pricing, budgets and keys build their
 * schemas from these, so a bot id or a token count means the same everywhere.
 */

export const BOT_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:@/-]*$'
export const MAX_TOKENS = 2_000_000_000
/** A metadata key a query may name (groupBy=metadata.<key>, a per-user budget's key): 1-100 of A-Z a-z 0-9 _ . : - */
export const METADATA_KEY_CHARS = '[A-Za-z0-9_.:-]{1,100}'

/** A count of tokens of one kind in one call. */
export const TokenCount = (description: string, maximum = MAX_TOKENS) => Type.Integer({ minimum: 0, maximum, description })

export const BotId = Type.String({ minLength: 1, maxLength: 128, pattern: BOT_ID_PATTERN, description: 'Bot identifier, e.g. bot_123' })
export const Model = Type.String({ minLength: 1, maxLength: 200, description: 'Model name as the provider spells it' })
export const Provider = Type.String({ minLength: 1, maxLength: 64, description: 'anthropic, openai, google, or any other provider name' })
export const MetadataKey = Type.String({
  minLength: 1,
  maxLength: 100,
  pattern: `^${METADATA_KEY_CHARS}$`,
  description: 'A key of the events\' metadata, e.g. userId: 1-100 characters of A-Z a-z 0-9 _ . : -',
})
export const RequestType = Type.String({ minLength: 1, maxLength: 64, description: 'e.g. message, api_call, embedding' })

/** Token totals by kind, as every aggregate reports them. */
export const TokenSums = {
  inputTokens: Type.Integer(),
  outputTokens: Type.Integer(),
  totalTokens: Type.Integer(),
  cacheReadTokens: Type.Integer(),
  cacheWriteTokens: Type.Integer(),
  reasoningTokens: Type.Integer(),
}

/** Processing tiers a provider bills differently (batch jobs, OpenAI and Gemini flex/priority). */
export const SERVICE_TIERS = ['standard', 'flex', 'priority', 'batch'] as const
export type ServiceTier = (typeof SERVICE_TIERS)[number]
/** Where the provider ran the call, as it reports it (Anthropic usage.inference_geo: 'us', 'global'). */
export const InferenceGeoField = Type.String({
  minLength: 1,
  maxLength: 32,
  pattern: '^[a-z][a-z0-9_-]*$',
  description: "Region the provider ran the call in, as it reports it (Anthropic inference_geo: 'us' is billed 1.1x)",
})

export const ServiceTierField = Type.Enum(SERVICE_TIERS, {
  description: 'Processing tier the provider billed: standard (default), flex, priority or batch (batch APIs)',
})
