import { Errors } from '../errors.js'
import { DAY_MS, parseInstant, SUPPORTED_DATES } from '../lib/time.js'
import type { EventFilter } from '../db/event-store.js'
import type { UsageFilters } from './schemas.js'

export interface TimeRange {
  from?: Date
  /** Exclusive. */
  to?: Date
}

/**
 * startDate is inclusive; endDate is inclusive too: a date-only endDate covers that whole UTC
 * day, a timestamp covers up to and including that instant.
 */
export function parseRange(q: { startDate?: string; endDate?: string }, maxDays?: number, root = 'querystring'): TimeRange {
  const range: TimeRange = {}
  if (q.startDate !== undefined) {
    const p = parseInstant(q.startDate)
    if (!p) throw new Errors.validation(`${root}.startDate must be a date (YYYY-MM-DD) or an ISO 8601 timestamp with zone, ${SUPPORTED_DATES}`)
    range.from = p.date
  }
  if (q.endDate !== undefined) {
    const p = parseInstant(q.endDate)
    if (!p) throw new Errors.validation(`${root}.endDate must be a date (YYYY-MM-DD) or an ISO 8601 timestamp with zone, ${SUPPORTED_DATES}`)
    range.to = new Date(p.date.getTime() + (p.dateOnly ? DAY_MS : 1))
  }
  if (range.from && range.to && range.from.getTime() >= range.to.getTime()) {
    throw new Errors.validation(`${root}.startDate must not be after ${root}.endDate`)
  }
  if (maxDays !== undefined && range.from && range.to && range.to.getTime() - range.from.getTime() > maxDays * DAY_MS) {
    throw new Errors.validation(`${root}.startDate..endDate covers more than ${maxDays} days`)
  }
  return range
}

/** Turns the shared query filters into a repository filter; `botIds` (from readableBots) is what the caller may see. */
export function toEventFilter(q: UsageFilters, botIds: string[] | null, maxDays?: number): EventFilter {
  const range = parseRange(q, maxDays)
  return {
    botIds,
    model: q.model,
    provider: q.provider,
    requestType: q.requestType,
    success: q.success,
    from: range.from,
    to: range.to,
  }
}
