import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Readable } from 'node:stream'
import { Type } from 'typebox'
import { readableBots } from '../auth/plugin.js'
import type { Config } from '../config.js'
import type { Database } from '../db/connect.js'
import { errorBody, ErrorResponse, Errors } from '../errors.js'
import { ConcurrencyLimit } from '../lib/concurrency-limit.js'
import { formatUsd, parseUsd } from '../lib/money.js'
import type { EventFilter } from '../usage/repository.js'
import { toUsageEvent } from '../usage/repository.js'
import type { UsageFilters } from '../usage/schemas.js'
import { csvLine } from './csv.js'
import { decodeCursor, encodeCursor } from './cursor.js'
import { histogramBuckets, summarizeLatency } from './latency.js'
import {
  breakdown,
  eventPage,
  exportEvents,
  monthlyReport,
  summaryGroups,
  timeseries,
  topErrorMessages,
  totalsOver,
  type BucketRow,
  type PagedEventRow,
  type Span,
} from './queries.js'
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
  SummaryQuery,
  SummaryResponse,
  TimeseriesQuery,
  TimeseriesResponse,
  type UsageTotals,
} from './schemas.js'
import type { ColumnDimension, Dimension, Totals } from './sources.js'
import { bucketStarts, currentMonth, monthWindow, resolveWindow, TimeZones, type Window } from './time-window.js'

export interface AnalyticsRoutesOptions {
  config: Config
  database: Database
}

/** Range used when startDate is omitted. */
const DEFAULT_RANGE_DAYS = 30
/** Most buckets one timeseries may have (e.g. 83 days of hours). */
export const MAX_TIMESERIES_BUCKETS = 2000
/** Most rows a monthly report may have; more means the caller should filter. */
export const MAX_REPORT_ROWS = 10_000
/** Events fetched per query while exporting: bounds the memory an export holds at once. */
const EXPORT_BATCH_SIZE = 2000

const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 429: ErrorResponse, 503: ErrorResponse }

const DIMENSION_COLUMNS: Record<string, ColumnDimension> = {
  model: 'model',
  provider: 'provider',
  botId: 'bot_id',
  requestType: 'request_type',
}
const METADATA_DIMENSION = /^metadata\.([A-Za-z0-9_.:-]{1,100})$/

function parseDimension(name: string, field: string): Dimension {
  const column = DIMENSION_COLUMNS[name]
  if (column) return { column }
  const metadata = METADATA_DIMENSION.exec(name)
  if (metadata) return { metadataKey: metadata[1] }
  throw new Errors.validation(
    `${field} has unknown dimension '${name}': use model, provider, botId, requestType or metadata.<key>`,
  )
}

const rate = (part: number, whole: number) => (whole === 0 ? null : part / whole)
const usd = (decimal: string) => Number(decimal)
const exactUsd = (decimal: string) => formatUsd(parseUsd(decimal))

export function wireTotals(t: Totals): UsageTotals {
  return {
    calls: t.calls,
    successes: t.calls - t.failures,
    failures: t.failures,
    successRate: rate(t.calls - t.failures, t.calls),
    inputTokens: t.inputTokens,
    outputTokens: t.outputTokens,
    totalTokens: t.totalTokens,
    cacheReadTokens: t.cacheReadTokens,
    cacheWriteTokens: t.cacheWriteTokens,
    reasoningTokens: t.reasoningTokens,
    cost: usd(t.cost),
    unpricedCalls: t.unpricedCalls,
    unpricedInputTokens: t.unpricedInputTokens,
    unpricedOutputTokens: t.unpricedOutputTokens,
    avgLatencyMs: t.latencyCount === 0 ? null : Math.round((t.latencySumMs / t.latencyCount) * 10) / 10,
  }
}

const ZERO: Totals = {
  calls: 0,
  failures: 0,
  inputTokens: 0,
  outputTokens: 0,
  totalTokens: 0,
  cacheReadTokens: 0,
  cacheWriteTokens: 0,
  reasoningTokens: 0,
  cost: '0',
  unpricedCalls: 0,
  unpricedInputTokens: 0,
  unpricedOutputTokens: 0,
  latencySumMs: 0,
  latencyCount: 0,
  latencyMaxMs: null,
  histogram: null,
}

/** Adds totals exactly (cost as pico-USD bigints). */
function addTotals(a: Totals, b: Totals): Totals {
  return {
    calls: a.calls + b.calls,
    failures: a.failures + b.failures,
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    totalTokens: a.totalTokens + b.totalTokens,
    cacheReadTokens: a.cacheReadTokens + b.cacheReadTokens,
    cacheWriteTokens: a.cacheWriteTokens + b.cacheWriteTokens,
    reasoningTokens: a.reasoningTokens + b.reasoningTokens,
    cost: formatUsd(parseUsd(a.cost) + parseUsd(b.cost)),
    unpricedCalls: a.unpricedCalls + b.unpricedCalls,
    unpricedInputTokens: a.unpricedInputTokens + b.unpricedInputTokens,
    unpricedOutputTokens: a.unpricedOutputTokens + b.unpricedOutputTokens,
    latencySumMs: a.latencySumMs + b.latencySumMs,
    latencyCount: a.latencyCount + b.latencyCount,
    latencyMaxMs: a.latencyMaxMs === null ? b.latencyMaxMs : b.latencyMaxMs === null ? a.latencyMaxMs : Math.max(a.latencyMaxMs, b.latencyMaxMs),
    histogram: null,
  }
}

