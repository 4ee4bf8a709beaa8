import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { Database } from '../db/connect.js'
import type { StoredBudgetChannels } from '../db/schema.js'
import { ErrorResponse, Errors } from '../errors.js'
import { uuidv7 } from '../lib/uuidv7.js'
import { usdToNumber } from '../lib/money.js'
import { percentOf } from './channels.js'
import { defineBudget, redefineBudget, type DefinitionContext } from './definition.js'
import type { BudgetMonitor, BudgetStanding } from './evaluator.js'
import { webhookDestinationProblem } from './outbound.js'
import { listAlerts, type StoredAlert } from './alert-store.js'
import { deleteBudget, findBudget, insertBudget, listBudgets, updateBudget, type Budget } from './budget-store.js'
import {
  AlertsQuery,
  AlertsResponse,
  BudgetIdParams,
  BudgetInfo,
  BudgetStatus,
  BudgetStatusQuery,
  CreateBudgetBody,
  UpdateBudgetBody,
  type BudgetInfo as BudgetInfoType,
} from './schemas.js'

export interface BudgetRoutesOptions {
  database: Database
  monitor: BudgetMonitor
  definitions: DefinitionContext
}

const authErrors = { 401: ErrorResponse, 403: ErrorResponse, 429: ErrorResponse }

/** Channels as the API shows them (budgets, spend alerts, report schedules): secrets never, except a webhook secret in the response that set it. */
export function toChannelsInfo(stored: StoredBudgetChannels, revealedSecret: string | null = null): BudgetInfoType['channels'] {
  const channels: BudgetInfoType['channels'] = {}
  if (stored.webhook) {
    channels.webhook = revealedSecret === null ? { url: stored.webhook.url } : { url: stored.webhook.url, secret: revealedSecret }
  }
  if (stored.email) channels.email = { to: stored.email.to }
  if (stored.telegram) channels.telegram = { chatId: stored.telegram.chatId, dedicatedBotToken: stored.telegram.botToken !== null }
  if (stored.slack) channels.slack = { configured: true }
  return channels
}

/** The budget as the API shows it: secrets never, except a webhook secret in the response that set it. */
export function toBudgetInfo(b: Budget, revealedSecret: string | null = null): BudgetInfoType {
  const channels = toChannelsInfo(b.channels, revealedSecret)
  return {
    id: b.id,
    name: b.name,
    scope: b.scope,
    period: b.period,
    timeZone: b.timeZone,
    limitUsd: usdToNumber(b.limit),
    thresholds: b.thresholds,
    notifyProjected: b.notifyProjected,
    enabled: b.enabled,
    channels,
    createdAt: b.createdAt.toISOString(),
    updatedAt: b.updatedAt.toISOString(),
    action: b.action,
    perUser: b.perUser,
  }
}

function toAlertInfo(a: StoredAlert) {
  return {
    id: a.id,
    budgetId: a.budgetId,
    budgetName: a.budgetName,
    kind: a.kind,
    threshold: a.threshold,
    periodStart: a.window.start.toISOString(),
    periodEnd: a.window.end.toISOString(),
    limitUsd: usdToNumber(a.limit),
    spentUsd: usdToNumber(a.spent),
    projectedUsd: a.projected === null ? null : usdToNumber(a.projected),
    userId: a.userId,
    supersededBy: a.supersededBy,
    createdAt: a.createdAt.toISOString(),
    deliveries: a.deliveries.map((d) => ({
      channel: d.channel,
      status: d.status,
      attempts: d.attempts,
      lastError: d.lastError,
      lastAttemptAt: d.lastAttemptAt?.toISOString() ?? null,
      nextAttemptAt: d.nextAttemptAt?.toISOString() ?? null,
      deliveredAt: d.deliveredAt?.toISOString() ?? null,
    })),
  }
}

/** What the status adds for hard and per-user budgets. */
function userFigures(budget: Budget, standing: BudgetStanding) {
  const blocks = (spent: bigint) => budget.action === 'block' && spent >= budget.limit
  const figures = { action: budget.action, blocked: blocks(standing.spent) && (budget.perUser === null || standing.userId !== null), userId: standing.userId }
  if (standing.users === undefined) return figures
  return {
    ...figures,
    users: standing.users.map((u) => ({
      userId: u.userId,
      spentUsd: usdToNumber(u.spent),
      remainingUsd: usdToNumber(budget.limit - u.spent),
      percent: percentOf(u.spent, budget.limit),
      blocked: blocks(u.spent),
    })),
  }
}

async function budgetOr404(database: Database, id: string): Promise<Budget> {
  const budget = await findBudget(database, id)
  if (!budget) throw new Errors.notFound(`No budget with id '${id}'`)
  return budget
}

/** How long creating a budget waits for DNS to check a webhook's host (unresolved names are checked at delivery). */
const WEBHOOK_LOOKUP_TIMEOUT_MS = 2000

/**
 * Any channel that posts to a URL of the request's (a webhook, or a channel added later with a
 * `url`) is a 400 when that URL is private, loopback or link-local; delivery refuses it again.
 */
export async function checkChannelDestinations(channels: object | undefined, definitions: DefinitionContext): Promise<void> {
  for (const [name, channel] of Object.entries(channels ?? {})) {
    const url: unknown = channel !== null && typeof channel === 'object' ? (channel as { url?: unknown }).url : undefined
    if (typeof url !== 'string') continue
    const problem = await webhookDestinationProblem(url, { allowPrivate: definitions.webhookAllowPrivate, timeoutMs: WEBHOOK_LOOKUP_TIMEOUT_MS })
    if (problem !== null) throw new Errors.validation(`body.channels.${name}.url is refused: ${problem}`)
  }
}

