import { TimeZoneName } from '../lib/time-zone.js'
import { Type, type Static } from 'typebox'
import { BotId, MetadataKey, Model, Provider } from '../lib/schemas.js'
import { PERIODS } from './periods.js'

/**
 * Wire schemas of budgets and alerts. Amounts are JSON numbers in USD at the edge; inside they
 * are exact (pico-USD bigint, numeric in SQL).
 */

export const DEFAULT_THRESHOLDS = [50, 80, 100]
const Instant = (description?: string) => Type.String({ format: 'date-time', description })
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T, description?: string) =>
  Type.Union([t, Type.Null()], description === undefined ? {} : { description })

const Usd = (description: string) => Type.Number({ description: `${description}, USD` })

export const BudgetScope = Type.Object(
  {
    botId: Type.Optional(BotId),
    provider: Type.Optional(Provider),
    model: Type.Optional(Model),
  },
  {
    additionalProperties: false,
    description:
      'What the budget counts: {} for all usage, or any combination of botId, provider and model (e.g. one bot, one model, ' +
      'or one bot on one model). Values match events exactly as reported.',
  },
)

const WebhookChannelInput = Type.Object(
  {
    url: Type.String({ format: 'uri', maxLength: 2000, description: 'http(s) URL that receives a signed JSON POST' }),
    secret: Type.Optional(
      Type.String({
        minLength: 16,
        maxLength: 256,
        description: 'HMAC-SHA256 key for X-Signature. Omitted: one is generated and returned once, in this response only.',
      }),
    ),
  },
  { additionalProperties: false },
)

const EmailChannelInput = Type.Object(
  { to: Type.Array(Type.String({ format: 'email', maxLength: 254 }), { minItems: 1, maxItems: 20, description: 'Recipients' }) },
  { additionalProperties: false },
)

const TelegramChannelInput = Type.Object(
  {
    chatId: Type.Union([Type.Integer({ minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER }), Type.String({ minLength: 1, maxLength: 64 })], {
      description: 'Chat id (e.g. -1001234567890) or @channelusername',
    }),
    botToken: Type.Optional(
      Nullable(
        Type.String({ minLength: 1, maxLength: 200 }),
        'Bot API token of the bot that sends (e.g. one of your bots). Omitted on create or null: ALERT_TELEGRAM_BOT_TOKEN. Never returned.',
      ),
    ),
  },
  { additionalProperties: false },
)

const SlackChannelInput = Type.Object(
  {
    webhookUrl: Type.String({
      format: 'uri',
      maxLength: 2000,
      description: 'Slack incoming-webhook URL (https://hooks.slack.com/services/...). A secret: never returned, never logged.',
    }),
  },
  { additionalProperties: false },
)

export const ChannelsInput = Type.Object(
  {
    webhook: Type.Optional(WebhookChannelInput),
    email: Type.Optional(EmailChannelInput),
    telegram: Type.Optional(TelegramChannelInput),
    slack: Type.Optional(SlackChannelInput),
  },
  { additionalProperties: false, description: 'Where alerts go; each channel is delivered and retried on its own' },
)

const Thresholds = Type.Array(Type.Integer({ minimum: 1, maximum: 1000 }), {
  maxItems: 10,
  description: 'Percent of the limit at which to alert, each once per period (default [50, 80, 100])',
})
const Limit = Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000_000, description: 'Spending limit per period, USD' })
const Period = Type.Enum(PERIODS, { description: 'Calendar day, ISO week (from Monday) or calendar month, in timeZone' })
const TimeZone = TimeZoneName({ description: 'IANA time zone of the periods, e.g. Europe/Berlin (default BUDGET_TIMEZONE)' })
const Name = Type.String({ minLength: 1, maxLength: 200 })
const NotifyProjected = Type.Boolean({ description: 'Alert once per period when the current rate projects spend over the limit (default true)' })
const Enabled = Type.Boolean({ description: 'Disabled budgets are not evaluated (default true)' })
export const BUDGET_ACTIONS = ['alert', 'block'] as const
const Action = Type.Enum(BUDGET_ACTIONS, {
  description:
    'alert (default): alerts only. block: also a hard stop: GET /api/budgets/allowance answers allowed: false while the spend is at or over the limit ' +
    '(ingest still accepts every event: the calls happened)',
})
const PerUser = Type.Object(
  { key: MetadataKey },
  {
    additionalProperties: false,
    description:
      'The limit applies to each distinct value of metadata[key] (a string or integer) separately, e.g. {"key": "userId"}: ' +
      '"each user may spend limitUsd per period". Needs scope.botId.',
  },
)