/** Relative change; null when there is nothing to compare with. */
function change(current: number, previous: number): number | null {
  return previous === 0 ? null : (current - previous) / previous
}

function zeroFilled(starts: number[], rows: BucketRow[]) {
  const byStart = new Map(rows.map((r) => [r.bucket, r.totals]))
  return starts.map((s) => ({ start: new Date(s).toISOString(), ...wireTotals(byStart.get(s) ?? ZERO) }))
}

/** Zero-filled buckets that also carry the latency percentiles of each bucket. */
function zeroFilledWithLatency(starts: number[], rows: BucketRow[]) {
  const byStart = new Map(rows.map((r) => [r.bucket, r.totals]))
  return starts.map((s) => {
    const totals = byStart.get(s) ?? ZERO
    return { start: new Date(s).toISOString(), ...wireTotals(totals), latency: summarizeLatency(totals) }
  })
}

const iso = (d: Date) => d.toISOString()

/** Fastify pipes a stream as the body; the type provider only knows the schema's string. */
const asStreamedBody = (stream: Readable) => stream as unknown as string

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

  /** The caller's readable bots, the validated zone and window, and the filter they make. */
  async function scopeOf(request: FastifyRequest, q: UsageFilters & { tz?: string }) {
    const botIds = readableBots(request, q.botId)
    const tz = await zones.check(q.tz ?? 'UTC')
    const window = await resolveWindow(database, q, tz, {
      maxDays: config.maxQueryRangeDays,
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
        groupBy: groupBy === null ? null : parseDimension(groupBy, 'querystring.groupBy'),
        limit: q.limit ?? 10,
        percentiles: q.percentiles ?? false,
      })
      const series = data.groups.map((group) => {
        const rows = data.byGroup.filter((r) => r.group === group)
        return {
          group,
          totals: wireTotals(rows.reduce((sum, r) => addTotals(sum, r.totals), ZERO)),
          buckets: zeroFilled(starts, rows),
        }
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
          'metadata value and reads raw events, so it costs time in proportion to the events in the range; other ' +
          'dimensions read rollups.',
        querystring: BreakdownQuery,
        response: { 200: BreakdownResponse, ...errors },
      },
    },
    async (request) => {
      const q = request.query
      const names = q.groupBy.split(',').map((s) => s.trim())
      if (names.length > 2) throw new Errors.validation('querystring.groupBy takes at most two dimensions')
      if (names.length === 2 && names[0] === names[1]) throw new Errors.validation(`querystring.groupBy names '${names[0]}' twice`)
      const dimensions = names.map((n) => parseDimension(n, 'querystring.groupBy'))
      const { window, filter, span } = await scopeOf(request, q)
      const query = () =>
        breakdown(database, {
          filter,
          span,
          dimensions,
          sort: q.sort ?? 'cost',
          order: q.order ?? 'desc',
          limit: q.limit ?? 50,
        })
      // Metadata dimensions read raw events; the others read rollups.
      const data = dimensions.some((d) => 'metadataKey' in d) ? await heavy.run(query) : await query()
      return {
        from: iso(window.from),
        to: iso(window.to),
        groupBy: names,
        rows: data.rows.map((r) => ({
          group: Object.fromEntries(names.map((n, i) => [n, r.group[i]])),
          ...wireTotals(r.totals),
          latency: summarizeLatency(r.totals),
        })),
        totals: wireTotals(data.totals),
        groupCount: data.groupCount,
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
      const [rows, top, totals] = await heavy.run(() =>
        Promise.all([eventPage(database, failed, position, limit), topErrorMessages(database, failed, q.top ?? 10), totalsOver(database, failed, span)]),
      )
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
          `Oldest first, fetched ${EXPORT_BATCH_SIZE} events per query while the response streams, so an export of any size ` +
          'holds one batch in memory. CSV: RFC 4180 with a header row, exact decimal costs, metadata as JSON text. ' +
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
      // The turn lasts as long as the stream: released when it ends, fails or the client leaves.
      const release = await heavy.acquire()
      const batches = exportEvents(database, filter, EXPORT_BATCH_SIZE)
      // Read before the first byte: a failure here is still an ordinary error answer.
      let first: Awaited<ReturnType<typeof batches.next>>
      try {
        first = await batches.next()
      } catch (err) {
        release()
        throw err
      }
      const all = withFirst(first, batches)
      const onFailure = (err: unknown) => request.log.error({ err, route: 'GET /api/usage/export', format }, 'export failed after its first byte')
      const lines = format === 'csv' ? csvExport(all, onFailure) : jsonlExport(all, onFailure)
      const name = `usage-${iso(window.from).slice(0, 10)}-${iso(window.to).slice(0, 10)}.${format}`
      // One batch read ahead at most (the default would buffer 16), so memory stays at a batch or two.
      const body = Readable.from(lines, { highWaterMark: 1 })
      body.once('close', release)
      reply.raw.once('close', release)
      return reply
        .type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8')
        .header('content-disposition', `attachment; filename="${name}"`)
        .send(asStreamedBody(body))
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
      if ((q.format ?? 'json') === 'csv') {
        const lines = [csvLine(REPORT_COLUMNS)]
        for (const r of report.rows) lines.push(csvLine([r.botId, r.provider, r.model, ...reportCsvMeasures(r.totals)]))
        lines.push(csvLine(['TOTAL', '', '', ...reportCsvMeasures(report.totals)]))
        return reply
          .type('text/csv; charset=utf-8')
          .header('content-disposition', `attachment; filename="usage-${month}.csv"`)
          .send(lines.join(''))
      }
      const body: MonthlyReport = {
        month,
        tz,
        from: iso(window.from),
        to: iso(window.to),
        rows: report.rows.map((r) => ({ botId: r.botId, provider: r.provider, model: r.model, ...reportMeasures(r.totals) })),
        totals: reportMeasures(report.totals),
      }
      return reply.type('application/json; charset=utf-8').send(body)
    },
  )
}

