import { Type, type Static } from 'typebox'
import { BotId, MAX_TOKENS, Model, Provider, RequestType, TokenCount } from '../lib/schemas.js'
import { UsageEvent } from '../lib/usage-event.js'

/**
 * Wire schemas of the usage resource. Types used by the handlers and the repository come from
 * these with Static<>, never from hand-written twins.
 */

export const EVENT_ID_PATTERN = '^[A-Za-z0-9_.:-]+$'
export const MAX_METADATA_BYTES = 16 * 1024
export const MAX_ERROR_MESSAGE = 4000

export const UsageEventInput = Type.Object(
  {
    id: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 128,
        pattern: EVENT_ID_PATTERN,
        description: 'Client idempotency key, unique per bot. Re-sending the same (botId, id) stores nothing new.',
      }),
    ),
    botId: Type.Optional(BotId),
    model: Model,
    provider: Provider,
    inputTokens: TokenCount('All prompt tokens, including cache reads and cache writes'),
    outputTokens: TokenCount('All generated tokens, including reasoning/thinking'),
    totalTokens: Type.Optional(TokenCount('inputTokens + outputTokens; computed when omitted, 400 when inconsistent', 2 * MAX_TOKENS)),
    cacheReadTokens: Type.Optional(TokenCount('Part of inputTokens read from the prompt cache')),
    cacheWriteTokens: Type.Optional(TokenCount('Part of inputTokens written to the prompt cache (all TTLs)')),
    cacheWrite1hTokens: Type.Optional(TokenCount('Part of cacheWriteTokens written with a 1-hour TTL (Anthropic)')),
    reasoningTokens: Type.Optional(TokenCount('Part of outputTokens spent on reasoning/thinking')),
    estimatedCost: Type.Optional(
      Type.Number({ minimum: 0, maximum: 1_000_000, description: 'Cost the client computed, USD. Kept for audit as reportedCost.' }),
    ),
    requestType: Type.Optional(RequestType),
    success: Type.Optional(Type.Boolean({ description: 'Default true' })),
    errorMessage: Type.Optional(Type.String({ maxLength: MAX_ERROR_MESSAGE })),
    latencyMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400_000, description: 'Duration of the model call' })),
    metadata: Type.Optional(
      Type.Object({}, { additionalProperties: true, description: `Free-form JSON object, at most ${MAX_METADATA_BYTES} bytes` }),
    ),
    createdAt: Type.Optional(
      Type.String({ format: 'date-time', description: 'Time of the call (ISO 8601 with zone); default now; at most a few minutes in the future' }),
    ),
  },
  { additionalProperties: false},
)
export type UsageEventInput = Static<typeof UsageEventInput>


export const BatchBody = Type.Object(
  {
    events: Type.Array(Type.Unknown(), {
      minItems: 1,
      description: 'Usage events (see UsageEventInput); each is validated on its own',
    }),
  },
  { additionalProperties: false },
)

export const BatchItemResult = Type.Object({
  index: Type.Integer(),
  status: Type.Union([Type.Literal('created'), Type.Literal('duplicate'), Type.Literal('invalid')]),
  id: Type.Optional(Type.String()),
  event: Type.Optional(UsageEvent),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
})
export type BatchItemResult = Static<typeof BatchItemResult>

export const BatchResponse = Type.Object({
  results: Type.Array(BatchItemResult),
  created: Type.Integer(),
  duplicates: Type.Integer(),
  invalid: Type.Integer(),
})