export const budgetRoutes: FastifyPluginAsyncTypebox<BudgetRoutesOptions> = async (app, opts) => {
  const { database, monitor, definitions } = opts

  const checkWebhookDestination = (channels: object | undefined) => checkChannelDestinations(channels, definitions)

  app.post(
    '/api/budgets',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'Create a budget with alert thresholds and channels',
        description:
          'Example: {"scope": {"botId": "bot_x"}, "period": "month", "limitUsd": 50, "thresholds": [80], ' +
          '"channels": {"email": {"to": ["ops@example.com"]}, "webhook": {"url": "https://example.com/hooks/budget"}}}. ' +
          'Each threshold alerts once per calendar period. A generated webhook secret is in this response only. ' +
          'A hard per-user cap: {"scope": {"botId": "bot_x"}, "period": "day", "limitUsd": 0.5, "action": "block", "perUser": {"key": "userId"}} ' +
          '(see GET /api/budgets/allowance).',
        body: CreateBudgetBody,
        response: { 201: BudgetInfo, 400: ErrorResponse, ...authErrors },
      },
    },
    async (request, reply) => {
      await checkWebhookDestination(request.body.channels)
      const { budget, revealedSecret } = defineBudget(uuidv7(), request.body, definitions, new Date())
      await insertBudget(database, budget)
      await monitor.budgetChanged(budget.id)
      return reply.code(201).send(toBudgetInfo(budget, revealedSecret))
    },
  )

  app.get(
    '/api/budgets',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'All budgets',
        querystring: Type.Object({ botId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })) }, { additionalProperties: false }),
        response: { 200: Type.Object({ budgets: Type.Array(BudgetInfo) }), 400: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const all = await listBudgets(database)
      const { botId } = request.query
      return { budgets: all.filter((b) => botId === undefined || b.scope.botId === botId).map((b) => toBudgetInfo(b)) }
    },
  )

  app.get(
    '/api/budgets/:id',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'One budget',
        params: BudgetIdParams,
        response: { 200: BudgetInfo, 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => toBudgetInfo(await budgetOr404(database, request.params.id)),
  )

  app.patch(
    '/api/budgets/:id',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'Change a budget',
        description:
          'Given fields replace the stored ones. Thresholds already alerted this period stay alerted unless the limit changes: ' +
          'a new limit re-arms every threshold for it.',
        params: BudgetIdParams,
        body: UpdateBudgetBody,
        response: { 200: BudgetInfo, 400: ErrorResponse, 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const existing = await budgetOr404(database, request.params.id)
      await checkWebhookDestination(request.body.channels)
      const { budget, revealedSecret } = redefineBudget(existing, request.body, definitions, new Date())
      if (!(await updateBudget(database, budget))) throw new Errors.notFound(`No budget with id '${request.params.id}'`)
      await monitor.budgetChanged(budget.id)
      return toBudgetInfo(budget, revealedSecret)
    },
  )

  app.delete(
    '/api/budgets/:id',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'Delete a budget with its alert history',
        params: BudgetIdParams,
        response: { 200: Type.Object({ deleted: Type.String() }), 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      if (!(await deleteBudget(database, request.params.id))) throw new Errors.notFound(`No budget with id '${request.params.id}'`)
      await monitor.budgetChanged(request.params.id)
      return { deleted: request.params.id }
    },
  )

  app.get(
    '/api/budgets/:id/status',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'Spend this period, percent of the limit, projection and thresholds crossed',
        description: 'Per-user budgets: the figures are those of userId, else of the user who spent most; users lists the highest spenders.',
        params: BudgetIdParams,
        querystring: BudgetStatusQuery,
        response: { 200: BudgetStatus, 400: ErrorResponse, 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const budget = await budgetOr404(database, request.params.id)
      const standing = await monitor.standing(budget, request.query.userId)
      const alerts = (await monitor.alertsOf(budget, standing.window, standing.userId)).filter((a) => a.limit === budget.limit)
      const alertedAt = (kind: string, threshold: number) =>
        alerts.find((a) => a.kind === kind && a.threshold === threshold)?.createdAt.toISOString() ?? null
      return {
        budgetId: budget.id,
        name: budget.name,
        period: budget.period,
        timeZone: budget.timeZone,
        periodStart: standing.window.start.toISOString(),
        periodEnd: standing.window.end.toISOString(),
        limitUsd: usdToNumber(budget.limit),
        spentUsd: usdToNumber(standing.spent),
        remainingUsd: usdToNumber(budget.limit - standing.spent),
        percent: percentOf(standing.spent, budget.limit),
        projectedUsd: standing.projected === null ? null : usdToNumber(standing.projected),
        projectedOverrun: standing.projected !== null && standing.projected > budget.limit,
        projectedAlertedAt: alertedAt('projected', 100),
        thresholds: budget.thresholds.map((t) => ({
          percent: t,
          amountUsd: usdToNumber((budget.limit * BigInt(t)) / 100n),
          crossed: standing.spent * 100n >= budget.limit * BigInt(t),
          alertedAt: alertedAt('threshold', t),
        })),
        enabled: budget.enabled,
        evaluatedAt: standing.evaluatedAt.toISOString(),
        ...userFigures(budget, standing),
      }
    },
  )

  app.get(
    '/api/alerts',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'Alert history, newest first, with delivery status per channel',
        querystring: AlertsQuery,
        response: { 200: AlertsResponse, 400: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const q = request.query
      const alerts = await listAlerts(database, {
        budgetId: q.budgetId,
        since: q.since === undefined ? undefined : new Date(q.since),
        before: q.before === undefined ? undefined : new Date(q.before),
        limit: q.limit ?? 50,
      })
      return { alerts: alerts.map(toAlertInfo) }
    },
  )
}