const REPORT_COLUMNS = [
  'botId',
  'provider',
  'model',
  'calls',
  'failures',
  'inputTokens',
  'outputTokens',
  'totalTokens',
  'cacheReadTokens',
  'cacheWriteTokens',
  'reasoningTokens',
  'cost',
  'unpricedCalls',
]

function reportMeasures(t: Totals) {
  return {
    calls: t.calls,
    failures: t.failures,
    inputTokens: t.inputTokens,
    outputTokens: t.outputTokens,
    totalTokens: t.totalTokens,
    cacheReadTokens: t.cacheReadTokens,
    cacheWriteTokens: t.cacheWriteTokens,
    reasoningTokens: t.reasoningTokens,
    cost: usd(t.cost),
    costExact: exactUsd(t.cost),
    unpricedCalls: t.unpricedCalls,
  }
}

function reportCsvMeasures(t: Totals): (string | number)[] {
  const m = reportMeasures(t)
  return [m.calls, m.failures, m.inputTokens, m.outputTokens, m.totalTokens, m.cacheReadTokens, m.cacheWriteTokens, m.reasoningTokens, m.costExact, m.unpricedCalls]
}

const EXPORT_COLUMNS = [
  'id',
  'botId',
  'createdAt',
  'receivedAt',
  'provider',
  'model',
  'requestType',
  'success',
  'errorMessage',
  'inputTokens',
  'outputTokens',
  'totalTokens',
  'cacheReadTokens',
  'cacheWriteTokens',
  'cacheWrite1hTokens',
  'reasoningTokens',
  'latencyMs',
  'cost',
  'reportedCost',
  'priced',
  'priceSource',
  'metadata',
]

const exactOrNull = (v: string | null) => (v === null ? null : exactUsd(v))

async function* withFirst<T>(first: IteratorResult<T>, rest: AsyncGenerator<T>): AsyncGenerator<T> {
  if (first.done) return
  yield first.value
  yield* rest
}

/** A CSV export that fails mid-stream throws on: Fastify then destroys the response, so no final chunk is sent. */
async function* csvExport(batches: AsyncGenerator<PagedEventRow[]>, onFailure: (err: unknown) => void): AsyncGenerator<string> {
  yield csvLine(EXPORT_COLUMNS)
  try {
    yield* csvRows(batches)
  } catch (err) {
    onFailure(err)
    throw err
  }
}

async function* csvRows(batches: AsyncGenerator<PagedEventRow[]>): AsyncGenerator<string> {
  for await (const rows of batches) {
    let chunk = ''
    for (const r of rows) {
      const e = toUsageEvent(r)
      chunk += csvLine([
        e.id,
        e.botId,
        e.createdAt,
        e.receivedAt,
        e.provider,
        e.model,
        e.requestType,
        e.success,
        e.errorMessage,
        e.inputTokens,
        e.outputTokens,
        e.totalTokens,
        e.cacheReadTokens,
        e.cacheWriteTokens,
        e.cacheWrite1hTokens,
        e.reasoningTokens,
        e.latencyMs,
        exactOrNull(r.cost),
        exactOrNull(r.reported_cost),
        e.priced,
        e.priceSource,
        e.metadata === null ? null : JSON.stringify(e.metadata),
      ])
    }
    yield chunk
  }
}

/** A JSON-lines export that fails mid-stream ends with an error line, which no event line can look like. */
async function* jsonlExport(batches: AsyncGenerator<PagedEventRow[]>, onFailure: (err: unknown) => void): AsyncGenerator<string> {
  let sent = 0
  try {
    for await (const rows of batches) {
      let chunk = ''
      for (const r of rows) chunk += JSON.stringify(toUsageEvent(r)) + '\n'
      yield chunk
      sent += rows.length
    }
  } catch (err) {
    onFailure(err)
    const e = new Errors.exportIncomplete(sent)
    yield JSON.stringify({ error: errorBody(e.statusCode, e.code, e.message) }) + '\n'
  }
}
