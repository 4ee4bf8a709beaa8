import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { readableBots } from '../auth/plugin.js'
import type { Config } from '../config.js'
import type { Database } from '../db/connect.js'
import { ErrorResponse, Errors } from '../errors.js'
import { ConcurrencyLimit } from '../lib/concurrency-limit.js'
import { toUsageEvent, type EventFilter } from '../db/event-store.js'
import { decodeCursor, encodeCursor } from './cursor.js'
import { topErrorMessages } from './error-messages.js'
import { DAY_MS, HOUR_MS } from './sources.js'
import { EXPORT_BATCH_SIZE, sendExport } from './export.js'
import { histogramBuckets, summarizeLatency } from './latency.js'
import { MAX_REPORT_ROWS, sendMonthlyReport } from './monthly-report.js'
import {
  breakdown,
  eventPage,
  monthlyReport,
  rawPartOf,
  recentEvents,
  statsFromRollups,
  summaryGroups,
  timeseries,
  totalsOver,
  type BucketRow,
  withRolledUpKeys,
  type PagedEventRow,
} from './queries.js'
import { toEventFilter } from './query.js'
import { columnDimension, parseDimension, requestScopes } from './request-filters.js'
import {
  BreakdownQuery,
  BreakdownResponse,
  ErrorsQuery,
  ErrorsResponse,
  EventsQuery,
  EventsResponse,
  ExportQuery,
  MonthlyQuery,
  MonthlyReport,
  StatsQuery,
  StatsResponse,
  SummaryQuery,
  SummaryResponse,
  TimeseriesQuery,
  TimeseriesResponse,
} from './schemas.js'
import { currentMonth, bucketStarts, monthWindow, TimeZones, type Window } from './time-window.js'
import { statsResponse } from './usage-stats.js'
import { change, rate, sumTotals, usd, wireTotals, zeroFilled, zeroFilledWithLatency } from './totals.js'

/** The HTTP surface of the read side: every route reads through the read pool. */

export interface AnalyticsRoutesOptions {
  config: Config
  /** Analytics, exports and reports read here (a replica when one is configured). */
  database: Database
  /** GET /api/usage reads the primary: a client sees its own writes there. */
  primary: Database
}

/** Most buckets one timeseries may have (e.g. 83 days of hours). */
export const MAX_TIMESERIES_BUCKETS = 2000

const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 429: ErrorResponse, 503: ErrorResponse }

const iso = (d: Date) => d.toISOString()

