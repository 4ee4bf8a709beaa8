import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { Database } from '../db/connect.js'
import { ErrorResponse, Errors } from '../errors.js'
import { decimalFromNumber, parseDecimal, usdToNumber } from '../lib/money.js'
import { uuidv7 } from '../lib/uuidv7.js'
import { checkHour, HOUR_MS, seriesSpend, type SpendWatch } from './anomaly.js'
import {
  CreateSpendAlertBody,
  SPEND_ALERT_DEFAULTS,
  SpendAlertIdParams,
  SpendAlertInfo,
  SpendAlertStatus,
  SpikesQuery,
  SpikesResponse,
  UpdateSpendAlertBody,
  type SpendAlertInfo as SpendAlertInfoType,
} from './anomaly-schemas.js'
import {
  deleteSpendAlertRule,
  findSpendAlertRule,
  formatHundredths,
  hundredthsOf,
  insertSpendAlertRule,
  listSpendAlertRules,
  listSpikes,
  updateSpendAlertRule,
  type SpendAlertRule,
} from './anomaly-store.js'
import { defineChannels, limitFrom, type DefinitionContext } from './definition.js'
import { deliveriesOf } from './delivery-store.js'
import { checkChannelDestinations, toChannelsInfo } from './routes.js'

export interface SpendAlertRoutesOptions {
  database: Database
  watch: SpendWatch
  definitions: DefinitionContext
}

const authErrors = { 401: ErrorResponse, 403: ErrorResponse, 429: ErrorResponse }

function toInfo(r: SpendAlertRule, revealedSecret: string | null = null): SpendAlertInfoType {
  return {
    id: r.id,
    name: r.name,
    scope: r.scope,
    per: r.per,
    multiple: Number(formatHundredths(r.multipleHundredths)),
    minSpendUsd: usdToNumber(r.minSpend),
    baselineDays: r.baselineDays,
    enabled: r.enabled,
    channels: toChannelsInfo(r.channels, revealedSecret),
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  }
}

function multipleFrom(value: number): bigint {
  const decimal = decimalFromNumber(value)
  if (parseDecimal(decimal).scale > 2) throw new Errors.validation('body.multiple has more than 2 decimal places')
  return hundredthsOf(decimal)
}

async function ruleOr404(database: Database, id: string): Promise<SpendAlertRule> {
  const rule = await findSpendAlertRule(database, id)
  if (!rule) throw new Errors.notFound(`No spend alert with id '${id}'`)
  return rule
}

const describe = (b: CreateSpendAlertBody) =>
  `Unusual spend of ${b.scope?.botId === undefined ? 'every bot' : `bot ${b.scope.botId}`}${b.scope?.model === undefined ? '' : ` on ${b.scope.model}`}` +
  `${(b.per ?? SPEND_ALERT_DEFAULTS.per) === 'model' ? ', per model' : ''}`

