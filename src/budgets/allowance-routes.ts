import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type Static } from 'typebox'
import { readableBots } from '../auth/plugin.js'
import { ErrorResponse, Errors } from '../errors.js'
import { BOT_ID_PATTERN } from '../lib/schemas.js'
import { usdToNumber } from '../lib/money.js'
import type { AllowanceAnswer, AllowanceState } from './allowance-state.js'

export const AllowanceQuery = Type.Object(
  {
    botId: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 128,
        pattern: BOT_ID_PATTERN,
        description: 'The bot that is about to call a model. Default: the bot the key is bound to (required for unbound keys)',
      }),
    ),
    userId: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        description: 'The end user, as the events carry it in metadata[perUser.key] (a number as its text: 42 is "42"). Omitted: per-user budgets do not apply',
      }),
    ),
    provider: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'The provider about to be called; budgets scoped to a provider apply only when it is named' }),
    ),
    model: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'The model about to be called; budgets scoped to a model apply only when it is named' })),
  },
  { additionalProperties: false },
)

const Instant = (description: string) => Type.String({ format: 'date-time', description })

const BlockingBudget = Type.Object({
  budgetId: Type.String(),
  name: Type.String(),
  limitUsd: Type.Optional(Type.Number({ description: 'Limit per period, USD (omitted for a bot key when the budget also counts other bots)' })),
  spentUsd: Type.Optional(Type.Number({ description: 'Spent this period, USD (omitted for a bot key when the budget also counts other bots)' })),
  resetsAt: Instant('When its period ends and it allows again'),
  userId: Type.Optional(Type.String({ description: 'Per-user budgets: the user it blocks' })),
})

export const AllowanceResponse = Type.Object({
  allowed: Type.Boolean({ description: 'false: a block budget that applies is spent; do not call the model' }),
  remainingUsd: Type.Union([Type.Number(), Type.Null()], {
    description: 'The least any applicable block budget has left this period, USD (<= 0 when blocked); null when no block budget applies',
  }),
  resetsAt: Type.Union([Instant(''), Type.Null()], {
    description: 'Blocked: when every blocking budget has reset (allowed again). Allowed: when the budget with the least remaining resets. null when no block budget applies',
  }),
  blockedBy: Type.Array(BlockingBudget, { description: 'The block budgets that are spent; empty when allowed' }),
})
export type AllowanceResponse = Static<typeof AllowanceResponse>

export function toAllowanceResponse(a: AllowanceAnswer, boundToBot: boolean): AllowanceResponse {
  return {
    allowed: a.allowed,
    remainingUsd: a.remaining === null ? null : usdToNumber(a.remaining),
    resetsAt: a.resetsAt === null ? null : a.resetsAt.toISOString(),
    blockedBy: a.blockedBy.map((s) => {
      const figures = s.shared && boundToBot ? {} : { limitUsd: usdToNumber(s.limit), spentUsd: usdToNumber(s.spent) }
      return { budgetId: s.budgetId, name: s.name, ...figures, resetsAt: s.resetsAt.toISOString(), ...(s.userId === null ? {} : { userId: s.userId }) }
    }),
  }
}

export const allowanceRoutes: FastifyPluginAsyncTypebox<{ allowance: AllowanceState }> = async (app, { allowance }) => {
  app.get(
    '/api/budgets/allowance',
    {
      config: { scope: ['ingest', 'read'] },
      schema: {
        tags: ['budgets'],
        summary: 'May this bot (and this user) call a model now? The hard budgets, answered from memory',
        description:
          'Asks the budgets with action "block" that apply to the bot (its own, and those of all usage, of a provider or model when named), ' +
          'and with userId the per-user ones for that user. allowed is false while any of them is spent. Answered from in-memory state kept current ' +
          'as usage is committed (other instances: within BUDGET_ALLOWANCE_SYNC_MS). A key bound to a bot asks for its own bot only.',
        querystring: AllowanceQuery,
        response: { 200: AllowanceResponse, 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 429: ErrorResponse },
      },
    },
    async (request) => {
      const q = request.query
      const bots = readableBots(request, q.botId)
      const botId = bots?.[0]
      if (botId === undefined) throw new Errors.validation('querystring.botId is required for a key bound to no bot')
      const boundToBot = request.principal?.botId != null
      return toAllowanceResponse(allowance.allowance({ botId, userId: q.userId, provider: q.provider, model: q.model, boundToBot }), boundToBot)
    },
  )
}
