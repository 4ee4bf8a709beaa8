/**
 * GET /api/prices/unmatched: the models seen in events that no price matched, with counts and
 * when they were seen, so an operator can add an override (and reprice). Counted from the daily
 * rollups (unpriced_calls), the first and last instant from the raw events of those two days only.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { sql } from 'drizzle-orm'
import { Type, type Static } from 'typebox'
import { readableBots } from '../auth/plugin.js'
import type { Database } from '../db/connect.js'
import { filterConditions, UNFOLDED_EVENTS } from '../db/event-store.js'
import { ErrorResponse } from '../errors.js'
import { parseRange } from '../analytics/query.js'
import { BotId, Provider } from '../lib/schemas.js'
import { DATE_OR_TIMESTAMP_FORMAT } from '../lib/time.js'
import type { PriceCatalog } from './catalog.js'

export const UnmatchedQuery = Type.Object(
  {
    startDate: Type.Optional(Type.String({ maxLength: 40, format: DATE_OR_TIMESTAMP_FORMAT, description: 'Inclusive (UTC days the range touches are counted)' })),
    endDate: Type.Optional(Type.String({ maxLength: 40, format: DATE_OR_TIMESTAMP_FORMAT, description: 'Inclusive' })),
    botId: Type.Optional(BotId),
    provider: Type.Optional(Provider),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100, description: 'Models listed, most events first' })),
  },
  { additionalProperties: false },
)

const UnmatchedModel = Type.Object({
  provider: Type.String(),
  model: Type.String(),
  events: Type.Integer({ description: 'Events stored unpriced' }),
  inputTokens: Type.Integer(),
  outputTokens: Type.Integer(),
  firstSeen: Type.String({ format: 'date-time' }),
  lastSeen: Type.String({ format: 'date-time' }),
  pricedNow: Type.Boolean({ description: 'True when a price matches now (an override or upgrade since): reprice the range' }),
  refusedMatch: Type.Union([Type.String(), Type.Null()], { description: 'The dataset model the name only extends with a newer version number' }),
  reason: Type.String(),
})

export const UnmatchedResponse = Type.Object({ models: Type.Array(UnmatchedModel) })
type UnmatchedResponse = Static<typeof UnmatchedResponse>

interface Row {
  provider: string
  model: string
  events: string | number
  input_tokens: string | number
  output_tokens: string | number
  first_seen: Date | string
  last_seen: Date | string
}

const iso = (v: Date | string) => (v instanceof Date ? v : new Date(v)).toISOString()

async function unmatchedModels(
  database: Database,
  f: { botIds: string[] | null; provider?: string; from?: Date; to?: Date; limit: number },
): Promise<Row[]> {
  // Whole UTC days in the rollup; the raw-event lookups below apply the exact range.
  const dayFrom = f.from === undefined ? undefined : new Date(Math.floor(f.from.getTime() / 86_400_000) * 86_400_000)
  const rollup = f.botIds === null ? sql.raw('usage_daily_models') : sql.raw('usage_daily')
  const dayFilter = filterConditions({ botIds: f.botIds, provider: f.provider, from: dayFrom, to: f.to }, sql.raw('day'))
  const eventFilter = filterConditions({ botIds: f.botIds, from: f.from, to: f.to })
  // The events of those days not yet folded into the rollup (above the watermark), read in the same statement.
  const tailFilter = filterConditions({ botIds: f.botIds, provider: f.provider, from: dayFrom, to: f.to }, sql.raw(`date_trunc('day', created_at, 'UTC')`))
  return database.rows<Row>(sql`
    WITH days AS (
      SELECT provider, model, unpriced_calls, unpriced_input_tokens, unpriced_output_tokens, day
      FROM ${rollup}
      WHERE unpriced_calls > 0 AND ${dayFilter}
      UNION ALL
      SELECT provider, model, 1, input_tokens, output_tokens, date_trunc('day', created_at, 'UTC')
      FROM usage_events
      WHERE ${UNFOLDED_EVENTS} AND NOT priced AND ${tailFilter}
    ),
    listed AS (
      SELECT provider, model, sum(unpriced_calls) AS events, sum(unpriced_input_tokens) AS input_tokens,
        sum(unpriced_output_tokens) AS output_tokens, min(day) AS first_day, max(day) AS last_day
      FROM days
      GROUP BY provider, model
      ORDER BY events DESC, provider, model
      LIMIT ${f.limit}
    )
    SELECT l.provider, l.model, l.events, l.input_tokens, l.output_tokens,
      (SELECT min(e.created_at) FROM usage_events e
        WHERE e.provider = l.provider AND e.model = l.model AND NOT e.priced AND ${eventFilter}
          AND e.created_at >= l.first_day AND e.created_at < l.first_day + interval '24 hours') AS first_seen,
      (SELECT max(e.created_at) FROM usage_events e
        WHERE e.provider = l.provider AND e.model = l.model AND NOT e.priced AND ${eventFilter}
          AND e.created_at >= l.last_day AND e.created_at < l.last_day + interval '24 hours') AS last_seen
    FROM listed l
    ORDER BY l.events DESC, l.provider, l.model`)
}

export const unmatchedRoutes: FastifyPluginAsyncTypebox<{ database: Database; catalog: PriceCatalog }> = async (app, opts) => {
  const { database, catalog } = opts
  app.get(
    '/api/prices/unmatched',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['prices'],
        summary: 'Models seen in events that no price matched, with counts and when they were seen',
        description:
          'Each model stored unpriced (no override, no dataset price, no correction), most events first, with the tokens ' +
          'it carried and the first and last instant seen. Add an override for it (POST /api/prices/overrides) and reprice ' +
          'the range (POST /api/prices/reprice). A key bound to a bot sees only that bot.',
        querystring: UnmatchedQuery,
        response: { 200: UnmatchedResponse, 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 429: ErrorResponse },
      },
    },
    async (request): Promise<UnmatchedResponse> => {
      const q = request.query
      const range = parseRange(q)
      const rows = await unmatchedModels(database, {
        botIds: readableBots(request, q.botId),
        provider: q.provider,
        from: range.from,
        to: range.to,
        limit: q.limit ?? 100,
      })
      const now = new Date()
      return {
        models: rows.map((r) => {
          const { price, refused } = catalog.explain(r.provider, r.model, now)
          const lastSeen = new Date(r.last_seen)
          const pricedNow = catalog.resolve(r.provider, r.model, lastSeen) !== null
          return {
            provider: r.provider,
            model: r.model,
            events: Number(r.events),
            inputTokens: Number(r.input_tokens),
            outputTokens: Number(r.output_tokens),
            firstSeen: iso(r.first_seen),
            lastSeen: lastSeen.toISOString(),
            pricedNow,
            refusedMatch: refused,
            reason: pricedNow
              ? `a price matches now (${price?.sourceLabel ?? 'at the last event'}): reprice ${iso(r.first_seen)} .. ${lastSeen.toISOString()}`
              : refused === null
                ? `no override, dataset price or correction matches; add an override for provider '${r.provider}' model '${r.model}'`
                : `the dataset would price it as ${refused} only by prefix, but the name adds a newer version number; add an override`,
          }
        }),
      }
    },
  )
}