export const analyticsRoutes: FastifyPluginAsyncTypebox<AnalyticsRoutesOptions> = async (app, opts) => {
  const { config } = opts
  // Every read here runs on the read pool: it can time out or run short of connections, never
  // take the ones ingest needs.
  const database = opts.database.reads
  const zones = new TimeZones(database)
  /**
   * Turns for the reads whose cost grows with the raw events in the range (metadata breakdowns,
   * error scans, exports, monthly reports): a few at once, a short queue, then 503.
   */
  const heavy = new ConcurrencyLimit({
    ...config.heavyReads,
    refuse: () => new Errors.analyticsBusy(),
  })

  const scopeOf = requestScopes({ database, zones, maxDays: config.maxQueryRangeDays })

  app.get(
    '/api/usage',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['usage'],
        summary: 'Usage stats by model and provider, with the most recent events',
        description:
          'Seed-compatible contract: stats grouped by model+provider, recentUsage newest first, totalCost. ' +
          'Filters: botId, model, provider, requestType, success, startDate, endDate (inclusive; a date-only endDate covers the whole UTC day).',
        querystring: StatsQuery,
        response: { 200: StatsResponse, 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 429: ErrorResponse },
      },
    },
    async (request) => {
      const q = request.query
      const filter = toEventFilter(q, readableBots(request, q.botId))
      const primary = opts.primary.reads
      const [rows, recent] = await Promise.all([statsFromRollups(primary, filter), recentEvents(primary, filter, q.limit ?? 20)])
      return statsResponse(rows, recent)
    },
  )

  app.get(
    '/api/usage/timeseries',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['analytics'],
        summary: 'Calls, tokens, cost and success rate per hour, day, week or month',
        description:
          'Buckets follow the local calendar of tz (a DST day has 23 or 25 hours); every bucket of the range is present, ' +
          `empty ones with zeros. At most ${MAX_TIMESERIES_BUCKETS} buckets. Whole hours and days are read from rollups, ` +
          'partial hours from raw events, so the numbers are exact.',
        querystring: TimeseriesQuery,
        response: { 200: TimeseriesResponse, ...errors },
      },
    },
    async (request) => {
      const q = request.query
      const interval = q.interval ?? 'day'
      const { tz, window, filter, span } = await scopeOf(request, q)
      const starts = await bucketStarts(database, window, interval, tz, MAX_TIMESERIES_BUCKETS)
      if (starts.length > MAX_TIMESERIES_BUCKETS) {
        throw new Errors.validation(
          `querystring.interval=${interval} gives more than ${MAX_TIMESERIES_BUCKETS} buckets over this range: use a longer interval or a shorter range`,
        )
      }
      const groupBy = q.groupBy ?? null
      const data = await timeseries(database, {
        filter,
        span,
        unit: interval,
        tz,
        starts,
        groupBy: groupBy === null ? null : columnDimension(groupBy, 'querystring.groupBy'),
        limit: q.limit ?? 10,
        percentiles: q.percentiles ?? false,
      })
      const rowsOf = new Map<string | null, BucketRow[]>()
      for (const r of data.byGroup) {
        const rows = rowsOf.get(r.group)
        if (rows) rows.push(r)
        else rowsOf.set(r.group, [r])
      }
      const series = data.groups.map((group) => {
        const rows = rowsOf.get(group) ?? []
        return { group, totals: wireTotals(sumTotals(rows.map((r) => r.totals))), buckets: zeroFilled(starts, rows) }
      })
      return {
        from: iso(window.from),
        to: iso(window.to),
        interval,
        tz,
        groupBy,
        buckets: q.percentiles ? zeroFilledWithLatency(starts, data.overall) : zeroFilled(starts, data.overall),
        series,
        otherGroups: Math.max(0, data.groupCount - series.length),
      }
    },
  )

  app.get(
    '/api/usage/summary',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['analytics'],
        summary: 'Totals, success rate, latency percentiles, cost by model and bot, and change against the previous period',
        querystring: SummaryQuery,
        response: { 200: SummaryResponse, ...errors },
      },
    },
    async (request) => {
      const q = request.query
      const { window, filter, span } = await scopeOf(request, q)
      const length = span.to - span.from
      const previousSpan = { from: span.from - length, to: span.from }
      const [current, previous] = await Promise.all([
        summaryGroups(database, filter, span, q.limit ?? 20),
        totalsOver(database, filter, previousSpan),
      ])
      const t = current.totals
      const successRate = rate(t.calls - t.failures, t.calls)
      const previousSuccessRate = rate(previous.calls - previous.failures, previous.calls)
      return {
        from: iso(window.from),
        to: iso(window.to),
        totals: wireTotals(t),
        latency: { ...summarizeLatency(t), histogram: histogramBuckets(t.histogram) },
        byModel: current.byModel.map((m) => ({ model: m.model, provider: m.provider, ...wireTotals(m.totals) })),
        byBot: current.byBot.map((b) => ({ botId: b.botId, ...wireTotals(b.totals) })),
        previous: { from: new Date(previousSpan.from).toISOString(), to: iso(window.from), totals: wireTotals(previous) },
        change: {
          calls: change(t.calls, previous.calls),
          failures: change(t.failures, previous.failures),
          cost: change(usd(t.cost), usd(previous.cost)),
          totalTokens: change(t.totalTokens, previous.totalTokens),
          successRate: successRate === null || previousSuccessRate === null ? null : successRate - previousSuccessRate,
        },
      }
    },
  )

  app.get(
    '/api/usage/breakdown',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['analytics'],
        summary: 'Totals per model, provider, bot, request type or metadata key (one or two dimensions)',
        description:
          'groupBy=model,botId groups by both. A metadata.<key> dimension (e.g. metadata.userId) groups by that top-level ' +
          'metadata value. A key declared in METADATA_ROLLUP_KEYS reads its rollup (alone or with botId, filtered at most by ' +
          'botId and success) from the time it was declared; its values past METADATA_ROLLUP_MAX_VALUES form one row with ' +
          'other=true. Any other metadata key, and a declared one before it was declared, reads raw events, so it costs time ' +
          'in proportion to the events and that part of the range is limited to METADATA_RAW_MAX_DAYS (400 above). `source` says which.',
        querystring: BreakdownQuery,
        response: { 200: BreakdownResponse, ...errors },
      },
    },
    async (request) => {
      const q = request.query
      const names = q.groupBy.split(',').map((s) => s.trim())
      if (names.length > 2) throw new Errors.validation('querystring.groupBy takes at most two dimensions')
      if (names.length === 2 && names[0] === names[1]) throw new Errors.validation(`querystring.groupBy names '${names[0]}' twice`)
      const { window, filter, span } = await scopeOf(request, q)
      const dimensions = await withRolledUpKeys(database, names.map((n) => parseDimension(n, 'querystring.groupBy')))
      const query = () =>
        breakdown(database, {
          filter,
          span,
          dimensions,
          sort: q.sort ?? 'cost',
          order: q.order ?? 'desc',
          limit: q.limit ?? 50,
        })
      // Undeclared metadata keys and service tiers read raw events (over a capped range), declared
      // keys before their since too; the rest reads rollups.
      const rawPart = rawPartOf({ filter, span, dimensions })
      const raw = rawPart > 0
      if (rawPart > config.metadataRawMaxDays * DAY_MS + HOUR_MS) {
        throw new Errors.validation(
          `querystring.startDate..endDate covers more than ${config.metadataRawMaxDays} days, the limit of a breakdown by metadata.<key> ` +
            'or serviceTier, which reads raw events (METADATA_RAW_MAX_DAYS)',
        )
      }
      const data = raw ? await heavy.run(query) : await query()
      return {
        from: iso(window.from),
        to: iso(window.to),
        groupBy: names,
        rows: data.rows.map((r) => ({
          group: Object.fromEntries(names.map((n, i) => [n, r.group[i]])),
          ...(r.other ? { other: true } : {}),
          ...wireTotals(r.totals),
          latency: summarizeLatency(r.totals),
        })),
        totals: wireTotals(data.totals),
        groupCount: data.groupCount,
        source: raw ? ('raw' as const) : ('rollups' as const),
      }
    },
  )

  /** One page of events plus the cursor of the next one. */
  function page(rows: PagedEventRow[], limit: number) {
    const shown = rows.slice(0, limit)
    const last = shown[shown.length - 1]
    const nextCursor =
      rows.length > limit && last ? encodeCursor({ createdAt: last.cursor_at, botId: last.bot_id, id: last.id, asOf: last.as_of }) : null
    return { events: shown.map(toUsageEvent), nextCursor }
  }

  app.get(
    '/api/usage/errors',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['analytics'],
        summary: 'Recent failed calls, newest first, and the most frequent error messages',
        querystring: ErrorsQuery,
        response: { 200: ErrorsResponse, ...errors },
      },
    },
    async (request) => {
      const q = request.query
      const position = q.cursor === undefined ? null : decodeCursor(q.cursor)
      const { window, filter, span } = await scopeOf(request, q)
      const failed: EventFilter = { ...filter, success: false }
      const limit = q.limit ?? 50
      // Top messages read the error rollups (raw failures only for partial days): no heavy turn needed.
      const [rows, top, totals] = await Promise.all([
        eventPage(database, failed, position, limit),
        topErrorMessages(database, failed, q.top ?? 10),
        totalsOver(database, failed, span),
      ])
      const { events, nextCursor } = page(rows, limit)
      return {
        from: iso(window.from),
        to: iso(window.to),
        failures: totals.calls,
        errors: events,
        nextCursor,
        topMessages: top.map((m) => ({ message: m.message, count: m.count, lastSeen: iso(m.lastSeen) })),
      }
    },
  )

  app.get(
    '/api/usage/events',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['analytics'],
        summary: 'Raw events, newest first, with cursor pagination',
        description:
          'Pages are stable under concurrent inserts: following nextCursor never repeats or skips an event, and events ' +
          'received after the first page was read do not appear in later pages.',
        querystring: EventsQuery,
        response: { 200: EventsResponse, ...errors },
      },
    },
    async (request) => {
      const q = request.query
      const position = q.cursor === undefined ? null : decodeCursor(q.cursor)
      const { window, filter } = await scopeOf(request, q)
      const limit = q.limit ?? 100
      const { events, nextCursor } = page(await eventPage(database, filter, position, limit), limit)
      return { from: iso(window.from), to: iso(window.to), events, nextCursor }
    },
  )

  app.get(
    '/api/usage/export',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['analytics'],
        summary: 'Stream raw events of a range as CSV or JSON lines',
        description:
          `Oldest first, fetched at most ${EXPORT_BATCH_SIZE} events per query while the response streams, so an export of any size ` +
          'holds one batch in memory and other requests are served between batches (smaller ones on the embedded engine). CSV: RFC 4180 with a header row, exact decimal costs, metadata as JSON text. ' +
          'JSON lines: one event per line, as in /api/usage/events. Everything is checked and the first batch read before the first ' +
          'byte, so those failures are ordinary error answers. A failure after that cannot change the 200: a CSV export is then ' +
          'aborted (the chunked response ends without its last chunk, so HTTP clients report an error and curl exits non-zero), and ' +
          'a JSON-lines export ends with one line {"error": {statusCode, code: "EXPORT_INCOMPLETE", error, message}} instead of an event.',
        querystring: ExportQuery,
        response: {
          200: {
            description: 'The events',
            content: { 'text/csv': { schema: Type.String() }, 'application/x-ndjson': { schema: Type.String() } },
          },
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const q = request.query
      const format = q.format ?? 'csv'
      const { window, filter } = await scopeOf(request, q)
      return sendExport(request, reply, { database, heavy, filter, window, format })
    },
  )

  app.get(
    '/api/reports/monthly',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['reports'],
        summary: 'Monthly usage per bot, provider and model, with a totals row',
        description: `The calendar month in tz. At most ${MAX_REPORT_ROWS} rows; filter by botId, provider or model beyond that.`,
        querystring: MonthlyQuery,
        response: {
          200: {
            description: 'JSON report, or CSV with a header row and a final TOTAL row',
            content: { 'application/json': { schema: MonthlyReport }, 'text/csv': { schema: Type.String() } },
          },
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const q = request.query
      const botIds = readableBots(request, q.botId)
      const tz = await zones.check(q.tz ?? 'UTC')
      const month = q.month ?? (await currentMonth(database, tz, new Date()))
      const window: Window = await monthWindow(database, month, tz)
      const filter: EventFilter = { botIds, provider: q.provider, model: q.model, requestType: q.requestType }
      const report = await heavy.run(() => monthlyReport(database, filter, { from: window.from.getTime(), to: window.to.getTime() }, MAX_REPORT_ROWS))
      if (report.rowCount > MAX_REPORT_ROWS) {
        throw new Errors.validation(
          `The report for ${month} has ${report.rowCount} rows, more than ${MAX_REPORT_ROWS}: filter with querystring.botId, provider or model`,
        )
      }
      return sendMonthlyReport(reply, { month, tz, window, rows: report.rows, totals: report.totals }, q.format ?? 'json')
    },
  )
}
