import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { readableBots } from '../auth/plugin.js'
import type { Database } from '../db/connect.js'
import { ErrorResponse, Errors } from '../errors.js'
import { parseInstant, SUPPORTED_DATES } from '../lib/time.js'
import { uuidv7 } from '../lib/uuidv7.js'
import { parseRange } from '../analytics/reader.js'
import { repriceEvents } from '../usage/repository.js'
import { PriceCatalog, overrideProblems, type PriceOverride, type PriceTier, type ResolvedPrice } from './catalog.js'
import { canonicalProvider } from './dataset.js'
import { decimalFromNumber, formatUsd, parseUsd } from '../lib/money.js'
import { compileOverride } from './overrides.js'
import { deleteOverride, insertOverride, listOverrides, replaceOverride, withOverridesLock, type StoredOverride } from './repository.js'
import {
  OverrideBody,
  OverrideInfo,
  PriceInfo,
  PricesQuery,
  PricesResponse,
  QuoteBody,
  QuoteResponse,
  RepriceBody,
  RepriceResponse,
  ResolveQuery,
  ResolveResponse,
} from './schemas.js'
import { repriceWith, type PricingService } from './service.js'

const authErrors = { 401: ErrorResponse, 403: ErrorResponse, 429: ErrorResponse }
const usd = (v: string) => Number(v)
const usdOrNull = (v: string | null | undefined) => (v === null || v === undefined ? null : Number(v))

function tierInfo(t: PriceTier) {
  return {
    aboveInputTokens: t.aboveInputTokens,
    input: usd(t.input),
    output: usd(t.output),
    cacheRead: usdOrNull(t.cacheRead),
    cacheWrite: usdOrNull(t.cacheWrite),
    cacheWrite1h: usdOrNull(t.cacheWrite1h),
  }
}

function rates(p: Pick<PriceOverride, 'input' | 'output' | 'cacheRead' | 'cacheWrite' | 'cacheWrite1h' | 'reasoning' | 'tiers'>) {
  return {
    input: usd(p.input),
    output: usd(p.output),
    cacheRead: usdOrNull(p.cacheRead),
    cacheWrite: usdOrNull(p.cacheWrite),
    cacheWrite1h: usdOrNull(p.cacheWrite1h),
    reasoning: usdOrNull(p.reasoning),
    tiers: p.tiers.map(tierInfo),
  }
}

export function toPriceInfo(p: ResolvedPrice): PriceInfo {
  return {
    source: p.source.kind,
    sourceLabel: p.sourceLabel,
    overrideId: p.source.kind === 'override' ? p.source.overrideId : null,
    provider: p.provider,
    model: p.model,
    ...rates(p),
    effectiveFrom: p.effectiveFrom?.toISOString() ?? null,
    effectiveTo: p.effectiveTo?.toISOString() ?? null,
  }
}

function toOverrideInfo(o: StoredOverride): OverrideInfo {
  return {
    id: o.id,
    provider: o.provider,
    modelPattern: o.modelPattern,
    effectiveFrom: o.effectiveFrom.toISOString(),
    effectiveTo: o.effectiveTo?.toISOString() ?? null,
    ...rates(o),
    note: o.note,
    createdAt: o.createdAt.toISOString(),
  }
}

function overridePriceInfo(o: PriceOverride): PriceInfo {
  return {
    source: 'override',
    sourceLabel: `override:${o.id}`,
    overrideId: o.id,
    provider: canonicalProvider(o.provider),
    model: o.modelPattern,
    ...rates(o),
    effectiveFrom: o.effectiveFrom.toISOString(),
    effectiveTo: o.effectiveTo?.toISOString() ?? null,
  }
}

function parseAt(value: string | undefined, field: string): Date {
  if (value === undefined) return new Date()
  const p = parseInstant(value)
  if (!p) throw new Errors.validation(`${field} must be a date (YYYY-MM-DD) or an ISO 8601 timestamp with zone, ${SUPPORTED_DATES}`)
  return p.date
}

const decimalOrNull = (v: number | null | undefined) => (v === null || v === undefined ? null : decimalFromNumber(v))

