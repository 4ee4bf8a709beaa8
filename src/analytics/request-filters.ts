import type { FastifyRequest } from 'fastify'
import { readableBots } from '../auth/plugin.js'
import type { Database } from '../db/connect.js'
import { Errors } from '../errors.js'
import { METADATA_KEY_CHARS } from '../lib/schemas.js'
import type { EventFilter } from '../db/event-store.js'
import type { Span } from './queries.js'
import type { UsageFilters } from './schemas.js'
import type { ColumnDimension, Dimension } from './sources.js'
import { resolveWindow, type TimeZones, type Window } from './time-window.js'

/** Range used when startDate is omitted. */
export const DEFAULT_RANGE_DAYS = 30

const DIMENSION_COLUMNS: Record<string, ColumnDimension> = {
  model: 'model',
  provider: 'provider',
  botId: 'bot_id',
  requestType: 'request_type',
}
const METADATA_DIMENSION = new RegExp(`^metadata\\.(${METADATA_KEY_CHARS})$`)

/** A timeseries groupBy name (model, provider, botId or requestType: the schema allows no other) as its column. */
export function columnDimension(name: string, field: string): { column: ColumnDimension } {
  const column = DIMENSION_COLUMNS[name]
  if (!column) throw new Errors.validation(`${field} has unknown dimension '${name}': use model, provider, botId or requestType`)
  return { column }
}

/** A groupBy name (model, provider, botId, requestType, serviceTier or metadata.<key>) as a query dimension. */
export function parseDimension(name: string, field: string): Dimension {
  const column = DIMENSION_COLUMNS[name]
  if (column) return { column }
  if (name === 'serviceTier') return { rawColumn: 'service_tier' }
  const metadata = METADATA_DIMENSION.exec(name)
  if (metadata) return { metadataKey: metadata[1] }
  throw new Errors.validation(
    `${field} has unknown dimension '${name}': use model, provider, botId, requestType, serviceTier or metadata.<key>`,
  )
}

/** What one read request may see and over which range. */
export interface RequestScope {
  tz: string
  window: Window
  filter: EventFilter
  span: Span
}

/**
 * Builds the function that turns a request's filters into its scope: the caller's readable bots,
 * the validated zone and window, and the filter they make.
 */
export function requestScopes(deps: { database: Database; zones: TimeZones; maxDays: number }) {
  const { database, zones, maxDays } = deps
  return async function scopeOf(request: FastifyRequest, q: UsageFilters & { tz?: string }): Promise<RequestScope> {
    const botIds = readableBots(request, q.botId)
    const tz = await zones.check(q.tz ?? 'UTC')
    const window = await resolveWindow(database, q, tz, {
      maxDays,
      defaultDays: DEFAULT_RANGE_DAYS,
      now: new Date(),
    })
    const filter: EventFilter = {
      botIds,
      model: q.model,
      provider: q.provider,
      requestType: q.requestType,
      success: q.success,
      from: window.from,
      to: window.to,
    }
    const span: Span = { from: window.from.getTime(), to: window.to.getTime() }
    return { tz, window, filter, span }
  }
}
