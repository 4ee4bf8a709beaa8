import { Type, type Static } from 'typebox'

/**
 * A stored usage event as every API returns it: the write side's answers (POST /api/usage,
 * /batch), the read side's event lists and exports, and the event store's row mapping all use it.
 */

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()])

export const UsageEvent = Type.Object(
  {
    id: Type.String(),
    botId: Type.String(),
    model: Type.String(),
    provider: Type.String(),
    requestType: Type.String(),
    success: Type.Boolean(),
    errorMessage: Nullable(Type.String()),
    inputTokens: Type.Integer(),
    outputTokens: Type.Integer(),
    totalTokens: Type.Integer(),
    cacheReadTokens: Type.Integer(),
    cacheWriteTokens: Type.Integer(),
    cacheWrite1hTokens: Type.Integer(),
    reasoningTokens: Type.Integer(),
    latencyMs: Nullable(Type.Integer()),
    estimatedCost: Nullable(Type.Number({ description: 'Authoritative cost in USD (server price, else the reported cost); null when unpriced' })),
    reportedCost: Nullable(Type.Number({ description: 'estimatedCost as the client sent it' })),
    priced: Type.Boolean({ description: 'True when the service priced the event from its catalog' }),
    priceSource: Nullable(Type.String({ description: 'Price used: dataset version and model, override id, or "reported"' })),
    metadata: Nullable(Type.Object({}, { additionalProperties: true })),
    createdAt: Type.String({ format: 'date-time' }),
    receivedAt: Type.String({ format: 'date-time' }),
  },
  {},
)
export type UsageEvent = Static<typeof UsageEvent>