/** The admin's JSON body as a catalog override; validation of the values is overrideProblems'. */
function toOverride(id: string, b: OverrideBody): PriceOverride & { note: string | null } {
  return {
    id,
    provider: b.provider,
    modelPattern: b.modelPattern,
    effectiveFrom: new Date(b.effectiveFrom),
    effectiveTo: b.effectiveTo ? new Date(b.effectiveTo) : null,
    input: decimalFromNumber(b.input),
    output: decimalFromNumber(b.output),
    cacheRead: decimalOrNull(b.cacheRead),
    cacheWrite: decimalOrNull(b.cacheWrite),
    cacheWrite1h: decimalOrNull(b.cacheWrite1h),
    reasoning: decimalOrNull(b.reasoning),
    tiers: (b.tiers ?? []).map((t) => ({
      aboveInputTokens: t.aboveInputTokens,
      input: decimalFromNumber(t.input),
      output: decimalFromNumber(t.output),
      cacheRead: decimalOrNull(t.cacheRead),
      cacheWrite: decimalOrNull(t.cacheWrite),
      cacheWrite1h: decimalOrNull(t.cacheWrite1h),
    })),
    note: b.note ?? null,
  }
}

function assertValidOverride(o: PriceOverride, existing: PriceOverride[]): void {
  const problems = overrideProblems(o, existing)
  if (problems.length > 0) {
    throw new Errors.validation(problems.map((p) => `body.${p.field} ${p.message}`).join('; '))
  }
}

