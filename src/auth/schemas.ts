import { Type, type Static } from 'typebox'
import { BotId } from '../lib/schemas.js'

export const SCOPES = ['ingest', 'read', 'admin', 'metrics'] as const
export type Scope = (typeof SCOPES)[number]

export const ApiKeyInfo = Type.Object({
  id: Type.String(),
  name: Type.String(),
  prefix: Type.String({ description: 'First characters of the key, to tell keys apart' }),
  scopes: Type.Array(Type.Enum(SCOPES)),
  botId: Type.Union([Type.String(), Type.Null()], { description: 'Bot the key is bound to; null for all bots' }),
  createdAt: Type.String({ format: 'date-time' }),
  revokedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'Updated about once a minute' }),
})
export type ApiKeyInfo = Static<typeof ApiKeyInfo>

export const CreateKeyBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    scopes: Type.Array(Type.Enum(SCOPES), { minItems: 1, maxItems: SCOPES.length, uniqueItems: true }),
    botId: Type.Optional(BotId),
  },
  { additionalProperties: false },
)
export type CreateKeyBody = Static<typeof CreateKeyBody>

export const CreatedKey = Type.Object({
  ...ApiKeyInfo.properties,
  key: Type.String({ description: 'The secret. Shown only in this response; store it now.' }),
})

export const KeyIdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })

export const KeySelf = Type.Object({
  id: Type.Union([Type.String(), Type.Null()], { description: 'Key id; null for ADMIN_API_KEY and AUTH_DISABLED' }),
  scopes: Type.Array(Type.Enum(SCOPES), { description: 'Effective scopes (admin implies read and ingest)' }),
  botId: Type.Union([Type.String(), Type.Null()], { description: 'The one bot this key may read and write; null for all bots' }),
})
