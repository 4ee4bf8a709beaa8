import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { boundBot } from '../auth/plugin.js'
import type { Config } from '../config.js'
import { ErrorResponse, Errors } from '../errors.js'
import { checkEventInput, EventRejected, normalizeEvent, type PriceEvent } from '../usage/ingest.js'
import type { WriteQueue } from '../usage/write-queue.js'
import type { NewUsageEvent } from '../usage/repository.js'
import { decodeRequest, encodeResponse, inflate, InflatedTooLarge, MalformedPayload, UnsupportedEncoding, type Encoding } from './decode.js'
import { readSpan } from './genai.js'

/** What one export request did, for the metrics. */
export interface OtlpOutcome {
  spans: number
  created: number
  duplicates: number
  rejected: number
}

export interface OtelRoutesOptions {
  config: Config
  writeQueue: WriteQueue
  priceEvent: PriceEvent
  onExport?: (outcome: OtlpOutcome) => void
}

const PROTOBUF = 'application/x-protobuf'
const JSON_TYPE = 'application/json'

const ExportTraceServiceResponse = Type.Object(
  {
    partialSuccess: Type.Optional(
      Type.Object({
        rejectedSpans: Type.String({ description: 'int64 as a decimal string (proto3 JSON mapping)' }),
        errorMessage: Type.String(),
      }),
    ),
  },
  { description: 'ExportTraceServiceResponse (protobuf for protobuf requests, this JSON for JSON requests)' },
)

const MAX_REASONS = 5

/**
 * OTLP/HTTP trace ingest. GenAI spans become usage events through the same validation, pricing,
 * group commit and idempotency as POST /api/usage/batch; other spans are ignored.
 */
export const otelRoutes: FastifyPluginAsyncTypebox<OtelRoutesOptions> = async (app, opts) => {
  const { config, writeQueue, priceEvent } = opts
  const limits = { maxFutureSkewMs: config.maxFutureSkewMs }

  // Raw bytes in both encodings: gzip is inflated (within the body limit) before decoding.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser([PROTOBUF, JSON_TYPE], { parseAs: 'buffer' }, (_request, body, done) => done(null, body))

  app.post(
    '/v1/traces',
    {
      config: { scope: 'ingest' },
      schema: {
        tags: ['otel'],
        summary: 'OTLP/HTTP trace export: GenAI spans become usage events',
        description:
          'The standard OTLP/HTTP traces path: point an exporter at the service with OTEL_EXPORTER_OTLP_ENDPOINT and ' +
          'OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer usk_.... Body: ExportTraceServiceRequest as application/x-protobuf ' +
          'or application/json, optionally Content-Encoding: gzip. Each LLM span is stored once (idempotent by trace and span id); ' +
          'other spans are ignored; LLM spans that cannot be stored are counted in partialSuccess. The bot is the key\'s bot, ' +
          'else the resource attribute usage.bot_id, else service.name. See docs/otel.md.',
        consumes: [PROTOBUF, JSON_TYPE],
        response: {
          200: ExportTraceServiceResponse,
          400: ErrorResponse,
          401: ErrorResponse,
          403: ErrorResponse,
          413: ErrorResponse,
          415: ErrorResponse,
          429: ErrorResponse,
          503: ErrorResponse,
        },
      },
    },
    async (request, reply) => {
      const encoding: Encoding = (request.headers['content-type'] ?? '').toLowerCase().startsWith(PROTOBUF) ? 'protobuf' : 'json'
      let spans
      try {
        if (!Buffer.isBuffer(request.body)) throw new MalformedPayload('body is required: an ExportTraceServiceRequest as application/x-protobuf or application/json')
        const body = inflate(request.body, request.headers['content-encoding'], config.bodyLimit)
        spans = decodeRequest(body, encoding)
      } catch (err) {
        if (err instanceof MalformedPayload) throw new Errors.validation(err.message)
        if (err instanceof UnsupportedEncoding) throw new Errors.unsupportedContentEncoding(err.encoding)
        if (err instanceof InflatedTooLarge) throw new Errors.bodyTooLarge(err.limit)
        throw err
      }

      const now = new Date()
      const botId = boundBot(request) ?? null
      const reasons: string[] = []
      let rejected = 0
      const events: NewUsageEvent[] = []
      for (const span of spans) {
        const reading = readSpan(span, botId)
        if (reading.kind === 'ignored') continue
        if (reading.kind === 'rejected') {
          rejected++
          reasons.push(reading.reason)
          continue
        }
        const root = `span ${span.spanId} (${span.path})`
        try {
          if (reading.event.botId === undefined) {
            throw new EventRejected(root, `${root}: no bot: use a key bound to a bot, or set the resource attribute usage.bot_id or service.name`)
          }
          const input = checkEventInput(reading.event, root)
          events.push(normalizeEvent(input, { root, botId: undefined, now, limits, price: priceEvent }))
        } catch (err) {
          if (!(err instanceof EventRejected)) throw err
          rejected++
          reasons.push(err.message)
        }
      }
      const stored = events.length > 0 ? await writeQueue.write(events, { withRecords: false }) : []
      const created = stored.filter((r) => r.status === 'created').length
      opts.onExport?.({ spans: spans.length, created, duplicates: stored.length - created, rejected })

      const more = reasons.length > MAX_REASONS ? ` (and ${reasons.length - MAX_REASONS} more)` : ''
      const response = encodeResponse(encoding, rejected, reasons.length > 0 ? reasons.slice(0, MAX_REASONS).join('; ') + more : '')
      // Bytes bypass the JSON response schema (it documents the JSON form).
      if (Buffer.isBuffer(response)) return reply.type(PROTOBUF).send(response as never)
      return reply.type(JSON_TYPE).send(response)
    },
  )
}
