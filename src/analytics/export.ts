import type { FastifyReply, FastifyRequest } from 'fastify'
import { Readable } from 'node:stream'
import type { Database } from '../db/connect.js'
import { errorBody, Errors } from '../errors.js'
import type { ConcurrencyLimit } from '../lib/concurrency-limit.js'
import { toUsageEvent, type EventFilter } from '../db/event-store.js'
import { csvLine } from './csv.js'
import { exportEvents, type PagedEventRow } from './queries.js'
import { exactUsd } from './totals.js'
import type { Window } from './time-window.js'

/** Events fetched per query while exporting: bounds the memory an export holds at once. */
export const EXPORT_BATCH_SIZE = 2000

/**
 * The embedded engine runs each query on this thread, with its one connection: a page is time
 * during which no other request is served. 500 events take about 20 ms there (2000 took 70-110
 * ms), so a write or a small read queued behind an export waits for one short page at most.
 */
export const EMBEDDED_EXPORT_BATCH_SIZE = 500

/**
 * Events turned into text in one go while exporting; the export then lets the event loop serve
 * whatever arrived meanwhile before it goes on, so no request waits behind a whole batch.
 */
export const EXPORT_SLICE_SIZE = 200

export type ExportFormat = 'csv' | 'jsonl'

/** Lets I/O callbacks that are due (other requests, their queries' answers) run first. */
const yieldToOthers = () => new Promise<void>((resolve) => setImmediate(resolve))

/** The rows of every batch, EXPORT_SLICE_SIZE at a time, yielding to the event loop between slices. */
async function* slicesOf(batches: AsyncGenerator<PagedEventRow[]>): AsyncGenerator<PagedEventRow[]> {
  for await (const rows of batches) {
    for (let i = 0; i < rows.length; i += EXPORT_SLICE_SIZE) {
      if (i > 0) await yieldToOthers()
      yield rows.slice(i, i + EXPORT_SLICE_SIZE)
    }
  }
}

/** Fastify pipes a stream as the body; the type provider only knows the schema's string. */
const asStreamedBody = (stream: Readable) => stream as unknown as string

const iso = (d: Date) => d.toISOString()

/**
 * Streams the events of `filter` as the reply, holding a heavy-read turn for as long as the
 * stream lasts. The first batch is read before the first byte, so its failure is still an
 * ordinary error answer.
 */
export async function sendExport(
  request: FastifyRequest,
  reply: FastifyReply,
  spec: { database: Database; heavy: ConcurrencyLimit; filter: EventFilter; window: Window; format: ExportFormat },
) {
  const { database, heavy, filter, window, format } = spec
  // The turn lasts as long as the stream: released when it ends, fails or the client leaves.
  const release = await heavy.acquire()
  const batches = exportEvents(database, filter, database.engine === 'pglite' ? EMBEDDED_EXPORT_BATCH_SIZE : EXPORT_BATCH_SIZE)
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
  'inputAudioTokens',
  'outputAudioTokens',
  'webSearchRequests',
  'serviceTier',
  'inferenceGeo',
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
  for await (const rows of slicesOf(batches)) {
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
        e.inputAudioTokens,
        e.outputAudioTokens,
        e.webSearchRequests,
        e.serviceTier,
        e.inferenceGeo,
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
    for await (const rows of slicesOf(batches)) {
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