export const pricingRoutes: FastifyPluginAsyncTypebox<{ database: Database; pricing: PricingService }> = async (app, opts) => {
  const { database, pricing } = opts
  const catalog = pricing.catalog

  app.get(
    '/api/prices',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['prices'],
        summary: 'Prices in effect at an instant: overrides and the bundled dataset',
        querystring: PricesQuery,
        response: { 200: PricesResponse, 400: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const at = parseAt(request.query.at, 'querystring.at')
      const { provider, model } = request.query
      const overrides = (await listOverrides(database.db)).filter((o) => {
        if (at < o.effectiveFrom || (o.effectiveTo !== null && at >= o.effectiveTo)) return false
        if (provider !== undefined && canonicalProvider(o.provider) !== canonicalProvider(provider)) return false
        if (model === undefined) return true
        const name = model.toLowerCase()
        return compileOverride(o).matches(name) || o.modelPattern.toLowerCase().includes(name)
      })
      return {
        at: at.toISOString(),
        datasetVersion: PriceCatalog.datasetVersion(),
        overrides: overrides.map(overridePriceInfo),
        prices: catalog.listDataset({ provider, model, at }).map(toPriceInfo),
      }
    },
  )

  app.get(
    '/api/prices/resolve',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['prices'],
        summary: 'Which price applies to a model at an instant, and why',
        querystring: ResolveQuery,
        response: { 200: ResolveResponse, 400: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const { provider, model } = request.query
      const at = parseAt(request.query.at, 'querystring.at')
      const price = catalog.resolve(provider, model, at)
      const reason =
        price === null
          ? `No override and no dataset price (genai-prices@${PriceCatalog.datasetVersion()}) matches provider '${provider}' model '${model}': events are stored unpriced`
          : price.source.kind === 'override'
            ? `Override ${price.source.overrideId} (pattern '${price.model}', in effect from ${price.effectiveFrom?.toISOString()}) wins over the dataset`
            : `'${model}' resolves to ${price.provider}/${price.model} in genai-prices@${price.source.version}; no override applies`
      return { provider, model, at: at.toISOString(), priced: price !== null, reason, price: price && toPriceInfo(price) }
    },
  )

  app.post(
    '/api/prices/quote',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['prices'],
        summary: 'Cost of a given usage, without storing anything',
        body: QuoteBody,
        response: { 200: QuoteResponse, 400: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const b = request.body
      const usage = {
        inputTokens: b.inputTokens,
        outputTokens: b.outputTokens,
        cacheReadTokens: b.cacheReadTokens ?? 0,
        cacheWriteTokens: b.cacheWriteTokens ?? 0,
        cacheWrite1hTokens: b.cacheWrite1hTokens ?? 0,
        reasoningTokens: b.reasoningTokens ?? 0,
      }
      if (usage.cacheReadTokens + usage.cacheWriteTokens > usage.inputTokens) {
        throw new Errors.validation('body.cacheReadTokens + cacheWriteTokens exceed inputTokens: inputTokens must include cache reads and writes')
      }
      if (usage.cacheWrite1hTokens > usage.cacheWriteTokens) throw new Errors.validation('body.cacheWrite1hTokens exceeds cacheWriteTokens')
      if (usage.reasoningTokens > usage.outputTokens) throw new Errors.validation('body.reasoningTokens exceeds outputTokens: outputTokens must include reasoning')
      const at = b.at === undefined ? new Date() : new Date(b.at)
      const quote = catalog.quote(b.provider, b.model, at, usage)
      if (!quote.priced) {
        return { priced: false, cost: null, costExact: null, breakdown: null, tierAboveInputTokens: null, reason: quote.reason, price: null }
      }
      return {
        priced: true,
        cost: usd(quote.cost),
        costExact: quote.cost,
        breakdown: {
          input: usd(quote.breakdown.input),
          cacheRead: usd(quote.breakdown.cacheRead),
          cacheWrite: usd(quote.breakdown.cacheWrite),
          output: usd(quote.breakdown.output),
        },
        tierAboveInputTokens: quote.tierAboveInputTokens,
        reason: `priced with ${quote.price.sourceLabel}`,
        price: toPriceInfo(quote.price),
      }
    },
  )

  app.get(
    '/api/prices/overrides',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['prices'],
        summary: 'All price overrides',
        response: { 200: Type.Object({ overrides: Type.Array(OverrideInfo) }), ...authErrors },
      },
    },
    async () => ({ overrides: (await listOverrides(database.db)).map(toOverrideInfo) }),
  )

  app.post(
    '/api/prices/overrides',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['prices'],
        summary: 'Add a price override (negotiated discount, private model)',
        description:
          'Wins over the dataset for matching events from effectiveFrom (inclusive) to effectiveTo (exclusive). ' +
          'Prices are USD per million tokens. Overlapping overrides for the same provider and pattern are refused. ' +
          'Events already stored keep their cost until repriced (POST /api/prices/reprice).',
        body: OverrideBody,
        response: { 201: OverrideInfo, 400: ErrorResponse, ...authErrors },
      },
    },
    async (request, reply) => {
      const override = toOverride(uuidv7(), request.body)
      await withOverridesLock(database, async (tx) => {
        assertValidOverride(override, await listOverrides(tx))
        await insertOverride(tx, override)
      })
      await pricing.changed()
      const stored = (await listOverrides(database.db)).find((o) => o.id === override.id)
      if (!stored) throw new Errors.internal()
      return reply.code(201).send(toOverrideInfo(stored))
    },
  )

  app.put(
    '/api/prices/overrides/:id',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['prices'],
        summary: 'Replace a price override',
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }),
        body: OverrideBody,
        response: { 200: OverrideInfo, 400: ErrorResponse, 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const override = toOverride(request.params.id, request.body)
      const found = await withOverridesLock(database, async (tx) => {
        const existing = await listOverrides(tx)
        if (!existing.some((o) => o.id === override.id)) return false
        assertValidOverride(override, existing)
        return replaceOverride(tx, override)
      })
      if (!found) throw new Errors.notFound(`No price override with id '${request.params.id}'`)
      await pricing.changed()
      const stored = (await listOverrides(database.db)).find((o) => o.id === override.id)
      if (!stored) throw new Errors.internal()
      return toOverrideInfo(stored)
    },
  )

  app.delete(
    '/api/prices/overrides/:id',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['prices'],
        summary: 'Delete a price override',
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }),
        response: { 200: Type.Object({ deleted: Type.String() }), 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const deleted = await withOverridesLock(database, (tx) => deleteOverride(tx, request.params.id))
      if (!deleted) throw new Errors.notFound(`No price override with id '${request.params.id}'`)
      await pricing.changed()
      return { deleted: request.params.id }
    },
  )

  app.post(
    '/api/prices/reprice',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['prices'],
        summary: 'Recompute stored costs for a time range with the current prices',
        description:
          'Run after adding or changing an override or after a dataset upgrade. Works in batches; rollups are updated in the ' +
          'same transactions, so totals stay consistent. Idempotent: a second run changes nothing.',
        body: RepriceBody,
        response: { 200: RepriceResponse, 400: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const b = request.body
      const range = parseRange({ startDate: b.startDate, endDate: b.endDate }, undefined, 'body')
      const outcome = await repriceEvents(
        database,
        { botIds: readableBots(request, b.botId), provider: b.provider, model: b.model, from: range.from, to: range.to },
        repriceWith(pricing.priceEvent),
      )
      return { ...outcome, costDelta: usd(outcome.costDelta), costDeltaExact: formatUsd(parseUsd(outcome.costDelta)) }
    },
  )
}
