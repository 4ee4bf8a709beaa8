import { Type, type Static } from 'typebox'
import { BotId, Model } from '../lib/schemas.js'
import { ChannelsInfo, ChannelsInput, DeliveryInfo } from './schemas.js'

/** Wire schemas of unusual-spend alerts (docs/budgets.md, "Unusual spend"). Amounts are USD numbers. */

export const SPEND_ALERT_DEFAULTS = { multiple: 3, minSpendUsd: 1, baselineDays: 7, per: 'bot' } as const
const SERIES = ['bot', 'model'] as const
const Instant = (description?: string) => Type.String({ format: 'date-time', description })
const Usd = (description: string) => Type.Number({ description: `${description}, USD` })
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T, description?: string) =>
  Type.Union([t, Type.Null()], description === undefined ? {} : { description })

export const SpendAlertScope = Type.Object(
  { botId: Type.Optional(BotId), model: Type.Optional(Model) },
  { additionalProperties: false, description: 'Which usage is watched: {} for every bot (each on its own), or one bot and/or one model' },
)

export const CreateSpendAlertBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    scope: Type.Optional(SpendAlertScope),
    per: Type.Optional(
      Type.Enum(SERIES, { description: "'bot' (default): each bot's hourly spend is watched; 'model': each bot's spend on each model separately" }),
    ),
    multiple: Type.Optional(
      Type.Number({
        minimum: 1.01,
        maximum: 1000,
        description: 'Alert when an hour spends more than this many times its baseline (default 3); at most 2 decimals',
      }),
    ),
    minSpendUsd: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 1_000_000_000,
        description: 'And at least this much in the hour, USD (default 1): a bot that spends cents never pages anyone',
      }),
    ),
    baselineDays: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 28, description: 'The baseline is the median of the same UTC hour on this many previous days (default 7)' }),
    ),
    channels: Type.Optional(ChannelsInput),
    enabled: Type.Optional(Type.Boolean({ description: 'Disabled rules are not evaluated (default true)' })),
  },
  { additionalProperties: false },
)
export type CreateSpendAlertBody = Static<typeof CreateSpendAlertBody>

const { name, multiple, minSpendUsd, baselineDays, enabled } = CreateSpendAlertBody.properties
export const UpdateSpendAlertBody = Type.Object(
  { name, multiple, minSpendUsd, baselineDays, enabled },
  { additionalProperties: false, description: 'Given fields replace the stored ones. Scope, per and channels are fixed: create another rule to change them.' },
)
export type UpdateSpendAlertBody = Static<typeof UpdateSpendAlertBody>

export const SpendAlertInfo = Type.Object({
  id: Type.String(),
  name: Type.String(),
  scope: Type.Object({ botId: Nullable(Type.String()), model: Nullable(Type.String()) }),
  per: Type.Enum(SERIES),
  multiple: Type.Number(),
  minSpendUsd: Usd('Least spend of an hour that may alert'),
  baselineDays: Type.Integer(),
  enabled: Type.Boolean(),
  channels: ChannelsInfo,
  createdAt: Instant(),
  updatedAt: Instant(),
})
export type SpendAlertInfo = Static<typeof SpendAlertInfo>

export const SpendAlertIdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })

const SeriesFields = {
  botId: Type.String(),
  model: Nullable(Type.String(), "The model, for a rule with per 'model'; null for per 'bot'"),
  hourStart: Instant('First instant of the UTC hour'),
  spentUsd: Usd('Spent in the hour (so far, when it is in progress)'),
  baselineUsd: Usd('Median spend of the same UTC hour on the previous baselineDays days (a day without spend counts as 0)'),
  thresholdUsd: Usd('What the hour must exceed: multiple x baseline, and at least minSpendUsd'),
}

export const SpikeInfo = Type.Object({
  id: Type.String({ description: 'Also the X-Alert-Id and the webhook body id of its delivery' }),
  ruleId: Type.String(),
  ...SeriesFields,
  partial: Type.Boolean({ description: 'The hour was still in progress when it alerted' }),
  createdAt: Instant(),
  deliveries: Type.Array(DeliveryInfo),
})

export const SpikesQuery = Type.Object(
  { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })) },
  { additionalProperties: false },
)
export const SpikesResponse = Type.Object({ spikes: Type.Array(SpikeInfo) })

export const SpendAlertStatus = Type.Object({
  ruleId: Type.String(),
  evaluatedAt: Instant(),
  series: Type.Array(
    Type.Object({
      ...SeriesFields,
      unusual: Type.Boolean({ description: 'spentUsd exceeds thresholdUsd now' }),
    }),
    { description: 'The current hour of every series that spent in it or in the hour before, highest spend first (at most 100)' },
  ),
})