/** The HTTP surface of unusual-spend alerts (admin, like budgets). */
export const spendAlertRoutes: FastifyPluginAsyncTypebox<SpendAlertRoutesOptions> = async (app, opts) => {
  const { database, watch, definitions } = opts

  app.post(
    '/api/spend-alerts',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'Alert when an hour spends far more than usual',
        description:
          'Per bot (or per bot and model), an hour alerts once when it spends more than `multiple` times the median of the same UTC hour ' +
          'on the previous `baselineDays` days, and at least `minSpendUsd`. The hour in progress alerts as soon as its spend so far does; ' +
          'a spike lasting several hours alerts once. Channels as for budgets; a generated webhook secret is in this response only.',
        body: CreateSpendAlertBody,
        response: { 201: SpendAlertInfo, 400: ErrorResponse, ...authErrors },
      },
    },
    async (request, reply) => {
      const b = request.body
      await checkChannelDestinations(b.channels, definitions)
      const { channels, revealedSecret } = defineChannels(b.channels, definitions)
      const now = watch.clock()
      const rule: SpendAlertRule = {
        id: uuidv7(),
        name: b.name ?? describe(b),
        scope: { botId: b.scope?.botId ?? null, model: b.scope?.model ?? null },
        per: b.per ?? SPEND_ALERT_DEFAULTS.per,
        multipleHundredths: multipleFrom(b.multiple ?? SPEND_ALERT_DEFAULTS.multiple),
        minSpend: limitFrom(b.minSpendUsd ?? SPEND_ALERT_DEFAULTS.minSpendUsd, 'body.minSpendUsd'),
        baselineDays: b.baselineDays ?? SPEND_ALERT_DEFAULTS.baselineDays,
        channels,
        enabled: b.enabled ?? true,
        createdAt: now,
        updatedAt: now,
      }
      await insertSpendAlertRule(database, rule)
      watch.changed()
      return reply.code(201).send(toInfo(rule, revealedSecret))
    },
  )

  app.get(
    '/api/spend-alerts',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'All unusual-spend alert rules',
        response: { 200: Type.Object({ spendAlerts: Type.Array(SpendAlertInfo) }), ...authErrors },
      },
    },
    async () => ({ spendAlerts: (await listSpendAlertRules(database)).map((r) => toInfo(r)) }),
  )

  app.get(
    '/api/spend-alerts/:id',
    {
      config: { scope: 'admin' },
      schema: { tags: ['budgets'], summary: 'One unusual-spend alert rule', params: SpendAlertIdParams, response: { 200: SpendAlertInfo, 404: ErrorResponse, ...authErrors } },
    },
    async (request) => toInfo(await ruleOr404(database, request.params.id)),
  )

  app.patch(
    '/api/spend-alerts/:id',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'Change a rule\'s name, method or enabled state',
        description: 'Spikes already alerted stay alerted: an hour never alerts twice for one rule.',
        params: SpendAlertIdParams,
        body: UpdateSpendAlertBody,
        response: { 200: SpendAlertInfo, 400: ErrorResponse, 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const existing = await ruleOr404(database, request.params.id)
      const b = request.body
      const rule: SpendAlertRule = {
        ...existing,
        name: b.name ?? existing.name,
        multipleHundredths: b.multiple === undefined ? existing.multipleHundredths : multipleFrom(b.multiple),
        minSpend: b.minSpendUsd === undefined ? existing.minSpend : limitFrom(b.minSpendUsd, 'body.minSpendUsd'),
        baselineDays: b.baselineDays ?? existing.baselineDays,
        enabled: b.enabled ?? existing.enabled,
        updatedAt: watch.clock(),
      }
      if (!(await updateSpendAlertRule(database, rule))) throw new Errors.notFound(`No spend alert with id '${rule.id}'`)
      watch.changed()
      return toInfo(rule)
    },
  )

  app.delete(
    '/api/spend-alerts/:id',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'Delete an unusual-spend alert rule with its spikes',
        params: SpendAlertIdParams,
        response: { 200: Type.Object({ deleted: Type.String() }), 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      if (!(await deleteSpendAlertRule(database, request.params.id))) throw new Errors.notFound(`No spend alert with id '${request.params.id}'`)
      watch.changed()
      return { deleted: request.params.id }
    },
  )

  app.get(
    '/api/spend-alerts/:id/status',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'The current hour of each watched series against its baseline and threshold',
        params: SpendAlertIdParams,
        response: { 200: SpendAlertStatus, 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const rule = await ruleOr404(database, request.params.id)
      const now = watch.clock()
      const currentHour = Math.floor(now.getTime() / HOUR_MS) * HOUR_MS
      const series = (await seriesSpend(database, [rule], currentHour))
        .map((s) => ({ s, check: checkHour(s.byHour, currentHour, rule) }))
        .sort((a, b) => (a.check.spent !== b.check.spent ? (a.check.spent > b.check.spent ? -1 : 1) : `${a.s.botId}\u0000${a.s.model}`.localeCompare(`${b.s.botId}\u0000${b.s.model}`)))
        .slice(0, 100)
      return {
        ruleId: rule.id,
        evaluatedAt: now.toISOString(),
        series: series.map(({ s, check }) => ({
          botId: s.botId,
          model: s.model === '' ? null : s.model,
          hourStart: new Date(currentHour).toISOString(),
          spentUsd: usdToNumber(check.spent),
          baselineUsd: usdToNumber(check.baseline),
          thresholdUsd: usdToNumber(check.threshold),
          unusual: check.unusual,
        })),
      }
    },
  )

  app.get(
    '/api/spend-alerts/:id/spikes',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'The spikes a rule alerted, newest first, with delivery status per channel',
        params: SpendAlertIdParams,
        querystring: SpikesQuery,
        response: { 200: SpikesResponse, 400: ErrorResponse, 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      await ruleOr404(database, request.params.id)
      const spikes = await listSpikes(database, request.params.id, request.query.limit ?? 50)
      const deliveries = await deliveriesOf(database, spikes.map((s) => s.id))
      return {
        spikes: spikes.map((s) => ({
          id: s.id,
          ruleId: s.ruleId,
          botId: s.botId,
          model: s.model === '' ? null : s.model,
          hourStart: s.hour.toISOString(),
          spentUsd: usdToNumber(s.spent),
          baselineUsd: usdToNumber(s.baseline),
          thresholdUsd: usdToNumber(s.threshold),
          partial: s.partial,
          createdAt: s.createdAt.toISOString(),
          deliveries: deliveries.get(s.id) ?? [],
        })),
      }
    },
  )
}