export const CreateBudgetBody = Type.Object(
  {
    name: Type.Optional(Name),
    scope: Type.Optional(BudgetScope),
    period: Period,
    timeZone: Type.Optional(TimeZone),
    limitUsd: Limit,
    thresholds: Type.Optional(Thresholds),
    notifyProjected: Type.Optional(NotifyProjected),
    channels: Type.Optional(ChannelsInput),
    enabled: Type.Optional(Enabled),
    action: Type.Optional(Action),
    perUser: Type.Optional(PerUser),
  },
  { additionalProperties: false },
)
export type CreateBudgetBody = Static<typeof CreateBudgetBody>

export const UpdateBudgetBody = Type.Object(
  {
    name: Type.Optional(Name),
    scope: Type.Optional(BudgetScope),
    period: Type.Optional(Period),
    timeZone: Type.Optional(TimeZone),
    limitUsd: Type.Optional(Limit),
    thresholds: Type.Optional(Thresholds),
    notifyProjected: Type.Optional(NotifyProjected),
    channels: Type.Optional(
      Type.Object(
        {
          webhook: Type.Optional(Nullable(WebhookChannelInput)),
          email: Type.Optional(Nullable(EmailChannelInput)),
          telegram: Type.Optional(Nullable(TelegramChannelInput)),
          slack: Type.Optional(Nullable(SlackChannelInput)),
        },
        {
          additionalProperties: false,
          description:
            'Per channel: an object sets it, null removes it, omitted keeps it. A webhook keeps its secret unless a new one is given; ' +
            'a telegram channel keeps its bot token unless botToken is given (null: use ALERT_TELEGRAM_BOT_TOKEN).',
        },
      ),
    ),
    enabled: Type.Optional(Enabled),
    action: Type.Optional(Action),
    perUser: Type.Optional(Nullable(PerUser, 'An object makes the limit per user, null makes it apply to the whole scope again, omitted keeps it')),
  },
  { additionalProperties: false },
)
export type UpdateBudgetBody = Static<typeof UpdateBudgetBody>

/** Channels as every resource with channels shows them (budgets, spend alerts, report schedules). */
export const ChannelsInfo = Type.Object({
  webhook: Type.Optional(
    Type.Object({
      url: Type.String(),
      secret: Type.Optional(
        Type.String({ description: 'Only in the response that generated or set it; store it now. Never returned again.' }),
      ),
    }),
  ),
  email: Type.Optional(Type.Object({ to: Type.Array(Type.String()) })),
  telegram: Type.Optional(
    Type.Object({
      chatId: Type.String(),
      dedicatedBotToken: Type.Boolean({ description: 'true: the budget has its own bot token; false: ALERT_TELEGRAM_BOT_TOKEN' }),
    }),
  ),
  slack: Type.Optional(
    Type.Object({ configured: Type.Boolean({ description: 'Always true when present: the webhook URL is a secret and never returned' }) }),
  ),
})

export const BudgetInfo = Type.Object({
  id: Type.String(),
  name: Type.String(),
  scope: Type.Object({ botId: Nullable(Type.String()), provider: Nullable(Type.String()), model: Nullable(Type.String()) }),
  period: Type.Enum(PERIODS),
  timeZone: Type.String(),
  limitUsd: Usd('Limit per period'),
  thresholds: Type.Array(Type.Integer()),
  notifyProjected: Type.Boolean(),
  enabled: Type.Boolean(),
  channels: ChannelsInfo,
  createdAt: Instant(),
  updatedAt: Instant(),
  action: Type.Enum(BUDGET_ACTIONS),
  perUser: Nullable(Type.Object({ key: Type.String() }), 'Set: the limit applies to each value of metadata[key] separately'),
})
export type BudgetInfo = Static<typeof BudgetInfo>

export const BudgetIdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })

export const ThresholdStatus = Type.Object({
  percent: Type.Integer(),
  amountUsd: Usd('Spend at which it is crossed'),
  crossed: Type.Boolean(),
  alertedAt: Nullable(Instant(), 'When its alert fired this period (null: not yet, or not since the limit changed)'),
})

const UserStanding = Type.Object({
  userId: Type.String(),
  spentUsd: Usd('Spent this period'),
  remainingUsd: Usd('Limit minus spent (negative when over)'),
  percent: Type.Number({ description: 'Spent as percent of the limit' }),
  blocked: Type.Boolean(),
})

export const BudgetStatusQuery = Type.Object(
  { userId: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Per-user budgets: the status of this user (ignored by other budgets)' })) },
  { additionalProperties: false },
)

export const BudgetStatus = Type.Object({
  budgetId: Type.String(),
  name: Type.String(),
  period: Type.Enum(PERIODS),
  timeZone: Type.String(),
  periodStart: Instant('First instant of the current period'),
  periodEnd: Instant('First instant after it'),
  limitUsd: Usd('Limit'),
  spentUsd: Usd('Spent so far this period'),
  remainingUsd: Usd('Limit minus spent (negative when over)'),
  percent: Type.Number({ description: 'Spent as percent of the limit (2 decimals, rounded down)' }),
  projectedUsd: Nullable(Usd('Spend at period end at the rate so far (spent / elapsed x period length)')),
  projectedOverrun: Type.Boolean(),
  projectedAlertedAt: Nullable(Instant()),
  thresholds: Type.Array(ThresholdStatus),
  enabled: Type.Boolean(),
  evaluatedAt: Instant(),
  action: Type.Enum(BUDGET_ACTIONS),
  blocked: Type.Boolean({ description: 'action block and spent >= limit: the allowance answers allowed: false (for userId, on per-user budgets)' }),
  userId: Nullable(
    Type.String(),
    'Per-user budgets: whose spend the figures above are: the userId asked for, else the user who spent most this period (null: nobody spent yet). ' +
      'Other budgets: null',
  ),
  users: Type.Optional(
    Type.Array(UserStanding, {
      description: 'Per-user budgets: the users who spent most this period, highest first (at most 100)',
    }),
  ),
})
export type BudgetStatus = Static<typeof BudgetStatus>

export const DeliveryInfo = Type.Object({
  channel: Type.Enum(['webhook', 'email', 'telegram', 'slack']),
  status: Type.Enum(['pending', 'delivered', 'failed', 'cancelled']),
  attempts: Type.Integer(),
  lastError: Nullable(Type.String()),
  lastAttemptAt: Nullable(Instant()),
  nextAttemptAt: Nullable(Instant(), 'When a pending delivery is tried next'),
  deliveredAt: Nullable(Instant()),
})

export const AlertInfo = Type.Object({
  id: Type.String(),
  budgetId: Type.String(),
  budgetName: Nullable(Type.String()),
  kind: Type.Enum(['threshold', 'projected'], { description: 'threshold: spend reached threshold% of the limit; projected: the rate projects an overrun' }),
  threshold: Type.Integer({ description: 'Percent of the limit (100 for projected)' }),
  periodStart: Instant(),
  periodEnd: Instant(),
  limitUsd: Usd('Limit when it fired'),
  spentUsd: Usd('Spent when it fired'),
  projectedUsd: Nullable(Usd('Projected spend at period end when it fired')),
  userId: Nullable(Type.String(), 'Per-user budgets: the user whose spend crossed the threshold'),
  supersededBy: Nullable(
    Type.String(),
    'The alert recorded in the same evaluation and delivered instead of this one: the highest threshold crossed, whose message also carries the projection',
  ),
  createdAt: Instant(),
  deliveries: Type.Array(DeliveryInfo),
})

export const AlertsQuery = Type.Object(
  {
    budgetId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    since: Type.Optional(Instant('Only alerts created at or after this instant')),
    before: Type.Optional(Instant('Only alerts created before this instant (pass the last createdAt to page)')),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  },
  { additionalProperties: false },
)

export const AlertsResponse = Type.Object({ alerts: Type.Array(AlertInfo) })
